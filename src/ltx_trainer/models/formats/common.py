"""Shared helpers for state-dict conversion and strict loading."""

from collections.abc import Iterable

import torch
from torch import nn

from ltx_trainer.models.errors import ModelLoadError

StateDict = dict[str, torch.Tensor]
MAX_LISTED = 5


def select_prefix(sd: StateDict, prefix: str, exclude: Iterable[str] = ()) -> StateDict:
    """Keys starting with ``prefix`` (kept whole), minus those starting with any of ``exclude``."""
    exclude = tuple(exclude)
    return {k: v for k, v in sd.items() if k.startswith(prefix) and not (exclude and k.startswith(exclude))}


def _listing(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:MAX_LISTED])
    return shown + (f" (+{len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else "")


def load_state_dict_strict(model: nn.Module, sd: StateDict, source: str, component: str) -> None:
    """Load ``sd`` into ``model`` (which may live on the meta device) and fail loudly on any mismatch.

    diffusers and accelerate can leave tensors on ``meta`` without complaint; after this call every parameter and
    persistent buffer came from ``sd`` with the right shape, or a ``ModelLoadError`` names the first offenders.
    """
    check_state_dict(model, sd, source, component)
    model.load_state_dict(sd, strict=True, assign=True)
    check_nothing_meta(model, source, component)


def check_state_dict(model: nn.Module, sd: dict, source: str, component: str) -> None:
    """Raise ``ModelLoadError`` unless ``sd`` has exactly ``model``'s keys and shapes (values: anything with
    ``.shape``, e.g. tensors or references to tensors still on disk)."""
    expected = model.state_dict()
    missing = set(expected) - set(sd)
    unexpected = set(sd) - set(expected)
    wrong_shape = [
        f"{k} {tuple(sd[k].shape)} != {tuple(expected[k].shape)}"
        for k in sorted(set(sd) & set(expected))
        if tuple(sd[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s): {_listing(unexpected)}")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} wrongly shaped tensor(s): {_listing(wrong_shape)}")
    if problems:
        raise ModelLoadError(
            f"{source}: the {component} weights don't match its architecture: "
            + "; ".join(problems)
            + ". The file is incomplete, renamed or from another model version; re-download or re-export it."
        )


def check_nothing_meta(model: nn.Module, source: str, component: str) -> None:
    still_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if still_meta:
        raise ModelLoadError(f"{source}: the {component} has tensors left uninitialised: {_listing(still_meta)}")
