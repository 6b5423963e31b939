"""The one rule from an expected failure to an exit code, shared by every verb.

Every error a user can cause derives from :class:`LtxTrainerError`; its message is complete on one line (what, which
file or key, what to do) and ``cli.py`` prints just that line and exits with the class's code. Anything else is a bug
and keeps its traceback. ``--debug`` shows the traceback for expected failures too.

| code | meaning |
|------|---------|
| 0    | success |
| 1    | the work ran but some inputs failed or nothing was produced (partial result; the summary names them) |
| 2    | bad configuration or command-line usage (a key, a flag, a value) |
| 3    | bad input data: media, captions, manifests, caches |
| 4    | a model file or folder cannot be used |
| 5    | the environment: disk full, output directory locked by another run, missing optional dependency |
| 130  | interrupted (Ctrl-C / SIGTERM); a resumable state was saved where possible |
"""

import os
from pathlib import Path

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_CONFIG = 2
EXIT_DATA = 3
EXIT_MODEL = 4
EXIT_ENVIRONMENT = 5
EXIT_INTERRUPTED = 130


class LtxTrainerError(Exception):
    """An expected failure: printed as one line, no traceback, exit with ``exit_code``."""

    exit_code = EXIT_PARTIAL


class UsageError(LtxTrainerError, ValueError):
    """A wrong flag, value or combination on the command line."""

    exit_code = EXIT_CONFIG


class DataError(LtxTrainerError, ValueError):
    """Input data (media, captions, manifests, caches) that cannot be used."""

    exit_code = EXIT_DATA


class EnvironmentProblem(LtxTrainerError, RuntimeError):
    """The machine, not the input: disk full, a locked output directory, a missing optional package."""

    exit_code = EXIT_ENVIRONMENT


class PartialFailure(LtxTrainerError):
    """The verb ran but some inputs failed or nothing was produced; the summary was already printed."""

    exit_code = EXIT_PARTIAL


class Interrupted(LtxTrainerError):
    """Stopped by a signal after saving what could be saved."""

    exit_code = EXIT_INTERRUPTED


class MediaError(DataError):
    """A media file cannot be read (missing stream, undecodable data, ...) or a media parameter breaks a rule.

    Defined here, below every layer, because the frame-count and resolution rules (``models/geometry.py``) raise it
    as well as the media readers (``data/media.py``).

    Attributes:
        path: The offending file, or ``None`` for a parameter rule (frame count, resolution).
        reason: Why it failed, without the path.
    """

    def __init__(self, path: "str | os.PathLike[str] | None", reason: str) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)
