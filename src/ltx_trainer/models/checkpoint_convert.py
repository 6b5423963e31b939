"""Full checkpoints between the official single file and a diffusers folder, LTX-2 / LTX-2.3 and LTX-Video.

Every component is converted by its ``formats/`` module, key by key, as a plan of references to the source tensors
(``models.tensor_stream``): nothing is loaded before its bytes are written, so converting a 40 GB checkpoint holds
about one tensor in memory.

- single file -> diffusers folder: ``model_index.json`` (the family's pipeline), ``scheduler/``, one folder per
  component (``config.json`` as diffusers writes it, weights sharded at 10 GB as ``save_pretrained`` does), the text
  encoder only when given (``text_encoder/`` + ``tokenizer/``). Two files make the way back exact:
  ``ltx_official_metadata.json`` (the single file's ``__metadata__``) and, when the file had tensors no component
  uses (ltx-core's unused VAE statistics), ``ltx_official_extra.safetensors``.
- diffusers folder -> single file: the components' keys renamed back; the metadata is the recorded one when each
  component's config still matches it (else it is derived from the folder's configs, as a full fine-tune export is),
  plus the recorded extra tensors. A single file -> diffusers -> single file round trip is bit-identical.
- single file -> single file: the same file in another dtype (``fp8``: the released pre-quantized layout).
"""

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ltx_trainer.io import atomic_directory, atomic_save_safetensors_streamed, atomic_write_text
from ltx_trainer.models import tensor_stream as ts
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.families import Detected, detect
from ltx_trainer.models.sources import read_json

METADATA_FILE = "ltx_official_metadata.json"
EXTRA_FILE = "ltx_official_extra.safetensors"
WEIGHTS = "diffusion_pytorch_model{suffix}.safetensors"
MAX_SHARD_SIZE = "10GB"  # diffusers' save_pretrained default
SCHEDULER = {  # the released LTX-2 / LTX-Video diffusers scheduler settings
    "use_dynamic_shifting": True,
    "base_shift": 0.95,
    "max_shift": 2.05,
    "base_image_seq_len": 1024,
    "max_image_seq_len": 4096,
    "shift_terminal": 0.1,
}


@dataclass(frozen=True)
class Component:
    """One diffusers component of a family: its folder, class, and the converters of its keys.

    ``to_diffusers(file_sd, official_config)`` / ``to_official(sd, official_config)`` rename keys (values pass
    through); ``config(official_config, file_sd, gemma_config)`` gives the diffusers config.
    """

    name: str
    cls: Callable[[dict], type]
    to_diffusers: Callable[[dict, dict], dict]
    to_official: Callable[[dict, dict], dict]
    config: Callable[[dict, dict, dict | None], dict]


def _ltx2_components() -> list[Component]:
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

    from ltx_trainer.models.formats import ltx2_audio, ltx2_text, ltx2_transformer, ltx2_video_vae
    from ltx_trainer.models.ltx2 import vocoder_class

    return [
        Component(
            "transformer",
            lambda c: LTX2VideoTransformer3DModel,
            lambda sd, c: ltx2_transformer.to_diffusers(sd),
            lambda sd, c: ltx2_transformer.to_official(sd),
            lambda c, sd, g: ltx2_transformer.diffusers_config(c["transformer"]),
        ),
        Component(
            "connectors",
            lambda c: LTX2TextConnectors,
            lambda sd, c: ltx2_text.connectors_to_diffusers(sd),
            lambda sd, c: ltx2_text.connectors_to_official(sd),
            lambda c, sd, g: ltx2_text.connectors_diffusers_config(c["transformer"], sd, g),
        ),
        Component(
            "vae",
            lambda c: AutoencoderKLLTX2Video,
            lambda sd, c: ltx2_video_vae.to_diffusers(sd, c["vae"]),
            lambda sd, c: ltx2_video_vae.to_official(sd, c["vae"]),
            lambda c, sd, g: ltx2_video_vae.diffusers_config(c["vae"]),
        ),
        Component(
            "audio_vae",
            lambda c: AutoencoderKLLTX2Audio,
            lambda sd, c: ltx2_audio.audio_vae_to_diffusers(sd),
            lambda sd, c: ltx2_audio.audio_vae_to_official(sd),
            lambda c, sd, g: ltx2_audio.audio_vae_diffusers_config(c["audio_vae"]),
        ),
        Component(
            "vocoder",
            lambda c: vocoder_class(c["vocoder"]),
            lambda sd, c: ltx2_audio.vocoder_to_diffusers(sd, c["vocoder"]),
            lambda sd, c: ltx2_audio.vocoder_to_official(sd, c["vocoder"]),
            lambda c, sd, g: ltx2_audio.vocoder_diffusers_config(c["vocoder"]),
        ),
    ]


