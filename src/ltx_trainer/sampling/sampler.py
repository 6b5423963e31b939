"""Euler sampling over the family's sigma schedule with multi-modal guidance and re-imposed conditions.

One denoising step, per modality (spec/anchors.md §6.8, ltx-core's ``MultiModalGuider``), on x0 predictions
``x0 = x_t - v * t`` (``t`` the per-token timestep, 0 on clean conditioning tokens)::

    pred = cond + (cfg - 1) * (cond - uncond)          # classifier-free guidance, negative prompt
                + stg * (cond - perturbed)             # STG: self-attention skipped in ``stg_blocks``
                + (modality - 1) * (cond - isolated)   # modality isolation: audio<->video attention off
    pred *= rescale * std(cond) / std(pred) + (1 - rescale)   # guidance rescale, when rescale != 0
    pred[conditioning tokens] = clean latents
    x_next = x_t + (x_t - pred) / sigma * (sigma_next - sigma)   # Euler: velocity (x_t - pred) / sigma
    x_next[conditioning tokens] = clean latents                   # re-imposed after every step

Each extra prediction is one transformer pass, run only when some generated modality uses it; modality isolation only
when both modalities are present. The passes run one after another (not batched) to keep validation's peak memory
at one forward. A frozen modality (video-to-audio, audio-to-video) is clean with sigma 0 and skips the update.

The schedule's shift comes from the *actual* token count of the generated target (video, or audio when only audio
is generated; reference tokens not counted), as in training. The official validation uses a fixed 4096-token shift,
a known parity bug (Lightricks/LTX-2#283).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ltx_trainer.data.decode import decode_latents, write_decoded
from ltx_trainer.errors import MediaError
from ltx_trainer.models import latents as lat
from ltx_trainer.models.base import FamilySpec, LTXModel, ModalityInput, Perturbation, TextContext, TextFeatures
from ltx_trainer.models.devices import device_of as _device_of
from ltx_trainer.models.devices import on_device
from ltx_trainer.models.families import sampling_defaults
from ltx_trainer.models.geometry import Geometry, LatentGrid
from ltx_trainer.models.latents import sigma_schedule
from ltx_trainer.sampling.conditions import EncodedConditions, ModalityConditioning


# ---------------------------------------------------------------------------------------------------------------------
# Guidance
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Guidance:
    """One modality's guidance. The neutral values (1, 0, 1, 0) make ``guide`` return ``cond`` unchanged.

    Attributes:
        cfg: classifier-free guidance scale (1 = off).
        stg: spatio-temporal guidance scale (0 = off).
        modality: modality-isolation guidance scale (1 = off; only used when both modalities are present).
        rescale: guidance rescale in [0, 1] (0 = off).
    """

    cfg: float = 1.0
    stg: float = 0.0
    modality: float = 1.0
    rescale: float = 0.0


NEUTRAL = Guidance()


def guide(
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    perturbed: torch.Tensor | None,
    isolated: torch.Tensor | None,
    guidance: Guidance,
) -> torch.Tensor:
    """Combine one modality's predictions (see the module docstring). A prediction that is None drops its term."""
    pred = cond
    if uncond is not None and guidance.cfg != 1.0:
        pred = pred + (guidance.cfg - 1.0) * (cond - uncond)
    if perturbed is not None and guidance.stg != 0.0:
        pred = pred + guidance.stg * (cond - perturbed)
    if isolated is not None and guidance.modality != 1.0:
        pred = pred + (guidance.modality - 1.0) * (cond - isolated)
    if guidance.rescale != 0.0:
        pred_std = pred.std()
        if pred_std > 0:
            factor = cond.std() / pred_std
            pred = pred * (guidance.rescale * factor + (1.0 - guidance.rescale))
    return pred


def stg_block_indices(blocks: Sequence[int] | None, depth: int) -> list[int]:
    """Transformer blocks STG perturbs: ``None`` = all; indices past the model's depth map to its last block (the
    official defaults name block 28/29 of 48, which a smaller model doesn't have); negative ones count from the end.

    Raises:
        ValueError: a negative index below ``-depth``.
    """
    if blocks is None:
        return list(range(depth))
    out = set()
    for block in blocks:
        index = block + depth if block < 0 else min(block, depth - 1)
        if index < 0:
            raise ValueError(f"stg_blocks: block {block} does not exist (the transformer has {depth} blocks)")
        out.add(index)
    return sorted(out)


