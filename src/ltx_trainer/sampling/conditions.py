"""Inference-time conditions: media files -> clean latent tokens and the mask of tokens they fix.

The same condition types as ``validation.samples[].conditions`` (config.py), mirroring the training strategies
(spec/anchors.md §6.4-6.7): conditioning tokens hold the clean VAE latents, get timestep 0, and the sampler re-imposes
them after every step. Media are VAE-encoded once, here; the sampler only reads the tensors.

How each condition is encoded (``W x H x F`` at ``fps`` is the output; T = 8 frames, S = 32 pixels per latent):

- ``first_frame``: the image (or a video's first frame), resized and center-cropped, encoded alone: latent frame 0.
- ``prefix`` video: the clip's first ``num_frames`` (``T*k + 1``) frames -> the first ``k + 1`` latent frames (the
  causal VAE makes them independent of what follows). Audio: the first ``duration`` seconds -> the first
  ``round(duration * 25)`` latent steps.
- ``suffix`` video: the clip's last ``F`` frames (the first frame repeated in front when the clip is shorter) are
  encoded and the last ``num_frames / T`` latent frames kept. Audio: the clip's last ``F / fps`` seconds, last
  ``round(duration * 25)`` steps.
- ``spatial_crop``: the clip encoded whole; tokens inside ``(y1, x1, y2, x2)`` (pixels, floor-divided by S, as in
  training) on every latent frame.
- ``mask``: the clip encoded whole; the mask file picks the kept tokens (1 = keep). Video masks: an image or video
  (luma > 0.5 after averaging each S x S cell, latent frame k = max over its T pixel frames, frame 0 alone), or an
  array file (``data/masks.py``: ``.pt``/``.safetensors`` with a ``mask`` key, ``.npy``, ``.json``, ``.txt``) on the
  latent grid ``[F', H', W']`` (other sizes are resampled, nearest). Audio masks: an array file ``[T]`` (resampled
  to the latent steps).
- ``reference``: the clip (every ``temporal_scale_factor``-th frame, at ``1 / downscale_factor`` size) encoded as
  extra tokens placed before the target, with the training strategy's own positions (``reference_video_positions``:
  y, x scaled by the downscale factor; time at ``fps / S_t``, shifted by ``-(S_t - 1) / fps``, clamped at 0). Audio
  references: the clip's first ``F / fps`` seconds, same time positions as the target.
- ``video_to_audio`` / ``audio_to_video``: the clip encoded whole and frozen (sigma 0, no update).

Video files are read at the output fps (frames dropped or repeated); short clips are padded by repeating their edge
frame, short audio with silence.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ltx_trainer.config import (
    ValidationAudioToVideo,
    ValidationCondition,
    ValidationFirstFrame,
    ValidationMask,
    ValidationPrefix,
    ValidationReference,
    ValidationSpatialCrop,
    ValidationSuffix,
    ValidationVideoToAudio,
)
from ltx_trainer.data.masks import (
    MASK_ARRAY_SUFFIXES,
    MaskError,
    is_mask_array,
    load_mask_array,
    resample_mask,
    video_mask_to_latent,
)
from ltx_trainer.data.media import is_image_file, read_audio, read_video, resize_and_crop
from ltx_trainer.models import latents as lat
from ltx_trainer.models.base import LTXModel
from ltx_trainer.models.devices import on_device
from ltx_trainer.models.geometry import Geometry
from ltx_trainer.models.latents import LatentGrid, ReferenceScale, reference_video_positions


@dataclass
class ModalityConditioning:
    """One modality's conditioning, on the target's token grid.

    Attributes:
        clean: ``[1, N, C]`` clean latent tokens (zeros where nothing conditions).
        keep: ``[N]`` bool, True on conditioning tokens.
        frozen: the whole modality is given (video-to-audio / audio-to-video): sigma 0, no update.
        reference: ``[1, M, C]`` reference tokens placed before the target, or None.
        reference_positions: their positions ``[1, A, M, 2]``.
    """

    clean: torch.Tensor
    keep: torch.Tensor
    frozen: bool = False
    reference: torch.Tensor | None = None
    reference_positions: torch.Tensor | None = None


@dataclass
class EncodedConditions:
    """Everything the sampler needs from a sample's conditions (CPU tensors)."""

    video: ModalityConditioning | None = None
    audio: ModalityConditioning | None = None
    side_by_side: torch.Tensor | None = None  # uint8 [F, H, W, 3] shown left of the output


