"""LoRA files: the one module that writes and reads them, and knows their header keys.

Written layouts (``LTXModel.lora_layouts`` chooses which a family gets):

- ``official``: ``diffusion_model.<official module path>.lora_{A,B}.weight`` with ``[r, in]`` / ``[out, r]`` shapes and
  **alpha/r folded into B**: ltx-core's fusion and ComfyUI (without ``.alpha``) apply ``B @ A`` unscaled, and
  diffusers reads the same file, so all three reproduce the trained model. Path: the checkpoint path.
- ``diffusers``: ``transformer.<diffusers module path>.lora_{A,B}.weight`` (alpha folded too), next to it as
  ``<stem>_diffusers.safetensors``.

Read layouts: both of the above and the ``lora_down``/``lora_up`` naming; an ``<module>.alpha`` tensor, when present,
scales B by ``alpha / rank`` (ComfyUI's rule). Official module paths are renamed to diffusers ones by the model's
``diffusers_module_name``. Unlike ltx-core, a key that matches no layer (or a half pair) is an error, never skipped.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open

from ltx_trainer.io import atomic_save_safetensors
from ltx_trainer.models.base import LTXModel
from ltx_trainer.models.latents import ReferenceScale

COMFY_PREFIX = "diffusion_model."
DIFFUSERS_PREFIX = "transformer."
# IC-LoRA header keys: the official files carry both spatial names.
REFERENCE_DOWNSCALE_KEY = "reference_downscale_factor"
REFERENCE_SPATIAL_KEY = "reference_spatial_scale_factor"
REFERENCE_TEMPORAL_KEY = "reference_temporal_scale_factor"
BASE_FAMILY_KEY = "ltx_trainer_base_family"
BASE_VERSION_KEY = "ltx_trainer_base_version"

_SUFFIXES = {
    ".lora_A.weight": "A",
    ".lora_B.weight": "B",
    ".lora_down.weight": "A",
    ".lora_up.weight": "B",
    ".alpha": "alpha",
}


# ---------------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------------
def export_lora(
    sd: dict[str, torch.Tensor],
    rank: int,
    alpha: float,
    to_official: Callable[[str], str],
    dtype: torch.dtype = torch.bfloat16,
    prefix: str = COMFY_PREFIX,
) -> dict[str, torch.Tensor]:
    """peft-named fp32 weights -> ``<prefix><module>.lora_{A,B}.weight`` with ``alpha / rank`` folded into B.

    The default gives the ComfyUI/official layout (``to_official`` renames diffusers module paths); with
    ``prefix="transformer."`` and an identity rename it gives diffusers' own layout.
    """
    scale = alpha / rank
    out = {}
    for key, value in sd.items():
        module, _, suffix = key.rpartition(".lora_")
        tensor = value * scale if suffix.startswith("B") else value
        out[f"{prefix}{to_official(module)}.lora_{suffix}"] = tensor.to(dtype).contiguous()
    return out


def lora_metadata(rank: int, alpha: float, target_modules: list[str], extra: dict[str, str] | None = None) -> dict:
    """Safetensors header for LoRA files: strings only. ``alpha`` is recorded, but already folded into B."""
    return {
        "format": "pt",
        "ltx_trainer_rank": str(rank),
        "ltx_trainer_alpha": str(alpha),
        "ltx_trainer_alpha_folded_into_B": "true",
        "ltx_trainer_target_modules": json.dumps(list(target_modules)),
        **(extra or {}),
    }


def reference_scale_metadata(scale: ReferenceScale | None) -> dict[str, str]:
    """Header entries of an IC-LoRA with a video reference (empty without one)."""
    if scale is None:
        return {}
    return {
        REFERENCE_DOWNSCALE_KEY: str(scale.spatial),
        REFERENCE_SPATIAL_KEY: str(scale.spatial),
        REFERENCE_TEMPORAL_KEY: str(scale.temporal),
    }


def save_lora(
    model: LTXModel,
    peft_sd: dict[str, torch.Tensor],
    rank: int,
    alpha: float,
    target_modules: list[str],
    path: Path,
    dtype: torch.dtype = torch.bfloat16,
    extra_metadata: dict[str, str] | None = None,
    adapter: str = "lora",
) -> list[Path]:
    """Write a trained LoRA (peft naming, fp32) in every layout the model's family uses; returns the files.
    Another ``adapter`` (dora, lokr, loha) is written by ``models.adapter_files``."""
    if adapter != "lora":
        from ltx_trainer.models.adapter_files import save_adapter

        return save_adapter(model, adapter, peft_sd, rank, alpha, target_modules, path, dtype, extra_metadata)
    metadata = lora_metadata(
        rank,
        alpha,
        target_modules,
        {BASE_FAMILY_KEY: model.spec.family, BASE_VERSION_KEY: model.spec.version, **(extra_metadata or {})},
    )
    written = []
    for layout in model.lora_layouts:
        if layout == "official":
            tensors = export_lora(peft_sd, rank, alpha, model.official_module_name, dtype)
            target = Path(path)
        else:
            tensors = export_lora(peft_sd, rank, alpha, str, dtype, DIFFUSERS_PREFIX)
            target = Path(path).with_name(Path(path).stem + "_diffusers.safetensors")
        written.append(atomic_save_safetensors(tensors, target, metadata))
    return written


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class LoraFile:
    """A LoRA read from disk: diffusers module path -> (A ``[r, in]``, B ``[out, r]`` with alpha folded in).

    ``modules``: the DoRA/LoKr/LoHa modules of such a file (``models.adapter_files.ModuleAdapter`` by module path).
    """

    path: Path
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]
    metadata: dict[str, str]
    modules: dict = field(default_factory=dict)

    def reference_scale(self) -> tuple[int, int] | None:
        """(downscale, temporal scale) of an IC-LoRA's reference, from the file header, or None."""
        spatial = self.metadata.get(REFERENCE_DOWNSCALE_KEY) or self.metadata.get(REFERENCE_SPATIAL_KEY)
        temporal = self.metadata.get(REFERENCE_TEMPORAL_KEY)
        if spatial is None and temporal is None:
            return None
        return int(float(spatial or 1)), int(float(temporal or 1))


