"""Experiment tracking: Weights & Biases (online, or offline without an account) and TensorBoard.

Both are optional extras (``pip install ltx-trainer[tracking]``); enabling one that is not installed is a clear error
at setup, not a crash mid-run.
"""

from pathlib import Path

from ltx_trainer import logger
from ltx_trainer.config import LtxTrainerConfig


class Tracker:
    """Fans metrics and sample files out to the enabled backends. Does nothing when none is enabled."""

    def __init__(self, config: LtxTrainerConfig, output_dir: Path, resume_id: str | None = None):
        self.wandb_run = None
        self.tensorboard = None
        if config.wandb.enabled and config.wandb.mode != "disabled":
            try:
                import wandb
            except ImportError as e:
                raise RuntimeError(
                    "wandb.enabled: install the tracking extra (pip install 'ltx-trainer[tracking]')"
                ) from e
            self.wandb_run = wandb.init(
                project=config.wandb.project,
                entity=config.wandb.entity,
                tags=list(config.wandb.tags),
                mode=config.wandb.mode,
                dir=str(output_dir),
                config=config.model_dump(mode="json"),
                id=resume_id,
                resume="allow" if resume_id else None,
            )
            self.log_videos = config.wandb.log_validation_videos
        if config.tensorboard.enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise RuntimeError(
                    "tensorboard.enabled: install the tracking extra (pip install 'ltx-trainer[tracking]')"
                ) from e
            self.tensorboard = SummaryWriter(log_dir=str(output_dir / "tensorboard"))

    @property
    def run_id(self) -> str | None:
        return self.wandb_run.id if self.wandb_run is not None else None

    def log(self, metrics: dict, step: int) -> None:
        scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float) and k != "step"}
        if self.wandb_run is not None:
            self.wandb_run.log({f"train/{k}": v for k, v in scalars.items()}, step=step)
        if self.tensorboard is not None:
            for key, value in scalars.items():
                self.tensorboard.add_scalar(f"train/{key}", value, step)

    def log_samples(self, paths: list[Path], step: int) -> None:
        if self.wandb_run is not None and self.log_videos:
            import wandb

            media = {}
            for i, path in enumerate(paths):
                kind = {".mp4": wandb.Video, ".wav": wandb.Audio, ".png": wandb.Image}.get(path.suffix)
                if kind is not None:
                    media[f"samples/{i}"] = kind(str(path))
            self.wandb_run.log(media, step=step)
        if self.tensorboard is not None:
            for i, path in enumerate(paths):
                self.tensorboard.add_text(f"samples/{i}", str(path), step)

    def finish(self) -> None:
        if self.wandb_run is not None:
            self.wandb_run.finish()
            logger.info("W&B run %s finished", self.wandb_run.id)
        if self.tensorboard is not None:
            self.tensorboard.close()
