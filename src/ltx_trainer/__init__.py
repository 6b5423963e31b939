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

# Import-time notices that print on every command and ask nothing of a user: torch's note on torchao's enum
# registrations, diffusers' loader for torchao-serialized checkpoints (we never load those), diffusers' note on casting
# a model with an empty list of fp32 modules, and bitsandbytes' CPU backend (AVX512-BF16 machines) failing to fetch an
# optional kernel from the Hub (it falls back to its own CPU path). Filtered by message: every other warning shows.
_NOISE = {
    "torch.utils._pytree": "register_constant",
    "diffusers.quantizers.torchao.torchao_quantizer": "Unable to import `torchao` Tensor objects",
    "diffusers.models.modeling_utils": "should be kept in float32: []",
    "bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward",
}
for _name, _text in _NOISE.items():
    logging.getLogger(_name).addFilter(lambda record, text=_text: text not in record.getMessage())

__all__ = ["__version__", "logger"]
