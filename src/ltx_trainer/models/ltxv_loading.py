"""Finding and reading LTX-Video 0.9.x files: detection (family, release, configs) and the T5 text encoder.

The release is read from the file itself (metadata first, then the architecture: block count, VAE layout); files
without metadata get the released config that matches their shapes. ``detect`` is this family's entry in the
registry of ``models/families.py``.
"""

import json
import re
from collections.abc import Iterable
from pathlib import Path

import torch
from accelerate import init_empty_weights
from safetensors import safe_open
from torch import nn

from ltx_trainer import logger
from ltx_trainer.models.base import FamilySpec
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats import ltxv as fmt
from ltx_trainer.models.formats.common import StateDict, check_nothing_meta, check_state_dict, load_state_dict_strict
from ltx_trainer.models.loading import stream_into
from ltx_trainer.models.sources import SingleFile, TensorRef, read_json, read_safetensors_dir, safetensors_dir_refs
from ltx_trainer.models.text_encoders import quantize_int8_weight_only_

TEXT_MAX_LENGTH = 128
PIPELINES = ("LTXPipeline", "LTXImageToVideoPipeline", "LTXConditionPipeline")
_BLOCK_INDEX = re.compile(r"^model\.diffusion_model\.transformer_blocks\.(\d+)\.")
_NOT_LTXV_MARKERS = ("audio_patchify_proj", "audio_adaln_single", "av_ca_", "embeddings_connector", "audio_proj_in")


def _metadata_config(metadata: dict | None) -> dict:
    try:
        config = json.loads((metadata or {}).get("config", "{}"))
    except json.JSONDecodeError:
        return {}
    return config if isinstance(config, dict) else {}


def is_ltxv_single_file(metadata: dict | None, keys: Iterable[str]) -> bool:
    """An official LTX-Video file: a ``model.diffusion_model.patchify_proj`` transformer without LTX-2's audio stream,
    connectors or audio-video cross-attention (and no ``AVTransformer3DModel`` metadata)."""
    keys = list(keys)
    if fmt.TRANSFORMER_PREFIX + "patchify_proj.weight" not in keys:
        return False
    if any(k.startswith(fmt.TRANSFORMER_PREFIX) and any(m in k for m in _NOT_LTXV_MARKERS) for k in keys):
        return False
    if any(k.startswith(("audio_vae.", "vocoder.", "text_embedding_projection.")) for k in keys):
        return False
    transformer = _metadata_config(metadata).get("transformer", {})
    return not (isinstance(transformer, dict) and transformer.get("_class_name") == "AVTransformer3DModel")


def _num_blocks(keys: Iterable[str]) -> int:
    found = {int(m.group(1)) for k in keys if (m := _BLOCK_INDEX.match(k))}
    return max(found) + 1 if found else 0


def ltxv_version(metadata: dict | None, keys: Iterable[str]) -> str:
    """The release family from the file itself: ``"0.9.7"`` (13B, 48 blocks; 0.9.7 and 0.9.8 share the architecture),
    ``"0.9.5"`` (2B with the space-to-depth VAE: 0.9.5, 0.9.6, 2B 0.9.8), ``"0.9.1"`` or ``"0.9.0"``.

    Transformer-only files (no ``vae.*``) read as 0.9.5 when the metadata asks for causal RoPE positions, else 0.9.1.
    """
    keys = list(keys)
    config = _metadata_config(metadata)
    vae_version = fmt.vae_version_from_official(config if config.get("vae") else None, keys)
    if _num_blocks(keys) == 48 and vae_version in (None, "0.9.5"):
        return "0.9.7"
    if vae_version is not None:
        return vae_version
    causal = fmt.transformer_settings(config)["causal_temporal_positioning"] if config.get("transformer") else False
    return "0.9.5" if causal else "0.9.1"


