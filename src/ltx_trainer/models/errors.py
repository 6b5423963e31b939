"""Errors raised while finding, reading or converting model files."""

from ltx_trainer.errors import EXIT_MODEL, LtxTrainerError


class ModelLoadError(LtxTrainerError, ValueError):
    """A model file or folder can't be used; the message names the path and what to do (exit code 4)."""

    exit_code = EXIT_MODEL
