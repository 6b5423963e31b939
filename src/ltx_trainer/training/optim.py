"""Optimizers and learning-rate schedules.

Schedules are functions of the *optimizer step* (``LambdaLR`` multipliers), built once the step count is known, and
stepped once per optimizer step by the trainer, never per micro-step or per process (the official trainer's DDP bug,
Lightricks/LTX-2 PR #263). Defaults follow the official ``scheduler_params`` (spec/anchors.md §2.5); the optional
linear warmup is ours.

Optimizers: torch AdamW, bitsandbytes' 8-bit AdamW, and pytorch-optimizer's Prodigy (``prodigy``: learning-rate free,
``learning_rate`` multiplies its own estimate), ScheduleFreeAdamW (``adamw_schedulefree``: no decaying schedule, the
weights to sample from are an average it keeps; see :func:`evaluation_weights`) and CAME (``came``: factored second
moments, memory close to Adafactor's). None of the last three has an 8-bit version in pytorch-optimizer 4.1 or
bitsandbytes. ``optimization.optimizer_params`` go to the constructor unchanged (checked at config load).
"""

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch.optim.lr_scheduler import LambdaLR

from ltx_trainer.config_checks import SCHEDULE_FREE

Multiplier = Callable[[int], float]


def make_optimizer(
    params: Iterable[torch.nn.Parameter], kind: str, lr: float, options: dict | None = None
) -> torch.optim.Optimizer:
    """The ``optimization.optimizer_type`` optimizer over the trainable ``params`` (``options``: optimizer_params)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: check lora.target_modules or model.training_mode")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in (options or {}).items()}  # betas
    if kind == "adamw":
        fused = all(p.is_cuda for p in params)
        return torch.optim.AdamW(params, lr=lr, fused=fused or None, **options)
    if kind == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError as e:
            raise RuntimeError(
                "optimization.optimizer_type: 'adamw8bit' needs bitsandbytes (pip install bitsandbytes) and a CUDA "
                "GPU; use 'adamw' on this machine"
            ) from e
        if not all(p.is_cuda for p in params):
            raise RuntimeError("optimization.optimizer_type: 'adamw8bit' runs only on CUDA GPUs; use 'adamw' on CPU")
        return bnb.optim.AdamW8bit(params, lr=lr, **options)
    if kind in ("prodigy", "adamw_schedulefree", "came"):
        import pytorch_optimizer

        cls = {"prodigy": "Prodigy", "adamw_schedulefree": "ScheduleFreeAdamW", "came": "CAME"}[kind]
        return getattr(pytorch_optimizer, cls)(params, lr=lr, **options)
    raise ValueError(
        f"optimization.optimizer_type: {kind!r} is not one of adamw, adamw8bit, prodigy, adamw_schedulefree, came"
    )


@contextmanager
def evaluation_weights(optimizer: torch.optim.Optimizer, kind: str) -> Iterator[None]:
    """Inside: the weights to sample from and export. A schedule-free optimizer trains on an interpolation ``y`` and
    keeps the average ``x`` it is meant to be evaluated at: ``optimizer.eval()`` switches the parameters to ``x``.
    Afterwards the training weights are restored bit for bit from a copy (``optimizer.train()`` alone would recompute
    them with rounding), so a run that validates or saves is identical to one that does not. Other optimizers: no-op.
    """
    if kind not in SCHEDULE_FREE:
        yield
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]
    with torch.no_grad():
        saved = [p.detach().clone() for p in params]
        optimizer.eval()
        try:
            yield
        finally:
            optimizer.train()
            for p, value in zip(params, saved, strict=True):
                p.copy_(value)


def _schedule(kind: str, steps: int, params: dict, peak_lr: float) -> Multiplier:
    """Post-warmup multiplier of the peak lr at step ``s`` of ``steps`` (``eta_min`` is an absolute lr, as in torch)."""
    p = dict(params)
    if kind == "constant":
        return lambda s: 1.0
    if kind == "linear":
        start, end = p.pop("start_factor", 1.0), p.pop("end_factor", 0.1)
        return lambda s: start + (end - start) * min(s / max(steps, 1), 1.0)
    if kind == "cosine":
        eta = p.pop("eta_min", 0.0) / peak_lr
        return lambda s: eta + (1 - eta) * 0.5 * (1 + math.cos(math.pi * min(s / max(steps, 1), 1.0)))
    if kind == "cosine_with_restarts":
        period, mult, eta = p.pop("T_0", max(steps // 4, 1)), p.pop("T_mult", 1), p.pop("eta_min", 5e-5) / peak_lr

        def restarts(s: int) -> float:
            length, start = period, 0
            while s >= start + length:
                start, length = start + length, length * mult
            return eta + (1 - eta) * 0.5 * (1 + math.cos(math.pi * (s - start) / length))

        return restarts
    if kind == "polynomial":
        power, end = p.pop("power", 1.0), p.pop("end_factor", 0.0)
        return lambda s: end + (1 - end) * (1 - min(s / max(steps, 1), 1.0)) ** power
    if kind == "step":
        size, gamma = p.pop("step_size", max(steps // 2, 1)), p.pop("gamma", 0.1)
        return lambda s: gamma ** (s // size)
    raise ValueError(
        f"optimization.scheduler_type: {kind!r} is not one of constant, linear, cosine, cosine_with_restarts, "
        "polynomial, step"
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, kind: str, steps: int, warmup_steps: int = 0, params: dict | None = None
) -> LambdaLR:
    """Warmup (linear from 1/warmup to 1) followed by ``kind`` over the remaining steps."""
    params = dict(params or {})
    known = {"start_factor", "end_factor", "eta_min", "T_0", "T_mult", "power", "step_size", "gamma"}
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"optimization.scheduler_params: unknown keys {sorted(unknown)} (allowed: {sorted(known)})")
    after = _schedule(kind, max(steps - warmup_steps, 1), params, optimizer.param_groups[0]["lr"])

    def multiplier(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return after(step - warmup_steps)

    return LambdaLR(optimizer, multiplier)


def set_peak_lr(optimizer: torch.optim.Optimizer, scheduler: LambdaLR, lr: float) -> None:
    """Make ``lr`` the schedule's peak after loading a saved optimizer/scheduler (a resume with a changed lr)."""
    scheduler.base_lrs = [lr for _ in optimizer.param_groups]
    for group, multiplier in zip(optimizer.param_groups, scheduler.lr_lambdas, strict=True):
        group["initial_lr"] = lr
        group["lr"] = lr * multiplier(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
