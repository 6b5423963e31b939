"""ltx-trainer: train LoRAs and full fine-tunes of every Lightricks LTX video model."""

import logging
import sys

__version__ = "0.1.0"

logger = logging.getLogger("ltx_trainer")
if not logger.handlers:
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, markup=False)
    else:  # logs and CI: one unwrapped line per message
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

__all__ = ["__version__", "logger"]
