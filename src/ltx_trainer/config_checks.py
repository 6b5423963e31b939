"""Checks on a training config that go beyond the schema's types: YAML duplicate keys, allowed parameter names,
credentials, and rough cost estimates. Pure Python (no torch): ``config validate`` runs them in well under a second.

``config.py`` calls these from its validators; they take plain values, not config objects, so this module sits below
it and imports nothing of the package.
"""

from __future__ import annotations

import json
import math
import netrc
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

# Keyword arguments each learning-rate schedule reads (training/optim.py) and each sigma sampler takes
# (training/timesteps.py); anything else is a typo that would otherwise fail deep in setup.
SCHEDULER_PARAMS: dict[str, set[str]] = {
    "constant": set(),
    "linear": {"start_factor", "end_factor"},
    "cosine": {"eta_min"},
    "cosine_with_restarts": {"T_0", "T_mult", "eta_min"},
    "polynomial": {"power", "end_factor"},
    "step": {"step_size", "gamma"},
}
TIMESTEP_SAMPLING_PARAMS: dict[str, set[str]] = {
    "shifted_logit_normal": {"std", "eps", "uniform_prob", "stretch"},
    "uniform": {"min_value", "max_value"},
}

# LTX VAEs: 32x spatial, 8x temporal compression (W and H multiples of 32, frames 8k+1).
SPATIAL_FACTOR, TEMPORAL_FACTOR = 32, 8
# The longest prefix/suffix that can fit a training clip: 64 latent frames (513 video frames); 1000 audio latent
# steps (40 s at 25 steps/s).
MAX_TEMPORAL_BOUNDARY = {"video": 64, "audio": 1000}


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(f"duplicated key {key!r} at line {line} (YAML keeps only the last one; remove one of them)")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (plain YAML silently keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key: the base constructor reports it
            duplicate = False
        if duplicate:
            raise DuplicateKeyError(str(key), key_node.start_mark.line + 1)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_strict(text: str) -> Any:
    """``yaml.safe_load`` that raises :class:`DuplicateKeyError` on a repeated key."""
    return yaml.load(text, Loader=_StrictLoader)


def unknown_params(given: dict, allowed: set[str]) -> list[str]:
    return sorted(set(given) - allowed)


def wandb_has_credentials() -> bool:
    """True when W&B can log online: an API key in the environment or a ``wandb login`` entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        hosts = netrc.netrc(path).hosts
    except (OSError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)


def device_kind() -> str:
    """``cuda``/``mps``/``cpu`` as a guess made without importing torch (for ``config validate``)."""
    if Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi"):
        return "cuda"
    if sys.platform == "darwin":
        return "mps"
    return "cpu"


# Sustained dense throughput (FLOP/s) a denoising forward reaches, rough: a datacenter GPU in bf16, Apple silicon,
# and a multi-core CPU in fp32.
_THROUGHPUT = {"cuda": 2e14, "mps": 5e12, "cpu": 1e11}
_BYTES_PER_PARAM = 2  # checkpoints ship in bf16
_DEFAULT_PARAMS = 2e9  # the smallest LTX model, when the checkpoint size is unknown


def validation_seconds_per_sample(
    width: int,
    height: int,
    frames: int,
    inference_steps: int,
    passes: int,
    model_bytes: int | None,
    device: str,
) -> float:
    """Rough seconds to draw one validation sample: steps x passes x 2 x params x tokens / throughput."""
    tokens = (width // SPATIAL_FACTOR) * (height // SPATIAL_FACTOR) * ((frames - 1) // TEMPORAL_FACTOR + 1)
    params = model_bytes / _BYTES_PER_PARAM if model_bytes else _DEFAULT_PARAMS
    return inference_steps * passes * 2 * params * max(tokens, 1) / _THROUGHPUT.get(device, _THROUGHPUT["cpu"])


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{math.ceil(seconds)} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def transformer_block_count(model_path: str | Path) -> int | None:
    """The transformer's block count from a checkpoint's header (``num_layers`` in an official single file's
    ``config`` metadata, or a diffusers folder's ``transformer/config.json``); None when the file does not say."""
    path = Path(model_path)
    try:
        if path.is_dir():
            config = json.loads((path / "transformer" / "config.json").read_text(encoding="utf-8"))
        elif path.is_file():
            with path.open("rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                if not 0 < size < 100_000_000:
                    return None
                header = json.loads(handle.read(size))
            config = json.loads(header.get("__metadata__", {}).get("config", "{}")).get("transformer", {})
        else:
            return None
    except (OSError, ValueError, AttributeError):
        return None
    layers = config.get("num_layers") if isinstance(config, dict) else None
    return layers if isinstance(layers, int) else None


def blocks_to_swap_issues(
    value: int | str, training_mode: str, checkpointing: bool, model_path: str | Path
) -> list[str]:
    """Problems with ``acceleration.blocks_to_swap`` (one line each); the block count is read from the checkpoint's
    header when it says (the trainer checks again against the loaded model)."""
    if value == 0 or (isinstance(value, str) and float(value.strip().removesuffix("%")) == 0):
        return []
    key = "acceleration.blocks_to_swap"
    issues = []
    if training_mode != "lora":
        issues.append(f"{key}: only works with model.training_mode 'lora' (trainable blocks stay on the GPU); set 0")
    if not checkpointing:
        issues.append(
            f"{key}: needs optimization.enable_gradient_checkpointing: true (without it autograd keeps every block's "
            "weights on the GPU until backward)"
        )
    blocks = transformer_block_count(model_path) if isinstance(value, int) else None
    if blocks is not None and value > blocks:
        issues.append(f"{key}: {value} but the model has {blocks} transformer blocks; use 0..{blocks} or a percentage")
    return issues


# ---------------------------------------------------------------------------------------------------------------------
# optimizers and adapters (issue 15)
# ---------------------------------------------------------------------------------------------------------------------
# ``optimization.optimizer_params`` each optimizer takes (training/optim.py passes them on unchanged), with the kind of
# value: "float", "bool", "betas2"/"betas3" (a list of 2 or 3 numbers). Prodigy, schedule-free AdamW and CAME are
# pytorch-optimizer 4.1's; schedule-free's own ``warmup_steps`` is left out (optimization.warmup_steps does it).
OPTIMIZER_PARAMS: dict[str, dict[str, str]] = {
    "adamw": {"betas": "betas2", "eps": "float", "weight_decay": "float", "amsgrad": "bool"},
    "adamw8bit": {"betas": "betas2", "eps": "float", "weight_decay": "float"},
    "prodigy": {
        "betas": "betas2",
        "beta3": "float",
        "d0": "float",
        "d_coef": "float",
        "growth_rate": "float",
        "weight_decay": "float",
        "weight_decouple": "bool",
        "fixed_decay": "bool",
        "bias_correction": "bool",
        "safeguard_warmup": "bool",
        "eps": "float",
    },
    "adamw_schedulefree": {
        "betas": "betas2",
        "weight_decay": "float",
        "r": "float",
        "weight_lr_power": "float",
        "eps": "float",
    },
    "came": {
        "betas": "betas3",
        "weight_decay": "float",
        "weight_decouple": "bool",
        "fixed_decay": "bool",
        "clip_threshold": "float",
        "ams_bound": "bool",
        "eps1": "float",
        "eps2": "float",
    },
}
SCHEDULE_FREE = ("adamw_schedulefree",)  # optimizers that average their own weights (no decaying schedule, no EMA)
PRODIGY_MIN_LR = 0.1


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def optimizer_issues(
    optimizer: str, params: dict, scheduler: str, learning_rate: float, ema: bool, key: str = "optimization"
) -> list[str]:
    """Problems with ``optimization.optimizer_params`` and the optimizer's fit with the schedule / EMA (one line each,
    ``<key>.<field>: ...``)."""
    allowed = OPTIMIZER_PARAMS[optimizer]
    issues = []
    unknown = unknown_params(params, set(allowed))
    if unknown:
        issues.append(
            f"optimizer_params: unknown keys {unknown} for optimizer_type {optimizer!r} (allowed: {sorted(allowed)})"
        )
    for name, value in params.items():
        kind = allowed.get(name)
        if kind is None:
            continue
        if kind.startswith("betas"):
            size = int(kind[-1])
            good = isinstance(value, list | tuple) and len(value) == size and all(map(_is_number, value))
            good = good and all(0 <= b < 1 for b in value)
            wanted = f"a list of {size} numbers in [0, 1)"
        elif kind == "bool":
            good, wanted = isinstance(value, bool), "true or false"
        else:
            good, wanted = _is_number(value) and value >= 0, "a number >= 0"
        if not good:
            issues.append(f"optimizer_params.{name}: {value!r} is not {wanted}")
    if optimizer in SCHEDULE_FREE and scheduler != "constant":
        issues.append(
            f"scheduler_type: {scheduler!r} with optimizer_type {optimizer!r}: schedule-free optimizers replace the "
            "decaying schedule by averaging; set scheduler_type: constant (warmup_steps still applies)"
        )
    if optimizer in SCHEDULE_FREE and ema:
        issues.append(
            f"ema: optimizer_type {optimizer!r} already averages the weights it exports; remove optimization.ema or "
            "pick another optimizer"
        )
    if optimizer == "prodigy" and learning_rate < PRODIGY_MIN_LR:
        issues.append(
            f"learning_rate: {learning_rate} with prodigy, which estimates the step size itself: learning_rate "
            f"multiplies that estimate (use 1.0; below {PRODIGY_MIN_LR} it is an AdamW rate that would stall training)"
        )
    return issues


# The peft adapter each ``lora.adapter`` builds, and the ``lora:`` keys that belong to only some of them.
ADAPTERS = ("lora", "dora", "lokr", "loha")
ADAPTER_ONLY_KEYS: dict[str, tuple[str, ...]] = {
    "rank_dropout": ("lokr", "loha"),
    "module_dropout": ("lokr", "loha"),
    "factor": ("lokr",),
    "decompose_both": ("lokr",),
}
# Quantized bases peft can't wrap with an adapter (measured on CPU for fp8/int8/fp8-scaled: DoRA's weight norm reads the
# stored fp8 weight of diffusers' layerwise casting and fails; int4 runs only on CUDA, and neither it nor nf4 was tried
# with these adapters).
ADAPTER_QUANTIZATION_REFUSED: dict[str, tuple[str, ...]] = {
    "dora": ("fp8", "int4", "nf4"),
    "lokr": ("int4", "nf4"),
    "loha": ("int4", "nf4"),
}


def adapter_issues(adapter: str, given: dict[str, Any], dropout: float) -> list[str]:
    """Problems inside ``lora:`` (``given``: the adapter-only keys that were set)."""
    issues = []
    for name, value in given.items():
        if value is not None and adapter not in ADAPTER_ONLY_KEYS[name]:
            owners = " and ".join(ADAPTER_ONLY_KEYS[name])
            issues.append(f"{name}: only for adapter {owners}, not {adapter!r}; remove it or change lora.adapter")
    if adapter in ("lokr", "loha") and dropout > 0:
        issues.append(
            f"dropout: {adapter} has no input dropout in peft; use rank_dropout or module_dropout, or set dropout: 0"
        )
    factor = given.get("factor")
    if factor is not None and factor != -1 and factor < 2:
        issues.append(f"factor: {factor} is not -1 (the most balanced split) or a factor >= 2")
    return issues


def adapter_quantization_issue(adapter: str, quantization: str | None, aliases: dict[str, str]) -> str | None:
    """``lora.adapter`` on a quantized base that peft can't wrap with it, as one line; None when they fit."""
    mode = aliases.get(quantization, quantization) if quantization else None
    if mode in ADAPTER_QUANTIZATION_REFUSED.get(adapter, ()):
        return (
            f"lora.adapter: {adapter!r} can't wrap an acceleration.quantization {quantization!r} base; use "
            f"{'int8 or fp8-scaled' if adapter == 'dora' else 'int8, fp8 or fp8-scaled'}, or lora.adapter 'lora'"
        )
    return None
