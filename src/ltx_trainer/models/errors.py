"""Errors raised while finding, reading or converting model files."""


class ModelLoadError(ValueError):
    """A model file or folder can't be used; the message names the path and what to do."""