# ---------------------------------------------------------------------------------------------------------------------
# What to generate
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleSpec:
    """What to generate. ``frames`` must be ``8k+1``; width and height multiples of 32.

    ``stg_blocks``: the blocks STG perturbs (``None`` = all, empty = STG off); indices past the model's depth map to
    its last block. ``family_defaults`` gives each family's recommended values.
    """

    width: int = 256
    height: int = 256
    frames: int = 33
    fps: float = 24.0
    steps: int = 30
    seed: int = 42
    video_cfg: float = 3.0
    audio_cfg: float = 7.0
    video_stg: float = 0.0
    audio_stg: float = 0.0
    stg_blocks: tuple[int, ...] | None = ()
    video_modality: float = 1.0
    audio_modality: float = 1.0
    rescale: float = 0.0
    generate_video: bool = True
    generate_audio: bool = True

    @property
    def video_guidance(self) -> Guidance:
        return Guidance(self.video_cfg, self.video_stg, self.video_modality, self.rescale)

    @property
    def audio_guidance(self) -> Guidance:
        return Guidance(self.audio_cfg, self.audio_stg, self.audio_modality, self.rescale)

    @classmethod
    def family_defaults(cls, spec: FamilySpec, **overrides: object) -> "SampleSpec":
        """The family's official one-stage defaults (``models.families.sampling_defaults``), then ``overrides``."""
        return replace(cls(**sampling_defaults(spec)), **overrides)

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.width, self.height, self.frames, self.fps)


def check_geometry(spec: SampleSpec, family: FamilySpec, where: str = "sample") -> None:
    """Width/height multiples of the VAE's spatial factor, frames ``T*k + 1``.

    Raises:
        ValueError: naming ``where`` (e.g. ``validation.samples[0].video_dims``) and the nearest valid values.
    """
    try:
        spec.geometry.check(family.temporal_compression, family.spatial_compression)
    except MediaError as e:
        raise ValueError(f"{where}: {e.reason}") from e


@dataclass
class Sample:
    """A generated sample (batch 1), before decoding.

    Attributes:
        video_latents: ``[1, C, F', H', W']`` or None (audio only).
        audio_latents: ``[1, 8, T, 16]`` or None (no audio).
        sigmas: the schedule used (``steps + 1`` values).
        reference_frames: uint8 ``[F, H, W, 3]`` shown beside the output (``include_in_output``), or None.
    """

    video_latents: torch.Tensor | None
    audio_latents: torch.Tensor | None
    sigmas: torch.Tensor | None = None
    reference_frames: torch.Tensor | None = None


# ---------------------------------------------------------------------------------------------------------------------
# The denoising loop
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class _Stream:
    """One modality during sampling: tokens ``[1, N, C]`` = [reference tokens ; target tokens]."""

    name: str
    x: torch.Tensor
    clean: torch.Tensor
    keep: torch.Tensor  # [1, N, 1] bool: clean conditioning (reference tokens included)
    positions: torch.Tensor
    frozen: bool
    n_reference: int
    guidance: Guidance
    grid: LatentGrid
    keyframes: torch.Tensor | None = None  # video: [1, N] marker of the target's first latent frame

    def model_input(self, sigma: float) -> ModalityInput:
        timesteps = torch.where(self.keep[..., 0], 0.0, sigma) if not self.frozen else torch.zeros_like(self.x[..., 0])
        noise_level = torch.full((1,), 0.0 if self.frozen else sigma, device=self.x.device)
        return ModalityInput(self.x, timesteps, noise_level, self.positions, self.keyframes)

    def target(self) -> torch.Tensor:
        return self.x[:, self.n_reference :]