def parse_lora_arg(text: str) -> tuple[Path, float]:
    """``PATH[:STRENGTH]`` -> (path, strength); strength defaults to 1.0 (``C:\\x.safetensors`` stays a path)."""
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            return Path(head), float(tail)
        except ValueError:
            pass
    return Path(text), 1.0


def read_lora(path: str | Path, to_diffusers: Callable[[str], str]) -> LoraFile:
    """Read a LoRA file; ``to_diffusers`` is the model's ``diffusers_module_name`` (official -> diffusers paths).

    Raises:
        ValueError: unknown keys or half pairs, naming the file and the first offending keys.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: LoRA file not found")
    from ltx_trainer.models import adapter_files  # it builds on this module

    if adapter_files.holds_adapters(path):
        return adapter_files.read_adapter(path, to_diffusers)
    parts: dict[str, dict[str, torch.Tensor]] = {}
    unknown = []
    with safe_open(path, "pt") as f:
        metadata = dict(f.metadata() or {})
        for key in f.keys():
            suffix = next((s for s in _SUFFIXES if key.endswith(s)), None)
            if suffix is None:
                unknown.append(key)
                continue
            kind, module = _SUFFIXES[suffix], key.removesuffix(suffix)
            if module.startswith(COMFY_PREFIX):
                module = to_diffusers(module.removeprefix(COMFY_PREFIX))
            elif module.startswith(DIFFUSERS_PREFIX):
                module = module.removeprefix(DIFFUSERS_PREFIX)
            elif module.startswith("base_model.model."):
                module = module.removeprefix("base_model.model.")
            else:
                unknown.append(key)
                continue
            parts.setdefault(module, {})[kind] = f.get_tensor(key)
    half = [m for m, p in parts.items() if "A" not in p or "B" not in p]
    if unknown or half:
        problems = [f"keys not in a LoRA layout: {unknown[:3]}"] if unknown else []
        problems += [f"modules without both lora_A and lora_B: {half[:3]}"] if half else []
        raise ValueError(
            f"{path}: {'; '.join(problems)}. Expected diffusion_model.<module>.lora_A/B.weight (ComfyUI/official) or "
            "transformer.<module>.lora_A/B.weight (diffusers)."
        )
    pairs = {}
    for module, p in parts.items():
        a, b = p["A"], p["B"]
        if "alpha" in p:
            b = b * (float(p["alpha"]) / a.shape[0])
        pairs[module] = (a, b)
    if not pairs:
        raise ValueError(f"{path}: no LoRA weights in this file")
    return LoraFile(path, pairs, metadata)
