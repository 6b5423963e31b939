"""``optimization.ema``: an exponential moving average of the trainable weights, on torch's ``AveragedModel``.

The average is ``torch.optim.swa_utils.AveragedModel`` over the trainable parameters only (a ``ParameterList`` that
holds the live parameters, so the frozen base is never copied), updated with ``get_ema_multi_avg_fn(decay)``:
the first update copies the weights, every later one is ``ema = lerp(ema, weights, 1 - decay)``
(``ema = decay * ema + (1 - decay) * weights``). Updates happen after the optimizer step of every step ``s`` with
``s >= start_step`` and ``(s - start_step) % update_every == 0``; before ``start_step`` there is no average yet (no EMA
file is written and validation samples the raw weights).

Where it is used (training/trainer.py): validation samples with the average swapped in; every checkpoint also writes
``*_ema.safetensors`` next to the raw weights, in the same layouts; the training state holds ``state_dict()`` (the
fp32 averages and the update count), so a resumed run continues the same average bit for bit.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ltx_trainer.config import EmaConfig, OptimizationConfig
from ltx_trainer.config_checks import SCHEDULE_FREE
from ltx_trainer.errors import UsageError

EMA_SUFFIX = "_ema"


class WeightsEMA:
    """The EMA of ``params`` (the trainable parameters, in a fixed order).

    Args:
        config: the ``optimization.ema`` section.
        params: the live trainable parameters; the average is kept in their dtype and device (fp32 for adapters).
    """

    def __init__(self, config: EmaConfig, params: list[nn.Parameter]):
        self.config = config
        self.params = list(params)
        self.live = nn.ParameterList(self.params)  # the same Parameter objects, not copies
        self.average = AveragedModel(self.live, multi_avg_fn=get_ema_multi_avg_fn(config.decay), use_buffers=False)

    @property
    def started(self) -> bool:
        return int(self.average.n_averaged) > 0

    def due(self, step: int) -> bool:
        start, every = self.config.start_step, self.config.update_every
        return step >= start and (step - start) % every == 0

    @torch.no_grad()
    def update(self, step: int) -> bool:
        """Average in the current weights if ``step`` (just completed) is an update step; returns whether it was."""
        if not self.due(step):
            return False
        self.average.update_parameters(self.live)
        return True

    def averaged(self) -> list[torch.Tensor]:
        return [p.detach() for p in self.average.module.parameters()]

    @contextmanager
    def swapped_in(self) -> Iterator[bool]:
        """Inside: the live parameters hold the average (yields False, and changes nothing, before the first update).
        The raw weights come back bit for bit from a copy."""
        if not self.started:
            yield False
            return
        with torch.no_grad():
            saved = [p.detach().clone() for p in self.params]
            for p, value in zip(self.params, self.averaged(), strict=True):
                p.copy_(value)
            try:
                yield True
            finally:
                for p, value in zip(self.params, saved, strict=True):
                    p.copy_(value)

    def state_dict(self) -> dict:
        return self.average.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state)


def make_ema(config: OptimizationConfig, params: list[nn.Parameter], sharded: bool) -> WeightsEMA | None:
    """The run's EMA (None without ``optimization.ema``). Sharded runs (FSDP, ZeRO-3) are refused, for the EMA and for
    a schedule-free optimizer alike: both swap whole weights in and out, which sharded parameters don't allow yet."""
    if sharded and (config.ema is not None or config.optimizer_type in SCHEDULE_FREE):
        key = "optimization.ema" if config.ema is not None else "optimization.optimizer_type"
        raise UsageError(f"{key}: not supported with sharded training (FSDP, DeepSpeed ZeRO-3) yet; use DDP")
    return WeightsEMA(config.ema, params) if config.ema is not None else None


def ema_path(weights: Path) -> Path:
    """``lora_weights_step_00100.safetensors`` -> ``lora_weights_step_00100_ema.safetensors``."""
    return weights.with_name(f"{weights.stem}{EMA_SUFFIX}{weights.suffix}")
