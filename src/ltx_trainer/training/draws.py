"""Random draws of a training batch (sigma, noise, condition and caption-dropout choices), keyed per sample.

A trainer step draws from one generator per sample, seeded from ``(seed, step, position)`` where ``position`` is the
sample's place in the step's global batch (``micro * global_batch + rank * per_rank_batch + j``). The numbers a sample
gets therefore depend neither on the process that trains it nor on the other samples of its micro-batch: N processes
with batch b draw exactly what 1 process with batch N*b draws, and a resumed run draws what the uninterrupted one did
without saving any generator state. Decisions taken once per batch (whether IC-LoRA references are prepended: the
tensors must stay rectangular) come from a generator keyed by ``(seed, step, micro)`` only, shared by every rank.

``Draws.from_generator`` keeps the older single-stream behaviour (tests, ``bench``'s bare loop): every draw comes from
one generator in batch order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from ltx_trainer.training.timesteps import SigmaSampler


def _key(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Draws:
    """Where a batch's random numbers come from: one generator per sample, or one stream for the whole batch."""

    def __init__(self, samples: Sequence[torch.Generator] | None, batch: torch.Generator):
        self.samples = list(samples) if samples is not None else None
        self.batch = batch

    @classmethod
    def from_generator(cls, generator: torch.Generator) -> Draws:
        """Every draw from ``generator`` in batch order (the single-stream behaviour)."""
        return cls(None, generator)

    @classmethod
    def keyed(cls, seed: int, step: int, micro: int, positions: Sequence[int]) -> Draws:
        """Per-sample generators keyed by ``(seed, step, position)``; the batch-wide one by ``(seed, step, micro)``."""
        return cls(
            [_generator(_key(seed, step, "sample", p)) for p in positions],
            _generator(_key(seed, step, "batch", micro)),
        )

    def rand(self, size: int) -> torch.Tensor:
        """``[size]`` uniform numbers, one per sample."""
        if self.samples is None:
            return torch.rand(size, generator=self.batch)
        self._check(size)
        return torch.cat([torch.rand(1, generator=g) for g in self.samples])

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        """Standard normal noise of ``shape`` (``[B, ...]``), each sample's slice from its own generator."""
        if self.samples is None:
            return torch.randn(tuple(shape), generator=self.batch)
        self._check(shape[0])
        return torch.stack([torch.randn(tuple(shape[1:]), generator=g) for g in self.samples])

    def sigma(self, sampler: SigmaSampler, size: int, seq_len: int) -> torch.Tensor:
        """``[size]`` sigmas, each sample's from its own generator."""
        if self.samples is None:
            return sampler(size, seq_len, self.batch)
        self._check(size)
        return torch.cat([sampler(1, seq_len, g) for g in self.samples])

    def once(self) -> torch.Tensor:
        """One uniform number (a 0-d tensor) for the whole batch."""
        return torch.rand((), generator=self.batch)

    def _check(self, size: int) -> None:
        if size != len(self.samples):
            raise ValueError(f"a batch of {size} samples drawn with {len(self.samples)} keyed generators")
