"""Rectified-flow math, as pure functions (spec/anchors.md §6.3, §6.5)."""

import torch


def noisy_latents(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``x_t = (1 - sigma) x0 + sigma noise``; ``sigma`` is per sample ``[B]`` or per token ``[B, N]``."""
    sigma = sigma.reshape(*sigma.shape, *([1] * (x0.ndim - sigma.ndim)))
    return (1 - sigma) * x0 + sigma * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The flow-matching velocity ``noise - x0`` (what the transformer predicts)."""
    return noise - x0


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error over the tokens where ``mask`` is true.

    Args:
        pred, target: ``[B, N, C]``.
        mask: ``[B, N]`` bool (False on conditioning tokens).

    Returns:
        ``[B]``; a sample with no loss tokens contributes 0.
    """
    weight = mask.to(pred.dtype).unsqueeze(-1)
    squared = (pred.float() - target.float()).pow(2) * weight
    return squared.sum(dim=(1, 2)) / (weight.sum(dim=(1, 2)) * pred.shape[-1]).clamp(min=1e-8)
