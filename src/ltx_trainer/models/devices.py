"""Where modules run: the one device resolver, and moving modules to a device for a while.

The VAEs and the vocoder live on the CPU during training and sampling and visit the accelerator only to work.
"""

import ctypes
from collections.abc import Sequence
from contextlib import contextmanager

import torch


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` or None -> ``cuda`` when available, else ``cpu``; anything else as given (``cuda:1``, ``cpu``)."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_of(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter."""
    return next(module.parameters()).device


@contextmanager
def on_device(modules: Sequence[torch.nn.Module], device: torch.device | str | None):
    """Move ``modules`` to ``device`` for the duration, then back where each was (``None``: leave them)."""
    if device is None:
        yield
        return
    homes = [device_of(m) for m in modules]
    try:
        for m in modules:
            m.to(device)
        yield
    finally:
        for m, home in zip(modules, homes, strict=True):
            m.to(home)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes in bfloat16 natively (CUDA with bf16; a CPU with AVX512-BF16 / AMX, where oneDNN's
    bf16 convolutions and matmuls run about twice as fast as fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def weights_dtype(device: torch.device | str, bf16: bool = True) -> torch.dtype:
    """The dtype frozen weights load in: bfloat16 where ``device`` computes it natively (and ``bf16`` is asked for),
    else float32. Precision follows the device, not a blanket fp32 on every CPU."""
    return torch.bfloat16 if bf16 and native_bf16(device) else torch.float32


def release_freed_heap() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``; a no-op without glibc).

    Tensors under 32 MiB come from the heap, which keeps what they freed: a loader that quantizes layer after layer
    would grow by the temporaries' fragments. Costs about a millisecond."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)
