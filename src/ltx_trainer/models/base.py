"""The one interface the trainer and the sampler use, the same for every LTX family.

Everything outside ``models/`` speaks these tensors and dataclasses; only the family modules import diffusers
model classes. Shapes: video latents ``[B, C, F', H', W']``, audio latents ``[B, 8, T, 16]``, tokens ``[B, N, C]``.
"""

from collections.abc import Callable
from dataclasses import dataclass
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
        keyframes: video only, ``[B, N]``: 1 on the tokens of the generated clip's first latent frame (the causal VAE
            encodes one pixel frame there), 0 elsewhere, references included (``models.latents.keyframe_marker``);
            families with a keyframe embedding (LTX-2.5) add it there, the others ignore it. None: no token marked.
    """

    latent: torch.Tensor
    timesteps: torch.Tensor
    sigma: torch.Tensor
    positions: torch.Tensor
    keyframes: torch.Tensor | None = None


@dataclass
class Perturbation:
    """Spatio-temporal guidance: skip self-attention in ``blocks`` for the batch items where ``mask`` is 0."""

    blocks: list[int]
    mask: torch.Tensor | None = None
    modalities: tuple[str, ...] = ("video", "audio")
    isolate_modalities: bool = False


class LTXModel(Protocol):
    """Family-agnostic model handle: everything the trainer, the sampler and the data tools use.

    Components load lazily, so training never loads the text encoder. Nothing outside ``models/`` branches on
    ``spec.family`` or touches a model's attributes beyond this contract.
    """

    spec: FamilySpec
    dtype: torch.dtype
    transformer: torch.nn.Module
    #: LoRA file layouts the trainer writes: ``"official"`` (ComfyUI / official keys), ``"diffusers"``.
    lora_layouts: tuple[str, ...]
    #: Loading settings, read when the transformer is first built (``models/loading.py``): where it streams to
    #: (None: the CPU) and a hook called per loading unit as it arrives (to quantize it before the next is read).
    load_device: torch.device | None
    on_block: Callable[[str, torch.nn.Module], None] | None

    # ---- components ------------------------------------------------------------------------------------------------
    @property
    def video_vae(self) -> torch.nn.Module:
        """The video VAE (loaded on first use)."""

    @property
    def has_video_vae(self) -> bool:
        """Whether the checkpoint has a video VAE (transformer-only files have none)."""

    def codec_modules(self, video: bool = True, audio: bool = True) -> list[torch.nn.Module]:
        """The media codecs, loaded on first use: video VAE (``video``); audio VAE and vocoder (``audio``, when the
        family has audio). Callers move them between devices (``models.devices.on_device``)."""

    def select_video_decoder(self, name: str) -> None:
        """Which decoder ``decode_video`` uses: ``"conv"`` (every family; the default) or ``"diffusion"`` (LTX-2.5's
        diffusion decoder). Raises ``ModelLoadError`` when the checkpoint has no such decoder."""

    def unload_codecs(self) -> None:
        """Free the VAEs and vocoder; they reload lazily on next use."""

    def connector_modules(self) -> list[torch.nn.Module]:
        """The frozen modules between cached text features and the transformer (empty when there are none)."""

    def connectors_to(self, device: torch.device) -> None:
        """Move the connectors next to the transformer (they run every training step)."""

    def text_context_is_frozen(self) -> bool:
        """Whether ``text_context`` depends only on its input features (connectors frozen, or none), so callers may
        compute it once per sample and keep the connectors off the training device."""

    def transformer_blocks(self) -> list[torch.nn.Module]:
        """The transformer's repeated blocks in execution order (block offload moves them between devices)."""

    def unload_text_encoder(self) -> None:
        """Free the text encoder once prompts are cached."""

    @property
    def text_encoder_loaded(self) -> bool:
        """Whether the text encoder is in memory now (it loads on first use)."""

    def text_feature_dims(self) -> tuple[int, int]:
        """Widths of the cached (pre-connector) video and audio text features."""

    def feature_extractor_state(self) -> dict[str, torch.Tensor] | None:
        """Tensors of the text feature extractor that made the cached features (None when the family has none)."""

    # ---- checkpoints and LoRA naming -------------------------------------------------------------------------------
    def save_full_checkpoint(
        self, path: Path, dtype: torch.dtype = torch.bfloat16, transformer_sd: dict | None = None
    ) -> Path:
        """Write a complete official single file with the current (or the given) transformer weights."""

    def official_module_name(self, name: str) -> str:
        """diffusers transformer module path -> official path (LoRA export)."""

    def diffusers_module_name(self, name: str) -> str:
        """Official transformer module path -> diffusers path (LoRA import)."""

    # ---- media and text ------------------------------------------------------------------------------------------
    def encode_video(self, pixels: torch.Tensor, tiled: bool = False) -> torch.Tensor:
        """``[B, 3, F, H, W]`` in [-1, 1] -> normalised latents ``[B, C, F', H', W']`` (``tiled``: VAE tiling)."""

    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents ``[B, C, F', H', W']`` -> pixels ``[B, 3, F, H, W]`` in [-1, 1]."""

    def encode_audio(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """``[B, C, S]`` -> audio latents ``[B, 8, T, 16]`` (LTX-2 families)."""

    def decode_audio(self, latents: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Audio latents -> stereo waveform ``[B, 2, S]`` through the vocoder, and its sample rate."""

    def encode_text(self, prompts: list[str]) -> TextFeatures:
        """Prompts -> pre-connector features (what is cached)."""

    def text_context(self, features: TextFeatures) -> TextContext:
        """Cached features -> transformer context (the connectors, run where they are; the result is on the
        features' device)."""

    # ---- token layout ----------------------------------------------------------------------------------------------
    def patchify_video(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, C, F, H, W]`` -> ``[B, F*H*W, C]``."""

    def unpatchify_video(self, tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
        """``[B, F*H*W, C]`` -> ``[B, C, F, H, W]``."""

    def patchify_audio(self, latents: torch.Tensor) -> torch.Tensor:
        """``[B, 8, T, 16]`` -> ``[B, T, 128]``."""

    def unpatchify_audio(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, T, 128]`` -> ``[B, 8, T, 16]``."""

    def video_positions(self, batch: int, frames: int, height: int, width: int, fps: float) -> torch.Tensor:
        """Latent grid -> ``[B, 3, F*H*W, 2]`` positions in the official convention."""

    def audio_positions(self, batch: int, steps: int) -> torch.Tensor:
        """Audio latent steps -> ``[B, 1, T, 2]`` positions (seconds)."""

    def forward(
        self,
        video: ModalityInput | None,
        audio: ModalityInput | None,
        context: TextContext,
        perturbation: Perturbation | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Velocities ``[B, N, C]`` for each given modality."""
