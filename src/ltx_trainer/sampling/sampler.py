"""Euler sampling over the family's sigma schedule, with per-modality classifier-free guidance and STG.

The schedule's shift comes from the *actual* video token count, as in training (the official validation uses a fixed
4096-token shift, a known parity bug: Lightricks/LTX-2#283).
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from ltx_trainer.data.media import write_audio, write_image, write_video
from ltx_trainer.models import latents as lat
from ltx_trainer.models.base import LTXModel, ModalityInput, Perturbation, TextFeatures
from ltx_trainer.training.timesteps import sigma_schedule


@dataclass(frozen=True)
class SampleSpec:
    """What to generate. ``frames`` must be ``8k+1``; width and height multiples of 32."""

    width: int = 256
    height: int = 256
    frames: int = 33
    fps: float = 24.0
    steps: int = 30
    seed: int = 42
    video_cfg: float = 3.0
    audio_cfg: float = 7.0
    stg_scale: float = 0.0
    stg_blocks: tuple[int, ...] = ()
    generate_video: bool = True
    generate_audio: bool = True


@dataclass
class Sample:
    video_latents: torch.Tensor | None  # [1, C, F', H', W']
    audio_latents: torch.Tensor | None  # [1, 8, T, 16]


def _guided(cond: torch.Tensor, uncond: torch.Tensor | None, perturbed: torch.Tensor | None, cfg: float, stg: float):
    out = cond
    if uncond is not None and cfg != 1.0:
        out = out + (cfg - 1.0) * (cond - uncond)
    if perturbed is not None and stg > 0:
        out = out + stg * (cond - perturbed)
    return out


@torch.no_grad()
def generate(model: LTXModel, prompt: TextFeatures, negative: TextFeatures | None, spec: SampleSpec) -> Sample:
    """Denoise from pure noise to latents for one prompt (batch 1)."""
    device = next(model.transformer.parameters()).device
    g = torch.Generator().manual_seed(spec.seed)
    s = model.spec
    frames = lat.latent_frames(spec.frames, s.temporal_compression)
    height, width = spec.height // s.spatial_compression, spec.width // s.spatial_compression
    video = torch.randn(1, frames * height * width, s.latent_channels, generator=g) if spec.generate_video else None
    audio = None
    if spec.generate_audio and s.has_audio:
        steps = lat.audio_latent_steps(spec.frames / spec.fps, s.audio_latents_per_second)
        audio = torch.randn(1, steps, s.audio_latent_channels * s.audio_mel_bins, generator=g)
    tokens = video.shape[1] if video is not None else audio.shape[1]
    sigmas = sigma_schedule(spec.steps, tokens)
    video_pos = model.video_positions(1, frames, height, width, spec.fps) if video is not None else None
    audio_pos = model.audio_positions(1, audio.shape[1]) if audio is not None else None
    cond_ctx = model.text_context(_to(prompt, device))
    uncond_ctx = model.text_context(_to(negative, device)) if negative is not None else None
    stg = Perturbation(blocks=list(spec.stg_blocks)) if spec.stg_scale > 0 and spec.stg_blocks else None

    def predict(ctx, perturbation=None):
        v_in = _modality(video, sigma, video_pos, device) if video is not None else None
        a_in = _modality(audio, sigma, audio_pos, device) if audio is not None else None
        return model.forward(v_in, a_in, ctx, perturbation)

    for i in range(spec.steps):
        sigma, next_sigma = sigmas[i].item(), sigmas[i + 1].item()
        cond_v, cond_a = predict(cond_ctx)
        uncond_v, uncond_a = predict(uncond_ctx) if uncond_ctx is not None else (None, None)
        pert_v, pert_a = predict(cond_ctx, stg) if stg is not None else (None, None)
        if video is not None:
            velocity = _guided(cond_v, uncond_v, pert_v, spec.video_cfg, spec.stg_scale).float().cpu()
            video = video + (next_sigma - sigma) * velocity
        if audio is not None:
            velocity = _guided(cond_a, uncond_a, pert_a, spec.audio_cfg, spec.stg_scale).float().cpu()
            audio = audio + (next_sigma - sigma) * velocity
    return Sample(
        model.unpatchify_video(video, frames, height, width) if video is not None else None,
        lat.unpatchify_audio(audio, s.audio_latent_channels, s.audio_mel_bins) if audio is not None else None,
    )


def _modality(tokens: torch.Tensor, sigma: float, positions: torch.Tensor, device: torch.device) -> ModalityInput:
    b, n, _ = tokens.shape
    return ModalityInput(
        tokens.to(device),
        torch.full((b, n), sigma, device=device),
        torch.full((b,), sigma, device=device),
        positions.to(device),
    )


def _to(features: TextFeatures, device: torch.device) -> TextFeatures:
    audio = features.audio.to(device) if features.audio is not None else None
    return TextFeatures(features.video.to(device), audio, features.mask.to(device))


@torch.no_grad()
def save_sample(model: LTXModel, sample: Sample, path: Path, fps: float) -> Path:
    """Decode and write: mp4 (with audio when generated), png for one frame, wav for audio only."""
    waveform, rate = (None, None)
    if sample.audio_latents is not None:
        waveform, rate = model.decode_audio(sample.audio_latents)
        waveform = waveform[0].float().clamp(-1, 1).cpu()
    if sample.video_latents is None:
        path = path.with_suffix(".wav")
        write_audio(path, waveform, rate)
        return path
    pixels = model.decode_video(sample.video_latents)[0]  # [3, F, H, W] in [-1, 1]
    frames = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu()
    if frames.shape[0] == 1:
        path = path.with_suffix(".png")
        write_image(path, frames[0])
        return path
    path = path.with_suffix(".mp4")
    write_video(path, frames, fps, audio=waveform, audio_sample_rate=rate)
    return path
