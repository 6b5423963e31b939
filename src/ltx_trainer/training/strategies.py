"""Training strategies: turn a batch of cached latents into transformer inputs, targets and loss masks.

The loop does not know conditioning modes; a strategy does. Per modality, in this order:

1. In-clip conditions (first frame, prefix, suffix, spatial crop, mask), one draw per sample: their tokens keep the
   clean latent, get timestep 0 and leave the loss (spec/anchors.md §6.4).
2. A ``reference`` condition (IC-LoRA), one draw per batch because it changes the sequence length: the clean reference
   tokens are prepended, ``[reference ; target]``, for tokens, positions and timesteps (t = 0); targets and loss masks
   stay target-only, and ``loss`` drops the prepended predictions (§6.7). So ``first_frame`` + ``reference`` compose.

A frozen modality (``is_generated: false``) is all clean with sigma 0 and no loss (§6.6): audio-to-video and
video-to-audio. Each generated modality samples its own sigma from its own (target) token count.

Reference positions. The reference grid goes through the same position function as the target, starting at 0, so
both share one spatio-temporal frame of reference. A reference encoded at ``1/k`` of the target size
(``k = H'_t / H'_r = W'_t / W'_r``, a whole number) gets its height and width bounds multiplied by ``k``: reference
token ``(y, x)`` then covers exactly the ``k x k`` target tokens it was pooled from. A reference that keeps every
``S``-th source frame (``S = (F'_t - 1) / (F'_r - 1)``; its latents store ``fps = source_fps / S``) gets time bounds
from that fps, shifted by ``-(S - 1) / target_fps`` and clamped at 0. The shift makes reference pixel frame ``p``
(= source frame ``p*S``) span the ``S`` source frames that end with it, the causal convention of the VAE itself, and
then reference latent frame 0 covers target latent frame 0 and reference latent frame ``j >= 1`` covers exactly
target latent frames ``S*(j-1)+1 .. S*j``. ``k`` and ``S`` are read ONCE, at construction, from one (target,
reference) pair under the data root (never the working directory), checked on every batch, and reported by
``metadata()`` for the LoRA file header.
"""

import math
from dataclasses import dataclass
from pathlib import Path

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
from ltx_trainer.data.cache import CACHE_SUFFIXES, read_sample_file
from ltx_trainer.data.dataset import normalize_video_latents, precomputed_root
from ltx_trainer.models.base import LTXModel, ModalityInput
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


@dataclass(frozen=True)
class LatentGrid:
    frames: int
    height: int
    width: int

    @property
    def tokens_per_frame(self) -> int:
        return self.height * self.width

    @property
    def tokens(self) -> int:
        return self.frames * self.tokens_per_frame


@dataclass(frozen=True)
class ReferenceScale:
    """How a video reference was encoded relative to its target.

    Attributes:
        spatial: ``k``: the target latent height and width are ``k`` times the reference's.
        temporal: ``S``: the reference keeps every ``S``-th source frame.
    """

    spatial: int = 1
    temporal: int = 1

    def check(self, target: LatentGrid, reference: LatentGrid) -> str | None:
        """None if ``reference`` has this scale relative to ``target``, else what differs."""
        spatial_ok = (reference.height * self.spatial, reference.width * self.spatial) == (target.height, target.width)
        temporal_ok = reference.frames == 1 or target.frames - 1 == self.temporal * (reference.frames - 1)
        if spatial_ok and temporal_ok:
            return None
        return (
            f"reference latents F'xH'xW' {reference.frames}x{reference.height}x{reference.width} for target "
            f"{target.frames}x{target.height}x{target.width} do not match the scale read at start "
            f"(spatial {self.spatial}, temporal {self.temporal})"
        )


def _draw(batch: int, probability: float, generator: torch.Generator) -> torch.Tensor:
    """One Bernoulli draw per sample: ``[B]`` bool."""
    return torch.rand(batch, generator=generator) < probability


def _draw_once(probability: float, generator: torch.Generator) -> bool:
    """One Bernoulli draw for the whole batch (always consumes one number, whatever the probability)."""
    return bool(torch.rand((), generator=generator) < probability)


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


