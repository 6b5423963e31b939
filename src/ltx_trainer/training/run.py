"""``ltx-trainer train CONFIG``: load and check the config, then set up and run the trainer."""

from __future__ import annotations

from pathlib import Path

from ltx_trainer.config import check_paths, load_config
from ltx_trainer.errors import UsageError
from ltx_trainer.training.trainer import Trainer, TrainResult


def train_from_file(path: Path) -> TrainResult:
    """Train from a YAML config; expected failures raise :class:`ltx_trainer.errors.LtxTrainerError` subclasses."""
    cfg = load_config(path)
    problems = check_paths(cfg)
    if problems:
        raise UsageError(f"{path}: " + "\n  ".join(["paths that don't exist:", *problems]))
    trainer = Trainer(cfg, config_source=Path(path))
    trainer.setup()
    return trainer.train()
