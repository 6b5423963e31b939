"""The run directory: one writer at a time (lock), no stale temp files, and a metrics log that matches the weights.

- :class:`RunLock` holds an exclusive ``flock`` on ``<output_dir>/.ltx-trainer.lock`` for the whole run; a second run
  on the same directory is refused with the first one's PID and host. The kernel drops the lock when a process dies
  (even by ``kill -9``), so a stale lock file is taken over without asking; its recorded owner is named in the log.
- :func:`truncate_metrics` cuts ``metrics.jsonl`` back to the step a resumed run restarts from (a Ctrl-C after the last
  checkpoint leaves later steps in the log that the resumed run writes again) and drops a torn last line.
- :func:`append_metrics` writes one JSON line per step, non-finite numbers as ``null`` (bare ``NaN`` is not JSON).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

from ltx_trainer import logger
from ltx_trainer.errors import EnvironmentProblem, UsageError
from ltx_trainer.io import atomic_write_text, clean_stale_temps, read_json_lines

__all__ = ["RunLock", "append_metrics", "check_fresh_start", "clean_stale_temps", "truncate_metrics"]

LOCK_NAME = ".ltx-trainer.lock"


class OutputDirLocked(EnvironmentProblem):
    """Another training run holds the output directory (exit code 5)."""


class RunLock:
    """Exclusive lock on a run directory for the lifetime of a training run (``with RunLock(dir): ...``)."""

    def __init__(self, output_dir: Path):
        self.path = Path(output_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise OutputDirLocked(
                f"{self.path.parent} is in use by another training run (pid {owner.get('pid', '?')} on host "
                f"{owner.get('host', '?')}, since {owner.get('started', '?')}); wait for it to finish, stop it, or "
                "use another output_dir"
            ) from None
        previous = _read_owner(fd)
        if previous.get("pid"):
            logger.warning(
                "%s: taking over the lock of a run that is gone (pid %s on %s); it was killed or crashed",
                self.path.parent,
                previous.get("pid"),
                previous.get("host"),
            )
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # an empty lock file means "released cleanly"
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_owner(fd: int) -> dict[str, Any]:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_line(metrics: dict) -> str:
    """One JSON line; NaN/Inf become ``null`` so every line parses as JSON."""
    return json.dumps({k: _finite(v) for k, v in metrics.items()}, allow_nan=False)


def append_metrics(path: Path, metrics: dict) -> None:
    with open(path, "a") as f:
        f.write(metrics_line(metrics) + "\n")


def truncate_metrics(path: Path, step: int) -> int:
    """Keep the records of steps ``<= step`` (the resume point); returns how many records were dropped."""
    if not path.is_file():
        return 0
    records = read_json_lines(path)
    kept = [r for r in records if isinstance(r.get("step"), int) and r["step"] <= step]
    text = "".join(metrics_line(r) + "\n" for r in kept)
    if text != path.read_text(errors="replace"):
        atomic_write_text(path, text)
    return len(records) - len(kept)


def check_fresh_start(output_dir: Path, checkpoint_dir: Path, no_resume: bool) -> None:
    """``no_resume: true`` on a directory that holds another run's checkpoints would mix two runs (and prune the new
    run's files next to the old ones): refuse, naming what is there."""
    if not no_resume or not checkpoint_dir.is_dir():
        return
    existing = sorted(p.name for p in checkpoint_dir.iterdir() if not p.name.startswith("."))
    if existing:
        raise UsageError(
            f"checkpoints.no_resume: true but {checkpoint_dir} holds another run's checkpoints ({existing[-1]}, "
            f"{len(existing)} file(s)); use a new output_dir for a fresh run, move them away, or set no_resume: false "
            "to continue that run"
        )