def _ltxv_components() -> list[Component]:
    from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel

    from ltx_trainer.models.formats import ltxv as fmt

    return [
        Component(
            "transformer",
            lambda c: LTXVideoTransformer3DModel,
            lambda sd, c: fmt.transformer_to_diffusers(sd),
            lambda sd, c: fmt.transformer_to_official(sd),
            lambda c, sd, g: fmt.transformer_diffusers_config(c["transformer"]),
        ),
        Component(
            "vae",
            lambda c: AutoencoderKLLTXVideo,
            lambda sd, c: fmt.vae_to_diffusers(sd, c["vae"]),
            lambda sd, c: fmt.vae_to_official(sd, fmt.vae_diffusers_config(c["vae"])),
            lambda c, sd, g: fmt.vae_diffusers_config(c["vae"]),
        ),
    ]


def _components(family: str) -> list[Component]:
    return _ltx2_components() if family == "ltx2" else _ltxv_components()


def _pipeline_class(family: str) -> type:
    from diffusers import LTX2Pipeline, LTXPipeline

    return LTX2Pipeline if family == "ltx2" else LTXPipeline


def official_config(found: Detected) -> dict:
    """The metadata ``config`` of an official single file (LTX-Video files without one get the released config)."""
    if found.spec.family == "ltxv":
        from ltx_trainer.models.ltxv_loading import official_configs

        transformer, vae = official_configs(found.source)
        return {"transformer": transformer, **({"vae": vae} if vae else {})}
    return found.source.config


def derived_metadata(found: Detected, configs: dict[str, dict]) -> dict[str, str]:
    """The single-file ``__metadata__`` derived from a diffusers folder's component configs."""
    if found.spec.family == "ltxv":
        from ltx_trainer.models.formats import ltxv as fmt

        causal = found.spec.version not in ("0.9.0", "0.9.1")
        config = {"transformer": fmt.transformer_official_config(configs["transformer"], causal)}
        if "vae" in configs:
            config["vae"] = fmt.vae_official_config(configs["vae"])
        return {"config": json.dumps(config)}
    from ltx_trainer.models.ltx2 import official_config_from_diffusers

    return {
        "config": json.dumps(official_config_from_diffusers(configs)),
        "model_version": f"{found.spec.version}.0",
    }


# ---------------------------------------------------------------------------------------------------------------------
# single file -> diffusers folder
# ---------------------------------------------------------------------------------------------------------------------
def to_diffusers(
    source: Path, out: Path, dtype: str = "keep", text_encoder: Path | None = None, overwrite: bool = False
) -> Path:
    """Write the official single file ``source`` as a diffusers folder ``out`` (see the module docstring).

    Raises:
        ModelLoadError: ``source`` is not an official single file, or has no VAE (a transformer-only file).
        ValueError: ``dtype`` is fp8 (diffusers folders have no fp8 layout).
    """
    found = detect(source)
    if found.layout != "single_file":
        raise ModelLoadError(f"{source}: already a diffusers folder; --to diffusers converts official single files")
    config = official_config(found)
    if "vae" not in config:
        raise ModelLoadError(f"{source}: a transformer-only file; a diffusers folder needs the VAE too")
    refs = ts.file_refs(found.path)
    gemma = _text_encoder_config(text_encoder)
    reader = ts.Reader()
    used: set[str] = set()
    with atomic_directory(out, overwrite) as tmp:
        modules = {}
        for component in _components(found.spec.family):
            plan = component.to_diffusers(refs, config)
            used |= {v.key for v in plan.values() if isinstance(v, ts.Ref)}
            try:
                diffusers_config = component.config(config, refs, gemma)
            except ValueError as e:
                hint = "" if text_encoder else "; pass the text encoder folder it was made for (--text-encoder)"
                raise ModelLoadError(f"{source}: {component.name}: {e}{hint}") from e
            modules[component.name] = _save_component(
                tmp / component.name, component.cls(config), diffusers_config, plan, dtype, reader
            )
        _save_pipeline(tmp, found.spec.family, modules, text_encoder)
        atomic_write_text(
            tmp / METADATA_FILE, json.dumps({"metadata": found.source.metadata}, indent=1, sort_keys=True) + "\n"
        )
        extra = {k: v for k, v in refs.items() if k not in used}
        if extra:
            atomic_save_safetensors_streamed(ts.entries(extra, "keep", reader, True), tmp / EXTRA_FILE)
    return out


