"""Apply LoRA files (read by ``models.lora_files``) to a loaded transformer for sampling.

A key that matches no layer, or a wrong shape, is an error, never silently skipped.

Two ways to apply them, both ``W x + strength * B (A x)``:

- **adapters** (the default): each LoRA stays separate, as a forward hook on its ``nn.Linear`` computing
  ``out + strength * B(A(x))`` in the LoRA's own precision. This is exactly what peft computes during training, so a
  sample from the saved file equals the validation sample drawn with the in-memory LoRA (same seed), and hooks come
  off with ``remove()``.
- **merge**: ``W += strength * B @ A`` (computed in float32, stored in W's dtype), what ltx-core's ``fuse_loras`` and
  ComfyUI do: no per-step cost, but the delta is rounded to W's dtype (bf16 on GPUs).

LoKr and LoHa files (``models.adapter_files``) apply their update ``dW`` the same two ways: a hook adding
``strength * x @ dW.T`` (``dW`` built by peft's own helpers, as peft's layers do in training) or ``W += strength * dW``.
DoRA hooks run peft's ``DoraLinearLayer`` on the layer's output (what peft's DoRA layer adds in eval mode), so a sample
equals the in-memory one; merged, ``W' = m / |W + s B A| * (W + s B A)`` (row norms) and ``W += strength * (W' - W)``.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ltx_trainer import logger
from ltx_trainer.models.lora_files import LoraFile, parse_lora_arg, read_lora

__all__ = ["LoraFile", "apply_loras", "parse_lora_arg", "read_lora"]


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
        for module, adapter in lora.modules.items():
            layer = _linear(transformer, module, lora)
            handle = _apply_adapter(layer, getattr(layer, "base_layer", layer), adapter, strength, merge, module, lora)
            handles += [handle] if handle is not None else []
        logger.info(
            "LoRA %s (strength %g) %s %d layers",
            lora.path,
            strength,
            "merged into" if merge else "on",
            len(lora.pairs) + len(lora.modules),
        )
    return handles


def _apply_adapter(
    layer: nn.Module, base: nn.Linear, adapter, strength: float, merge: bool, module: str, lora: LoraFile
) -> torch.utils.hooks.RemovableHandle | None:
    """One LoKr / LoHa / DoRA module (``models.adapter_files.ModuleAdapter``): a forward hook, or merged into W."""
    weight = base.weight
    dtype = weight.dtype if weight.is_floating_point() else torch.float32
    if adapter.kind == "dora":
        a, b = adapter.tensors["A"], adapter.tensors["B"]
        _check_shapes(base, a, b, module, lora)
        if merge:
            with torch.no_grad():
                w = weight.float()
                combined = w + adapter.scale * (b.to(w.device, torch.float32) @ a.to(w.device, torch.float32))
                magnitude = adapter.tensors["magnitude"].to(w.device, torch.float32)
                dora = (magnitude / torch.linalg.norm(combined, dim=1)).view(-1, 1) * combined
                weight.copy_((w + strength * (dora - w)).to(weight.dtype))
            return None
        return layer.register_forward_hook(_dora_hook(base, adapter, dtype, strength))
    delta = adapter.delta_weight(torch.float32, weight.device)
    if tuple(delta.shape) != (base.out_features, base.in_features):
        raise ValueError(
            f"{lora.path}: {module}: the {adapter.kind} update is {list(delta.shape)}, the Linear is "
            f"{base.out_features} x {base.in_features}; it was trained on a different model"
        )
    if merge:
        with torch.no_grad():
            weight.copy_((weight.float() + strength * delta).to(weight.dtype))
        return None
    return layer.register_forward_hook(_delta_hook(delta.to(dtype), strength))


def _delta_hook(delta: torch.Tensor, strength: float):
    def add_delta(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        out = F.linear(args[0].to(delta.dtype), delta)
        return output + (out if strength == 1.0 else out * strength).to(output.dtype)

    return add_delta


def _dora_hook(base: nn.Linear, adapter, dtype: torch.dtype, strength: float):
    from peft.tuners.lora.dora import DoraLinearLayer

    a, b = adapter.tensors["A"].to(base.weight.device, dtype), adapter.tensors["B"].to(base.weight.device, dtype)
    lora_a, lora_b = nn.Linear(a.shape[1], a.shape[0], bias=False), nn.Linear(b.shape[1], b.shape[0], bias=False)
    lora_a.weight, lora_b.weight = nn.Parameter(a, requires_grad=False), nn.Parameter(b, requires_grad=False)
    dora = DoraLinearLayer(fan_in_fan_out=False).eval()
    dora.weight = nn.Parameter(adapter.tensors["magnitude"].to(base.weight.device, dtype), requires_grad=False)

    def add_dora(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0].to(dtype)
        extra = dora(x, lora_A=lora_a, lora_B=lora_b, scaling=adapter.scale, base_layer=base, base_result=output)
        return output + (extra if strength == 1.0 else extra * strength).to(output.dtype)

    return add_dora


def _hook(a: torch.Tensor, b: torch.Tensor, strength: float):
    def add_lora(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        delta = F.linear(F.linear(args[0].to(a.dtype), a), b)
        return output + (delta if strength == 1.0 else delta * strength).to(output.dtype)

    return add_lora
