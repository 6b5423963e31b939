"""The LTX-2 family (LTX-2 19B "2.0", LTX-2.3 22B, and the interface LTX-2.5 fits into) on diffusers modules.

Components come from an official single file (converted on the fly by ``formats/``) or a diffusers folder, always
built on the meta device and filled with a strict load, so a missing or misshaped tensor fails with its name.
Components load lazily: training touches the transformer and the connectors, never the text encoder.
"""

import json
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import torch
from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel
from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE
from torch import nn

from ltx_trainer.models import latents as lat
from ltx_trainer.models import quantization
from ltx_trainer.models.base import FamilySpec, ModalityInput, Perturbation, TextContext, TextFeatures
from ltx_trainer.models.devices import device_of
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats import ltx2_audio, ltx2_text, ltx2_transformer, ltx2_video_vae
from ltx_trainer.models.formats.common import StateDict
from ltx_trainer.models.loading import BlockHook, build_module
from ltx_trainer.models.sources import (
    SingleFile,
    read_json,
    read_safetensors_dir,
    safetensors_dir_refs,
    write_single_file,
)

CONNECTOR_FILE_PREFIXES = (
    "text_embedding_projection.",
    "model.diffusion_model.video_embeddings_connector.",
    "model.diffusion_model.audio_embeddings_connector.",
)
DIFFUSERS_COMPONENTS = {
    "transformer": LTX2VideoTransformer3DModel,
    "vae": AutoencoderKLLTX2Video,
    "audio_vae": AutoencoderKLLTX2Audio,
    "connectors": LTX2TextConnectors,
}


class _Unperturbed:
    """An attention processor that ignores the STG perturbation (wraps the block's own processor)."""

    def __init__(self, inner: object):
        self.inner = inner

    def __call__(
        self,
        attn,
        hidden_states,
        encoder_hidden_states=None,
        attention_mask=None,
        query_rotary_emb=None,
        key_rotary_emb=None,
        perturbation_mask=None,
        all_perturbed=None,
    ):
        return self.inner(
            attn,
            hidden_states,
            encoder_hidden_states,
            attention_mask,
            query_rotary_emb,
            key_rotary_emb,
            perturbation_mask=None,
            all_perturbed=False,
        )


@contextmanager
def _skip_only(transformer: nn.Module, perturbation: Perturbation | None):
    """STG on one modality only: diffusers perturbs both self-attentions of a block, ltx-core only the chosen ones.

    For the duration of one forward, the self-attention of the modality that is *not* perturbed ignores the mask.
    """
    modalities = set(perturbation.modalities) if perturbation is not None and perturbation.blocks else set()
    spared = {"video": "attn1", "audio": "audio_attn1"}
    names = [name for modality, name in spared.items() if modalities and modality not in modalities]
    blocks = getattr(transformer, "module", transformer).transformer_blocks
    swapped = []
    for index in perturbation.blocks if names else []:
        for name in names:
            attention = getattr(blocks[index], name)
            swapped.append((attention, attention.processor))
            attention.processor = _Unperturbed(attention.processor)
    try:
        yield
    finally:
        for attention, processor in swapped:
            attention.processor = processor


def vocoder_class(config: dict) -> type[nn.Module]:
    """The BWE vocoder (LTX-2.3, 48 kHz) has a bandwidth-extension stage; LTX-2.0's is plain (24 kHz)."""
    return LTX2VocoderWithBWE if "bwe" in config or "bwe_in_channels" in config else LTX2Vocoder


def ltx2_version(metadata: dict, config: dict, keys: list[str]) -> str:
    """``"2.0"`` / ``"2.3"`` / ``"2.5"`` from the file: ``model_version`` metadata first, then the architecture."""
    declared = str(metadata.get("model_version", ""))
    for version in ("2.5", "2.3", "2.0"):
        if declared.startswith(version):
            return version
    transformer = config.get("transformer", {})
    if transformer.get("caption_proj_before_connector") or any(
        k.startswith("model.diffusion_model.prompt_adaln") for k in keys
    ):
        return "2.3"
    return "2.0"


