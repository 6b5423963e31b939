"""Training strategies: turn a batch of cached latents into transformer inputs, targets and loss masks.

The loop does not know conditioning modes; a strategy does. Per modality, in this order:

1. In-clip conditions (first frame, prefix, suffix, spatial crop, mask), one draw per sample: their tokens keep the
   clean latent, get timestep 0 and leave the loss (spec/anchors.md §6.4).
2. A ``reference`` condition (IC-LoRA), one draw per batch because it changes the sequence length: the clean reference
   tokens are prepended, ``[reference ; target]``, for tokens, positions and timesteps (t = 0); targets and loss masks
   stay target-only, and ``loss`` drops the prepended predictions (§6.7). So ``first_frame`` + ``reference`` compose.

A frozen modality (``is_generated: false``) is all clean with sigma 0 and no loss (§6.6): audio-to-video and
video-to-audio. Each generated modality samples its own sigma from its own (target) token count.

Reference positions follow ``models.latents.reference_video_positions`` (y, x scaled by ``k``, time aligned for a
temporal factor ``S``). The strategy receives ``k`` and ``S`` as a ``ReferenceScale`` (read once from the data root by
``data.reference_scale.read_reference_scale``), checks every batch against it, and reports it in ``metadata()`` for
the LoRA file header.
"""

from dataclasses import dataclass

import torch

from ltx_trainer import logger
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
from ltx_trainer.models.latents import LatentGrid, ReferenceScale, keyframe_marker, reference_video_positions
from ltx_trainer.models.lora_files import reference_scale_metadata
from ltx_trainer.training.draws import Draws
from ltx_trainer.training.flow_matching import masked_mse, noisy_latents, velocity_target
from ltx_trainer.training.timesteps import SigmaSampler

DEFAULT_FPS = 24.0  # official default for latents cached without an fps


@dataclass
class PreparedModality:
    """One modality ready for the transformer.

    Attributes:
        input: tokens, per-token timesteps, per-sample sigma, positions (reference tokens first, if any).
        target: velocity target ``[B, N, C]`` over the target tokens only, or None (frozen modality).
        loss_mask: ``[B, N]`` bool over the target tokens only, or None.
        weight: this modality's loss weight.
        reference_tokens: how many clean reference tokens were prepended to ``input`` (0 without a reference).
    """

    input: ModalityInput
    target: torch.Tensor | None
    loss_mask: torch.Tensor | None
    weight: float = 1.0
    reference_tokens: int = 0


def _draw(batch: int, probability: float, generator: Draws) -> torch.Tensor:
    """One Bernoulli draw per sample: ``[B]`` bool."""
    return generator.rand(batch) < probability


def _draw_once(probability: float, generator: Draws) -> bool:
    """One Bernoulli draw for the whole batch (always consumes one number, whatever the probability)."""
    return bool(generator.once() < probability)


