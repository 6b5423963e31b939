"""Find out what a path holds (family, version, layout) from the files themselves, then load it.

A model is one of:
- an official single-file checkpoint (``*.safetensors`` with ``__metadata__["config"]``), LTX-2 family or LTXV;
- a diffusers folder (``model_index.json``);
- an LTX-2.5 split release: its folder or its transformer file; the text encoder and VAE files are found beside it
  (``models.ltx25_files``) unless named.
The version is never asked for: metadata first, then the architecture.

One registry, ``FAMILIES``: each family module offers ``detect(source, pipeline) -> FamilySpec | None`` (a
``SingleFile`` or a diffusers folder with its pipeline class name) and a model class. ``detect`` reads the file header
(or ``model_index.json``) once and hands the opened source on to the loader.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from ltx_trainer.models.base import FamilySpec, LTXModel
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.sources import SingleFile, read_json

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _families() -> list[tuple[ModuleType, type]]:
    """(module with ``detect``, model class) in the order they are asked, imported on first use (the modules load
    diffusers). LTX-2.5 first: it recognises the split files, which the others must not claim."""
    from ltx_trainer.models import ltx2, ltx25, ltxv

    return [(ltx25, ltx25.LTX25Model), (ltx2, ltx2.LTX2Model), (ltxv, ltxv.LTXVModel)]


@dataclass(frozen=True)
class Detected:
    """What ``detect`` found: the family spec, the layout (``"single_file"``, ``"split"`` or ``"diffusers"``), the
    opened source (a ``SingleFile`` or the folder), which the loader reuses, and the model class that loads it."""

    spec: FamilySpec
    layout: str
    path: Path
    source: SingleFile | Path | None = None
    model_class: type | None = None


def _missing_path_error(path: Path) -> ModelLoadError:
    if _HUB_ID.match(str(path)) and not str(path).startswith((".", "/")):
        return ModelLoadError(
            f"{path}: not a local path. It looks like a Hugging Face repo id, and ltx-trainer works offline; download "
            f"it first (huggingface-cli download {path} --local-dir ./models/{Path(str(path)).name}) "
            "and pass that folder."
        )
    return ModelLoadError(f"{path}: no such file or folder")


def detect(path: str | Path) -> Detected:
    """Identify the model at ``path``.

    Raises:
        ModelLoadError: missing path, hub id, unreadable file, or a folder that is neither layout.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise _missing_path_error(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ModelLoadError(f"{path}: expected a .safetensors checkpoint (or a diffusers folder)")
        sf = SingleFile(path)
        for module, model_class in _families():
            spec = module.detect(sf)
            if spec is not None:
                layout = "split" if spec.version == "2.5" else "single_file"
                return Detected(spec, layout, path, sf, model_class)
        raise ModelLoadError(
            f"{path}: a safetensors file, but not an LTX checkpoint (no model.diffusion_model.* transformer keys)"
        )
    index = path / "model_index.json"
    if not index.is_file():
        from ltx_trainer.models.ltx25_files import transformer_in

        transformer = transformer_in(path)
        if transformer is not None:
            return detect(transformer)
        raise ModelLoadError(
            f"{path}: neither a single-file checkpoint nor a diffusers folder (no model_index.json), nor an LTX-2.5 "
            "release (no diffusion_models/*transformer*.safetensors). Pass the .safetensors file itself, or the "
            "folder that contains model_index.json."
        )
    pipeline = read_json(index).get("_class_name", "")
    for module, model_class in _families():
        spec = module.detect(path, pipeline)
        if spec is not None:
            return Detected(spec, "diffusers", path, path, model_class)
    raise ModelLoadError(
        f"{index}: pipeline {pipeline!r} is not an LTX model (expected one of LTX2Pipeline, LTXPipeline)"
    )


def load_model(
    path: str | Path,
    text_encoder_path: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    text_encoder_bits: int | None = None,
    video_vae_path: str | Path | None = None,
    audio_vae_path: str | Path | None = None,
) -> LTXModel:
    """Load the model at ``path`` behind the family-agnostic interface. Components load lazily on first use.

    ``text_encoder_bits``: 8 or 4 to load the text encoder quantized (``models/text_encoders.py``). The streaming
    settings ``load_device`` / ``on_block`` (``models/loading.py``) are attributes of the returned model.
    ``video_vae_path`` / ``audio_vae_path``: the VAE files of a split release (found beside the transformer when
    not given); other layouts carry their VAEs and refuse them.
    """
    found = detect(path)
    text_encoder = Path(text_encoder_path).expanduser() if text_encoder_path else None
    if text_encoder is not None and not text_encoder.exists():
        raise ModelLoadError(f"{text_encoder}: text encoder folder not found")
    components = {}
    for key, value in (("video_vae_path", video_vae_path), ("audio_vae_path", audio_vae_path)):
        if value is None:
            continue
        if found.layout != "split":
            raise ModelLoadError(
                f"model.{key}: {found.path} is a {found.layout.replace('_', ' ')} checkpoint with its own VAEs; "
                "this key is for split releases (LTX-2.5): remove it"
            )
        components[key] = Path(value).expanduser()
    model = found.model_class(found.spec, found.source, text_encoder, dtype, **components)
    model.text_encoder_bits = text_encoder_bits
    return model


def sampling_defaults(spec: FamilySpec) -> dict[str, object]:
    """The official one-stage sampling defaults of a family (``SampleSpec`` field values).

    LTX-2 (40 steps, STG block 29) and LTX-2.3/2.5 (30 steps, block 28) use CFG 3 (video) / 7 (audio), STG 1,
    modality 3, rescale 0.7; LTX-Video uses 40 steps and CFG 3 without STG.
    """
    if spec.family == "ltxv":
        return {"steps": 40, "video_cfg": 3.0, "generate_audio": False}
    return {
        "steps": 40 if spec.version == "2.0" else 30,
        "video_cfg": 3.0,
        "audio_cfg": 7.0,
        "video_stg": 1.0,
        "audio_stg": 1.0,
        "stg_blocks": (29,) if spec.version == "2.0" else (28,),
        "video_modality": 3.0,
        "audio_modality": 3.0,
        "rescale": 0.7,
    }