def _shapes(path: Path, keys: Iterable[str]) -> dict[str, tuple[int, ...]]:
    with safe_open(path, "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in keys}


def official_configs(sf: SingleFile) -> tuple[dict, dict | None]:
    """The file's ``(transformer, vae)`` metadata sections (official naming); ``vae`` is None without ``vae.*`` keys.

    Files without metadata get the released config that matches their block count and widths.

    Raises:
        ModelLoadError: no metadata and an architecture that matches no released LTX-Video model.
    """
    config = sf.config if isinstance(sf.config, dict) else {}
    version = ltxv_version(sf.metadata, sf.keys)
    transformer = config.get("transformer")
    if not transformer:
        probe = [fmt.TRANSFORMER_PREFIX + "patchify_proj.weight"]
        width = _shapes(sf.path, probe)[probe[0]][0]
        name = {(28, 2048): "2b", (48, 4096): "13b"}.get((_num_blocks(sf.keys), width))
        if name is None:
            raise ModelLoadError(
                f"{sf.path}: no 'config' metadata, and the transformer ({_num_blocks(sf.keys)} blocks, width {width}) "
                "matches no released LTX-Video model (2B: 28 blocks x 2048, 13B: 48 x 4096). Re-export the file with "
                "its metadata config, or convert it to a diffusers folder."
            )
        transformer = dict(fmt.KNOWN_TRANSFORMER_CONFIGS[name])
        transformer["causal_temporal_positioning"] = version not in ("0.9.0", "0.9.1")
        logger.info("%s: no config metadata; using the released LTX-Video %s transformer config", sf.path, name)
    vae = config.get("vae")
    if not vae and any(k.startswith(fmt.VAE_PREFIX) for k in sf.keys):
        vae_version = fmt.vae_version_from_official(None, sf.keys)
        vae = fmt.KNOWN_VAE_CONFIGS[vae_version]
        probe = [fmt.VAE_PREFIX + "encoder.conv_out.conv.weight"]
        width = _shapes(sf.path, probe)[probe[0]][1] if probe[0] in sf.keys else None
        want = fmt.vae_diffusers_config(vae)["block_out_channels"][-1]
        if width != want:
            raise ModelLoadError(
                f"{sf.path}: no 'config' metadata, and the VAE (encoder width {width}) is not the released "
                f"{vae_version} VAE (width {want}). Re-export the file with its metadata config."
            )
        logger.info("%s: no config metadata; using the released LTX-Video %s VAE config", sf.path, vae_version)
    return transformer, (vae or None)


def _spec(version: str, transformer: dict, vae: dict | None) -> FamilySpec:
    """``transformer``/``vae``: diffusers configs."""
    vae = vae or {}
    return FamilySpec(
        family="ltxv",
        version=version,
        has_audio=False,
        latent_channels=int(vae.get("latent_channels", transformer.get("in_channels", 128))),
        temporal_compression=int(vae.get("temporal_compression_ratio") or 8),
        spatial_compression=int(vae.get("spatial_compression_ratio") or 32),
        text_max_length=TEXT_MAX_LENGTH,
        num_layers=int(transformer.get("num_layers", 28)),
    )


def ltxv_spec_from_single_file(sf: SingleFile) -> FamilySpec:
    transformer, vae = official_configs(sf)
    return _spec(
        ltxv_version(sf.metadata, sf.keys),
        fmt.transformer_diffusers_config(transformer),
        fmt.vae_diffusers_config(vae) if vae else None,
    )


def _diffusers_version(transformer: dict, vae: dict) -> str:
    if transformer.get("num_layers") == 48:
        return "0.9.7"
    if list(vae.get("down_block_types", [""]))[-1] == "LTXVideo095DownBlock3D":
        return "0.9.5"
    return "0.9.1" if vae.get("timestep_conditioning") else "0.9.0"


def _diffusers_vae_config(vae: dict) -> dict:
    """diffusers' own default for the compression ratios is wrong for 0.9.5+ VAEs (it counts 2x per block)."""
    if vae.get("spatial_compression_ratio") is None or vae.get("temporal_compression_ratio") is None:
        down = list(vae.get("downsample_type", ["conv"] * 4))
        scaling = list(vae.get("spatio_temporal_scaling", [True, True, True, False]))
        spatial = sum(s and d != "temporal" for s, d in zip(scaling, down, strict=False))
        temporal = sum(s and d != "spatial" for s, d in zip(scaling, down, strict=False))
        vae = {**vae, "spatial_compression_ratio": vae.get("patch_size", 4) * 2**spatial}
        vae["temporal_compression_ratio"] = vae.get("patch_size_t", 1) * 2**temporal
    return vae


def ltxv_spec_from_diffusers(path: Path) -> FamilySpec:
    transformer = read_json(Path(path) / "transformer" / "config.json")
    vae = _diffusers_vae_config(read_json(Path(path) / "vae" / "config.json"))
    return _spec(_diffusers_version(transformer, vae), transformer, vae)


def detect(source: SingleFile | Path, pipeline: str | None = None) -> FamilySpec | None:
    """This family's spec for a single file (``source`` a ``SingleFile``) or a diffusers folder whose
    ``model_index.json`` names ``pipeline``; None when it is not an LTX-Video model."""
    if isinstance(source, SingleFile):
        return ltxv_spec_from_single_file(source) if is_ltxv_single_file(source.metadata, source.keys) else None
    return ltxv_spec_from_diffusers(source) if pipeline in PIPELINES else None


# ---------------------------------------------------------------------------------------------------------------------
# Weights and the T5 text encoder
# ---------------------------------------------------------------------------------------------------------------------
def _read_weights(folder: Path, dtype: torch.dtype | None, refs: bool = False) -> StateDict:
    """A component folder's weights: ``*.safetensors`` shards, else ``*.bin`` (loaded with ``weights_only=True``).

    ``refs``: safetensors come back as references to stream from (``models/loading.py``), nothing read yet.
    """
    if any(folder.glob("*.safetensors")):
        return safetensors_dir_refs(folder) if refs else read_safetensors_dir(folder, dtype)
    bins = sorted(folder.glob("*.bin"))
    if not bins:
        raise ModelLoadError(f"{folder}: no *.safetensors or *.bin weights in this folder")
    sd: StateDict = {}
    for file in bins:
        sd.update(torch.load(file, map_location="cpu", weights_only=True))
    return {k: v.to(dtype) if dtype is not None and v.is_floating_point() else v for k, v in sd.items()}


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("tokenizer.json", "spiece.model", "tokenizer_config.json"))


