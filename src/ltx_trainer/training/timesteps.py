"""Noise-level (sigma) samplers for flow-matching training.

``shifted_logit_normal`` follows the official LTX-2 trainer (spec/anchors.md §6.2): a logit-normal whose mean grows
with the token count of the generated modality (0.95 at 1024 tokens, 2.05 at 4096, linear and unbounded), stretched
so its 0.5th..99.9th percentiles span [0, 1], reflected at ``eps``, and mixed with a uniform share. The official
version computes the stretch as a difference of two sigmoids, which both round to 1 at very long sequences and give
NaN (Lightricks/LTX-2 PR #230). We compute the same quantity from complementary log-sigmoids, which stays exact and
finite for any sequence length.
"""

from typing import Protocol

import torch
import torch.nn.functional as F

from ltx_trainer.models.latents import token_shift

# Percentiles of the standard normal used for the stretch: 0.5 % and 99.9 %.
_LOW_Z = 2.5758
_HIGH_Z = 3.0902


class SigmaSampler(Protocol):
    def __call__(self, batch: int, seq_len: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[batch]`` sigmas in [0, 1] for a modality with ``seq_len`` tokens per sample."""


class ShiftedLogitNormal:
    """Sigma ~ stretched, shifted logit-normal with a uniform share (the official default)."""

    def __init__(self, std: float = 1.0, eps: float = 1e-3, uniform_prob: float = 0.1, stretch: bool = True):
        self.std, self.eps, self.uniform_prob, self.stretch = std, eps, uniform_prob, stretch

    def __call__(self, batch: int, seq_len: int, generator: torch.Generator | None = None) -> torch.Tensor:
        mu = token_shift(seq_len)
        normal = torch.randn(batch, generator=generator, dtype=torch.float64) * self.std + mu
        if self.stretch:
            sigma = self._stretched(normal, mu)
            sigma = torch.where(sigma < self.eps, 2 * self.eps - sigma, sigma).clamp(0.0, 1.0)
        else:
            sigma = torch.sigmoid(normal)
        if self.uniform_prob > 0:
            use_uniform = torch.rand(batch, generator=generator, dtype=torch.float64) < self.uniform_prob
            uniform = torch.rand(batch, generator=generator, dtype=torch.float64) * (1 - self.eps) + self.eps
            sigma = torch.where(use_uniform, uniform, sigma)
        return sigma.float()

    def _stretched(self, normal: torch.Tensor, mu: float) -> torch.Tensor:
        """``(sigmoid(n) - p_lo) / (p_hi - p_lo)`` written with ``1 - sigmoid(x) = sigmoid(-x)`` in log space."""
        log_q = F.logsigmoid(-normal)  # log(1 - sigmoid(n))
        log_q_lo = F.logsigmoid(torch.tensor(-(mu - _LOW_Z * self.std), dtype=torch.float64))
        log_q_hi = F.logsigmoid(torch.tensor(-(mu + _HIGH_Z * self.std), dtype=torch.float64))
        return torch.expm1(log_q - log_q_lo) / torch.expm1(log_q_hi - log_q_lo)


class Uniform:
    """Sigma ~ U(min_value, max_value)."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0):
        if not 0.0 <= min_value < max_value <= 1.0:
            raise ValueError(f"uniform sampler needs 0 <= min_value < max_value <= 1, got {min_value}, {max_value}")
        self.min_value, self.max_value = min_value, max_value

    def __call__(self, batch: int, seq_len: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.rand(batch, generator=generator) * (self.max_value - self.min_value) + self.min_value


class Fixed:
    """A constant sigma (tests, ablations)."""

    def __init__(self, sigma: float):
        self.sigma = sigma

    def __call__(self, batch: int, seq_len: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.full((batch,), self.sigma)


SAMPLERS = {"shifted_logit_normal": ShiftedLogitNormal, "uniform": Uniform}


def make_sigma_sampler(mode: str, params: dict | None = None) -> SigmaSampler:
    """Build the sampler named by ``flow_matching.timestep_sampling_mode`` with ``timestep_sampling_params``."""
    if mode not in SAMPLERS:
        raise ValueError(f"flow_matching.timestep_sampling_mode: {mode!r} is not one of {', '.join(SAMPLERS)}")
    try:
        return SAMPLERS[mode](**(params or {}))
    except TypeError as e:
        raise ValueError(f"flow_matching.timestep_sampling_params: {e}") from e
