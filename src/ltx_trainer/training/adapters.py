"""LoRA and full fine-tuning setup, and export in the layouts every consumer reads.

LoRA files use the official / ComfyUI layout ``diffusion_model.<official module path>.lora_{A,B}.weight`` with
``[r, in]`` / ``[out, r]`` shapes and **alpha/r folded into B**: ltx-core's fusion and ComfyUI (without ``.alpha``)
apply ``B @ A`` unscaled, and diffusers reads the same file, so all three reproduce the trained model. Full
fine-tunes are written as an official single file (``model.diffusion_model.*`` + metadata config).
"""

import json
from collections.abc import Callable

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from torch import nn

from ltx_trainer.config import LoraConfig
from ltx_trainer.errors import UsageError

ADAPTER = "default"
COMFY_PREFIX = "diffusion_model."


def add_lora(transformer: nn.Module, lora: LoraConfig) -> list[nn.Parameter]:
    """Freeze the base and inject LoRA layers; returns the trainable parameters (kept in fp32)."""
    transformer.requires_grad_(False)
    config = PeftLoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        init_lora_weights=True,
    )
    unmatched = UsageError(
        f"lora.target_modules {lora.target_modules} matched no layer of the transformer; use module-name suffixes "
        "such as to_q, to_k, to_v, to_out.0, ff.net.0.proj"
    )
    try:
        inject_adapter_in_model(config, transformer, adapter_name=ADAPTER)
    except ValueError as e:  # peft's NoMatchingPeftModuleError
        raise unmatched from e
    params = [p for n, p in transformer.named_parameters() if "lora_" in n]
    if not params:
        raise unmatched
    for p in params:
        p.data = p.data.float()
        p.requires_grad_(True)
    return params


def lora_state_dict(transformer: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights in peft naming (``<module>.lora_A.weight``), fp32."""
    return {
        k: v.detach().float().clone() for k, v in get_peft_model_state_dict(transformer, adapter_name=ADAPTER).items()
    }


def load_lora_state_dict(transformer: nn.Module, sd: dict[str, torch.Tensor]) -> None:
    result = set_peft_model_state_dict(transformer, sd, adapter_name=ADAPTER)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"LoRA weights do not fit the model: unexpected keys {unexpected[:5]}")


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
