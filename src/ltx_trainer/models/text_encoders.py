"""Text encoders from local folders (transformers): Gemma-3/Gemma-4 for the LTX-2 family."""

from pathlib import Path

import torch
import transformers
from torch import nn

from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.sources import read_json

# Tied or recomputed weights transformers may report as missing without harm.
_IGNORABLE_MISSING = ("lm_head.weight",)


def load_gemma(
    model_dir: Path, tokenizer_dir: Path, dtype: torch.dtype = torch.float32, bits: int | None = None
) -> tuple[nn.Module, object]:
    """Load a Gemma text encoder and its tokenizer (left padding, as LTX-2 was trained) from local folders.

    Weights stream from the safetensors shards (``low_cpu_mem_usage``); ``bits`` (8 or 4) quantizes them, see
    :func:`quantized_load_kwargs`.

    Raises:
        ModelLoadError: the folder is missing, is not a Gemma model, or lacks weights.
    """
    model_dir, tokenizer_dir = Path(model_dir), Path(tokenizer_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"{model_dir}: text encoder folder not found (expected a Gemma folder with config.json)")
    config = read_json(model_dir / "config.json")
    arch = (config.get("architectures") or [""])[0]
    if not config.get("model_type", "").startswith("gemma"):
        raise ModelLoadError(f"{model_dir}: model_type={config.get('model_type')!r}; LTX-2 models need a Gemma folder")
    cls = getattr(transformers, arch, None) or transformers.AutoModel
    kwargs = quantized_load_kwargs(bits)
    model, info = cls.from_pretrained(
        model_dir, dtype=dtype, output_loading_info=True, local_files_only=True, low_cpu_mem_usage=True, **kwargs
    )
    if bits == 8 and "quantization_config" not in kwargs:
        quantize_int8_weight_only_(model)
    missing = [k for k in info.get("missing_keys", []) if not k.endswith(_IGNORABLE_MISSING)]
    if missing:
        raise ModelLoadError(f"{model_dir}: the text encoder is missing {len(missing)} tensor(s), e.g. {missing[:5]}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    tokenizer.padding_side = "left"
    return model.eval().requires_grad_(False), tokenizer


BITS_KEYS = {8: "acceleration.load_text_encoder_in_8bit", 4: "acceleration.load_text_encoder_in_4bit"}


def loads_on_gpu(bits: int | None) -> bool:
    """Whether a text encoder in ``bits`` is loaded onto the GPU (bitsandbytes); full-precision ones load on the
    CPU and only their callers move them."""
    return bits is not None and torch.cuda.is_available()


def quantized_load_kwargs(bits: int | None) -> dict:
    """``from_pretrained`` arguments for a text encoder in ``bits``: bitsandbytes (8-bit, or 4-bit NF4) on CUDA,
    loaded straight onto the GPU; on a CPU 8-bit is torchao int8 weight-only after loading (no kwargs), and 4-bit is
    refused (torchao's int4 weight-only kernels are CUDA-only)."""
    if bits is None:
        return {}
    if bits not in BITS_KEYS:
        raise ValueError(f"text encoder bits must be 8 or 4, not {bits}")
    if not torch.cuda.is_available():
        if bits == 4:
            raise ModelLoadError(
                f"{BITS_KEYS[4]}: 4-bit text encoders need CUDA (bitsandbytes NF4; torchao int4 is CUDA-only); "
                f"use {BITS_KEYS[8]} on a CPU"
            )
        return {}
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise ModelLoadError(
            f"{BITS_KEYS[bits]}: needs bitsandbytes on CUDA: pip install bitsandbytes (or 'ltx-trainer[quantization]')"
        ) from e
    if bits == 8:
        config = transformers.BitsAndBytesConfig(load_in_8bit=True)
    else:
        config = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
    return {"quantization_config": config, "device_map": {"": torch.cuda.current_device()}}


def quantize_int8_weight_only_(model: nn.Module) -> nn.Module:
    """torchao int8 weight-only quantization of every ``nn.Linear`` (in place): half the bytes of bf16 weights."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(model, Int8WeightOnlyConfig())
    return model
