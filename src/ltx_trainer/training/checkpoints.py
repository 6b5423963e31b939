"""Checkpoint files: retention, resume point, and the training state that makes resume exact.

Layout (official names, so existing tooling finds them):
``<output_dir>/checkpoints/lora_weights_step_00100.safetensors`` (or ``model_weights_step_...`` for full fine-tunes)
and ``training_state_step_00100.pt`` next to it; with ``optimization.ema`` also ``..._step_00100_ema.safetensors``
(same layouts; a DoRA's diffusers file is ``..._diffusers`` / ``..._ema_diffusers``). The training state holds the fp32
trainable weights (the exported file is bf16 by default, which would not resume bit-exactly), optimizer, scheduler,
EMA, every RNG, the step, how many batches were consumed, and the resolved config (to tell which settings changed on
resume).

Every file is written through :mod:`ltx_trainer.io` (temp file, fsync, rename; 0644; sorted safetensors headers; a
full disk names the device and path and keeps the previous checkpoint).
"""

import random
import re
from pathlib import Path

import numpy as np
import torch

from ltx_trainer import logger
from ltx_trainer.io import atomic_save_safetensors, atomic_torch_save

__all__ = [
    "atomic_save_safetensors",
    "atomic_torch_save",
    "latest_state",
    "load_state",
    "prune",
    "rng_state",
    "saved_steps",
    "set_rng_state",
    "state_path",
    "weights_path",
]

STEP_FILE = re.compile(r"^(lora|model)_weights_step_(\d+)\.safetensors$")
STATE_FILE = re.compile(r"^training_state_step_(\d+)\.pt$")
# Every final file of one checkpoint step (never a hidden temp file, which starts with ".").
STEP_MEMBER = re.compile(
    r"^(?:(?:lora|model)_weights_step_(\d+)(?:_ema)?(?:_diffusers)?\.safetensors|training_state_step_(\d+)\.pt"
    r"|rng_state_step_(\d+)_rank\d+\.pt)$"
)


def weights_path(checkpoint_dir: Path, kind: str, step: int) -> Path:
    return checkpoint_dir / f"{kind}_weights_step_{step:05d}.safetensors"


def state_path(checkpoint_dir: Path, step: int) -> Path:
    return checkpoint_dir / f"training_state_step_{step:05d}.pt"


def saved_steps(checkpoint_dir: Path) -> list[int]:
    """Steps that have a weights file, ascending (numerically: step 99999 before 100001)."""
    if not checkpoint_dir.is_dir():
        return []
    return sorted(int(m.group(2)) for p in checkpoint_dir.iterdir() if (m := STEP_FILE.match(p.name)))


def prune(checkpoint_dir: Path, keep_last_n: int, protect: set[int]) -> None:
    """Delete all but the newest ``keep_last_n`` checkpoints (-1 keeps all). ``protect`` (newest, final) survives.

    Only the checkpoint's own final files are removed: temp files of a writer (``.name.tmp.*``) never match. Files of
    a step whose weights are gone (a kill in the middle of an earlier pass) are removed too, and the training state
    goes before the weights, so an interrupted pass always leaves a step that the next pass still sees.
    """
    if keep_last_n < 0 or not checkpoint_dir.is_dir():
        return
    steps = saved_steps(checkpoint_dir)
    keep = set(steps[-keep_last_n:] if keep_last_n else []) | set(protect)
    members = [
        (int(next(g for g in m.groups() if g is not None)), p)
        for p in checkpoint_dir.iterdir()
        if (m := STEP_MEMBER.match(p.name))
    ]
    newest_kept = max(keep, default=max((step for step, _ in members), default=0) + 1)
    doomed = sorted(
        ((step, p) for step, p in members if step not in keep and step < newest_kept),
        key=lambda item: (item[0], STEP_FILE.match(item[1].name) is not None),  # weights last within a step
    )
    for _, path in doomed:
        path.unlink()
    for step in sorted({step for step, _ in doomed}):
        logger.info("removed checkpoint step %d (keep_last_n=%d)", step, keep_last_n)


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": [v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, *rest = state["python"]
    random.setstate((version, tuple(rest[0]), *rest[1:]))
    kind, keys, *tail = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *tail))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_state(checkpoint_dir: Path) -> Path | None:
    """The ``training_state_step_*.pt`` with the highest step number (resume point), or None."""
    if not checkpoint_dir.is_dir():
        return None
    states = [(int(m.group(1)), p) for p in checkpoint_dir.iterdir() if (m := STATE_FILE.match(p.name))]
    return max(states)[1] if states else None


def load_state(path: Path) -> dict:
    """Training state written by ``atomic_torch_save``; untrusted pickles are refused (``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)
