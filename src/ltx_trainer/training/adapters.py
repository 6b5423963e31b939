"""Adapter setup on the transformer (peft): inject, collect and restore the adapter weights.

``lora.adapter`` picks peft's config: ``lora`` (``LoraConfig``), ``dora`` (``LoraConfig(use_dora=True)``), ``lokr``
(``LoKrConfig``: ``factor`` -> ``decompose_factor``, ``decompose_both``, ``rank_dropout``, ``module_dropout``) or
``loha`` (``LoHaConfig``: ``rank_dropout``, ``module_dropout``); all go through the same ``target_modules`` and
``inject_adapter_in_model``. The files are written and read by ``models.lora_files`` (LoRA) and
``models.adapter_files`` (DoRA, LoKr, LoHa); full fine-tunes are written by the model itself (``save_full_checkpoint``).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from peft import LoHaConfig, LoKrConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft import LoraConfig as PeftLoraConfig
from torch import nn

from ltx_trainer.config import LoraConfig
from ltx_trainer.errors import UsageError
from ltx_trainer.models.quantization import needs_plain_lora_layers

ADAPTER = "default"
# Parameter-name parts of peft's adapter weights (lora_A/B and DoRA's lora_magnitude_vector, lokr_w*, hada_w*).
ADAPTER_PARTS = ("lora_", "lokr_", "hada_")


def is_adapter_key(name: str) -> bool:
    return any(part in name for part in ADAPTER_PARTS)


def peft_config(lora: LoraConfig):
    """The peft config of ``lora.adapter`` (initialised so that the adapter starts as a no-op)."""
    targets = list(lora.target_modules)
    if lora.adapter in ("lora", "dora"):
        return PeftLoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=targets,
            init_lora_weights=True,
            use_dora=lora.adapter == "dora",
        )
    dropouts = {"rank_dropout": lora.rank_dropout or 0.0, "module_dropout": lora.module_dropout or 0.0}
    if lora.adapter == "lokr":
        return LoKrConfig(
            r=lora.rank,
            alpha=lora.alpha,
            target_modules=targets,
            decompose_factor=lora.factor if lora.factor is not None else -1,
            decompose_both=bool(lora.decompose_both),
            **dropouts,
        )
    return LoHaConfig(r=lora.rank, alpha=lora.alpha, target_modules=targets, **dropouts)


def add_lora(transformer: nn.Module, lora: LoraConfig) -> list[nn.Parameter]:
    """Freeze the base and inject the ``lora.adapter`` layers; returns the trainable parameters (kept in fp32)."""
    transformer.requires_grad_(False)
    config = peft_config(lora)
    if lora.adapter in ("lora", "dora") and needs_plain_lora_layers(transformer):
        from peft.tuners.lora.layer import Linear as PlainLoraLinear

        config._register_custom_module({nn.Linear: PlainLoraLinear})
    unmatched = UsageError(
        f"lora.target_modules {lora.target_modules} matched no layer of the transformer; use module-name suffixes "
        "such as to_q, to_k, to_v, to_out.0, ff.net.0.proj"
    )
    try:
        inject_adapter_in_model(config, transformer, adapter_name=ADAPTER)
    except ValueError as e:  # peft's NoMatchingPeftModuleError
        raise unmatched from e
    params = [p for n, p in transformer.named_parameters() if is_adapter_key(n)]
    if not params:
        raise unmatched
    for p in params:
        p.data = p.data.float()
        p.requires_grad_(True)
    return params


def lora_state_dict(transformer: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights in peft naming (``<module>.lora_A.weight``, ``<module>.lokr_w1``, ...), fp32."""
    return {
        k: v.detach().float().clone() for k, v in get_peft_model_state_dict(transformer, adapter_name=ADAPTER).items()
    }


def load_lora_state_dict(transformer: nn.Module, sd: dict[str, torch.Tensor]) -> None:
    result = set_peft_model_state_dict(transformer, sd, adapter_name=ADAPTER)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"LoRA weights do not fit the model: unexpected keys {unexpected[:5]}")


@contextmanager
def adapters_off(transformer: nn.Module) -> Iterator[None]:
    """The base model for the duration: every injected LoRA layer computes its base layer alone (peft's switch)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in transformer.modules() if isinstance(m, BaseTunerLayer)]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)