def _t5_folders(path: Path) -> tuple[Path, Path]:
    """A T5 folder (model + tokenizer files), or a root with ``text_encoder/`` and ``tokenizer/`` subfolders."""
    path = Path(path)
    model_dir = path / "text_encoder" if (path / "text_encoder" / "config.json").is_file() else path
    tokenizer_dir = next((d for d in (path / "tokenizer", model_dir, path) if _has_tokenizer(d)), None)
    if not (model_dir / "config.json").is_file() or tokenizer_dir is None:
        raise ModelLoadError(
            f"{path}: not a T5 text-encoder folder. Expected config.json + weights + tokenizer files (tokenizer.json "
            "or spiece.model), or text_encoder/ and tokenizer/ subfolders (e.g. google/t5-v1_1-xxl, or the "
            "text_encoder/ of a diffusers LTX-Video folder)."
        )
    return model_dir, tokenizer_dir


def load_t5(path: Path, dtype: torch.dtype = torch.float32, bits: int | None = None) -> tuple[nn.Module, object]:
    """T5 encoder + tokenizer from a local folder, strictly (a missing tensor is a ``ModelLoadError``), streamed
    unit by unit from safetensors shards. ``bits=8``: torchao int8 weight-only (4-bit is refused for T5).

    ``decoder.*``/``lm_head.*`` tensors of a full T5 checkpoint are ignored; the tied input embedding may be stored
    under either of its two names.
    """
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    model_dir, tokenizer_dir = _t5_folders(path)
    config = read_json(model_dir / "config.json")
    if config.get("model_type") not in ("t5", "umt5"):
        raise ModelLoadError(f"{model_dir}: model_type={config.get('model_type')!r}; LTX-Video needs a T5 encoder")
    with init_empty_weights():
        model = T5EncoderModel(T5Config.from_dict(config))
    if bits not in (None, 8):
        raise ModelLoadError(
            "acceleration.load_text_encoder_in_4bit: LTX-Video's T5 loads in 8 bit only "
            "(acceleration.load_text_encoder_in_8bit)"
        )
    weights = _read_weights(model_dir, dtype, refs=True)
    sd = {k: v for k, v in weights.items() if not k.startswith(("decoder.", "lm_head."))}
    for target, source in (getattr(model, "_tied_weights_keys", None) or {}).items():
        if target not in sd and source in sd:
            sd[target] = sd[source]
        elif source not in sd and target in sd:
            sd[source] = sd[target]
    if any(isinstance(v, TensorRef) for v in sd.values()):
        check_state_dict(model, sd, str(model_dir), "T5 text encoder")
        stream_into(model, sd, dtype)
        check_nothing_meta(model, str(model_dir), "T5 text encoder")
    else:
        load_state_dict_strict(model, sd, str(model_dir), "T5 text encoder")
    if bits == 8:
        quantize_int8_weight_only_(model)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    tokenizer.padding_side = "right"
    return model.eval().requires_grad_(False), tokenizer
