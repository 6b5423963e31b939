"""Family-independent latent layout: patchify/unpatchify, RoPE positions in the official convention, reference
positions and the token-count-shifted sigma schedule.

Positions follow ltx-core (spec/anchors.md §6.3): each token carries ``[start, end)`` bounds per axis. Video time is
in seconds after the causal fix (latent frame 0 covers pixel frame 0 only), height and width in pixels. Audio time is
in seconds, shifted by the causal mel padding.

Reference positions (IC-LoRA). The reference grid goes through the same position function as the target, starting at
0, so both share one spatio-temporal frame of reference. A reference encoded at ``1/k`` of the target size
(``k = H'_t / H'_r = W'_t / W'_r``, a whole number) gets its height and width bounds multiplied by ``k``: reference
token ``(y, x)`` then covers exactly the ``k x k`` target tokens it was pooled from. A reference that keeps every
``S``-th source frame (``S = (F'_t - 1) / (F'_r - 1)``; its latents store ``fps = source_fps / S``) gets time bounds
from that fps, shifted by ``-(S - 1) / target_fps`` and clamped at 0. The shift makes reference pixel frame ``p``
(= source frame ``p*S``) span the ``S`` source frames that end with it, the causal convention of the VAE itself, and
then reference latent frame 0 covers target latent frame 0 and reference latent frame ``j >= 1`` covers exactly
target latent frames ``S*(j-1)+1 .. S*j``.
"""

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from ltx_trainer.models.geometry import LatentGrid, latent_frames

__all__ = [
    "LatentGrid",
    "ReferenceScale",
    "audio_latent_steps",
    "audio_positions",
    "keyframe_marker",
    "latent_frames",
    "patchify_audio",
    "patchify_video",
    "reference_video_positions",
    "sigma_schedule",
    "token_shift",
    "unpatchify_audio",
    "unpatchify_video",
    "video_positions",
]


def patchify_video(latents: torch.Tensor) -> torch.Tensor:
    """``[B, C, F, H, W]`` -> ``[B, F*H*W, C]`` (frame-major token order, patch size 1)."""
    return latents.flatten(2).transpose(1, 2)


