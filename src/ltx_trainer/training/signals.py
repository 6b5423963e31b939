"""Ctrl-C / SIGTERM during training: the first signal asks the loop to save a resumable checkpoint and stop after the
current step; a second one aborts at once (exit 130, nothing more written)."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from ltx_trainer import logger
from ltx_trainer.errors import Interrupted

HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """``with StopRequest() as stop: ... if stop.signal: save and stop``. Installs handlers only in the main thread."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signal is not None:
            raise Interrupted(f"second {name}: aborted without saving (the last checkpoint is the resume point)")
        self.signal = signal.Signals(signum)
        logger.warning("%s received: saving a resumable checkpoint after this step (send it again to abort now)", name)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
