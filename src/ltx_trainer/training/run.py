"""``ltx-trainer train CONFIG``: load and check the config, then set up and run the trainer.

The config and its paths are checked before torch and the model libraries are imported (seconds on a loaded
machine), so a typo is reported at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ltx_trainer.config import LtxTrainerConfig, check_paths, load_config
from ltx_trainer.errors import UsageError

if TYPE_CHECKING:
    from ltx_trainer.training.metrics import TrainResult


def checked_config(path: Path) -> LtxTrainerConfig:
    """The config at ``path``, validated, with every path it names existing (else one :class:`UsageError`)."""
    cfg = load_config(path)
    problems = check_paths(cfg)
    if problems:
        raise UsageError(f"{path}: " + "\n  ".join(["paths that don't exist:", *problems]))
    return cfg


def launch_from_file(path: Path, num_processes: int, accelerate_config: Path | None = None) -> int:
    """``train CONFIG --num-processes N``: check the config here (one clear error, not N), then start the processes
    through Accelerate; returns the job's exit code (non-zero when any rank failed)."""
    from ltx_trainer.training.distributed import launch

    cfg = checked_config(path)
    if cfg.hub.push_to_hub:
        from ltx_trainer.integrations.hub import preflight

        preflight("hub.push_to_hub")  # here too: one line before N processes start, not one per rank
    return launch(Path(path), num_processes, accelerate_config)


def train_from_file(path: Path) -> TrainResult | None:
    """Train from a YAML config; expected failures raise :class:`ltx_trainer.errors.LtxTrainerError` subclasses.

    Returns None on the non-main processes of a launched job."""
    cfg = checked_config(path)
    from ltx_trainer.training.trainer import Trainer

    trainer = Trainer(cfg, config_source=Path(path))
    trainer.setup()
    result = trainer.train()
    return result if trainer.accelerator.is_main_process else None
