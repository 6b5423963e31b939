"""What a run reports beyond the loss: mean loss per sigma range, wall time per step phase, the run's result."""

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

SIGMA_BUCKETS = 4


def sigma_bucket_losses(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Mean loss per sigma quarter (``loss_sigma_0.00_0.25`` ...), from (sigma ``[B]``, loss ``[B]``) pairs."""
    if not pairs:
        return {}
    sigma = torch.cat([s for s, _ in pairs]).float().cpu()
    loss = torch.cat([v for _, v in pairs]).float().cpu()
    bucket = (sigma * SIGMA_BUCKETS).long().clamp(max=SIGMA_BUCKETS - 1)
    return {
        f"loss_sigma_{i / SIGMA_BUCKETS:.2f}_{(i + 1) / SIGMA_BUCKETS:.2f}": loss[bucket == i].mean().item()
        for i in range(SIGMA_BUCKETS)
        if (bucket == i).any()
    }


class PhaseTimer:
    """Wall time per phase of a step (``with timer("forward_s"): ...``); syncs CUDA only when profiling."""

    def __init__(self, device: torch.device, enabled: bool):
        self.enabled = enabled
        self.cuda = device.type == "cuda"
        self.totals: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        if not self.enabled:
            yield
            return
        start = time.perf_counter()
        yield
        if self.cuda:
            torch.cuda.synchronize()
        self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - start


@dataclass
class TrainResult:
    """What a run produced."""

    weights: Path | None
    losses: list[float] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    finished_before: bool = False  # the run had already reached optimization.steps; nothing was done

    def summary(self) -> str:
        if self.finished_before:
            return f"already finished: {self.weights} (raise optimization.steps to train further)"
        return f"done: {self.steps} steps in {self.seconds:.0f} s -> {self.weights}"


def progress_bar(disable: bool):
    """The training progress bar: step count, loss, learning rate, seconds per step, time left."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  {task.fields[sps]:.2f} s/step"),
        TimeRemainingColumn(),
        disable=disable,
        transient=False,
    )
