"""Checkpoint files: atomic writes, retention, and the training state that makes resume exact.

Layout (official names, so existing tooling finds them):
``<output_dir>/checkpoints/lora_weights_step_00100.safetensors`` (or ``model_weights_step_...`` for full fine-tunes)
and ``training_state_step_00100.pt`` next to it. The training state holds the fp32 trainable weights (the exported
file is bf16 by default, which would not resume bit-exactly), optimizer, scheduler, every RNG, the step and how many
batches were consumed.
"""

import os
import random
import re
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ltx_trainer import logger

STEP_FILE = re.compile(r"^(lora|model)_weights_step_(\d+)\.safetensors$")


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    save_file(tensors, str(tmp), metadata=metadata)
    _fsync_and_replace(tmp, path)
    return path


def atomic_torch_save(obj: object, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    torch.save(obj, tmp)
    _fsync_and_replace(tmp, path)
    return path


def _fsync_and_replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)


def weights_path(checkpoint_dir: Path, kind: str, step: int) -> Path:
    return checkpoint_dir / f"{kind}_weights_step_{step:05d}.safetensors"


def state_path(checkpoint_dir: Path, step: int) -> Path:
    return checkpoint_dir / f"training_state_step_{step:05d}.pt"


def saved_steps(checkpoint_dir: Path) -> list[int]:
    """Steps that have a weights file, ascending."""
    if not checkpoint_dir.is_dir():
        return []
    return sorted(int(m.group(2)) for p in checkpoint_dir.iterdir() if (m := STEP_FILE.match(p.name)))


def prune(checkpoint_dir: Path, keep_last_n: int, protect: set[int]) -> None:
    """Delete all but the newest ``keep_last_n`` checkpoints (-1 keeps all). ``protect`` (newest, final) survives."""
    if keep_last_n < 0:
        return
    steps = saved_steps(checkpoint_dir)
    for step in steps[: max(len(steps) - keep_last_n, 0)]:
        if step in protect:
            continue
        same_step = re.compile(rf"_step_{step:05d}[._]")
        for path in checkpoint_dir.iterdir():
            if same_step.search(path.name):
                path.unlink()
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
    """The newest ``training_state_step_*.pt`` (resume point), or None."""
    states = sorted(checkpoint_dir.glob("training_state_step_*.pt")) if checkpoint_dir.is_dir() else []
    return states[-1] if states else None


def load_state(path: Path) -> dict:
    """Training state written by ``atomic_torch_save``; untrusted pickles are refused (``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)
