"""Non-finite values never become weights: a NaN/Inf loss or gradient stops the run (or skips that update), and a
checkpoint with non-finite weights is never written (so it can never prune the last good one)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ltx_trainer.errors import DataError


class NonFiniteError(DataError):
    """A non-finite loss, gradient or weight (exit code 3: usually a bad cache file, else a too-high learning rate)."""


def nonfinite_samples(losses: list[torch.Tensor], ids: list[list[str]]) -> list[str]:
    """Ids of the samples whose per-sample loss is NaN/Inf (``losses[i]`` is ``[B]`` for the batch ``ids[i]``)."""
    bad = []
    for loss, batch_ids in zip(losses, ids, strict=True):
        flags = (~torch.isfinite(loss.detach().float())).cpu().tolist()
        bad.extend(sample for sample, flag in zip(batch_ids, flags, strict=True) if flag)
    return bad


def nonfinite_loss_message(step: int, samples: list[str]) -> str:
    return (
        f"non-finite loss at step {step} on sample(s) {', '.join(samples)}; check those cache files (ltx-trainer "
        "verify) or lower optimization.learning_rate; nothing was saved for this step "
        "(optimization.nonfinite: skip skips such updates instead)"
    )


def nonfinite_tensors(tensors: dict[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the tensors holding a NaN/Inf."""
    items = tensors.items() if isinstance(tensors, dict) else tensors
    return [name for name, t in items if t.is_floating_point() and not torch.isfinite(t).all()]
