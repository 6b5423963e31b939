"""Masks: the one loader of mask array files and the one pixel-mask -> latent-grid rule.

Used by preprocessing (``video_mask`` / ``audio_mask`` columns -> ``video_masks/`` / ``audio_masks/``) and by
sampling (``--video-mask`` / ``--audio-mask`` conditions), so a mask file means the same thing in both.

Array files: ``.npy`` (no pickles), ``.pt`` / ``.pth`` (``weights_only``), ``.safetensors`` (a ``mask`` tensor or a
single tensor), ``.json`` (a list, or ``{"mask": [...]}``) and ``.txt`` / ``.csv`` (numbers separated by spaces,
commas or newlines). Values are floats in [0, 1] (0..255 is scaled down); 1 = conditioning (kept clean, no loss).
Images and videos are read by the caller (their luma, cropped like the frames they mask).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ltx_trainer.errors import DataError

MASK_ARRAY_SUFFIXES = (".npy", ".pt", ".pth", ".safetensors", ".json", ".txt", ".csv")


class MaskError(DataError):
    """A mask file that can't be used; the message names the file."""


def is_mask_array(path: str | Path) -> bool:
    """A mask stored as numbers (rather than an image or a video)."""
    return Path(path).suffix.lower() in MASK_ARRAY_SUFFIXES


def load_mask_array(path: str | Path) -> torch.Tensor:
    """A mask array file (see the module docstring) -> float tensor, values in [0, 1].

    Raises:
        MaskError: unknown suffix, unreadable file, no ``mask`` entry, or not numbers.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            data = torch.from_numpy(np.load(path, allow_pickle=False).astype(np.float32))
        elif suffix in (".pt", ".pth"):
            data = torch.load(path, map_location="cpu", weights_only=True)
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(path)
            if "mask" not in data and len(data) == 1:
                data = next(iter(data.values()))
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            data = data.get("mask") if isinstance(data, dict) else data
            data = torch.tensor(data, dtype=torch.float32)
        elif suffix in (".txt", ".csv"):
            text = path.read_text(encoding="utf-8")
            data = torch.tensor([float(v) for v in text.replace(",", " ").split()], dtype=torch.float32)
        else:
            raise MaskError(f"{path}: not a mask array file ({', '.join(MASK_ARRAY_SUFFIXES)})")
    except MaskError:
        raise
    except Exception as e:  # numpy, torch, safetensors and json raise many types for a bad file
        raise MaskError(f"{path}: unreadable mask ({type(e).__name__}: {e})") from e
    if isinstance(data, dict):
        if "mask" not in data:
            raise MaskError(f"{path}: no 'mask' entry (found {sorted(data)})")
        data = data["mask"]
    if not isinstance(data, torch.Tensor):
        raise MaskError(f"{path}: expected a mask tensor, found {type(data).__name__}")
    mask = data.float()
    if mask.numel() and not torch.isfinite(mask).all():
        raise MaskError(f"{path}: the mask holds NaN or Inf values")
    if mask.numel() and mask.max() > 1.0:
        mask = mask / 255.0
    return mask


def video_mask_to_latent(mask: torch.Tensor, temporal: int = 8, spatial: int = 32) -> torch.Tensor:
    """Pixel mask ``[F, H, W]`` in [0, 1] (F = temporal*k+1) -> soft latent grid ``[F', H', W']`` in [0, 1].

    Average over each ``spatial x spatial`` cell, then latent frame 0 = pixel frame 0 and latent frame k = the max
    over pixel frames ``T(k-1)+1 .. Tk``.
    """
    frames = mask.shape[0]
    if (frames - 1) % temporal:
        raise MaskError(f"mask has {frames} frames; expected {temporal}k+1")
    cells = F.avg_pool2d(mask.float()[:, None], spatial)[:, 0]  # [F, H', W']
    first, rest = cells[:1], cells[1:]
    if rest.shape[0] == 0:
        return first
    return torch.cat([first, rest.reshape(-1, temporal, *rest.shape[1:]).amax(dim=1)])


def video_mask_to_latent_grid(mask: torch.Tensor, temporal: int = 8, spatial: int = 32) -> torch.Tensor:
    """:func:`video_mask_to_latent` then ``> 0.5``: the ``[F', H', W']`` 0/1 floats stored in ``video_masks/``."""
    return (video_mask_to_latent(mask, temporal, spatial) > 0.5).float()


def audio_mask_to_latent_steps(values: torch.Tensor, steps: int) -> torch.Tensor:
    """1-D mask over the clip's duration (any length) -> ``[steps]`` 0/1 floats, nearest resampling then ``> 0.5``."""
    values = values.float().reshape(-1)
    if values.numel() == 0:
        raise MaskError("audio mask is empty")
    index = ((torch.arange(steps, dtype=torch.float64) + 0.5) * values.numel() / steps).long()
    return (values[index.clamp_(max=values.numel() - 1)] > 0.5).float()


def resample_mask(mask: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Nearest resampling of a latent mask (``[T]`` or ``[F', H', W']``) to another grid of the same rank."""
    if tuple(mask.shape) == tuple(size):
        return mask
    return F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0]
