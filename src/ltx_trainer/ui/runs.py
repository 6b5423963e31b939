"""Runs as the UI sees them: folders on disk and ``ltx-trainer train`` processes (no gradio here).

A run is an output folder; everything shown about it is read from there, so closing the browser or restarting the
UI loses nothing:

- ``training_config.yaml`` (the config it was started with; ``training_config.resolved.yaml`` with the defaults),
- ``metrics.jsonl`` (one line per step: loss, per-modality and per-sigma losses, lr, s/step),
- ``checkpoints/`` (the resume points), ``samples/`` (validation samples), ``report.html`` (written at the end),
- ``.ltx-trainer.lock``: the trainer's lock, holding its PID and host while it runs (``training/run_dir.py``),
- ``train.log`` and ``ui_launch.json``: written by the UI when it starts the process (its output, and the PID that
  covers the seconds before the trainer takes the lock).

The UI starts training as a CLI subprocess in its own session (``start_new_session``), so stopping or restarting the
UI does not stop the run. Stop is SIGTERM (the trainer saves a resumable checkpoint after the current step); resume
is the same ``train`` command again, which continues from the last checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ltx_trainer.errors import UsageError
from ltx_trainer.io import atomic_write_text, read_json_lines

CONFIG = "training_config.yaml"
RESOLVED = "training_config.resolved.yaml"
LOG = "train.log"
LAUNCH = "ui_launch.json"
LOCK = ".ltx-trainer.lock"  # training.run_dir.LOCK_NAME (not imported: that module pulls in the trainer's logger setup)
RUN_MARKERS = (CONFIG, "metrics.jsonl", LOCK, LAUNCH)
SESSION = "--- "  # the line start() writes before each process's output

_children: dict[int, subprocess.Popen] = {}  # processes this UI started: polled so that none stays a zombie


@dataclass
class Run:
    """One run folder, read now."""

    path: Path
    status: str  # starting, running, finished, stopped, failed, not started
    step: int = 0
    total: int | None = None
    pid: int | None = None
    metrics: list[dict] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    message: str = ""  # the last error / interruption line of the log, if any

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def alive(self) -> bool:
        return self.status in ("starting", "running")

    @property
    def last(self) -> dict:
        return self.metrics[-1] if self.metrics else {}

    @property
    def report(self) -> Path | None:
        path = self.path / "report.html"
        return path if path.is_file() else None

    @property
    def log(self) -> Path:
        return self.path / LOG

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    def summary(self) -> str:
        """One line: status, step/total, last loss, s/step."""
        total = f"/{self.total}" if self.total else ""
        parts = [self.status, f"step {self.step}{total}"]
        if (loss := self.last.get("loss")) is not None:
            parts.append(f"loss {loss:.4f}")
        if (sps := self.last.get("s_per_step")) is not None:
            parts.append(f"{sps:.2f} s/step")
        if self.alive and self.total and sps:
            parts.append(f"~{(self.total - self.step) * sps:.0f} s left")
        return " · ".join(parts)


def _reap() -> None:
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


def _process_alive(pid: int | None) -> bool:
    """A live (not zombie) ``ltx_trainer`` process with this PID on this host."""
    if not pid:
        return False
    _reap()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
    return state not in ("Z", "X") and b"ltx_trainer" in cmdline


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def trainer_pid(run_dir: Path) -> int | None:
    """The PID of the trainer holding the run's lock on this host, if it is alive."""
    owner = _read_json(run_dir / LOCK)
    pid = owner.get("pid")
    if owner.get("host") not in (None, socket.gethostname()):
        return None
    return pid if isinstance(pid, int) and _process_alive(pid) else None


def _launch_pid(run_dir: Path) -> int | None:
    pid = _read_json(run_dir / LAUNCH).get("pid")
    return pid if isinstance(pid, int) and _process_alive(pid) else None


def _total_steps(run_dir: Path) -> int | None:
    for name in (RESOLVED, CONFIG):
        try:
            data = yaml.safe_load((run_dir / name).read_text())
            steps = data["optimization"]["steps"]
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            continue
        if isinstance(steps, int):
            return steps
    return 3000 if (run_dir / CONFIG).is_file() else None  # the schema's default