def _stream(
    name: str,
    noise: torch.Tensor,
    cond: ModalityConditioning | None,
    positions: torch.Tensor,
    guidance: Guidance,
    grid: LatentGrid,
    device: torch.device,
) -> _Stream:
    n = positions.shape[2]
    frozen = cond is not None and cond.frozen
    if cond is not None:
        clean, keep = cond.clean.float(), cond.keep.reshape(1, n, 1)
    else:
        clean, keep = torch.zeros_like(noise), torch.zeros(1, n, 1, dtype=torch.bool)
    x = clean if frozen else torch.where(keep, clean, noise)
    n_reference = 0
    if cond is not None and cond.reference is not None:
        n_reference = cond.reference.shape[1]
        ref = cond.reference.float()
        x, clean = torch.cat([ref, x], dim=1), torch.cat([ref, clean], dim=1)
        keep = torch.cat([torch.ones(1, n_reference, 1, dtype=torch.bool), keep], dim=1)
        positions = torch.cat([cond.reference_positions.to(positions), positions], dim=2)
    keyframes = lat.keyframe_marker(1, grid, n_reference).to(device) if name == "video" else None
    return _Stream(
        name,
        x.to(device),
        clean.to(device),
        keep.to(device),
        positions.to(device),
        frozen,
        n_reference,
        NEUTRAL if frozen else guidance,
        grid,
        keyframes,
    )


def _context(model: LTXModel, text: TextFeatures | TextContext, device: torch.device) -> TextContext:
    """Cached features through the connectors, or a ready context, on ``device``."""
    audio = text.audio.to(device) if text.audio is not None else None
    if isinstance(text, TextContext):
        return TextContext(text.video.to(device), audio, text.mask.to(device))
    return model.text_context(TextFeatures(text.video.to(device), audio, text.mask.to(device)))


def _predict(
    model: LTXModel,
    streams: dict[str, _Stream],
    inputs: dict[str, ModalityInput],
    context: TextContext,
    perturbation: Perturbation | None = None,
) -> dict[str, torch.Tensor]:
    """One transformer pass -> x0 predictions ``x_t - v * t`` (float32) of the generated modalities."""
    video, audio = model.forward(inputs.get("video"), inputs.get("audio"), context, perturbation)
    out = {}
    for name, velocity in (("video", video), ("audio", audio)):
        if velocity is not None and not streams[name].frozen:
            out[name] = streams[name].x - velocity.float() * inputs[name].timesteps[..., None]
    return out