def official_config_from_diffusers(configs: dict[str, dict]) -> dict:
    """The single-file metadata ``config`` from the diffusers configs of ``transformer``, ``connectors``, ``vae``,
    ``audio_vae`` and ``vocoder`` (a full fine-tune export from a diffusers folder, ``ltx-trainer convert``)."""
    return {
        "transformer": {
            **ltx2_transformer.official_config(configs["transformer"]),
            **ltx2_text.connectors_official_config(configs["connectors"]),
        },
        "vae": ltx2_video_vae.official_config(configs["vae"]),
        "audio_vae": ltx2_audio.audio_vae_official_config(configs["audio_vae"]),
        "vocoder": ltx2_audio.vocoder_official_config(configs["vocoder"]),
    }


PIPELINES = ("LTX2Pipeline", "LTX2ImageToVideoPipeline", "LTX2ConditionPipeline", "LTX2InContextPipeline")


def _spec(version: str, transformer_cfg: dict) -> FamilySpec:
    return FamilySpec(family="ltx2", version=version, has_audio=True, num_layers=transformer_cfg.get("num_layers", 48))


def detect(source: SingleFile | Path, pipeline: str | None = None) -> FamilySpec | None:
    """This family's spec for a single file (``source`` a ``SingleFile``) or a diffusers folder whose
    ``model_index.json`` names ``pipeline``; None when it is not an LTX-2-family model in those layouts (split
    LTX-2.5 transformer files are ``models.ltx25``'s).

    Raises:
        ModelLoadError: an LTX-2.5 diffusers folder (load the official split release instead).
    """
    if isinstance(source, SingleFile):
        if not any(k.startswith("model.diffusion_model.audio_patchify_proj") for k in source.keys):
            return None
        if not source.has("vae."):
            return None
        version = ltx2_version(source.metadata, source.config, source.keys)
        return _spec(version, source.config.get("transformer", {}))
    if pipeline not in PIPELINES:
        return None
    transformer_cfg = read_json(Path(source) / "transformer" / "config.json")
    version = "2.0" if transformer_cfg.get("use_prompt_embeddings", True) else "2.3"
    if transformer_cfg.get("use_prompt_adaln_single") is False or not transformer_cfg.get("ff_bias", True):
        raise ModelLoadError(
            f"{source}: an LTX-2.5 diffusers folder; ltx-trainer loads LTX-2.5 from the official split release "
            "(pass its folder or diffusion_models/<transformer>.safetensors)"
        )
    return _spec(version, transformer_cfg)


