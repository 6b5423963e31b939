"""Run ``ltx-trainer`` verbs in forked children of the test process, so a restart costs no interpreter start or torch
import, and stop them with real signals (SIGKILL, SIGINT, SIGTERM) from the parent.

Fork safety: the child sets torch to one intra-op thread before doing anything, so ATen never enters an OpenMP
parallel region whose thread pool the fork did not copy, and CPU autograd runs in the calling thread (torch rebuilds
its engine in a forked child). Each child writes its stdout/stderr and log records to its own file and ends with
``os._exit`` (no pytest teardown runs twice).

A child can pause at named points (:class:`Pause`, global training step ``step``): it tells the parent where it is
through a pipe and, when ``block``, waits until the parent lets it go (or kills it). Phases:

- ``step``: before optimizer step ``step`` (1-based, counted over the whole run, resumes included);
- ``fsync-weights`` / ``fsync-state``: inside the checkpoint write of ``step``, the weights / training-state temp
  file complete and fsynced, not yet renamed (a kill leaves a temp file and no final file);
- ``renamed-weights`` / ``renamed-state``: right after that file was renamed into place (the next one is not);
- ``prune``: the first file deletion of the retention pass after the checkpoint of ``step``;
- ``setup-write``: the first atomic write of the process (config copies, the metrics log cut back on resume);
- ``preprocess-sample``: ``step`` is a sample count: before preprocess writes anything of its ``step``-th sample (the
  ones before it are complete: latents and audio latents; text features come after all media).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import pathlib
import select
import signal
import stat
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Pause:
    phase: str
    step: int = 0
    block: bool = True  # False: only tell the parent (it kills after a delay of its choosing)


CHECKPOINT_PHASES = {"fsync-weights": 1, "fsync-state": 2, "renamed-weights": 1, "renamed-state": 2, "prune": 1}


def _install_pauses(pauses: list[Pause], notify: int, release: int) -> None:
    from ltx_trainer import io
    from ltx_trainer.data import preprocess
    from ltx_trainer.training.trainer import Trainer

    state = {"saving": None, "fsync": 0, "renamed": 0, "unlink": 0, "writes": 0, "samples": []}
    pending = list(pauses)

    def hit(phase: str, step: int) -> None:
        for pause in pending:
            if pause.phase == phase and pause.step == step:
                pending.remove(pause)
                os.write(notify, f"{phase} {step}\n".encode())
                while pause.block and not os.read(release, 1):  # signal handlers may run while we wait
                    pass
                return

    def wrap(owner: object, name: str, before) -> None:
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            before(*args)
            return original(*args, **kwargs)

        setattr(owner, name, wrapped)

    def on_step(trainer, *_):
        hit("step", trainer.step + 1)
        hit("timer", trainer.step + 1)

    def on_fsync(fd, *_):
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # the directory fsync after a rename
            return
        state["writes"] += 1
        if state["writes"] == 1:
            hit("setup-write", 0)
        if state["saving"] is not None:
            state["fsync"] += 1
            hit({1: "fsync-weights", 2: "fsync-state"}.get(state["fsync"], ""), state["saving"])

    def on_renamed(*_):
        if state["saving"] is not None:
            state["renamed"] += 1
            hit({1: "renamed-weights", 2: "renamed-state"}.get(state["renamed"], ""), state["saving"])

    def on_unlink(*_):
        if state["saving"] is not None:
            state["unlink"] += 1
            if state["unlink"] == 1:
                hit("prune", state["saving"])

    original_save = Trainer.save_checkpoint

    def save_checkpoint(self):
        state.update(saving=self.step, fsync=0, renamed=0, unlink=0)
        try:
            return original_save(self)
        finally:
            state["saving"] = None

    def on_sample_write(run, folder, sample_id, *_):
        if folder != "conditions" and sample_id not in state["samples"]:
            state["samples"].append(sample_id)
            hit("preprocess-sample", len(state["samples"]))

    Trainer.save_checkpoint = save_checkpoint
    wrap(preprocess._Run, "write", on_sample_write)
    wrap(Trainer, "_optimizer_step", on_step)
    wrap(os, "fsync", on_fsync)
    wrap(io, "_fsync_dir", on_renamed)
    wrap(pathlib.Path, "unlink", on_unlink)


@dataclass
class Child:
    pid: int
    log: Path
    notify: int  # parent reads: the pause point was reached
    release: int  # parent writes: go on

    def wait_paused(self, timeout: float = 120) -> str | None:
        """``"PHASE STEP"`` once a pause point is reached; None when the child exited first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.notify], [], [], 0.05)
            if ready:
                data = os.read(self.notify, 64)
                if data:
                    return data.decode().strip()
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self._status = status
                return None
        self.kill()
        raise TimeoutError(f"child {self.pid} neither paused nor exited in {timeout} s; log: {self.log}")

    def go(self) -> None:
        os.write(self.release, b"g")

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        return self.wait()

    def wait(self, timeout: float = 120) -> int:
        """Exit code (negative signal number when killed by one)."""
        status = getattr(self, "_status", None)
        deadline = time.monotonic() + timeout
        while status is None:
            done, status_now = os.waitpid(self.pid, os.WNOHANG)
            if done:
                status = status_now
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise TimeoutError(f"child {self.pid} did not exit in {timeout} s; log: {self.log}")
            time.sleep(0.01)
        self._status = status
        for fd in (self.notify, self.release):
            with contextlib.suppress(OSError):
                os.close(fd)
        return os.waitstatus_to_exitcode(status)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@functools.cache
def prewarm() -> None:
    """Import in the parent what every child would import again (seconds per restart on a loaded machine)."""
    import importlib

    for module in (
        "ltx_trainer.cli",
        "ltx_trainer.training.run",
        "ltx_trainer.models.families",
        "ltx_trainer.models.ltx2",
        "ltx_trainer.integrations.report",
        "rich.progress",
    ):
        importlib.import_module(module)


def start(args: list[str], log: Path, pauses: list[Pause] = ()) -> Child:
    """Fork a child running ``ltx-trainer ARGS`` (through the CLI's own error handling) and return at once."""
    prewarm()
    notify_r, notify_w = os.pipe()
    release_r, release_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 70
        try:
            os.close(notify_r)
            os.close(release_w)
            torch.set_num_threads(1)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            stream = open(fd, "w", buffering=1, closefd=False)  # noqa: SIM115 (lives until os._exit)
            sys.stdout = sys.stderr = stream
            handler = logging.StreamHandler(stream)
            handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
            logging.getLogger("ltx_trainer").handlers = [handler]
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
            if pauses:
                _install_pauses(list(pauses), notify_w, release_r)
            from ltx_trainer.cli import app

            try:
                app([str(a) for a in args], prog_name="ltx-trainer")
                code = 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:
            with contextlib.suppress(Exception):
                traceback.print_exc()
            code = 71
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
            os._exit(code)
    os.close(notify_w)
    os.close(release_r)
    return Child(pid=pid, log=Path(log), notify=notify_r, release=release_w)


def run(args: list[str], log: Path, timeout: float = 120) -> tuple[int, str]:
    child = start(args, log)
    return child.wait(timeout), child.output()
