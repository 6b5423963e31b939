"""Family-independent latent layout: patchify/unpatchify and RoPE positions in the official convention.

Positions follow ltx-core (spec/anchors.md §6.3): each token carries ``[start, end)`` bounds per axis. Video time is
in seconds after the causal fix (latent frame 0 covers pixel frame 0 only), height and width in pixels. Audio time is
in seconds, shifted by the causal mel padding.
"""

import torch


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


def latent_frames(num_frames: int, temporal_compression: int = 8) -> int:
    """Pixel frames ``8k+1`` -> latent frames ``k+1``."""
    return (num_frames - 1) // temporal_compression + 1


def audio_latent_steps(duration_s: float, latents_per_second: float = 25.0) -> int:
    """Seconds of audio -> audio latent steps (ltx-core: ``round(F / fps * 25)``)."""
    return round(duration_s * latents_per_second)
