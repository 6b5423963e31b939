"""Training strategies: turn a batch of cached latents into transformer inputs, targets and loss masks.

The loop does not know conditioning modes; a strategy does. Conditions are applied per modality, in-clip ones
(first frame, prefix, suffix, spatial crop, mask) with one draw per sample: their tokens keep the clean latent, get
timestep 0 and leave the loss (spec/anchors.md §6.4). A frozen modality (``is_generated: false``) is all clean with
sigma 0 and no loss (§6.6). Each generated modality samples its own sigma from its own token count.
"""

from dataclasses import dataclass

import torch

from ltx_trainer.config import (
    FirstFrameCondition,
    FlexibleStrategyConfig,
    MaskCondition,
    ModalityConfig,
    PrefixCondition,
    ReferenceCondition,
    SpatialCropCondition,
    SuffixCondition,
)
from ltx_trainer.models.base import LTXModel, ModalityInput
from ltx_trainer.training.flow_matching import masked_mse, noisy_latents, velocity_target
from ltx_trainer.training.timesteps import SigmaSampler


@dataclass
class PreparedModality:
    """One modality ready for the transformer.

    Attributes:
        input: tokens, per-token timesteps, per-sample sigma, positions.
        target: velocity target ``[B, N, C]`` or None (frozen modality).
        loss_mask: ``[B, N]`` bool or None.
        weight: this modality's loss weight.
    """

    input: ModalityInput
    target: torch.Tensor | None
    loss_mask: torch.Tensor | None
    weight: float = 1.0


@dataclass(frozen=True)
class LatentGrid:
    frames: int
    height: int
    width: int

    @property
    def tokens_per_frame(self) -> int:
        return self.height * self.width


def _draw(batch: int, probability: float, generator: torch.Generator) -> torch.Tensor:
    """One Bernoulli draw per sample: ``[B]`` bool."""
    return torch.rand(batch, generator=generator) < probability


def condition_mask(
    condition: object, grid: LatentGrid, batch_data: dict, spatial_compression: int = 32
) -> torch.Tensor:
    """``[B?, N]`` bool: the tokens an in-clip condition keeps clean (before the per-sample draw)."""
    n = grid.frames * grid.tokens_per_frame
    mask = torch.zeros(n, dtype=torch.bool)
    if isinstance(condition, FirstFrameCondition):
        mask[: grid.tokens_per_frame] = True
    elif isinstance(condition, PrefixCondition):
        mask[: condition.temporal_boundary * grid.tokens_per_frame] = True
    elif isinstance(condition, SuffixCondition):
        mask[n - condition.temporal_boundary * grid.tokens_per_frame :] = True
    elif isinstance(condition, SpatialCropCondition):
        y1, x1, y2, x2 = (v // spatial_compression for v in condition.spatial_region)
        frame = torch.zeros(grid.height, grid.width, dtype=torch.bool)
        frame[y1:y2, x1:x2] = True
        mask = frame.flatten().repeat(grid.frames)
    elif isinstance(condition, MaskCondition):
        masks = batch_data[condition.mask_dir]["mask"]  # [B, F', H', W'] or [B, T]
        return masks.flatten(1) > 0.5
    else:
        raise NotImplementedError(f"condition {type(condition).__name__} is not an in-clip condition")
    return mask


class FlexibleStrategy:
    """The ``flexible`` strategy (legacy strategies run through their ``as_flexible()`` equivalent)."""

    def __init__(self, config: FlexibleStrategyConfig):
        self.config = config
        for label, modality in (("video", config.video), ("audio", config.audio)):
            if modality is not None and any(isinstance(c, ReferenceCondition) for c in modality.conditions):
                raise NotImplementedError(
                    f"training_strategy.{label}.conditions: 'reference' (IC-LoRA) arrives with the conditioning-modes "
                    "release; remove it for now"
                )

    def sources(self) -> dict[str, str]:
        """Source folder -> batch key."""
        return {folder: key for folder, (key, _) in self.config.data_source_keys().items()}

    def prepare(
        self, batch: dict, model: LTXModel, sampler: SigmaSampler, generator: torch.Generator
    ) -> dict[str, PreparedModality]:
        """Noise generated modalities, apply conditions, build positions: ``{"video": ..., "audio": ...}``."""
        prepared = {}
        if self.config.video is not None:
            prepared["video"] = self._video(batch, model, sampler, generator)
        if self.config.audio is not None:
            prepared["audio"] = self._audio(batch, model, sampler, generator)
        return prepared

    def _video(
        self, batch: dict, model: LTXModel, sampler: SigmaSampler, generator: torch.Generator
    ) -> PreparedModality:
        data = batch["video_latents"]
        latents = data["latents"].float()  # [B, C, F', H', W']
        b, _, f, h, w = latents.shape
        grid = LatentGrid(f, h, w)
        fps = float(data["fps"][0]) if "fps" in data else 24.0
        positions = model.video_positions(b, f, h, w, fps).to(latents.device)
        x0 = model.patchify_video(latents)
        masks = [
            (condition, condition_mask(condition, grid, batch, model.spec.spatial_compression))
            for condition in self.config.video.conditions
        ]
        return self._noise(x0, positions, masks, self.config.video, sampler, generator)

    def _audio(
        self, batch: dict, model: LTXModel, sampler: SigmaSampler, generator: torch.Generator
    ) -> PreparedModality:
        latents = batch["audio_latents"]["latents"].float()  # [B, 8, T, 16]
        b, _, steps, _ = latents.shape
        grid = LatentGrid(steps, 1, 1)
        x0 = model.patchify_audio(latents)
        positions = model.audio_positions(b, steps).to(latents.device)
        masks = [(condition, condition_mask(condition, grid, batch)) for condition in self.config.audio.conditions]
        return self._noise(x0, positions, masks, self.config.audio, sampler, generator)

    @staticmethod
    def _noise(
        x0: torch.Tensor,
        positions: torch.Tensor,
        masks: list[tuple[object, torch.Tensor]],
        modality: ModalityConfig,
        sampler: SigmaSampler,
        generator: torch.Generator,
    ) -> PreparedModality:
        b, n, _ = x0.shape
        if not modality.is_generated:
            zeros = torch.zeros(b, n, device=x0.device)
            return PreparedModality(ModalityInput(x0, zeros, torch.zeros(b, device=x0.device), positions), None, None)
        sigma = sampler(b, n, generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        clean = torch.zeros(b, n, dtype=torch.bool, device=x0.device)
        for condition, mask in masks:
            chosen = _draw(b, condition.probability, generator).to(x0.device)
            clean |= chosen[:, None] & mask.to(x0.device).expand(b, n)
        x_t = noisy_latents(x0, noise, sigma)
        x_in = torch.where(clean.unsqueeze(-1), x0, x_t)
        timesteps = (~clean).float() * sigma[:, None]
        return PreparedModality(
            ModalityInput(x_in, timesteps, sigma, positions),
            velocity_target(x0, noise),
            ~clean,
            modality.loss_weight,
        )

    @staticmethod
    def loss(predictions: dict[str, torch.Tensor], prepared: dict[str, PreparedModality]) -> tuple[torch.Tensor, dict]:
        """Weighted sum of per-modality masked MSE: ``[B]`` total and ``{modality: [B]}`` parts."""
        parts = {}
        for name, item in prepared.items():
            if item.target is None:
                continue
            pred = predictions[name][:, -item.target.shape[1] :]  # prepended reference tokens carry no loss
            parts[name] = masked_mse(pred, item.target, item.loss_mask)
        total = sum(prepared[name].weight * part for name, part in parts.items())
        return total, parts