def _meta_module(cls: type, config: dict) -> torch.nn.Module:
    from accelerate import init_empty_weights

    with init_empty_weights():
        return cls.from_config({k: v for k, v in config.items() if not k.startswith("_")})


def _save_component(
    folder: Path, cls: type, config: dict, plan: dict[str, ts.Value], dtype: str, reader: ts.Reader
) -> torch.nn.Module:
    """``config.json`` (written by diffusers from the module built on the meta device) and the weights, sharded as
    ``save_pretrained`` shards them; the plan's keys must be exactly the module's."""
    from huggingface_hub import split_state_dict_into_shards_factory

    from ltx_trainer.models.formats.common import check_state_dict

    module = _meta_module(cls, config)
    entries = ts.entries(plan, dtype, reader, single_file=False)  # fp8 scales are folded into their weights here
    check_state_dict(module, _shapes(entries), str(folder), folder.name)
    module.save_config(folder)
    split = split_state_dict_into_shards_factory(
        entries,
        get_storage_size=lambda e: int(torch.Size(e[1]).numel()) * e[0].itemsize,
        filename_pattern=WEIGHTS,
        max_shard_size=MAX_SHARD_SIZE,
    )
    for filename, keys in split.filename_to_tensors.items():
        atomic_save_safetensors_streamed({k: entries[k] for k in keys}, folder / filename, {"format": "pt"})
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        text = json.dumps(index, indent=2, sort_keys=True) + "\n"
        atomic_write_text(folder / (WEIGHTS.format(suffix="") + ".index.json"), text)
    return module


def _shapes(entries: dict[str, ts.Entry]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(shape, dtype=dtype, device="meta") for k, (dtype, shape, _) in entries.items()}


def _text_encoder_config(folder: Path | None) -> dict | None:
    if folder is None:
        return None
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder}: --text-encoder needs a text encoder folder (config.json + weights)")
    return read_json(folder / "config.json")


_TOKENIZER_FILES = ("tokenizer*", "special_tokens_map.json", "*.model", "spiece.model", "chat_template*", "added_*")


