"""Find out what a path holds (family, version, layout) from the files themselves, then load it.

A model is one of:
- an official single-file checkpoint (``*.safetensors`` with ``__metadata__["config"]``), LTX-2 family or LTXV;
- a diffusers folder (``model_index.json``);
- LTX-2.5 split packs (transformer file + separate VAE files): detected and refused with what is missing (see
  docs/architecture.md).
The version is never asked for: metadata first, then the architecture.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ltx_trainer.models.base import FamilySpec, LTXModel
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.sources import SingleFile, read_json

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LTX2_PIPELINES = ("LTX2Pipeline", "LTX2ImageToVideoPipeline", "LTX2ConditionPipeline", "LTX2InContextPipeline")
_LTXV_PIPELINES = ("LTXPipeline", "LTXImageToVideoPipeline", "LTXConditionPipeline")


@dataclass(frozen=True)
class Detected:
    """What ``detect`` found: the family spec and the layout (``"single_file"`` or ``"diffusers"``)."""

    spec: FamilySpec
    layout: str
    path: Path


def _missing_path_error(path: Path) -> ModelLoadError:
    if _HUB_ID.match(str(path)) and not str(path).startswith((".", "/")):
        return ModelLoadError(
            f"{path}: not a local path. It looks like a Hugging Face repo id, and ltx-trainer works offline; download "
            f"it first (huggingface-cli download {path} --local-dir ./models/{Path(str(path)).name}) "
            "and pass that folder."
        )
    return ModelLoadError(f"{path}: no such file or folder")


def _ltx2_spec(version: str, transformer_cfg: dict) -> FamilySpec:
    return FamilySpec(family="ltx2", version=version, has_audio=True, num_layers=transformer_cfg.get("num_layers", 48))


def detect(path: str | Path) -> Detected:
    """Identify the model at ``path``.

    Raises:
        ModelLoadError: missing path, hub id, unreadable file, or a folder that is neither layout.
    """
    from ltx_trainer.models import ltx2, ltxv

    path = Path(path).expanduser()
    if not path.exists():
        raise _missing_path_error(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ModelLoadError(f"{path}: expected a .safetensors checkpoint (or a diffusers folder)")
        sf = SingleFile(path)
        if any(k.startswith("model.diffusion_model.audio_patchify_proj") for k in sf.keys):
            if not sf.has("vae."):
                raise ModelLoadError(
                    f"{path}: a transformer-only LTX-2 file (LTX-2.5 split pack?). Loading split packs needs "
                    "model.video_vae_path / model.audio_vae_path, which this version does not support yet; "
                    "use the unified single-file checkpoint or a diffusers folder."
                )
            version = ltx2.ltx2_version(sf.metadata, sf.config, sf.keys)
            return Detected(_ltx2_spec(version, sf.config.get("transformer", {})), "single_file", path)
        if ltxv.is_ltxv_single_file(sf.metadata, sf.keys):
            return Detected(ltxv.ltxv_spec_from_single_file(sf), "single_file", path)
        raise ModelLoadError(
            f"{path}: a safetensors file, but not an LTX checkpoint (no model.diffusion_model.* transformer keys)"
        )
    index = path / "model_index.json"
    if not index.is_file():
        raise ModelLoadError(
            f"{path}: neither a single-file checkpoint nor a diffusers folder (no model_index.json). Pass the "
            ".safetensors file itself, or the folder that contains model_index.json."
        )
    pipeline = read_json(index).get("_class_name", "")
    if pipeline in _LTX2_PIPELINES:
        transformer_cfg = read_json(path / "transformer" / "config.json")
        version = "2.0" if transformer_cfg.get("use_prompt_embeddings", True) else "2.3"
        if transformer_cfg.get("use_prompt_adaln_single") is False or not transformer_cfg.get("ff_bias", True):
            version = "2.5"
        return Detected(_ltx2_spec(version, transformer_cfg), "diffusers", path)
    if pipeline in _LTXV_PIPELINES:
        return Detected(ltxv.ltxv_spec_from_diffusers(path), "diffusers", path)
    raise ModelLoadError(
        f"{index}: pipeline {pipeline!r} is not an LTX model (expected one of LTX2Pipeline, LTXPipeline)"
    )


def load_model(
    path: str | Path,
    text_encoder_path: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
) -> LTXModel:
    """Load the model at ``path`` behind the family-agnostic interface. Components load lazily on first use."""
    from ltx_trainer.models import ltx2, ltxv

    found = detect(path)
    text_encoder = Path(text_encoder_path).expanduser() if text_encoder_path else None
    if text_encoder is not None and not text_encoder.exists():
        raise ModelLoadError(f"{text_encoder}: text encoder folder not found")
    source = SingleFile(found.path) if found.layout == "single_file" else found.path
    if found.spec.family == "ltx2":
        if found.spec.version == "2.5":
            raise ModelLoadError(
                f"{path}: LTX-2.5 (Gemma-4, KV-cacheable cross-attention) is detected but not loadable yet: "
                "see docs/architecture.md, 'LTX-2.5'."
            )
        return ltx2.LTX2Model(found.spec, source, text_encoder, dtype)
    return ltxv.LTXVModel(found.spec, source, text_encoder, dtype)