def _target(cond: ValidationCondition) -> str:
    if isinstance(cond, ValidationAudioToVideo):
        return "audio"
    if isinstance(cond, ValidationPrefix | ValidationSuffix | ValidationMask | ValidationReference):
        return "video" if cond.video is not None else "audio"
    return "video"


# ---------------------------------------------------------------------------------------------------------------------
# Reading media
# ---------------------------------------------------------------------------------------------------------------------
def _fit_frames(frames: torch.Tensor, count: int, from_end: bool) -> torch.Tensor:
    """Exactly ``count`` frames: the first (or last) ones, padded by repeating the edge frame."""
    if from_end:
        frames = frames[-count:]
        pad = frames[:1].expand(count - frames.shape[0], -1, -1, -1)
        return torch.cat([pad, frames])
    frames = frames[:count]
    pad = frames[-1:].expand(count - frames.shape[0], -1, -1, -1)
    return torch.cat([frames, pad])


def read_clip(path: str | Path, geo: Geometry, frames: int | None = None, from_end: bool = False) -> torch.Tensor:
    """uint8 ``[frames, H, W, 3]`` of a video (or image) at the output fps and size (resize + center crop)."""
    count = frames or geo.frames
    clip, _ = read_video(path, max_frames=None if from_end else count, fps=geo.fps)
    return resize_and_crop(_fit_frames(clip, count, from_end), geo.width, geo.height)


def read_clip_audio(path: str | Path, seconds: float, from_end: bool = False) -> tuple[torch.Tensor, int]:
    """Stereo ``[2, S]`` of ``seconds`` from the start (or end) of a file; silence pads a short one."""
    if not from_end:
        return read_audio(path, channels=2, duration=seconds)
    waveform, rate = read_audio(path, channels=2)
    needed = round(seconds * rate)
    waveform = waveform[:, -needed:]
    return F.pad(waveform, (needed - waveform.shape[1], 0)), rate


def _to_pixels(frames: torch.Tensor) -> torch.Tensor:
    return frames.permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5 - 1.0  # [1, 3, F, H, W] in [-1, 1]


def read_mask(path: str | Path, grid: tuple[int, ...], geo: Geometry, model: LTXModel) -> torch.Tensor:
    """Bool ``[N]`` of kept tokens from a mask file (see the module docstring), on a video ``(F', H', W')`` or audio
    ``(T,)`` grid."""
    path = Path(path)
    video = len(grid) == 3
    if is_mask_array(path):
        mask = load_mask_array(path)
        if video and mask.ndim == 2:
            mask = mask[None].expand(grid[0], -1, -1)
        if mask.ndim != len(grid):
            want = "[F', H', W'] (or [H', W'])" if video else "[T]"
            raise MaskError(f"{path}: mask of shape {list(mask.shape)}, expected {want} for this condition")
        return (resample_mask(mask, grid) > 0.5).flatten()
    if not video:
        raise MaskError(f"{path}: audio masks are array files ({', '.join(MASK_ARRAY_SUFFIXES)}) of latent steps [T]")
    spec = model.spec
    luma = read_clip(path, geo).float().mean(dim=-1) / 255.0  # [F, H, W]
    if is_image_file(path):
        luma = luma[:1].expand(geo.frames, -1, -1)
    latent = video_mask_to_latent(luma, spec.temporal_compression, spec.spatial_compression)
    return (resample_mask(latent, grid) > 0.5).flatten()