def _last_message(log: Path) -> str:
    """The outcome line the CLI printed in the log's last session (``error: ...``, ``interrupted: ...``, ``done: ...``),
    or a traceback's last line as ``error: ...``; "" while it runs or when it was killed without a word."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16_384))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    session = lines[max((i for i, line in enumerate(lines) if line.startswith(SESSION)), default=0) :]
    for line in reversed(session):
        if line.startswith(("error:", "interrupted:", "done:", "already finished:")):
            return line.strip()
    if any(line.startswith("Traceback") for line in session):
        return "error: " + next((line for line in reversed(session) if line.strip()), "").strip()
    return ""


def read_metrics(run_dir: Path) -> list[dict]:
    """Every step record of ``metrics.jsonl`` (a line torn by a kill is skipped)."""
    path = run_dir / "metrics.jsonl"
    return [r for r in read_json_lines(path) if isinstance(r.get("step"), int)] if path.is_file() else []


def read_run(run_dir: Path) -> Run:
    from ltx_trainer.training.checkpoints import saved_steps

    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    checkpoints = saved_steps(run_dir / "checkpoints")
    samples_dir = run_dir / "samples"
    samples = sorted(p for p in samples_dir.glob("step_*.*") if p.suffix in (".mp4", ".png", ".wav"))
    total = _total_steps(run_dir)
    step = max([m["step"] for m in metrics[-1:]] + checkpoints[-1:] + [0])
    run = Run(run_dir, "not started", step, total, None, metrics, checkpoints, samples)
    run.message = _last_message(run_dir / LOG)
    if (pid := trainer_pid(run_dir)) is not None:
        run.status, run.pid = "running", pid
    elif not run.message and (pid := _launch_pid(run_dir)) is not None:  # an outcome line: it is only exiting
        run.status, run.pid = "starting", pid
    elif total is not None and checkpoints and checkpoints[-1] >= total:
        run.status = "finished"
    elif run.message.startswith("error:"):
        run.status = "failed"
    elif checkpoints or metrics:
        run.status = "stopped"
    return run


def find_runs(outputs: Path, depth: int = 3) -> list[Path]:
    """Run folders under ``outputs`` (itself included), newest first."""
    outputs = Path(outputs)
    found: list[Path] = []

    def visit(folder: Path, level: int) -> None:
        if any((folder / marker).exists() for marker in RUN_MARKERS):
            found.append(folder)
            return
        if level >= depth:
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for child in children:
            visit(child, level + 1)

    if outputs.is_dir():
        visit(outputs, 0)
    return sorted(found, key=updated, reverse=True)


def updated(run_dir: Path) -> float:
    times = [p.stat().st_mtime for p in (run_dir / "metrics.jsonl", run_dir / CONFIG, run_dir / LAUNCH) if p.exists()]
    return max(times, default=0.0)


# ---- processes ----


def start(config_file: Path, run_dir: Path, cwd: Path | None = None) -> int:
    """Start ``ltx-trainer train CONFIG`` detached from the UI; its output goes to ``<run_dir>/train.log``.

    Returns:
        the process id.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "ltx_trainer.cli", "train", str(config_file)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(run_dir / LOG, "ab") as log:
        log.write(f"\n{SESSION}{time.strftime('%Y-%m-%d %H:%M:%S')} ltx-trainer ui: {' '.join(command)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the UI's process group: Ctrl-C or a restart of the UI leaves it running
        )
    _children[proc.pid] = proc
    atomic_write_text(
        run_dir / LAUNCH,
        json.dumps({"pid": proc.pid, "command": command, "cwd": str(cwd or Path.cwd()), "started": time.time()}),
    )
    return proc.pid


def launch_new(config_text: str, run_dir: Path, cwd: Path | None = None) -> int:
    """Write ``config_text`` as ``<run_dir>/training_config.yaml`` and start training it.

    Raises:
        UsageError: ``run_dir`` already holds a run (resume it instead, or choose another ``output_dir``).
    """
    if any((run_dir / marker).exists() for marker in RUN_MARKERS) or (run_dir / "checkpoints").is_dir():
        raise UsageError(
            f"output_dir: {run_dir} already holds a run; resume it on the Runs page, or choose another output_dir"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = atomic_write_text(run_dir / CONFIG, config_text)
    return start(config_file, run_dir, cwd)


def resume(run: Run) -> int:
    """Start the run's own config again: the trainer continues from its last checkpoint."""
    if run.alive:
        raise UsageError(f"{run.path}: the run is {run.status} (pid {run.pid}); stop it first")
    if run.status == "finished":
        raise UsageError(
            f"{run.path}: the run finished at step {run.step}; raise optimization.steps in a new run to train further"
        )
    if not run.config.is_file():
        raise UsageError(f"{run.config}: not found; this run was not started with a config the UI can restart")
    cwd = _read_json(run.path / LAUNCH).get("cwd")
    return start(run.config, run.path, Path(cwd) if cwd and Path(cwd).is_dir() else None)


def stop(run: Run) -> str:
    """SIGTERM to the trainer: it saves a resumable checkpoint after the current step and exits."""
    if not run.alive or run.pid is None:
        raise UsageError(f"{run.path}: the run is {run.status}; nothing to stop")
    os.kill(run.pid, signal.SIGTERM)
    if run.status == "starting":
        return f"stopped pid {run.pid} before its first step (nothing to save yet)"
    return f"asked pid {run.pid} to stop: it saves a checkpoint after the current step (resume continues from it)"


def log_tail(run: Run, lines: int = 40) -> str:
    try:
        with open(run.log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 32_768))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    # rich redraws its bar with carriage returns; keep what the terminal would show last
    shown = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return "\n".join(shown[-lines:])
