"""The LTX-Video 0.9.x family (2B and 13B; 0.9.0, 0.9.1, 0.9.5 to 0.9.8) on diffusers modules.

LTXV has one stream (video), a T5-XXL text encoder and no text connectors, so ``text_context`` is the identity and
every audio entry point raises ``LTXVNoAudioError``. Components come from an official single file (converted on the
fly by ``formats/ltxv.py``) or a diffusers folder (``model_index.json`` + ``transformer/``, ``vae/``,
``text_encoder/``, ``tokenizer/``), always built on the meta device and filled with a strict load, so a missing or
misshaped tensor fails with its name. They load lazily: training touches only the transformer.

Conventions (the official ltx_video code unless said otherwise):

- Latents are cached normalised with the VAE's per-channel statistics, ``(z - latents_mean) * scaling_factor /
  latents_std`` (diffusers ``LTXPipeline._normalize_latents``, as Lightricks' LTX-Video-Trainer caches them).
  ``encode_video`` takes the posterior mean; pass ``sample=True`` to draw like LTX-Video-Trainer did.
- ``decode_video`` conditions the timestep-aware decoder (0.9.1+) on t=0.05 and adds no noise unless asked.
- Text: prompts are lower-cased and stripped, padded/truncated to ``spec.text_max_length`` = 128 T5 tokens (the
  original pipeline's ``max_length``; diffusers' ``LTXPipeline`` also defaults to 128, LTX-Video-Trainer cached 256)
  and T5 runs with the padding mask (original pipeline; diffusers runs T5 unmasked).
- RoPE positions are pixel coordinates with the causal first-frame fix, time in seconds (``models.latents``), given to
  diffusers as ``video_coords`` (``LTXConditionPipeline``'s convention, equal to the original code's). 0.9.0/0.9.1
  were trained without the causal fix; their metadata says so (``causal_temporal_positioning``) and it is honoured.
- The transformer gets per-token timesteps ``sigma * 1000`` (``timestep_scale_multiplier``).
"""

import json
from functools import cached_property
from pathlib import Path

import torch
from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
from torch import nn

from ltx_trainer.models import latents as lat
from ltx_trainer.models.base import FamilySpec, ModalityInput, Perturbation, TextContext, TextFeatures
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats import ltxv as fmt
from ltx_trainer.models.formats.common import StateDict
from ltx_trainer.models.loading import BlockHook, build_module
from ltx_trainer.models.ltxv_loading import (
    TEXT_MAX_LENGTH,
    _diffusers_vae_config,
    _read_weights,
    detect,
    load_t5,
    official_configs,
)
from ltx_trainer.models.sources import SingleFile, read_json, write_single_file

__all__ = ["DECODE_TIMESTEP", "TEXT_MAX_LENGTH", "LTXVModel", "LTXVNoAudioError", "detect"]

DECODE_TIMESTEP = 0.05


class LTXVNoAudioError(ModelLoadError):
    """LTX-Video has no audio stream: audio encode/decode/forward calls are a configuration mistake."""


def _no_audio(what: str) -> LTXVNoAudioError:
    return LTXVNoAudioError(
        f"{what}: LTX-Video 0.9.x has no audio stream (no audio VAE, vocoder or audio transformer). Use an LTX-2 "
        "model for audio, or train without audio (no audio modality, with_audio: false)."
    )


class _SkipSelfAttention:
    """Spatio-temporal guidance ("attention values" mode of the original code): for batch items whose mask is 0 the
    self-attention output is ``to_out(V)`` instead of ``to_out(softmax(QK^T)V)``."""

    def __init__(self, inner: object, mask: torch.Tensor | None):
        self.inner, self.mask = inner, mask

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        skipped = attn.to_out[1](attn.to_out[0](attn.to_v(hidden_states)))
        if self.mask is None:
            return skipped
        out = self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
        keep = self.mask.to(device=out.device, dtype=out.dtype).view(-1, 1, 1)
        return out * keep + skipped * (1 - keep)