def unpatchify_video(tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """``[B, F*H*W, C]`` -> ``[B, C, F, H, W]``."""
    batch, _, channels = tokens.shape
    return tokens.transpose(1, 2).reshape(batch, channels, frames, height, width)


def patchify_audio(latents: torch.Tensor) -> torch.Tensor:
    """``[B, C, T, M]`` -> ``[B, T, C*M]`` (channels outer, mel bins inner, as ltx-core's AudioPatchifier)."""
    return latents.permute(0, 2, 1, 3).flatten(2)


def unpatchify_audio(tokens: torch.Tensor, channels: int = 8, mel_bins: int = 16) -> torch.Tensor:
    """``[B, T, C*M]`` -> ``[B, C, T, M]``."""
    batch, steps, _ = tokens.shape
    return tokens.reshape(batch, steps, channels, mel_bins).permute(0, 2, 1, 3)


def video_positions(
    batch: int,
    frames: int,
    height: int,
    width: int,
    fps: float,
    temporal_compression: int = 8,
    spatial_compression: int = 32,
    causal_fix: bool = True,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Pixel-space ``[start, end)`` bounds of every latent token, time in seconds.

    Args:
        batch, frames, height, width: the latent grid ``F', H', W'``.
        fps: frames per second of the clip the latents came from.
        causal_fix: the causal VAE encodes pixel frame 0 alone, so latent frame ``f`` starts at pixel frame
            ``max(f*T + 1 - T, 0)``.

    Returns:
        ``[B, 3, F'*H'*W', 2]`` float32 (t, y, x).
    """
    f = torch.arange(frames, device=device, dtype=torch.float32)
    h = torch.arange(height, device=device, dtype=torch.float32)
    w = torch.arange(width, device=device, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(f, h, w, indexing="ij"), dim=0).flatten(1)  # [3, N] latent indices
    start = (
        grid * torch.tensor([temporal_compression, spatial_compression, spatial_compression], device=device)[:, None]
    )
    end = start + torch.tensor([temporal_compression, spatial_compression, spatial_compression], device=device)[:, None]
    bounds = torch.stack([start, end], dim=-1)  # [3, N, 2]
    if causal_fix:
        bounds[0] = (bounds[0] + 1 - temporal_compression).clamp(min=0)
    bounds[0] = bounds[0] / fps
    return bounds.unsqueeze(0).expand(batch, -1, -1, -1).clone()


def keyframe_marker(batch: int, grid: LatentGrid, reference_tokens: int = 0) -> torch.Tensor:
    """``[B, reference_tokens + N]`` float: 1 on the target's first latent frame, 0 on the (prepended) reference
    tokens and every later frame.

    The causal VAE encodes pixel frame 0 alone, so that latent frame holds a single pixel frame; LTX-2.5 marks it
    with its keyframe embedding, as ltx-core's ``VideoLatentTools.create_initial_state`` does. Conditioning reference
    tokens stay unmarked (the official pipelines mark only generated single-frame latents).
    """
    marker = torch.zeros(batch, reference_tokens + grid.tokens)
    marker[:, reference_tokens : reference_tokens + grid.tokens_per_frame] = 1.0
    return marker


def audio_positions(
    batch: int,
    steps: int,
    sample_rate: int = 16000,
    hop_length: int = 160,
    downsample: int = 4,
    causal_fix: bool = True,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Time bounds in seconds of every audio latent step: ``[B, 1, T, 2]``.

    Latent step ``t`` covers mel frames ``[t*4, (t+1)*4)``; the causal mel padding shifts both bounds by ``1 - 4``
    frames (clamped at 0), which gives ``[0, .01), [.01, .05), [.05, .09), ...`` at 16 kHz / hop 160.
    """
    t = torch.arange(steps, device=device, dtype=torch.float32)
    bounds = torch.stack([t * downsample, (t + 1) * downsample], dim=-1)  # [T, 2] mel frames
    if causal_fix:
        bounds = (bounds + 1 - downsample).clamp(min=0)
    seconds = bounds * hop_length / sample_rate
    return seconds[None, None].expand(batch, 1, -1, -1).clone()


def audio_latent_steps(duration_s: float, latents_per_second: float = 25.0) -> int:
    """Seconds of audio -> audio latent steps (ltx-core: ``round(F / fps * 25)``)."""
    return round(duration_s * latents_per_second)


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

    def check_fps(self, target_fps: float, reference_fps: float, where: str) -> None:
        """A temporally subsampled reference stores ``fps = target_fps / S``.

        Raises:
            ValueError: it does not, naming ``where``.
        """
        if not math.isclose(reference_fps * self.temporal, target_fps, rel_tol=1e-3):
            raise ValueError(
                f"{where}: reference fps {reference_fps:g} is not target fps {target_fps:g} / {self.temporal}; "
                "temporally subsampled references must store fps = source_fps / factor (re-run preprocessing)"
            )


class _VideoPositions(Protocol):
    def video_positions(self, batch: int, frames: int, height: int, width: int, fps: float) -> torch.Tensor: ...


def reference_video_positions(
    model: _VideoPositions,
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


def token_shift(seq_len: int, base_shift: float = 0.95, max_shift: float = 2.05) -> float:
    """The logit-normal mean for ``seq_len`` tokens: linear through (1024, base_shift) and (4096, max_shift)."""
    return base_shift + (seq_len - 1024) * (max_shift - base_shift) / (4096 - 1024)


def sigma_schedule(steps: int, num_tokens: int, terminal: float = 0.1, stretch: bool = True) -> torch.Tensor:
    """Inference sigmas (``steps + 1`` values, last 0) shifted for the *actual* token count, as training samples them.

    The official validation uses a fixed 4096-token shift while training uses the real count (Lightricks/LTX-2#283);
    we use the real count in both.
    """
    mu = token_shift(num_tokens)
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)[:-1]
    sigmas = math.exp(mu) / (math.exp(mu) + (1 / t - 1))
    if stretch and steps > 1:  # one step has the single sigma 1.0: nothing to stretch (and 0/0 otherwise)
        one_minus = 1.0 - sigmas
        scale = one_minus[-1] / (1.0 - terminal)
        sigmas = 1.0 - one_minus / scale
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)]).float()
