"""Apply LoRA files to a loaded transformer for sampling.

Files: the official / ComfyUI layout our trainer writes (``diffusion_model.<official module>.lora_A/B.weight``,
alpha folded into B), diffusers' layout (``transformer.<module>.lora_A/B.weight``), and the ``lora_down``/``lora_up``
naming; an ``<module>.alpha`` tensor, when present, scales B by ``alpha / rank`` (ComfyUI's rule). Official module
paths are renamed to diffusers ones by the family's ``module_to_diffusers``. Unlike ltx-core, a key that matches no
layer (or a half pair, or a wrong shape) is an error, never silently skipped.

Two ways to apply them, both ``W x + strength * B (A x)``:

- **adapters** (the default): each LoRA stays separate, as a forward hook on its ``nn.Linear`` computing
  ``out + strength * B(A(x))`` in the LoRA's own precision. This is exactly what peft computes during training, so a
  sample from the saved file equals the validation sample drawn with the in-memory LoRA (same seed), and hooks come
  off with ``remove()``.
- **merge**: ``W += strength * B @ A`` (computed in float32, stored in W's dtype), what ltx-core's ``fuse_loras`` and
  ComfyUI do: no per-step cost, but the delta is rounded to W's dtype (bf16 on GPUs).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from ltx_trainer import logger

_SUFFIXES = {
    ".lora_A.weight": "A",
    ".lora_B.weight": "B",
    ".lora_down.weight": "A",
    ".lora_up.weight": "B",
    ".alpha": "alpha",
}


@dataclass
class LoraFile:
    """A LoRA read from disk: diffusers module path -> (A ``[r, in]``, B ``[out, r]`` with alpha folded in)."""

    path: Path
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]
    metadata: dict[str, str]

    def reference_scale(self) -> tuple[int, int] | None:
        """(downscale, temporal scale) of an IC-LoRA's reference, from the file header, or None."""
        spatial = self.metadata.get("reference_downscale_factor") or self.metadata.get("reference_spatial_scale_factor")
        temporal = self.metadata.get("reference_temporal_scale_factor")
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


def module_renamer(family: str) -> Callable[[str], str]:
    """Official transformer module path -> diffusers path for a family (``ltx2`` or ``ltxv``)."""
    if family == "ltx2":
        from ltx_trainer.models.formats.ltx2_transformer import module_to_diffusers
    else:
        from ltx_trainer.models.formats.ltxv import module_to_diffusers
    return module_to_diffusers


def read_lora(path: str | Path, family: str) -> LoraFile:
    """Read a LoRA file for a model of ``family``.

    Raises:
        ValueError: unknown keys or half pairs, naming the file and the first offending keys.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: LoRA file not found")
    rename = module_renamer(family)
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
            if module.startswith("diffusion_model."):
                module = rename(module.removeprefix("diffusion_model."))
            elif module.startswith("transformer."):
                module = module.removeprefix("transformer.")
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


def _linear(transformer: nn.Module, module: str, lora: LoraFile) -> nn.Linear:
    try:
        layer = transformer.get_submodule(module)
    except AttributeError as e:
        raise ValueError(
            f"{lora.path}: module {module!r} is not in this transformer; was the LoRA trained on another model family "
            "or size?"
        ) from e
    base = getattr(layer, "base_layer", layer)  # a peft-wrapped layer (training) keeps its Linear here
    if not isinstance(base, nn.Linear):
        raise ValueError(f"{lora.path}: {module!r} is a {type(base).__name__}, not a Linear layer")
    return layer


def _check_shapes(base: nn.Linear, a: torch.Tensor, b: torch.Tensor, module: str, lora: LoraFile) -> None:
    if a.shape[1] != base.in_features or b.shape[0] != base.out_features or a.shape[0] != b.shape[1]:
        raise ValueError(
            f"{lora.path}: {module}: lora_A {list(a.shape)} / lora_B {list(b.shape)} do not fit a Linear "
            f"{base.in_features} -> {base.out_features}; the LoRA was trained on a different model"
        )


def apply_loras(
    transformer: nn.Module, loras: list[tuple[LoraFile, float]], merge: bool = False
) -> list[torch.utils.hooks.RemovableHandle]:
    """Apply ``(lora, strength)`` pairs to ``transformer`` (see the module docstring). Returns the hook handles
    (empty when merging)."""
    handles = []
    for lora, strength in loras:
        for module, (a, b) in lora.pairs.items():
            layer = _linear(transformer, module, lora)
            base = getattr(layer, "base_layer", layer)
            _check_shapes(base, a, b, module, lora)
            weight = base.weight
            if merge:
                with torch.no_grad():
                    delta = b.to(weight.device, torch.float32) @ a.to(weight.device, torch.float32)
                    weight.copy_((weight.float() + strength * delta).to(weight.dtype))
                continue
            dtype = weight.dtype if weight.is_floating_point() else torch.float32
            handles.append(
                layer.register_forward_hook(_hook(a.to(weight.device, dtype), b.to(weight.device, dtype), strength))
            )
        logger.info(
            "LoRA %s (strength %g) %s %d layers", lora.path, strength, "merged into" if merge else "on", len(lora.pairs)
        )
    return handles


def _hook(a: torch.Tensor, b: torch.Tensor, strength: float):
    def add_lora(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        delta = F.linear(F.linear(args[0].to(a.dtype), a), b)
        return output + (delta if strength == 1.0 else delta * strength).to(output.dtype)

    return add_lora