def reference_video_positions(
    model: LTXModel,
    batch: int,
    grid: LatentGrid,
    fps: float,
    scale: ReferenceScale,
    target_fps: float,
) -> torch.Tensor:
    """Positions ``[B, 3, N_ref, 2]`` of a video reference, aligned with its target (module docstring).

    Args:
        model: provides ``video_positions`` (the target's own grid function).
        batch: batch size.
        grid: the reference latent grid ``F'_r, H'_r, W'_r``.
        fps: the reference's fps (``source_fps / S``).
        scale: spatial ``k`` and temporal ``S`` factors.
        target_fps: the target's fps.
    """
    positions = model.video_positions(batch, grid.frames, grid.height, grid.width, fps)
    positions[:, 1:] = positions[:, 1:] * scale.spatial
    if scale.temporal > 1:
        positions[:, 0] = (positions[:, 0] - (scale.temporal - 1) / target_fps).clamp(min=0)
    return positions


def _files_by_id(folder: Path) -> dict[str, Path]:
    """Relative sample id (path without suffix) -> cache file."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix in CACHE_SUFFIXES and path.is_file() and not path.name.startswith("."):
            found.setdefault(path.relative_to(folder).with_suffix("").as_posix(), path)
    return found


def _video_grid(path: Path) -> tuple[LatentGrid, float | None]:
    data = normalize_video_latents(read_sample_file(path))
    latents = data["latents"]
    if latents.ndim != 4:
        raise ValueError(f"{path}: expected video latents [C, F', H', W'], found shape {list(latents.shape)}")
    fps = float(data["fps"]) if "fps" in data else None
    return LatentGrid(*latents.shape[1:]), fps


def infer_reference_scale(data_root: str | Path, target_dir: str, reference_dir: str, key: str) -> ReferenceScale:
    """Read one (target, reference) pair under the data root and return its scale factors.

    Args:
        data_root: ``data.preprocessed_data_root`` (its ``.precomputed/`` subfolder is used when present).
        target_dir, reference_dir: folders under it.
        key: the config key that names ``reference_dir`` (for messages).

    Raises:
        FileNotFoundError: a folder is missing, or no sample id is in both.
        ValueError: the factors are not whole numbers, differ between height and width, or the stored fps
            disagrees with them; the message names both files.
    """
    root = precomputed_root(data_root)
    folders = {target_dir: "training_strategy.video.latents_dir", reference_dir: key}
    for folder, folder_key in folders.items():
        if not (root / folder).is_dir():
            raise FileNotFoundError(
                f"{folder_key}: folder {folder!r} not found under {root}; preprocess that data or fix the folder name"
            )
    targets, references = _files_by_id(root / target_dir), _files_by_id(root / reference_dir)
    shared = sorted(targets.keys() & references.keys())
    if not shared:
        raise FileNotFoundError(
            f"{key}: no sample is in both {root / target_dir} and {root / reference_dir}; references must have the "
            "same relative names as their targets"
        )
    target_file, reference_file = targets[shared[0]], references[shared[0]]
    target, target_fps = _video_grid(target_file)
    reference, reference_fps = _video_grid(reference_file)
    pair = (
        f"{reference_file} (F'xH'xW' {reference.frames}x{reference.height}x{reference.width}) for {target_file} "
        f"({target.frames}x{target.height}x{target.width})"
    )
    k_h, k_w = target.height / reference.height, target.width / reference.width
    if k_h != k_w or k_h < 1 or k_h != int(k_h):
        raise ValueError(
            f"{key}: reference {pair}: the spatial scale must be one whole number on both axes, got {k_h:g} (height) "
            f"and {k_w:g} (width); re-run preprocessing with an integer reference downscale factor"
        )
    if reference.frames == 1:
        temporal = 1  # a one-frame reference sits at time 0, whatever the target length
    else:
        s = (target.frames - 1) / (reference.frames - 1)
        if s < 1 or s != int(s):
            raise ValueError(
                f"{key}: reference {pair}: the temporal scale (F'_t - 1) / (F'_r - 1) = {s:g} is not a whole number; "
                "re-run preprocessing with an integer reference temporal scale factor"
            )
        temporal = int(s)
    scale = ReferenceScale(int(k_h), temporal)
    if target_fps is not None and reference_fps is not None and reference.frames > 1:
        _check_reference_fps(target_fps, reference_fps, scale, f"{key}: reference {pair}")
    logger.info("reference scale from %s: spatial %d, temporal %d", reference_file, scale.spatial, scale.temporal)
    return scale


def _check_reference_fps(target_fps: float, reference_fps: float, scale: ReferenceScale, where: str) -> None:
    if not math.isclose(reference_fps * scale.temporal, target_fps, rel_tol=1e-3):
        raise ValueError(
            f"{where}: reference fps {reference_fps:g} is not target fps {target_fps:g} / {scale.temporal}; "
            "temporally subsampled references must store fps = source_fps / factor (re-run preprocessing)"
        )


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
        data_root: ``data.preprocessed_data_root``; needed when the video has a ``reference`` condition (its scale
            factors are read from one cached pair there).

    Raises:
        ValueError: more than one reference per modality, a bad spatial crop, a video reference without
            ``data_root``, or a reference whose scale is not a whole number (naming the files).
        FileNotFoundError: the target or reference folder is missing under the data root.
    """

    def __init__(self, config: FlexibleStrategyConfig, data_root: str | Path | None = None):
        self.config = config
        self.data_root = Path(data_root) if data_root is not None else None
        self._check_conditions()
        self.reference_scale: ReferenceScale | None = None
        video_refs = _references(config.video)
        if video_refs and config.video.is_generated:
            (index, reference), *_ = video_refs
            key = f"training_strategy.video.conditions[{index}].latents_dir"
            if self.data_root is None:
                raise ValueError(
                    f"{key}: a video reference needs the data root to read its scale factors; "
                    "pass data.preprocessed_data_root to FlexibleStrategy"
                )
            self.reference_scale = infer_reference_scale(
                self.data_root, config.video.latents_dir, reference.latents_dir, key
            )

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
        if self.reference_scale is None:
            return {}
        return {
            "reference_downscale_factor": str(self.reference_scale.spatial),
            "reference_spatial_scale_factor": str(self.reference_scale.spatial),
            "reference_temporal_scale_factor": str(self.reference_scale.temporal),
        }

    def prepare(
        self, batch: dict, model: LTXModel, sampler: SigmaSampler, generator: torch.Generator
    ) -> dict[str, PreparedModality]:
        """Noise generated modalities, apply conditions, build positions: ``{"video": ..., "audio": ...}``.

        Args:
            batch: collated batch (``video_latents`` ``[B, C, F', H', W']``, ``audio_latents`` ``[B, 8, T, 16]``,
                one entry per reference/mask folder).
            model: provides ``spec``, ``patchify_video``/``patchify_audio``, ``video_positions``/``audio_positions``.
            sampler: sigma sampler.
            generator: every random draw (sigma, noise, conditions) comes from it.
        """
        prepared = {}
        if self.config.video is not None:
            prepared["video"] = self._video(batch, model, sampler, generator)
        if self.config.audio is not None:
            prepared["audio"] = self._audio(batch, model, sampler, generator)
        return prepared

    def _video(
        self, batch: dict, model: LTXModel, sampler: SigmaSampler, generator: torch.Generator
    ) -> PreparedModality:
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
            _check_reference_fps(target_fps, fps, scale, where)
        positions = reference_video_positions(model, b, grid, fps, scale, target_fps)
        return model.patchify_video(latents), positions

    def _audio(
        self, batch: dict, model: LTXModel, sampler: SigmaSampler, generator: torch.Generator
    ) -> PreparedModality:
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
        return PreparedModality(
            ModalityInput(
                torch.cat([tokens, current.latent], dim=1),
                torch.cat([zeros, current.timesteps], dim=1),
                current.sigma,
                torch.cat([positions.to(current.positions.dtype), current.positions], dim=2),
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
