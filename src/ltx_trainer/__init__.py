"""ltx-trainer: train LoRAs and full fine-tunes of every Lightricks LTX video model."""

import logging

from rich.logging import RichHandler

__version__ = "0.1.0"

logger = logging.getLogger("ltx_trainer")
if not logger.handlers:
    logger.addHandler(RichHandler(show_path=False, rich_tracebacks=False, markup=False))
    logger.setLevel(logging.INFO)
    logger.propagate = False

__all__ = ["__version__", "logger"]