class LTX2Model:
    """An LTX-2-family model behind the family-agnostic interface of ``models/base.py``.

    Args:
        spec: what the checkpoint is.
        source: an official single file, or the root of a diffusers folder.
        text_encoder_path: Gemma folder (single-file checkpoints don't contain the text encoder).
        dtype: compute/storage dtype for the loaded modules.

    Attributes (set before the first use of a component):
        load_device: where the transformer and connectors are streamed to (None: the CPU).
        on_block: called per loading unit of the transformer (``models/loading.py``), e.g. to quantize it.
        text_encoder_bits: 8 or 4 to load the text encoder quantized (``models/text_encoders.py``), None for full.
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
        self.load_device: torch.device | None = None
        self.on_block: BlockHook | None = None
        self.text_encoder_bits: int | None = None

    @classmethod
    def from_architecture(
        cls, official_transformer: dict, gemma_config: dict, dtype: torch.dtype, version: str = "2.0"
    ) -> "LTX2Model":
        """A model whose transformer and text connectors have random weights in the architecture of
        ``official_transformer`` (the metadata config section; ``gemma_config`` gives the text width), built on the
        current default device; nothing is read from disk (``ltx-trainer bench``)."""
        spec = FamilySpec("ltx2", version, True, num_layers=official_transformer.get("num_layers", 48))
        model = cls(spec, Path(f"random-ltx2-{version}"), dtype=dtype)
        model.__dict__["transformer"] = LTX2VideoTransformer3DModel(
            **ltx2_transformer.diffusers_config(official_transformer)
        )
        model.__dict__["connectors"] = ltx2_text.build_connectors(
            **ltx2_text.connectors_diffusers_config(official_transformer, None, gemma_config)
        ).requires_grad_(False)
        return model

    # ---- component loading -------------------------------------------------------------------------------------
    @property
    def _single(self) -> SingleFile | None:
        return self.source if isinstance(self.source, SingleFile) else None

    def _official_section(self, name: str) -> dict:
        section = self._single.config.get(name)
        if section is None:
            raise ModelLoadError(
                f"{self._single.path}: the metadata 'config' has no '{name}' section; this file was not written as an "
                "official LTX-2 single-file checkpoint (or it was stripped). Use a diffusers folder instead."
            )
        return section

    def _from_diffusers_folder(self, name: str, cls: type[nn.Module], **overrides: object) -> nn.Module:
        folder = Path(self.source) / name
        config = {k: v for k, v in read_json(folder / "config.json").items() if not k.startswith("_")}
        config.update(overrides)
        if cls in (LTX2VideoTransformer3DModel, LTX2TextConnectors):  # the big ones stream, unit by unit
            return build_module(cls, config, safetensors_dir_refs(folder), str(folder), name, **self._streaming(cls))
        return build_module(cls, config, read_safetensors_dir(folder, self.dtype), str(folder), name)

    def _streaming(self, cls: type[nn.Module]) -> dict:
        hook = self.on_block if cls is LTX2VideoTransformer3DModel else None
        return {"dtype": self.dtype, "device": self.load_device, "on_block": hook}

    @cached_property
    def transformer(self) -> LTX2VideoTransformer3DModel:
        if self._single is None:
            # perturbed_attn only picks the attention processor (no weights); STG needs it.
            module = self._from_diffusers_folder("transformer", LTX2VideoTransformer3DModel, perturbed_attn=True)
        else:
            config = ltx2_transformer.diffusers_config(self._official_section("transformer"))
            if not any(k.endswith(quantization.WEIGHT_SCALE) for k in self._single.keys):
                sd = ltx2_transformer.to_diffusers(self._single.refs(ltx2_transformer.FILE_PREFIX))
                return build_module(
                    LTX2VideoTransformer3DModel,
                    config,
                    sd,
                    str(self._single.path),
                    "transformer",
                    **self._streaming(LTX2VideoTransformer3DModel),
                )
            # a pre-quantized fp8 file keeps its fp8 weights (with their scales), never a full-precision copy
            raw = self._single.read(ltx2_transformer.FILE_PREFIX, self.dtype, keep=quantization.FP8_DTYPES)
            sd, scales = quantization.split_fp8_scales(ltx2_transformer.to_diffusers(raw))
            module = build_module(LTX2VideoTransformer3DModel, config, sd, str(self._single.path), "transformer")
            quantization.attach_fp8_weights_(module, scales, self.dtype)
            if self.load_device is not None:
                module.to(self.load_device)
        return module

    @cached_property
    def video_vae(self) -> AutoencoderKLLTX2Video:
        if self._single is None:
            return self._from_diffusers_folder("vae", AutoencoderKLLTX2Video)
        official = self._official_section("vae")
        sd = ltx2_video_vae.to_diffusers(self._single.read("vae.", self.dtype), official)
        return build_module(
            AutoencoderKLLTX2Video, ltx2_video_vae.diffusers_config(official), sd, str(self._single.path), "video VAE"
        )

    @cached_property
    def audio_vae(self) -> AutoencoderKLLTX2Audio:
        if self._single is None:
            return self._from_diffusers_folder("audio_vae", AutoencoderKLLTX2Audio)
        official = self._official_section("audio_vae")
        sd = ltx2_audio.audio_vae_to_diffusers(self._single.read("audio_vae.", self.dtype))
        config = ltx2_audio.audio_vae_diffusers_config(official)
        return build_module(AutoencoderKLLTX2Audio, config, sd, str(self._single.path), "audio VAE")

    @cached_property
    def vocoder(self) -> nn.Module:
        if self._single is None:
            config = read_json(Path(self.source) / "vocoder" / "config.json")
            return self._from_diffusers_folder("vocoder", vocoder_class(config))
        official = self._official_section("vocoder")
        config = ltx2_audio.vocoder_diffusers_config(official)
        sd = ltx2_audio.vocoder_to_diffusers(self._single.read("vocoder.", self.dtype), official)
        return build_module(vocoder_class(official), config, sd, str(self._single.path), "vocoder")

    @cached_property
    def connectors(self) -> LTX2TextConnectors:
        if self._single is None:
            return self._from_diffusers_folder("connectors", LTX2TextConnectors)
        file_sd = self._single.refs(CONNECTOR_FILE_PREFIXES)
        # 2.3 files may omit caption_channels: the Gemma folder's config then gives the text width
        gemma = read_json(self.text_encoder_path / "config.json") if self.text_encoder_path else None
        config = ltx2_text.connectors_diffusers_config(self._official_section("transformer"), file_sd, gemma)
        sd = ltx2_text.connectors_to_diffusers(file_sd)
        return build_module(
            ltx2_text.build_connectors,
            config,
            sd,
            str(self._single.path),
            "text connectors",
            **self._streaming(LTX2TextConnectors),
        )

    @cached_property
    def _text_encoder(self) -> tuple[nn.Module, object]:
        from ltx_trainer.models.text_encoders import load_gemma, loads_on_gpu

        if loads_on_gpu(self.text_encoder_bits) and "transformer" in self.__dict__:
            # never both on the GPU: the transformer waits on the CPU until unload_text_encoder
            home = device_of(self.transformer)
            if home.type != "cpu":
                self._transformer_home = home
                self.transformer.to("cpu")
        if self.text_encoder_path is not None:
            return load_gemma(self.text_encoder_path, self.text_encoder_path, self.dtype, self.text_encoder_bits)
        if self._single is None and (Path(self.source) / "text_encoder").is_dir():
            folder = Path(self.source)
            return load_gemma(folder / "text_encoder", folder / "tokenizer", self.dtype, self.text_encoder_bits)
        raise ModelLoadError(
            f"{getattr(self._single, 'path', self.source)}: no text encoder: pass the Gemma folder "
            "(model.text_encoder_path in the config, --text-encoder on the command line)"
        )

    official_module_name = staticmethod(ltx2_transformer.module_to_official)  # LoRA export: diffusers -> official
    diffusers_module_name = staticmethod(ltx2_transformer.module_to_diffusers)  # LoRA import: official -> diffusers
    lora_layouts = ("official",)
    has_video_vae = True  # LTX-2 files without a VAE are split releases (models.ltx25)
    VIDEO_DECODERS = ("conv",)
    video_decoder = "conv"

    def select_video_decoder(self, name: str) -> None:
        """Which decoder ``decode_video`` uses: LTX-2 / 2.3 have the convolutional one only."""
        if name not in self.VIDEO_DECODERS:
            raise ModelLoadError(
                f"video decoder {name!r}: {self.spec.version} checkpoints have only {list(self.VIDEO_DECODERS)}"
            )
        self.video_decoder = name

    def connector_modules(self) -> list[nn.Module]:
        """The text connectors (frozen; they run every training step, next to the transformer)."""
        return [self.connectors]

    def connectors_to(self, device: torch.device) -> None:
        """Move the connectors (training keeps them on the CPU once the context of every sample is cached)."""
        self.connectors.to(device)

    def feature_extractor_state(self) -> dict[str, torch.Tensor]:
        """The feature extractor's projections (cached text features depend on them; the connectors proper don't)."""
        prefixes = ("text_proj_in.", "video_text_proj_in.", "audio_text_proj_in.")
        return {k: v for k, v in self.connectors.state_dict().items() if k.startswith(prefixes)}

    def text_context_is_frozen(self) -> bool:
        """The connectors are frozen unless someone made them trainable: then the context must run every step."""
        return not any(p.requires_grad for p in self.connectors.parameters())

    def transformer_blocks(self) -> list[nn.Module]:
        return list(getattr(self.transformer, "module", self.transformer).transformer_blocks)

    def text_feature_dims(self) -> tuple[int, int]:
        """Widths of the cached (pre-connector) video and audio text features."""
        config = self.connectors.config
        if config.per_modality_projections:
            return config.video_hidden_dim, config.audio_hidden_dim
        return config.caption_channels, config.caption_channels

    def codec_modules(self, video: bool = True, audio: bool = True) -> list[nn.Module]:
        """The media codecs (loaded on first use): video VAE; audio VAE and vocoder."""
        return [*([self.video_vae] if video else []), *([self.audio_vae, self.vocoder] if audio else [])]

    def unload_codecs(self) -> None:
        """Free the VAEs and the vocoder (they reload lazily on next use)."""
        for name in ("video_vae", "audio_vae", "vocoder"):
            self.__dict__.pop(name, None)

    def official_file(self, transformer_sd: StateDict | None = None) -> tuple[StateDict, dict[str, str]]:
        """Every component in official single-file keys (optionally with a trained transformer) and the file's
        ``__metadata__`` (``config``, ``model_version``).

        From a single file the untouched components are copied as stored; from a diffusers folder they are converted.
        """
        transformer = getattr(self.transformer, "module", self.transformer)  # unwrap DDP
        transformer_sd = transformer_sd if transformer_sd is not None else transformer.state_dict()
        transformer_cfg = ltx2_transformer.official_config(dict(transformer.config))
        if self._single is not None:
            config = {**self._single.config, "transformer": {**self._single.config["transformer"], **transformer_cfg}}
            sd = self._single.read(("vae.", "audio_vae.", "vocoder.", *CONNECTOR_FILE_PREFIXES))
        else:
            modules = {
                "transformer": transformer,
                "connectors": self.connectors,
                "vae": self.video_vae,
                "audio_vae": self.audio_vae,
                "vocoder": self.vocoder,
            }
            config = official_config_from_diffusers({name: dict(m.config) for name, m in modules.items()})
            sd = {
                **ltx2_video_vae.to_official(self.video_vae.state_dict(), config["vae"]),
                **ltx2_audio.audio_vae_to_official(self.audio_vae.state_dict()),
                **ltx2_audio.vocoder_to_official(self.vocoder.state_dict(), config["vocoder"]),
                **ltx2_text.connectors_to_official(self.connectors.state_dict()),
            }
        sd.update(ltx2_transformer.to_official(transformer_sd))
        return sd, {"config": json.dumps(config), "model_version": f"{self.spec.version}.0"}

    def save_full_checkpoint(
        self, path: Path, dtype: torch.dtype = torch.bfloat16, transformer_sd: StateDict | None = None
    ) -> Path:
        """Write the official file of ``official_file`` with the current transformer: LTX-2 / LTX-2.3 a complete single
        file (what ltx-pipelines and ComfyUI load), LTX-2.5 the release's transformer file."""
        sd, metadata = self.official_file(transformer_sd)
        return write_single_file(sd, path, metadata, dtype)

    def unload_text_encoder(self) -> None:
        """Free the text encoder once prompts are cached (validation caches them at start); a transformer parked on
        the CPU while a quantized text encoder was on the GPU goes back."""
        self.__dict__.pop("_text_encoder", None)
        home = self.__dict__.pop("_transformer_home", None)
        if home is not None:
            self.transformer.to(home)

    @property
    def text_encoder_loaded(self) -> bool:
        return "_text_encoder" in self.__dict__

    # ---- the family-agnostic interface ---------------------------------------------------------------------------
    def encode_video(self, pixels: torch.Tensor, tiled: bool = False) -> torch.Tensor:
        vae = self.video_vae
        if tiled:
            vae.enable_tiling()
        else:
            vae.disable_tiling()
        return ltx2_video_vae.encode(vae, pixels.to(device_of(vae), self.dtype))

    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        return ltx2_video_vae.decode(self.video_vae, latents.to(device_of(self.video_vae), self.dtype))

    def encode_audio(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        mel = ltx2_audio.waveform_to_mel(waveform.float(), sample_rate)
        return ltx2_audio.encode_audio(self.audio_vae, mel.to(device_of(self.audio_vae), self.dtype))

    def decode_audio(self, latents: torch.Tensor) -> tuple[torch.Tensor, int]:
        mel = ltx2_audio.decode_audio(self.audio_vae, latents.to(device_of(self.audio_vae), self.dtype))
        return ltx2_audio.vocode(self.vocoder, mel)

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> TextFeatures:
        model, tokenizer = self._text_encoder
        tokens = tokenizer(
            prompts, padding="max_length", max_length=self.spec.text_max_length, truncation=True, return_tensors="pt"
        )
        device = device_of(model)  # the encoder may sit on a GPU (preprocessing a real 12B Gemma)
        out = model(
            input_ids=tokens.input_ids.to(device),
            attention_mask=tokens.attention_mask.to(device),
            output_hidden_states=True,
        )
        stack = torch.stack(out.hidden_states, dim=-1)  # [B, L, H, layers + 1]
        connectors_device = device_of(self.connectors)
        mask = tokens.attention_mask.to(connectors_device)
        video, audio = ltx2_text.text_features(self.connectors, stack.to(connectors_device, self.dtype), mask)
        return TextFeatures(video=video, audio=audio, mask=mask)

    def text_context(self, features: TextFeatures) -> TextContext:
        """The connectors run where they are (on the CPU once the training context is cached); the result comes back
        to the features' device."""
        home, here = features.video.device, device_of(self.connectors)
        video, audio, mask = ltx2_text.text_context(
            self.connectors,
            features.video.to(here),
            features.audio.to(here) if features.audio is not None else None,
            features.mask.to(here),
        )
        return TextContext(
            video=video.to(home), audio=audio.to(home) if audio is not None else None, mask=mask.to(home)
        )

    patchify_video = staticmethod(lat.patchify_video)
    unpatchify_video = staticmethod(lat.unpatchify_video)
    patchify_audio = staticmethod(lat.patchify_audio)
    unpatchify_audio = staticmethod(lat.unpatchify_audio)

    def video_positions(self, batch: int, frames: int, height: int, width: int, fps: float) -> torch.Tensor:
        return lat.video_positions(
            batch, frames, height, width, fps, self.spec.temporal_compression, self.spec.spatial_compression
        )

    def audio_positions(self, batch: int, steps: int) -> torch.Tensor:
        return lat.audio_positions(batch, steps, sample_rate=self.spec.audio_sample_rate)

    def forward(
        self,
        video: ModalityInput | None,
        audio: ModalityInput | None,
        context: TextContext,
        perturbation: Perturbation | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Velocities for the given modalities.

        diffusers' transformer always runs both streams. A missing modality becomes one clean placeholder token and
        cross-modal attention is switched off, which leaves the present modality's output exactly as ltx-core's
        single-modality forward (the cross-modal AdaLN terms only feed the skipped cross-attention).
        """
        if video is None and audio is None:
            raise ValueError("forward needs at least one of video or audio")
        isolate = video is None or audio is None or (perturbation is not None and perturbation.isolate_modalities)
        video_in = video or self._placeholder(audio, self.transformer.config.in_channels, 3)
        audio_in = audio or self._placeholder(video, self.transformer.config.audio_in_channels, 1)
        dtype = next(self.transformer.parameters()).dtype
        stg_blocks = perturbation.blocks if perturbation is not None else None
        stg_mask = perturbation.mask if perturbation is not None else None
        with _skip_only(self.transformer, perturbation):
            video_out, audio_out = self._run_transformer(
                video_in, audio_in, context, dtype, isolate, stg_blocks, stg_mask
            )
        return (video_out if video is not None else None), (audio_out if audio is not None else None)

    def _run_transformer(self, video_in, audio_in, context, dtype, isolate, stg_blocks, stg_mask, **extra):
        kwargs = {"use_cross_timestep": True, **extra}  # ltx-core feeds the other modality's sigma to the AV AdaLN
        return self.transformer(
            hidden_states=video_in.latent.to(dtype),
            audio_hidden_states=audio_in.latent.to(dtype),
            encoder_hidden_states=context.video.to(dtype),
            audio_encoder_hidden_states=(context.audio if context.audio is not None else context.video).to(dtype),
            timestep=video_in.timesteps * 1000,
            audio_timestep=audio_in.timesteps * 1000,
            sigma=video_in.sigma * 1000,
            audio_sigma=audio_in.sigma * 1000,
            encoder_attention_mask=context.mask,
            audio_encoder_attention_mask=context.mask,
            video_coords=video_in.positions,
            audio_coords=audio_in.positions,
            isolate_modalities=isolate,
            spatio_temporal_guidance_blocks=stg_blocks,
            perturbation_mask=stg_mask,
            return_dict=False,
            **kwargs,
        )

    @staticmethod
    def _placeholder(other: ModalityInput, channels: int, axes: int) -> ModalityInput:
        batch = other.latent.shape[0]
        zeros = other.latent.new_zeros
        return ModalityInput(
            latent=zeros(batch, 1, channels),
            timesteps=zeros(batch, 1),
            sigma=zeros(batch),
            positions=zeros(batch, axes, 1, 2),
        )