class LTXVModel:
    """An LTX-Video 0.9.x model behind the family-agnostic interface of ``models/base.py``.

    Args:
        spec: what the checkpoint is (``ltxv_spec_from_single_file`` / ``ltxv_spec_from_diffusers``).
        source: an official single file, or the root of a diffusers folder.
        text_encoder_path: T5 folder (single files don't contain the text encoder); overrides a diffusers folder's.
        dtype: dtype of the loaded modules (the T5 too; T5 overflows in fp16, use bf16 or fp32).

    Attributes:
        causal_fix: RoPE frame positions with the causal first-frame fix (0.9.5+; from the metadata when present).
        timestep_scale: sigma -> transformer timestep (``timestep_scale_multiplier``, 1000 for every release).
        lowercase_prompts / mask_text_padding: the original pipeline's text conventions (see the module docstring).
    """

    def __init__(
        self,
        spec: FamilySpec,
        source: SingleFile | Path,
        text_encoder_path: Path | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        self.spec = spec
        self.source = source
        self.text_encoder_path = Path(text_encoder_path) if text_encoder_path else None
        self.dtype = dtype
        self.load_device: torch.device | None = None  # where the transformer streams to (None: the CPU)
        self.on_block: BlockHook | None = None  # per loading unit of the transformer (models/loading.py)
        self.text_encoder_bits: int | None = None  # 8: T5 in torchao int8 weight-only
        self.lowercase_prompts = True
        self.mask_text_padding = True
        if isinstance(source, SingleFile):
            settings = fmt.transformer_settings(official_configs(source)[0])
            self.causal_fix = bool(settings["causal_temporal_positioning"])
            self.timestep_scale = float(settings["timestep_scale_multiplier"] or 1.0)
        else:
            self.causal_fix = spec.version not in ("0.9.0", "0.9.1")
            self.timestep_scale = 1000.0

    @property
    def _single(self) -> SingleFile | None:
        return self.source if isinstance(self.source, SingleFile) else None

    @property
    def _where(self) -> Path:
        return self._single.path if self._single is not None else Path(self.source)

    # ---- components -----------------------------------------------------------------------------------------------
    def _from_diffusers_folder(self, name: str, cls: type[nn.Module], component: str, frozen: bool) -> nn.Module:
        folder = Path(self.source) / name
        config = read_json(folder / "config.json")
        if cls is AutoencoderKLLTXVideo:
            config = _diffusers_vae_config(config)
        if cls is LTXVideoTransformer3DModel:  # streams unit by unit
            weights = _read_weights(folder, self.dtype, refs=True)
            streaming = {"dtype": self.dtype, "device": self.load_device, "on_block": self.on_block}
            return build_module(cls, config, weights, str(folder), component, frozen=frozen, **streaming)
        return build_module(cls, config, _read_weights(folder, self.dtype), str(folder), component, frozen=frozen)

    @classmethod
    def from_architecture(cls, official_transformer: dict, dtype: torch.dtype, version: str = "0.9.5") -> "LTXVModel":
        """A model whose transformer has random weights in the architecture of ``official_transformer`` (the metadata
        config section), built on the current default device; nothing is read from disk (``ltx-trainer bench``)."""
        config = fmt.transformer_diffusers_config(official_transformer)
        spec = FamilySpec("ltxv", version, False, text_max_length=TEXT_MAX_LENGTH, num_layers=config["num_layers"])
        model = cls(spec, Path(f"random-ltxv-{version}"), dtype=dtype)
        model.__dict__["transformer"] = LTXVideoTransformer3DModel(**config)
        return model

    @cached_property
    def transformer(self) -> LTXVideoTransformer3DModel:
        if self._single is None:
            return self._from_diffusers_folder("transformer", LTXVideoTransformer3DModel, "transformer", frozen=False)
        official, _ = official_configs(self._single)
        sd = fmt.transformer_to_diffusers(self._single.refs(fmt.TRANSFORMER_PREFIX))
        config = fmt.transformer_diffusers_config(official)
        return build_module(
            LTXVideoTransformer3DModel,
            config,
            sd,
            str(self._single.path),
            "transformer",
            file_key=lambda k: fmt.TRANSFORMER_PREFIX + fmt.module_to_official(k),
            frozen=False,
            dtype=self.dtype,
            device=self.load_device,
            on_block=self.on_block,
        )

    @cached_property
    def vae(self) -> AutoencoderKLLTXVideo:
        if self._single is None:
            return self._from_diffusers_folder("vae", AutoencoderKLLTXVideo, "video VAE", frozen=True)
        _, official = official_configs(self._single)
        if official is None:
            raise ModelLoadError(
                f"{self._single.path}: this file has no VAE (no vae.* tensors). Use a complete LTX-Video checkpoint, "
                "or a diffusers folder."
            )
        sd = fmt.vae_to_diffusers(self._single.read(fmt.VAE_PREFIX, self.dtype), official)
        config = fmt.vae_diffusers_config(official)
        module = build_module(
            AutoencoderKLLTXVideo,
            config,
            sd,
            str(self._single.path),
            "video VAE",
            file_key=lambda k: next(iter(fmt.vae_to_official({k: None}, config))),
        )
        return module

    @property
    def video_vae(self) -> AutoencoderKLLTXVideo:
        """The name the LTX-2 family uses."""
        return self.vae

    @property
    def has_video_vae(self) -> bool:
        """Transformer-only single files have no VAE (nothing to encode or decode video with)."""
        if self._single is None:
            return (Path(self.source) / "vae").is_dir()
        return official_configs(self._single)[1] is not None

    video_decoder = "conv"

    def select_video_decoder(self, name: str) -> None:
        """Which decoder ``decode_video`` uses: LTX-Video has the convolutional one only."""
        if name != "conv":
            raise ModelLoadError(f"video decoder {name!r}: LTX-Video has only the convolutional decoder ('conv')")

    def codec_modules(self, video: bool = True, audio: bool = True) -> list[nn.Module]:
        """The media codecs (loaded on first use): the video VAE; LTX-Video has no audio codec."""
        return [self.vae] if video else []

    def unload_codecs(self) -> None:
        """Free the VAE (it reloads lazily on next use)."""
        self.__dict__.pop("vae", None)

    @cached_property
    def _text(self) -> tuple[nn.Module, object]:
        if self.text_encoder_path is not None:
            return load_t5(self.text_encoder_path, self.dtype, self.text_encoder_bits)
        if self._single is None and (Path(self.source) / "text_encoder").is_dir():
            return load_t5(Path(self.source), self.dtype, self.text_encoder_bits)
        raise ModelLoadError(
            f"{self._where}: no text encoder. Single-file LTX-Video checkpoints don't contain T5: pass a T5 folder "
            "(model.text_encoder_path in the config, --text-encoder on the command line), e.g. google/t5-v1_1-xxl."
        )

    @property
    def text_encoder(self) -> nn.Module:
        return self._text[0]

    @property
    def tokenizer(self) -> object:
        return self._text[1]

    official_module_name = staticmethod(fmt.module_to_official)  # LoRA export: diffusers -> original names
    diffusers_module_name = staticmethod(fmt.module_to_diffusers)  # LoRA import: original -> diffusers names
    lora_layouts = ("official", "diffusers")  # LTX-Video tools also expect diffusers' own LoRA layout

    def connector_modules(self) -> list[nn.Module]:
        """LTXV has no text connectors (T5 features feed the transformer directly)."""
        return []

    def connectors_to(self, device: torch.device) -> None:
        """LTXV has no text connectors (T5 features feed the transformer directly)."""

    def feature_extractor_state(self) -> None:
        """LTXV caches raw T5 states: no feature extractor."""
        return None

    def text_context_is_frozen(self) -> bool:
        """The context is the features themselves (no connectors)."""
        return True

    def transformer_blocks(self) -> list[nn.Module]:
        return list(getattr(self.transformer, "module", self.transformer).transformer_blocks)

    def text_feature_dims(self) -> tuple[int, int]:
        """Widths of the cached (video, audio) text features: the T5 width for both (audio is unused)."""
        width = self.transformer.config.caption_channels
        return width, width

    def save_full_checkpoint(
        self, path: Path, dtype: torch.dtype = torch.bfloat16, transformer_sd: StateDict | None = None
    ) -> Path:
        """Write an official single file (transformer + VAE + metadata config) with the current transformer."""
        transformer = getattr(self.transformer, "module", self.transformer)  # unwrap DDP
        sd = {
            **fmt.vae_to_official(self.vae.state_dict(), dict(self.vae.config)),
            **fmt.transformer_to_official(transformer_sd if transformer_sd is not None else transformer.state_dict()),
        }
        config = {
            "transformer": fmt.transformer_official_config(dict(transformer.config), self.causal_fix),
            "vae": fmt.vae_official_config(dict(self.vae.config)),
        }
        return write_single_file(sd, path, {"config": json.dumps(config)}, dtype)

    def unload_text_encoder(self) -> None:
        """Free T5 once prompts are cached."""
        self.__dict__.pop("_text", None)

    @property
    def text_encoder_loaded(self) -> bool:
        return "_text" in self.__dict__

    # ---- video ----------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_video(
        self,
        pixels: torch.Tensor,
        tiled: bool = False,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``[B, 3, F, H, W]`` in [-1, 1] (F = 8k+1; H, W multiples of 32) -> normalised latents ``[B, C, F', H', W']``.

        Args:
            tiled: encode in overlapping tiles (diffusers' VAE tiling; less memory at large sizes).
            sample: draw from the posterior (LTX-Video-Trainer's choice) instead of taking its mean.
        """
        t, s = self.spec.temporal_compression, self.spec.spatial_compression
        frames, height, width = pixels.shape[-3:]
        if pixels.ndim != 5 or (frames - 1) % t or height % s or width % s:
            raise ValueError(
                f"encode_video: got shape {tuple(pixels.shape)}; LTX-Video needs [B, 3, F, H, W] with F = {t}k+1 "
                f"frames and H, W multiples of {s} (resize/crop the clip first)"
            )
        vae = self.vae
        param = next(vae.parameters())
        if tiled:
            vae.enable_tiling()
        try:
            posterior = vae.encode(pixels.to(device=param.device, dtype=param.dtype)).latent_dist
        finally:
            if tiled:
                vae.disable_tiling()
        z = posterior.sample(generator) if sample else posterior.mode()
        mean, std = self._stats(z)
        return (z - mean) * vae.config.scaling_factor / std

    @torch.no_grad()
    def decode_video(
        self,
        latents: torch.Tensor,
        timestep: float = DECODE_TIMESTEP,
        noise_scale: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Normalised latents ``[B, C, F', H', W']`` -> pixels ``[B, 3, F, H, W]`` (nominally [-1, 1], not clamped).

        Args:
            timestep: decoder conditioning for timestep-aware VAEs (0.9.1+); ignored by 0.9.0.
            noise_scale: mix ``noise_scale`` of fresh noise into the latents first, as ``LTXPipeline`` does with its
                ``decode_noise_scale`` (0 = deterministic).
        """
        vae = self.vae
        param = next(vae.parameters())
        z = latents.to(device=param.device, dtype=param.dtype)
        mean, std = self._stats(z)
        z = z * std / vae.config.scaling_factor + mean
        temb = None
        if vae.config.timestep_conditioning:
            if noise_scale > 0:
                noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
                z = (1 - noise_scale) * z + noise_scale * noise
            temb = torch.full((z.shape[0],), float(timestep), device=z.device, dtype=z.dtype)
        return vae.decode(z, temb, return_dict=False)[0]

    def _stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vae = self.vae
        shape = (1, -1, 1, 1, 1)
        return (
            vae.latents_mean.view(shape).to(z.device, z.dtype),
            vae.latents_std.view(shape).to(z.device, z.dtype),
        )

    def encode_audio(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        raise _no_audio(f"{self._where}: encode_audio")

    def decode_audio(self, latents: torch.Tensor) -> tuple[torch.Tensor, int]:
        raise _no_audio(f"{self._where}: decode_audio")

    def audio_positions(self, batch: int, steps: int) -> torch.Tensor:
        raise _no_audio(f"{self._where}: audio_positions")

    def patchify_audio(self, latents: torch.Tensor) -> torch.Tensor:
        raise _no_audio(f"{self._where}: patchify_audio")

    def unpatchify_audio(self, tokens: torch.Tensor) -> torch.Tensor:
        raise _no_audio(f"{self._where}: unpatchify_audio")

    # ---- text -----------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> TextFeatures:
        """Prompts -> T5 features ``[B, 128, 4096]`` (right-padded) and mask ``[B, 128]``; ``audio`` is None."""
        model, tokenizer = self._text
        if self.lowercase_prompts:
            prompts = [p.lower().strip() for p in prompts]
        tokens = tokenizer(
            prompts,
            padding="max_length",
            max_length=self.spec.text_max_length,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        device = next(model.parameters()).device
        mask = tokens.attention_mask.to(device)
        out = model(input_ids=tokens.input_ids.to(device), attention_mask=mask if self.mask_text_padding else None)
        return TextFeatures(video=out.last_hidden_state.to(self.dtype), audio=None, mask=mask)

    def text_context(self, features: TextFeatures) -> TextContext:
        """Identity: LTXV feeds T5 features straight to the transformer's caption projection."""
        return TextContext(video=features.video, audio=None, mask=features.mask)

    # ---- layout ---------------------------------------------------------------------------------------------------
    patchify_video = staticmethod(lat.patchify_video)
    unpatchify_video = staticmethod(lat.unpatchify_video)

    def video_positions(self, batch: int, frames: int, height: int, width: int, fps: float) -> torch.Tensor:
        return lat.video_positions(
            batch,
            frames,
            height,
            width,
            fps,
            self.spec.temporal_compression,
            self.spec.spatial_compression,
            causal_fix=self.causal_fix,
        )

    # ---- transformer ----------------------------------------------------------------------------------------------
    def forward(
        self,
        video: ModalityInput | None,
        audio: ModalityInput | None,
        context: TextContext,
        perturbation: Perturbation | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Video velocity ``[B, N, C]`` (and None for audio).

        ``video.positions`` ``[B, 3, N, 2]`` -> diffusers ``video_coords`` ``[B, 3, N]`` (start bounds: pixel
        coordinates, time in seconds); ``video.timesteps`` ``[B, N]`` sigma -> ``sigma * 1000`` per token.
        """
        if audio is not None:
            raise _no_audio(f"{self._where}: forward(audio=...)")
        if video is None:
            raise ValueError("forward: LTX-Video needs the video input")
        transformer = self.transformer
        param = next(transformer.parameters())
        timesteps = video.timesteps
        if timesteps.ndim == 1:
            timesteps = timesteps[:, None].expand(-1, video.latent.shape[1])
        swapped = self._install_perturbation(perturbation)
        try:
            out = transformer(
                hidden_states=video.latent.to(param.device, param.dtype),
                encoder_hidden_states=context.video.to(param.device, param.dtype),
                timestep=timesteps.to(param.device, torch.float32) * self.timestep_scale,
                encoder_attention_mask=context.mask.to(param.device),
                video_coords=video.positions[..., 0].to(param.device, torch.float32),
                return_dict=False,
            )[0]
        finally:
            for attn, processor in swapped:
                attn.set_processor(processor)
        return out, None

    def _install_perturbation(self, perturbation: Perturbation | None) -> list[tuple[nn.Module, object]]:
        if perturbation is None or not perturbation.blocks or "video" not in perturbation.modalities:
            return []
        blocks = self.transformer.transformer_blocks
        swapped = []
        for index in perturbation.blocks:
            if not -len(blocks) <= index < len(blocks):
                raise ValueError(f"perturbation: block {index} does not exist (the transformer has {len(blocks)})")
            attn = blocks[index].attn1
            swapped.append((attn, attn.processor))
            attn.set_processor(_SkipSelfAttention(attn.processor, perturbation.mask))
        return swapped