def condition_mask(
    condition: object, grid: LatentGrid, batch_data: dict, spatial_compression: int = 32
) -> torch.Tensor:
    """``[B?, N]`` bool: the tokens an in-clip condition keeps clean (before the per-sample draw)."""
    n = grid.tokens
    mask = torch.zeros(n, dtype=torch.bool)
    if isinstance(condition, FirstFrameCondition):
        mask[: grid.tokens_per_frame] = True
    elif isinstance(condition, PrefixCondition):
        mask[: condition.temporal_boundary * grid.tokens_per_frame] = True
    elif isinstance(condition, SuffixCondition):
        mask[max(n - condition.temporal_boundary * grid.tokens_per_frame, 0) :] = True
    elif isinstance(condition, SpatialCropCondition):
        y1, x1, y2, x2 = (v // spatial_compression for v in condition.spatial_region)
        frame = torch.zeros(grid.height, grid.width, dtype=torch.bool)
        frame[y1:y2, x1:x2] = True
        mask = frame.flatten().repeat(grid.frames)
    elif isinstance(condition, MaskCondition):
        masks = batch_data[condition.mask_dir]["mask"]  # [B, F', H', W'] or [B, T]
        if masks[0].numel() != n:
            raise ValueError(
                f"mask_dir {condition.mask_dir!r}: masks of shape {list(masks.shape[1:])} for latents of "
                f"{n} tokens (F'xH'xW' {grid.frames}x{grid.height}x{grid.width}) in samples {batch_data.get('id')}; "
                "masks must be on the latent grid of their target ([F', H', W'] video, [T] audio)"
            )
        return masks.flatten(1) > 0.5
    else:
        raise NotImplementedError(f"condition {type(condition).__name__} is not an in-clip condition")
    return mask


def _references(modality: ModalityConfig | None) -> list[tuple[int, ReferenceCondition]]:
    if modality is None:
        return []
    return [(i, c) for i, c in enumerate(modality.conditions) if isinstance(c, ReferenceCondition)]


def _fps(data: dict, default: float) -> float:
    return float(data["fps"][0]) if "fps" in data else default


class FlexibleStrategy:
    """The ``flexible`` strategy (legacy strategies run through their ``as_flexible()`` equivalent).

    Args:
        config: the flexible strategy config.
        reference_scale: the scale factors of the generated video's ``reference`` condition
            (``data.reference_scale.read_reference_scale``); required with such a reference, ignored otherwise.

    Raises:
        ValueError: more than one reference per modality, a bad spatial crop, or a video reference without
            ``reference_scale``.
    """

    def __init__(self, config: FlexibleStrategyConfig, reference_scale: ReferenceScale | None = None):
        self.config = config
        self._check_conditions()
        self.reference_scale: ReferenceScale | None = None
        video_refs = _references(config.video)
        if video_refs and config.video.is_generated:
            (index, _), *_ = video_refs
            if reference_scale is None:
                raise ValueError(
                    f"training_strategy.video.conditions[{index}].latents_dir: a video reference needs its scale "
                    "factors; read them from the data root with data.reference_scale.read_reference_scale"
                )
            self.reference_scale = reference_scale

    def _check_conditions(self) -> None:
        for label, modality in (("video", self.config.video), ("audio", self.config.audio)):
            if modality is None:
                continue
            key = f"training_strategy.{label}.conditions"
            if not modality.is_generated and modality.conditions:
                logger.warning("%s: %s is frozen (is_generated: false), so its conditions do nothing", key, label)
            refs = _references(modality)
            if len(refs) > 1:
                raise ValueError(
                    f"{key}[{refs[1][0]}]: a second reference condition; one reference per modality is supported "
                    f"(conditions[{refs[0][0]}] is already one)"
                )
            for i, cond in enumerate(modality.conditions):
                if isinstance(cond, SpatialCropCondition):
                    y1, x1, y2, x2 = cond.spatial_region
                    if min(cond.spatial_region) < 0 or y1 >= y2 or x1 >= x2:
                        raise ValueError(
                            f"{key}[{i}].spatial_region: expected (y1, x1, y2, x2) pixels with 0 <= y1 < y2 and "
                            f"0 <= x1 < x2, got {cond.spatial_region}"
                        )

    def sources(self) -> dict[str, str]:
        """Source folder -> batch key."""
        return {folder: key for folder, (key, _) in self.config.data_source_keys().items()}

    def metadata(self) -> dict[str, str]:
        """Header entries for the LoRA file of an IC-LoRA with a video reference (empty otherwise).

        ``reference_downscale_factor`` and ``reference_spatial_scale_factor`` are both ``k`` (the official files
        carry both names); ``reference_temporal_scale_factor`` is ``S``.
        """
        return reference_scale_metadata(self.reference_scale)

    def prepare(
        self, batch: dict, model: LTXModel, sampler: SigmaSampler, generator: torch.Generator | Draws
    ) -> dict[str, PreparedModality]:
        """Noise generated modalities, apply conditions, build positions: ``{"video": ..., "audio": ...}``.

        Args:
            batch: collated batch (``video_latents`` ``[B, C, F', H', W']``, ``audio_latents`` ``[B, 8, T, 16]``,
                one entry per reference/mask folder).
            model: provides ``spec``, ``patchify_video``/``patchify_audio``, ``video_positions``/``audio_positions``.
            sampler: sigma sampler.
            generator: every random draw (sigma, noise, conditions) comes from it: one stream, or the per-sample
                keyed generators of ``training/draws.py``.
        """
        if isinstance(generator, torch.Generator):
            generator = Draws.from_generator(generator)
        prepared = {}
        if self.config.video is not None:
            prepared["video"] = self._video(batch, model, sampler, generator)
        if self.config.audio is not None:
            prepared["audio"] = self._audio(batch, model, sampler, generator)
        return prepared

    def _video(self, batch: dict, model: LTXModel, sampler: SigmaSampler, generator: Draws) -> PreparedModality:
        modality = self.config.video
        data = batch["video_latents"]
        latents = data["latents"].float()  # [B, C, F', H', W']
        b, _, f, h, w = latents.shape
        grid = LatentGrid(f, h, w)
        fps = _fps(data, DEFAULT_FPS)
        positions = model.video_positions(b, f, h, w, fps).to(latents.device)
        x0 = model.patchify_video(latents)
        masks = [
            (condition, condition_mask(condition, grid, batch, model.spec.spatial_compression))
            for condition in modality.conditions
            if not isinstance(condition, ReferenceCondition)
        ]
        item = self._noise(x0, positions, masks, modality, sampler, generator)
        item.input.keyframes = keyframe_marker(b, grid).to(latents.device)
        references = _references(modality) if modality.is_generated else []
        for _, reference in references:
            if _draw_once(reference.probability, generator):
                tokens, ref_positions = self._video_reference(batch, reference, model, grid, fps)
                item = self._prepend(item, tokens, ref_positions)
        return item

    def _video_reference(
        self, batch: dict, reference: ReferenceCondition, model: LTXModel, target: LatentGrid, target_fps: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        data = batch[reference.latents_dir]
        latents = data["latents"].float()  # [B, C, F'_r, H'_r, W'_r]
        b, _, f, h, w = latents.shape
        grid = LatentGrid(f, h, w)
        scale = self.reference_scale
        where = f"{reference.latents_dir} (samples {batch.get('id')})"
        problem = scale.check(target, grid)
        if problem is not None:
            raise ValueError(
                f"{where}: {problem}; all references of a run must share one scale (re-run preprocessing with the "
                "same reference factors)"
            )
        fps = _fps(data, target_fps / scale.temporal)
        if f > 1:
            scale.check_fps(target_fps, fps, where)
        positions = reference_video_positions(model, b, grid, fps, scale, target_fps)
        return model.patchify_video(latents), positions

    def _audio(self, batch: dict, model: LTXModel, sampler: SigmaSampler, generator: Draws) -> PreparedModality:
        modality = self.config.audio
        latents = batch["audio_latents"]["latents"].float()  # [B, 8, T, 16]
        b, _, steps, _ = latents.shape
        grid = LatentGrid(steps, 1, 1)
        x0 = model.patchify_audio(latents)
        positions = model.audio_positions(b, steps).to(latents.device)
        masks = [
            (condition, condition_mask(condition, grid, batch))
            for condition in modality.conditions
            if not isinstance(condition, ReferenceCondition)
        ]
        item = self._noise(x0, positions, masks, modality, sampler, generator)
        present = batch["audio_latents"].get("audio_present")
        if present is not None and item.target is not None:  # video-only samples (--allow-missing-audio): no audio loss
            keep = present.to(device=x0.device).bool()[:, None].expand(x0.shape[0], x0.shape[1])
            item.loss_mask = keep if item.loss_mask is None else item.loss_mask & keep
        references = _references(modality) if modality.is_generated else []
        for _, reference in references:
            if _draw_once(reference.probability, generator):
                ref = batch[reference.latents_dir]["latents"].float()  # [B, 8, T_r, 16]
                # Audio references keep their own length; both timelines start at 0 s.
                ref_positions = model.audio_positions(b, ref.shape[2]).to(latents.device)
                item = self._prepend(item, model.patchify_audio(ref), ref_positions)
        return item

    @staticmethod
    def _prepend(item: PreparedModality, tokens: torch.Tensor, positions: torch.Tensor) -> PreparedModality:
        """``[reference ; target]`` for tokens, positions and timesteps; reference tokens are clean (t = 0)."""
        current = item.input
        b, n_ref, _ = tokens.shape
        tokens = tokens.to(device=current.latent.device, dtype=current.latent.dtype)
        zeros = torch.zeros(b, n_ref, device=current.timesteps.device, dtype=current.timesteps.dtype)
        keyframes = current.keyframes
        if keyframes is not None:  # reference tokens are never marked
            keyframes = torch.cat([keyframes.new_zeros(b, n_ref), keyframes], dim=1)
        return PreparedModality(
            ModalityInput(
                torch.cat([tokens, current.latent], dim=1),
                torch.cat([zeros, current.timesteps], dim=1),
                current.sigma,
                torch.cat([positions.to(current.positions.dtype), current.positions], dim=2),
                keyframes,
            ),
            item.target,
            item.loss_mask,
            item.weight,
            item.reference_tokens + n_ref,
        )

    @staticmethod
    def _noise(
        x0: torch.Tensor,
        positions: torch.Tensor,
        masks: list[tuple[object, torch.Tensor]],
        modality: ModalityConfig,
        sampler: SigmaSampler,
        generator: Draws,
    ) -> PreparedModality:
        b, n, _ = x0.shape
        if not modality.is_generated:
            zeros = torch.zeros(b, n, device=x0.device)
            return PreparedModality(ModalityInput(x0, zeros, torch.zeros(b, device=x0.device), positions), None, None)
        sigma = generator.sigma(sampler, b, n).to(x0.device)
        noise = generator.randn(x0.shape).to(x0.device)
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
