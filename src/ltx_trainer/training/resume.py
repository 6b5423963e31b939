"""Resume with a changed config: which settings a checkpoint can carry into a new config and which it cannot.

Settings that change what the saved weights or optimizer state mean (LoRA shape and targets, training mode, optimizer,
batch bookkeeping, strategy, seed) refuse the resume naming the key; everything else (learning rate, steps, warmup,
schedule, intervals, validation, logging) is applied and listed.
"""

from __future__ import annotations

import json
from typing import Any

from ltx_trainer.errors import UsageError

REFUSED_PREFIXES = (
    "model.training_mode",
    "lora.",
    "optimization.optimizer_type",
    "optimization.optimizer_params",  # a saved optimizer state brings its own hyperparameters back
    "optimization.ema",
    "optimization.batch_size",
    "optimization.gradient_accumulation_steps",
    "training_strategy.",
    "seed",
)


def settings_record(config_json: dict) -> str:
    """The resolved config as stored in the training state (JSON text: safe under ``weights_only`` loading)."""
    return json.dumps(config_json, sort_keys=True)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def changed_settings(saved_record: str, current_json: dict) -> list[tuple[str, Any, Any]]:
    """(key, value in the checkpoint, value now) for every setting that differs."""
    saved, current = _flatten(json.loads(saved_record)), _flatten(current_json)
    keys = sorted(set(saved) | set(current))
    return [(k, saved.get(k), current.get(k)) for k in keys if saved.get(k) != current.get(k)]


def check_resume(state_path: object, changes: list[tuple[str, Any, Any]]) -> list[str]:
    """Lines describing the applied changes; raises :class:`UsageError` naming any change a resume cannot take."""
    refused = [c for c in changes if c[0].startswith(REFUSED_PREFIXES) or c[0] in ("lora",)]
    if refused:
        what = "; ".join(f"{k}: {old!r} in the checkpoint, {new!r} now" for k, old, new in refused)
        raise UsageError(
            f"{state_path}: can't resume with a changed {what}. Restore the setting, or set checkpoints.no_resume: "
            "true with a new output_dir to start another run"
        )
    return [f"{k}: {old!r} -> {new!r}" for k, old, new in changes if k != "output_dir"]
