"""The one interface the trainer and the sampler use, the same for every LTX family.

Everything outside ``models/`` speaks these tensors and dataclasses; only the family modules import diffusers
model classes. Shapes: video latents ``[B, C, F', H', W']``, audio latents ``[B, 8, T, 16]``, tokens ``[B, N, C]``.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch


@dataclass(frozen=True)
class FamilySpec:
    """What the rest of the code may know about a model family. Values come from the checkpoint, never guessed.

    Attributes:
        family: ``"ltx2"`` (LTX-2 19B, LTX-2.3 22B, LTX-2.5) or ``"ltxv"`` (LTX-Video 0.9.x).
        version: e.g. ``"2.0"``, ``"2.3"``, ``"2.5"``, ``"0.9.5"``.
        has_audio: whether the transformer has an audio stream.
        latent_channels: video latent channels (128 for every released model).
        temporal_compression / spatial_compression: VAE factors (8 and 32).
        audio_latent_channels / audio_mel_bins: audio latent layout ``[8, T, 16]`` (LTX-2 families).
        audio_latents_per_second: 25 for the LTX-2 audio VAE (16 kHz, hop 160, x4 downsampling).
        text_max_length: tokens the text encoder pads to (1024 Gemma, 128/256 T5).
    """

    family: str
    version: str
    has_audio: bool
    latent_channels: int = 128
    temporal_compression: int = 8
    spatial_compression: int = 32
    audio_latent_channels: int = 8
    audio_mel_bins: int = 16
    audio_latents_per_second: float = 25.0
    audio_sample_rate: int = 16000
    text_max_length: int = 1024
    num_layers: int = 0


@dataclass
class TextFeatures:
    """Pre-connector text features: what preprocessing caches (official ``conditions/*.pt`` keys).

    Attributes:
        video: ``[B, L, Dv]``.
        audio: ``[B, L, Da]`` or None (LTXV has no audio stream).
        mask: ``[B, L]`` 1 for real tokens, 0 for padding.
    """

    video: torch.Tensor
    audio: torch.Tensor | None
    mask: torch.Tensor


@dataclass
class TextContext:
    """Transformer-ready context (after the connectors): video ``[B, L, Cv]``, audio ``[B, L, Ca]``, mask ``[B, L]``."""

    video: torch.Tensor
    audio: torch.Tensor | None
    mask: torch.Tensor


@dataclass
class ModalityInput:
    """One modality's transformer input.

    Attributes:
        latent: patchified tokens ``[B, N, C]``.
        timesteps: per-token sigma in [0, 1], ``[B, N]`` (0 on clean conditioning tokens).
        sigma: per-sample sigma ``[B]`` (the sampled noise level; feeds cross-modal and prompt AdaLN).
        positions: ``[B, 3, N, 2]`` video (t in seconds, y, x in pixels; [start, end) bounds) or ``[B, 1, N, 2]`` audio.
    """

    latent: torch.Tensor
    timesteps: torch.Tensor
    sigma: torch.Tensor
    positions: torch.Tensor


@dataclass
class Perturbation:
    """Spatio-temporal guidance: skip self-attention in ``blocks`` for the batch items where ``mask`` is 0."""

    blocks: list[int]
    mask: torch.Tensor | None = None
    modalities: tuple[str, ...] = ("video", "audio")
    isolate_modalities: bool = False


@dataclass
class ModelPaths:
    """Where a model's components live on disk (resolved by ``families.detect``)."""

    root: Path
    text_encoder: Path | None = None
    video_vae: Path | None = None
    audio_vae: Path | None = None
    extra: dict[str, Path] = field(default_factory=dict)


class LTXModel(Protocol):
    """Family-agnostic model handle. Components load lazily, so training never loads the text encoder."""

    spec: FamilySpec
    transformer: torch.nn.Module

    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, 3, F, H, W]`` in [-1, 1] -> normalised latents ``[B, C, F', H', W']``."""

    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents ``[B, C, F', H', W']`` -> pixels ``[B, 3, F, H, W]`` in [-1, 1]."""

    def encode_audio(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """``[B, C, S]`` -> audio latents ``[B, 8, T, 16]`` (LTX-2 families)."""

    def decode_audio(self, latents: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Audio latents -> stereo waveform ``[B, 2, S]`` through the vocoder, and its sample rate."""

    def encode_text(self, prompts: list[str]) -> TextFeatures:
        """Prompts -> pre-connector features (what is cached)."""

    def text_context(self, features: TextFeatures) -> TextContext:
        """Cached features -> transformer context (the connectors; run every step, frozen)."""

    def patchify_video(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, C, F, H, W]`` -> ``[B, F*H*W, C]``."""

    def unpatchify_video(self, tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
        """``[B, F*H*W, C]`` -> ``[B, C, F, H, W]``."""

    def video_positions(self, batch: int, frames: int, height: int, width: int, fps: float) -> torch.Tensor:
        """Latent grid -> ``[B, 3, F*H*W, 2]`` positions in the official convention."""

    def forward(
        self,
        video: ModalityInput | None,
        audio: ModalityInput | None,
        context: TextContext,
        perturbation: Perturbation | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Velocities ``[B, N, C]`` for each given modality."""
