"""Long work (split, caption, preprocess, verify, sample) run beside the web server, watched while it runs.

:func:`watch` runs a library call in a thread and yields what a page shows every half second: the ``ltx_trainer``
log lines so far, a progress line from a poll function (files counted on disk), and at the end the result or the
one-line error. The pages turn these into gradio updates; nothing here imports gradio.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ltx_trainer import logger
from ltx_trainer.errors import LtxTrainerError


@dataclass
class Progress:
    """One look at the running work."""

    log: list[str] = field(default_factory=list)
    status: str = ""
    done: bool = False
    result: Any = None
    error: str | None = None

    @property
    def log_text(self) -> str:
        return "\n".join(self.log[-200:])


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def describe_error(exc: BaseException) -> str:
    """An expected failure as its one line (what the CLI prints); a bug with its type, the traceback goes to the log."""
    if isinstance(exc, LtxTrainerError | ValueError | FileNotFoundError):
        return "error: " + " ".join(str(exc).split())
    logger.error("unexpected failure in the UI:\n%s", "".join(traceback.format_exception(exc)))
    return f"error: {type(exc).__name__}: {exc} (a bug: the traceback is in the UI's terminal)"


def watch(work: Callable[[], Any], poll: Callable[[], str] | None = None, every: float = 0.5) -> Iterator[Progress]:
    """Run ``work()`` in a thread; yield a :class:`Progress` every ``every`` seconds and a last one when it ends.

    The log lines are those of the ``ltx_trainer`` logger while the work runs (the UI is meant for one user: work
    started from two browser tabs at once would share its lines).
    """
    state = Progress()
    handler = _Collect(state.log)
    logger.addHandler(handler)

    def run() -> None:
        try:
            state.result = work()
        except BaseException as e:  # reported on the page, never lost in the thread
            state.error = describe_error(e)

    thread = threading.Thread(target=run, name="ltx-ui-task", daemon=True)
    try:
        thread.start()
        while thread.is_alive():
            thread.join(every)
            if poll is not None:
                with contextlib.suppress(OSError):
                    state.status = poll()
            yield state
        if poll is not None:
            with contextlib.suppress(OSError):
                state.status = poll()
    finally:
        logger.removeHandler(handler)
    state.done = True
    yield state
