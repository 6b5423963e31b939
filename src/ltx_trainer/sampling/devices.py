"""Where sampling's modules run: the VAEs and the vocoder live on the CPU and visit the accelerator only to work."""

from collections.abc import Sequence
from contextlib import contextmanager

import torch


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