def _save_pipeline(root: Path, family: str, modules: dict, text_encoder: Path | None) -> None:
    """``model_index.json`` and ``scheduler/`` (from diffusers' own classes), and the text encoder when given."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER)
    scheduler.save_config(root / "scheduler")
    pipeline = _pipeline_class(family)(scheduler=scheduler, text_encoder=None, tokenizer=None, **modules)
    pipeline.save_config(root)
    if text_encoder is None:
        return
    index = read_json(root / "model_index.json")
    (root / "text_encoder").mkdir()
    (root / "tokenizer").mkdir()
    tokenizer_files = {p for pattern in _TOKENIZER_FILES for p in text_encoder.glob(pattern) if p.is_file()}
    for path in sorted(text_encoder.iterdir()):
        if path.is_file():
            shutil.copy2(path, root / ("tokenizer" if path in tokenizer_files else "text_encoder") / path.name)
    architecture = (read_json(text_encoder / "config.json").get("architectures") or [None])[0]
    tokenizer = (
        read_json(text_encoder / "tokenizer_config.json").get("tokenizer_class")
        if (text_encoder / "tokenizer_config.json").is_file()
        else None
    )
    if architecture is None or tokenizer is None:
        raise ModelLoadError(
            f"{text_encoder}: config.json has no 'architectures' or tokenizer_config.json no 'tokenizer_class'; "
            "pass a transformers text-encoder folder with its tokenizer"
        )
    index["text_encoder"], index["tokenizer"] = ["transformers", architecture], ["transformers", tokenizer]
    atomic_write_text(root / "model_index.json", json.dumps(index, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------------------------------
# diffusers folder / single file -> single file
# ---------------------------------------------------------------------------------------------------------------------
def to_single_file(source: Path, out: Path, dtype: str = "keep", overwrite: bool = False) -> Path:
    """Write the model at ``source`` (a diffusers folder, or a single file to re-type) as one official single file.

    Raises:
        ModelLoadError: a component folder whose weights don't match its config.
    """
    from ltx_trainer.models.quantization import fp8_file_keys

    found = detect(source)
    if found.layout == "single_file":
        plan, metadata = ts.file_refs(found.path), dict(found.source.metadata)
    else:
        plan, metadata = _official_plan(found)
    if Path(out).exists() and not overwrite:
        raise FileExistsError(str(out))
    fp8_keys = fp8_file_keys(ts.meta_tensors(plan)) if dtype == "fp8" else ()
    entries = ts.entries(plan, dtype, ts.Reader(), True, fp8_keys)
    return atomic_save_safetensors_streamed(entries, Path(out), metadata)


def _official_plan(found: Detected) -> tuple[dict[str, ts.Value], dict[str, str]]:
    """The official keys of a diffusers folder's components (references to its shards), and the metadata."""
    root = found.path
    configs, refs = {}, {}
    for component in _components(found.spec.family):
        folder = root / component.name
        if (folder / "config.json").is_file():
            configs[component.name] = read_json(folder / "config.json")
            refs[component.name] = ts.folder_refs(folder)
    if "transformer" not in configs:
        raise ModelLoadError(f"{root}: no transformer/ folder (config.json + weights)")
    recorded = read_json(root / METADATA_FILE).get("metadata") if (root / METADATA_FILE).is_file() else None
    metadata = recorded if recorded and _still_matches(found, recorded, configs) else derived_metadata(found, configs)
    config = json.loads(metadata["config"])
    plan: dict[str, ts.Value] = {}
    for component in _components(found.spec.family):
        if component.name in refs:
            plan.update(component.to_official(refs[component.name], config))
    if recorded is metadata and (root / EXTRA_FILE).is_file():
        plan.update({k: v for k, v in ts.file_refs(root / EXTRA_FILE).items() if k not in plan})
    return plan, metadata


def _json(value: object) -> object:
    return json.loads(json.dumps(value))


def _still_matches(found: Detected, recorded: dict, configs: dict[str, dict]) -> bool:
    """Whether each component's config is still what the recorded metadata gives (the folder was not edited)."""
    try:
        config = json.loads(recorded["config"])
        for component in _components(found.spec.family):
            if component.name not in configs:
                continue
            probe = _official_probe(found.path / component.name, component, config)
            expected = _json(component.config(config, probe, _text_widths(configs)))
            actual = configs[component.name]
            if any(actual.get(k) != v for k, v in expected.items()):
                return False
    except (KeyError, ValueError, TypeError, ModelLoadError):
        return False
    return True


def _text_widths(configs: dict[str, dict]) -> dict | None:
    """The text encoder's width and hidden-state count as the folder's connectors config has them (files whose
    metadata omits ``caption_channels`` need them to derive the connectors config)."""
    connectors = configs.get("connectors")
    if connectors is None:
        return None
    layers = connectors["text_proj_in_factor"] - 1
    return {"text_config": {"hidden_size": connectors["caption_channels"], "num_hidden_layers": layers}}


def _official_probe(folder: Path, component: Component, config: dict) -> dict:
    """The component's tensors under their official keys (references: shapes for the connectors' config)."""
    return component.to_official(ts.folder_refs(folder), config)
