"""Aspect-preserving resize and crop of frame tensors."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ltx_trainer.data.media.container import _round_half_up


def resize_and_crop(
    frames: torch.Tensor,
    width: int,
    height: int,
    crop: Literal["center", "random"] = "center",
    generator: torch.Generator | None = None,
    chunk_size: int = 16,
) -> torch.Tensor:
    """Aspect-preserving resize so that ``width x height`` is covered, then crop to exactly that size.

    Resizing is bilinear with antialiasing (``torch.nn.functional.interpolate``) in float32, done ``chunk_size``
    frames at a time to bound memory. The same crop window is used for every frame.

    Args:
        frames: ``[F, H, W, 3]`` (or a single ``[H, W, 3]`` frame), ``uint8`` or float.
        width: Target width.
        height: Target height.
        crop: ``"center"`` or ``"random"`` (window drawn with ``generator``).
        generator: Random generator for ``crop="random"``.
        chunk_size: Frames resized per interpolate call.

    Returns:
        ``[F, height, width, 3]`` (or ``[height, width, 3]``) with the input's dtype and device.
    """
    if width < 1 or height < 1:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    if crop not in ("center", "random"):
        raise ValueError(f"crop must be 'center' or 'random', got {crop!r}")
    single = frames.ndim == 3
    if single:
        frames = frames.unsqueeze(0)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames shaped [F, H, W, 3], got {tuple(frames.shape)}")
    _, src_h, src_w, _ = frames.shape
    scale = max(width / src_w, height / src_h)
    new_h = max(height, _round_half_up(src_h * scale))
    new_w = max(width, _round_half_up(src_w * scale))

    if crop == "center":
        top, left = (new_h - height) // 2, (new_w - width) // 2
    else:
        top = int(torch.randint(0, new_h - height + 1, (1,), generator=generator))
        left = int(torch.randint(0, new_w - width + 1, (1,), generator=generator))

    if (new_h, new_w) == (src_h, src_w):
        out = frames[:, top : top + height, left : left + width]
        out = out.contiguous()
        return out[0] if single else out

    outputs = []
    for begin in range(0, frames.shape[0], chunk_size):
        chunk = frames[begin : begin + chunk_size].permute(0, 3, 1, 2).float()
        resized = F.interpolate(chunk, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        resized = resized[:, :, top : top + height, left : left + width]
        if frames.dtype == torch.uint8:
            resized = resized.round_().clamp_(0, 255).to(torch.uint8)
        else:
            resized = resized.to(frames.dtype)
        outputs.append(resized.permute(0, 2, 3, 1))
    out = torch.cat(outputs).contiguous()
    return out[0] if single else out