@torch.no_grad()
def generate(
    model: LTXModel,
    prompt: TextFeatures | TextContext,
    negative: TextFeatures | TextContext | None,
    spec: SampleSpec,
    conditions: EncodedConditions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Sample:
    """Denoise one sample (batch 1) from noise, under ``conditions``.

    Args:
        model: any family; the transformer runs where its weights are.
        prompt / negative: pre-connector text features (``encode_text`` output, run through the connectors here) or
            a ready ``text_context``; ``negative`` None turns CFG off.
        spec: size, steps, seed, guidance.
        conditions: ``encode_conditions`` output (clean tokens, masks, references, frozen modalities).
        progress: called as ``progress(step, steps)`` after every step.
    """
    conditions = conditions or EncodedConditions()
    fam = model.spec
    check_geometry(spec, fam)
    device = _device_of(model.transformer)
    video_grid = spec.geometry.latent_grid(fam.temporal_compression, fam.spatial_compression)
    frames, height, width = video_grid.frames, video_grid.height, video_grid.width
    want_video = spec.generate_video or (conditions.video is not None and conditions.video.frozen)
    want_audio = fam.has_audio and (spec.generate_audio or (conditions.audio is not None and conditions.audio.frozen))
    if spec.frames == 1 and want_audio and want_video and not (conditions.audio and conditions.audio.frozen):
        want_audio = False  # a single frame is an image: no sound track
    if conditions.audio is not None and conditions.audio.frozen and not want_video:
        raise ValueError("audio_to_video: the audio is kept frozen, so video generation must be on")
    if not want_video and not want_audio:
        raise ValueError("nothing to generate: enable video or audio (LTX-Video models generate video only)")

    generator = torch.Generator().manual_seed(spec.seed)
    streams: dict[str, _Stream] = {}
    if want_video:
        shape = (1, frames * height * width, fam.latent_channels)
        noise = torch.randn(shape, generator=generator)
        positions = model.video_positions(1, frames, height, width, spec.fps)
        grid = video_grid
        streams["video"] = _stream("video", noise, conditions.video, positions, spec.video_guidance, grid, device)
    if want_audio:
        steps = lat.audio_latent_steps(spec.frames / spec.fps, fam.audio_latents_per_second)
        noise = torch.randn(1, steps, fam.audio_latent_channels * fam.audio_mel_bins, generator=generator)
        positions = model.audio_positions(1, steps)
        streams["audio"] = _stream(
            "audio", noise, conditions.audio, positions, spec.audio_guidance, LatentGrid(steps, 1, 1), device
        )
    generated = [s for s in streams.values() if not s.frozen]
    if not generated:
        raise ValueError("every modality is frozen: nothing to generate")

    tokens = generated[0].target().shape[1]
    sigmas = sigma_schedule(spec.steps, tokens)
    cond_ctx = _context(model, prompt, device)
    uncond_ctx = None
    if negative is not None and any(s.guidance.cfg != 1.0 for s in generated):
        uncond_ctx = _context(model, negative, device)
    depth = len(getattr(model.transformer, "module", model.transformer).transformer_blocks)
    blocks = stg_block_indices(spec.stg_blocks, depth)
    stg_modalities = tuple(s.name for s in generated if s.guidance.stg != 0.0)
    stg = Perturbation(blocks=blocks, modalities=stg_modalities) if blocks and stg_modalities else None
    isolate = None
    if len(streams) == 2 and any(s.guidance.modality != 1.0 for s in generated):
        isolate = Perturbation(blocks=[], isolate_modalities=True)

    for i in range(spec.steps):
        sigma, sigma_next = sigmas[i].item(), sigmas[i + 1].item()
        inputs = {name: s.model_input(sigma) for name, s in streams.items()}
        cond = _predict(model, streams, inputs, cond_ctx)
        uncond = _predict(model, streams, inputs, uncond_ctx) if uncond_ctx is not None else {}
        perturbed = _predict(model, streams, inputs, cond_ctx, stg) if stg is not None else {}
        isolated = _predict(model, streams, inputs, cond_ctx, isolate) if isolate is not None else {}
        for s in generated:
            x0 = guide(cond[s.name], uncond.get(s.name), perturbed.get(s.name), isolated.get(s.name), s.guidance)
            x0 = torch.where(s.keep, s.clean, x0)
            x_next = s.x + (s.x - x0) / sigma * (sigma_next - sigma)  # velocity (x_t - x0) / sigma = noise - x0
            s.x = torch.where(s.keep, s.clean, x_next)
        if progress is not None:
            progress(i + 1, spec.steps)

    video_latents = audio_latents = None
    if "video" in streams:
        grid = streams["video"].grid
        video_latents = model.unpatchify_video(streams["video"].target().cpu(), grid.frames, grid.height, grid.width)
    if "audio" in streams:
        audio_latents = lat.unpatchify_audio(
            streams["audio"].target().cpu(), fam.audio_latent_channels, fam.audio_mel_bins
        )
    return Sample(video_latents, audio_latents, sigmas, conditions.side_by_side)


# ---------------------------------------------------------------------------------------------------------------------
# Decoding and writing
# ---------------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def decode_sample(
    model: LTXModel, sample: Sample, device: torch.device | str | None = None, seed: int = 0
) -> tuple[torch.Tensor | None, torch.Tensor | None, int | None]:
    """Latents -> (uint8 frames ``[F, H, W, 3]``, waveform ``[2, S]`` float, sample rate); see
    ``data.decode.decode_latents`` (decoders on ``device`` only while they run, decoder noise from ``seed``)."""
    return decode_latents(model, sample.video_latents, sample.audio_latents, device, seed, sample.reference_frames)


@torch.no_grad()
def save_sample(
    model: LTXModel,
    sample: Sample,
    path: Path,
    fps: float,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> Path:
    """Decode and write: mp4 (with audio when generated), png for one frame, wav for audio only. The suffix of
    ``path`` is replaced accordingly; returns the written path."""
    frames, waveform, rate = decode_sample(model, sample, device, seed)
    return write_decoded(path, frames, waveform, rate, fps)


__all__ = [
    "NEUTRAL",
    "Guidance",
    "Sample",
    "SampleSpec",
    "check_geometry",
    "decode_sample",
    "generate",
    "guide",
    "on_device",
    "save_sample",
    "stg_block_indices",
]