# ---------------------------------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------------------------------
class _Encoder:
    """Encodes one sample's conditions (the VAE encoders are used here only; the sampler never touches media)."""

    def __init__(self, model: LTXModel, geo: Geometry, device: torch.device | str | None):
        self.model, self.geo = model, geo
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        spec = model.spec
        self.t, self.s = spec.temporal_compression, spec.spatial_compression
        self.grid = (lat.latent_frames(geo.frames, self.t), geo.height // self.s, geo.width // self.s)
        self.per_frame = self.grid[1] * self.grid[2]
        self.audio_steps = lat.audio_latent_steps(geo.seconds, spec.audio_latents_per_second)

    def video_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[F, H, W, 3]`` -> ``[1, F'*H'*W', C]`` float32 on the CPU."""
        latents = self.model.encode_video(_to_pixels(frames).to(self.device))
        return self.model.patchify_video(latents.float().cpu())

    def audio_tokens(self, waveform: torch.Tensor, rate: int) -> torch.Tensor:
        """``[2, S]`` -> ``[1, T, 128]`` float32, cut or zero-padded to the output's latent steps."""
        latents = self.model.encode_audio(waveform[None].to(self.device), rate).float().cpu()[:, :, : self.audio_steps]
        latents = F.pad(latents, (0, 0, 0, self.audio_steps - latents.shape[2]))
        return lat.patchify_audio(latents)


def _check_frames(n: int, geo: Geometry, t: int, suffix: bool) -> None:
    if suffix and (n % t or n >= geo.frames):
        raise ValueError(f"suffix: num_frames={n} must be a multiple of {t} and below the sample's {geo.frames} frames")
    if not suffix and ((n - 1) % t or n > geo.frames):
        raise ValueError(
            f"prefix: num_frames={n} must be {t}k+1 and at most the sample's {geo.frames} frames (e.g. 1, 9, 17)"
        )


def _reference(enc: _Encoder, cond: ValidationReference) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(tokens, positions, side-by-side frames) of an IC-LoRA reference."""
    geo, model = enc.geo, enc.model
    if cond.audio is not None:
        waveform, rate = read_clip_audio(cond.audio, geo.seconds)
        tokens = enc.audio_tokens(waveform, rate)
        return tokens, model.audio_positions(1, tokens.shape[1]), None
    k, step = cond.downscale_factor, cond.temporal_scale_factor
    width, height = geo.width // k, geo.height // k
    count = (geo.frames - 1) // step + 1
    if geo.width % k or geo.height % k or width % enc.s or height % enc.s:
        raise ValueError(
            f"reference {cond.video}: {geo.width}x{geo.height} / downscale_factor {k} = {width}x{height}, which is not "
            f"a multiple of {enc.s}; choose a factor that keeps both sides multiples of {enc.s}"
        )
    if (count - 1) % enc.t:
        raise ValueError(
            f"reference {cond.video}: every {step}th of {geo.frames} frames gives {count}, not {enc.t}k+1; pick "
            f"frames so that (frames - 1) / {step} is a multiple of {enc.t}"
        )
    full = read_clip(cond.video, geo)
    small = resize_and_crop(full[::step].contiguous(), width, height)
    tokens = enc.video_tokens(small)
    grid = LatentGrid(lat.latent_frames(count, enc.t), height // enc.s, width // enc.s)
    positions = reference_video_positions(model, 1, grid, geo.fps / step, ReferenceScale(k, step), geo.fps)
    return tokens, positions, full if cond.include_in_output else None


@torch.no_grad()
def encode_conditions(
    model: LTXModel,
    conditions: Sequence[ValidationCondition],
    geo: Geometry,
    device: torch.device | str | None = None,
) -> EncodedConditions:
    """VAE-encode a sample's conditions once. The VAEs run where they are; pass ``device`` to move them there
    while encoding (they go back afterwards).

    Raises:
        ValueError: a condition that doesn't fit the sample or the model, naming the file and what to change.
    """
    spec = model.spec
    if any(_target(c) == "audio" for c in conditions) and not spec.has_audio:
        raise ValueError(f"{spec.family} {spec.version} has no audio stream: drop the audio conditions")
    enc = _Encoder(model, geo, device)
    modules = [model.video_vae] if any(_target(c) == "video" for c in conditions) else []
    if any(_target(c) == "audio" for c in conditions):
        modules.append(model.audio_vae)
    n_video, n_audio = enc.grid[0] * enc.per_frame, enc.audio_steps
    channels = {"video": spec.latent_channels, "audio": spec.audio_latent_channels * spec.audio_mel_bins}
    clean = {m: torch.zeros(1, n, channels[m]) for m, n in (("video", n_video), ("audio", n_audio))}
    keep = {"video": torch.zeros(n_video, dtype=torch.bool), "audio": torch.zeros(n_audio, dtype=torch.bool)}
    frozen = {"video": False, "audio": False}
    refs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"video": [], "audio": []}
    used: set[str] = set()
    side_by_side = None

    def put(modality: str, tokens: torch.Tensor, selected: torch.Tensor) -> None:
        clean[modality][:, selected] = tokens[:, selected]
        keep[modality] |= selected

    with on_device(modules, device if modules else None):
        for cond in conditions:
            modality = _target(cond)
            used.add(modality)
            n = n_video if modality == "video" else n_audio
            if isinstance(cond, ValidationFirstFrame):
                tokens = enc.video_tokens(read_clip(cond.image_or_video, geo, frames=1))
                selected = torch.zeros(n, dtype=torch.bool)
                selected[: enc.per_frame] = True
                put("video", F.pad(tokens, (0, 0, 0, n - tokens.shape[1])), selected)
            elif isinstance(cond, ValidationPrefix | ValidationSuffix):
                suffix = isinstance(cond, ValidationSuffix)
                selected = torch.zeros(n, dtype=torch.bool)
                if cond.video is not None:
                    if cond.num_frames is None:
                        raise ValueError(f"{cond.type} {cond.video}: set num_frames (video frames to keep)")
                    _check_frames(cond.num_frames, geo, enc.t, suffix)
                    if suffix:
                        tokens = enc.video_tokens(read_clip(cond.video, geo, from_end=True))
                        selected[n - cond.num_frames // enc.t * enc.per_frame :] = True
                    else:
                        tokens = enc.video_tokens(read_clip(cond.video, geo, frames=cond.num_frames))
                        selected[: tokens.shape[1]] = True
                        tokens = F.pad(tokens, (0, 0, 0, n - tokens.shape[1]))
                else:
                    if cond.duration is None:
                        raise ValueError(f"{cond.type} {cond.audio}: set duration (seconds of audio to keep)")
                    steps = min(n, lat.audio_latent_steps(cond.duration, spec.audio_latents_per_second))
                    tokens = enc.audio_tokens(*read_clip_audio(cond.audio, geo.seconds, from_end=suffix))
                    if suffix:
                        selected[n - steps :] = True
                    else:
                        selected[:steps] = True
                put(modality, tokens, selected)
            elif isinstance(cond, ValidationSpatialCrop):
                y1, x1, y2, x2 = (v // enc.s for v in cond.spatial_region)
                frame = torch.zeros(enc.grid[1], enc.grid[2], dtype=torch.bool)
                frame[y1:y2, x1:x2] = True
                if not frame.any():
                    raise ValueError(
                        f"spatial_crop {cond.video}: region {cond.spatial_region} covers no {enc.s}x{enc.s} latent "
                        f"cell of the {geo.width}x{geo.height} output; use a larger region"
                    )
                put("video", enc.video_tokens(read_clip(cond.video, geo)), frame.flatten().repeat(enc.grid[0]))
            elif isinstance(cond, ValidationMask):
                if cond.video is not None:
                    tokens = enc.video_tokens(read_clip(cond.video, geo))
                    put("video", tokens, read_mask(cond.mask, enc.grid, geo, model))
                else:
                    tokens = enc.audio_tokens(*read_clip_audio(cond.audio, geo.seconds))
                    put("audio", tokens, read_mask(cond.mask, (n_audio,), geo, model))
            elif isinstance(cond, ValidationReference):
                tokens, positions, frames = _reference(enc, cond)
                refs[modality].append((tokens, positions))
                side_by_side = frames if frames is not None else side_by_side
            elif isinstance(cond, ValidationVideoToAudio):
                put("video", enc.video_tokens(read_clip(cond.video, geo)), torch.ones(n, dtype=torch.bool))
                frozen["video"] = True
            elif isinstance(cond, ValidationAudioToVideo):
                tokens = enc.audio_tokens(*read_clip_audio(cond.audio, geo.seconds))
                put("audio", tokens, torch.ones(n, dtype=torch.bool))
                frozen["audio"] = True
            else:  # pragma: no cover - the config union is closed
                raise ValueError(f"condition type {cond.type!r} is not supported at inference")

    out = EncodedConditions(side_by_side=side_by_side)
    for modality in ("video", "audio"):
        if modality not in used and not refs[modality]:
            continue
        item = ModalityConditioning(clean[modality], keep[modality], frozen[modality])
        if refs[modality]:
            item.reference = torch.cat([t for t, _ in refs[modality]], dim=1)
            item.reference_positions = torch.cat([p for _, p in refs[modality]], dim=2)
        setattr(out, modality, item)
    return out
