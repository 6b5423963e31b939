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
import re
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
from safetensors import safe_open
from torch import nn

from ltx_trainer import logger
from ltx_trainer.models import latents as lat
from ltx_trainer.models.base import FamilySpec, ModalityInput, ModelPaths, Perturbation, TextContext, TextFeatures
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats import ltxv as fmt
from ltx_trainer.models.formats.common import StateDict, load_state_dict_strict
from ltx_trainer.models.sources import SingleFile, read_json, read_safetensors_dir

TEXT_MAX_LENGTH = 128
DECODE_TIMESTEP = 0.05
_BLOCK_INDEX = re.compile(r"^model\.diffusion_model\.transformer_blocks\.(\d+)\.")
_NOT_LTXV_MARKERS = ("audio_patchify_proj", "audio_adaln_single", "av_ca_", "embeddings_connector", "audio_proj_in")


class LTXVNoAudioError(ModelLoadError):
    """LTX-Video has no audio stream: audio encode/decode/forward calls are a configuration mistake."""


def _no_audio(what: str) -> LTXVNoAudioError:
    return LTXVNoAudioError(
        f"{what}: LTX-Video 0.9.x has no audio stream (no audio VAE, vocoder or audio transformer). Use an LTX-2 "
        "model for audio, or train without audio (no audio modality, with_audio: false)."
    )


# ---------------------------------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------------------------------
def _metadata_config(metadata: dict | None) -> dict:
    try:
        config = json.loads((metadata or {}).get("config", "{}"))
    except json.JSONDecodeError:
        return {}
    return config if isinstance(config, dict) else {}


def is_ltxv_single_file(metadata: dict | None, keys: Iterable[str]) -> bool:
    """An official LTX-Video file: a ``model.diffusion_model.patchify_proj`` transformer without LTX-2's audio stream,
    connectors or audio-video cross-attention (and no ``AVTransformer3DModel`` metadata)."""
    keys = list(keys)
    if fmt.TRANSFORMER_PREFIX + "patchify_proj.weight" not in keys:
        return False
    if any(k.startswith(fmt.TRANSFORMER_PREFIX) and any(m in k for m in _NOT_LTXV_MARKERS) for k in keys):
        return False
    if any(k.startswith(("audio_vae.", "vocoder.", "text_embedding_projection.")) for k in keys):
        return False
    transformer = _metadata_config(metadata).get("transformer", {})
    return not (isinstance(transformer, dict) and transformer.get("_class_name") == "AVTransformer3DModel")


def _num_blocks(keys: Iterable[str]) -> int:
    found = {int(m.group(1)) for k in keys if (m := _BLOCK_INDEX.match(k))}
    return max(found) + 1 if found else 0


def ltxv_version(metadata: dict | None, keys: Iterable[str]) -> str:
    """The release family from the file itself: ``"0.9.7"`` (13B, 48 blocks; 0.9.7 and 0.9.8 share the architecture),
    ``"0.9.5"`` (2B with the space-to-depth VAE: 0.9.5, 0.9.6, 2B 0.9.8), ``"0.9.1"`` or ``"0.9.0"``.

    Transformer-only files (no ``vae.*``) read as 0.9.5 when the metadata asks for causal RoPE positions, else 0.9.1.
    """
    keys = list(keys)
    config = _metadata_config(metadata)
    vae_version = fmt.vae_version_from_official(config if config.get("vae") else None, keys)
    if _num_blocks(keys) == 48 and vae_version in (None, "0.9.5"):
        return "0.9.7"
    if vae_version is not None:
        return vae_version
    causal = fmt.transformer_settings(config)["causal_temporal_positioning"] if config.get("transformer") else False
    return "0.9.5" if causal else "0.9.1"


def _shapes(path: Path, keys: Iterable[str]) -> dict[str, tuple[int, ...]]:
    with safe_open(path, "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in keys}


def official_configs(sf: SingleFile) -> tuple[dict, dict | None]:
    """The file's ``(transformer, vae)`` metadata sections (official naming); ``vae`` is None without ``vae.*`` keys.

    Files without metadata get the released config that matches their block count and widths.

    Raises:
        ModelLoadError: no metadata and an architecture that matches no released LTX-Video model.
    """
    config = sf.config if isinstance(sf.config, dict) else {}
    version = ltxv_version(sf.metadata, sf.keys)
    transformer = config.get("transformer")
    if not transformer:
        probe = [fmt.TRANSFORMER_PREFIX + "patchify_proj.weight"]
        width = _shapes(sf.path, probe)[probe[0]][0]
        name = {(28, 2048): "2b", (48, 4096): "13b"}.get((_num_blocks(sf.keys), width))
        if name is None:
            raise ModelLoadError(
                f"{sf.path}: no 'config' metadata, and the transformer ({_num_blocks(sf.keys)} blocks, width {width}) "
                "matches no released LTX-Video model (2B: 28 blocks x 2048, 13B: 48 x 4096). Re-export the file with "
                "its metadata config, or convert it to a diffusers folder."
            )
        transformer = dict(fmt.KNOWN_TRANSFORMER_CONFIGS[name])
        transformer["causal_temporal_positioning"] = version not in ("0.9.0", "0.9.1")
        logger.info("%s: no config metadata; using the released LTX-Video %s transformer config", sf.path, name)
    vae = config.get("vae")
    if not vae and any(k.startswith(fmt.VAE_PREFIX) for k in sf.keys):
        vae_version = fmt.vae_version_from_official(None, sf.keys)
        vae = fmt.KNOWN_VAE_CONFIGS[vae_version]
        probe = [fmt.VAE_PREFIX + "encoder.conv_out.conv.weight"]
        width = _shapes(sf.path, probe)[probe[0]][1] if probe[0] in sf.keys else None
        want = fmt.vae_diffusers_config(vae)["block_out_channels"][-1]
        if width != want:
            raise ModelLoadError(
                f"{sf.path}: no 'config' metadata, and the VAE (encoder width {width}) is not the released "
                f"{vae_version} VAE (width {want}). Re-export the file with its metadata config."
            )
        logger.info("%s: no config metadata; using the released LTX-Video %s VAE config", sf.path, vae_version)
    return transformer, (vae or None)


def _spec(version: str, transformer: dict, vae: dict | None) -> FamilySpec:
    """``transformer``/``vae``: diffusers configs."""
    vae = vae or {}
    return FamilySpec(
        family="ltxv",
        version=version,
        has_audio=False,
        latent_channels=int(vae.get("latent_channels", transformer.get("in_channels", 128))),
        temporal_compression=int(vae.get("temporal_compression_ratio") or 8),
        spatial_compression=int(vae.get("spatial_compression_ratio") or 32),
        text_max_length=TEXT_MAX_LENGTH,
        num_layers=int(transformer.get("num_layers", 28)),
    )


def ltxv_spec_from_single_file(sf: SingleFile) -> FamilySpec:
    transformer, vae = official_configs(sf)
    return _spec(
        ltxv_version(sf.metadata, sf.keys),
        fmt.transformer_diffusers_config(transformer),
        fmt.vae_diffusers_config(vae) if vae else None,
    )


def _diffusers_version(transformer: dict, vae: dict) -> str:
    if transformer.get("num_layers") == 48:
        return "0.9.7"
    if list(vae.get("down_block_types", [""]))[-1] == "LTXVideo095DownBlock3D":
        return "0.9.5"
    return "0.9.1" if vae.get("timestep_conditioning") else "0.9.0"


def _diffusers_vae_config(vae: dict) -> dict:
    """diffusers' own default for the compression ratios is wrong for 0.9.5+ VAEs (it counts 2x per block)."""
    if vae.get("spatial_compression_ratio") is None or vae.get("temporal_compression_ratio") is None:
        down = list(vae.get("downsample_type", ["conv"] * 4))
        scaling = list(vae.get("spatio_temporal_scaling", [True, True, True, False]))
        spatial = sum(s and d != "temporal" for s, d in zip(scaling, down, strict=False))
        temporal = sum(s and d != "spatial" for s, d in zip(scaling, down, strict=False))
        vae = {**vae, "spatial_compression_ratio": vae.get("patch_size", 4) * 2**spatial}
        vae["temporal_compression_ratio"] = vae.get("patch_size_t", 1) * 2**temporal
    return vae


def ltxv_spec_from_diffusers(path: Path) -> FamilySpec:
    transformer = read_json(Path(path) / "transformer" / "config.json")
    vae = _diffusers_vae_config(read_json(Path(path) / "vae" / "config.json"))
    return _spec(_diffusers_version(transformer, vae), transformer, vae)


# ---------------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------------
def build_module(
    cls: type[nn.Module],
    config: dict,
    sd: StateDict,
    source: str,
    component: str,
    file_key: Callable[[str], str] | None = None,
) -> nn.Module:
    """Instantiate ``cls`` on the meta device and fill it strictly from ``sd``.

    Args:
        file_key: diffusers key -> the key the file would hold it under; missing tensors are then also named that way.
    """
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    with init_empty_weights():
        module = cls.from_config(config)
    try:
        load_state_dict_strict(module, sd, source, component)
    except ModelLoadError as e:
        missing = sorted(set(module.state_dict()) - set(sd))
        if file_key is None or not missing:
            raise
        shown = ", ".join(file_key(k) for k in missing[:5])
        raise ModelLoadError(f"{e} In the file the missing tensor(s) are: {shown}.") from e
    return module.eval()


def _read_weights(folder: Path, dtype: torch.dtype | None) -> StateDict:
    """A component folder's weights: ``*.safetensors`` shards, else ``*.bin`` (loaded with ``weights_only=True``)."""
    if any(folder.glob("*.safetensors")):
        return read_safetensors_dir(folder, dtype)
    bins = sorted(folder.glob("*.bin"))
    if not bins:
        raise ModelLoadError(f"{folder}: no *.safetensors or *.bin weights in this folder")
    sd: StateDict = {}
    for file in bins:
        sd.update(torch.load(file, map_location="cpu", weights_only=True))
    return {k: v.to(dtype) if dtype is not None and v.is_floating_point() else v for k, v in sd.items()}


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("tokenizer.json", "spiece.model", "tokenizer_config.json"))


def _t5_folders(path: Path) -> tuple[Path, Path]:
    """A T5 folder (model + tokenizer files), or a root with ``text_encoder/`` and ``tokenizer/`` subfolders."""
    path = Path(path)
    model_dir = path / "text_encoder" if (path / "text_encoder" / "config.json").is_file() else path
    tokenizer_dir = next((d for d in (path / "tokenizer", model_dir, path) if _has_tokenizer(d)), None)
    if not (model_dir / "config.json").is_file() or tokenizer_dir is None:
        raise ModelLoadError(
            f"{path}: not a T5 text-encoder folder. Expected config.json + weights + tokenizer files (tokenizer.json "
            "or spiece.model), or text_encoder/ and tokenizer/ subfolders (e.g. google/t5-v1_1-xxl, or the "
            "text_encoder/ of a diffusers LTX-Video folder)."
        )
    return model_dir, tokenizer_dir


def load_t5(path: Path, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, object]:
    """T5 encoder + tokenizer from a local folder, strictly (a missing tensor is a ``ModelLoadError``).

    ``decoder.*``/``lm_head.*`` tensors of a full T5 checkpoint are ignored; the tied input embedding may be stored
    under either of its two names.
    """
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    model_dir, tokenizer_dir = _t5_folders(path)
    config = read_json(model_dir / "config.json")
    if config.get("model_type") not in ("t5", "umt5"):
        raise ModelLoadError(f"{model_dir}: model_type={config.get('model_type')!r}; LTX-Video needs a T5 encoder")
    with init_empty_weights():
        model = T5EncoderModel(T5Config.from_dict(config))
    sd = {k: v for k, v in _read_weights(model_dir, dtype).items() if not k.startswith(("decoder.", "lm_head."))}
    for target, source in (getattr(model, "_tied_weights_keys", None) or {}).items():
        if target not in sd and source in sd:
            sd[target] = sd[source]
        elif source not in sd and target in sd:
            sd[source] = sd[target]
    load_state_dict_strict(model, sd, str(model_dir), "T5 text encoder")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    tokenizer.padding_side = "right"
    return model.eval().requires_grad_(False), tokenizer


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
    def _from_diffusers_folder(self, name: str, cls: type[nn.Module], component: str) -> nn.Module:
        folder = Path(self.source) / name
        config = read_json(folder / "config.json")
        if cls is AutoencoderKLLTXVideo:
            config = _diffusers_vae_config(config)
        return build_module(cls, config, _read_weights(folder, self.dtype), str(folder), component)

    @cached_property
    def transformer(self) -> LTXVideoTransformer3DModel:
        if self._single is None:
            return self._from_diffusers_folder("transformer", LTXVideoTransformer3DModel, "transformer")
        official, _ = official_configs(self._single)
        sd = fmt.transformer_to_diffusers(self._single.read(fmt.TRANSFORMER_PREFIX, self.dtype))
        config = fmt.transformer_diffusers_config(official)
        return build_module(
            LTXVideoTransformer3DModel,
            config,
            sd,
            str(self._single.path),
            "transformer",
            file_key=lambda k: fmt.TRANSFORMER_PREFIX + fmt.module_to_official(k),
        )

    @cached_property
    def vae(self) -> AutoencoderKLLTXVideo:
        if self._single is None:
            return self._from_diffusers_folder("vae", AutoencoderKLLTXVideo, "video VAE").requires_grad_(False)
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
        return module.requires_grad_(False)

    @property
    def video_vae(self) -> AutoencoderKLLTXVideo:
        """The name the LTX-2 family uses."""
        return self.vae

    @cached_property
    def _text(self) -> tuple[nn.Module, object]:
        if self.text_encoder_path is not None:
            return load_t5(self.text_encoder_path, self.dtype)
        if self._single is None and (Path(self.source) / "text_encoder").is_dir():
            return load_t5(Path(self.source), self.dtype)
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

    def connectors_to(self, device: torch.device) -> None:
        """LTXV has no text connectors (T5 features feed the transformer directly)."""

    def save_full_checkpoint(
        self, path: Path, dtype: torch.dtype = torch.bfloat16, transformer_sd: StateDict | None = None
    ) -> Path:
        """Write an official single file (transformer + VAE + metadata config) with the current transformer."""
        from ltx_trainer.training.checkpoints import atomic_save_safetensors

        transformer = getattr(self.transformer, "module", self.transformer)  # unwrap DDP
        sd = {
            **fmt.vae_to_official(self.vae.state_dict(), dict(self.vae.config)),
            **fmt.transformer_to_official(transformer_sd if transformer_sd is not None else transformer.state_dict()),
        }
        config = {
            "transformer": fmt.transformer_official_config(dict(transformer.config), self.causal_fix),
            "vae": fmt.vae_official_config(dict(self.vae.config)),
        }
        tensors = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
        return atomic_save_safetensors(tensors, Path(path), {"config": json.dumps(config)})

    def unload_text_encoder(self) -> None:
        """Free T5 once prompts are cached."""
        self.__dict__.pop("_text", None)

    # ---- video ----------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_video(
        self, pixels: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``[B, 3, F, H, W]`` in [-1, 1] (F = 8k+1; H, W multiples of 32) -> normalised latents ``[B, C, F', H', W']``.

        Args:
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
        posterior = vae.encode(pixels.to(device=param.device, dtype=param.dtype)).latent_dist
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


def load_ltxv(
    paths: ModelPaths | str | Path,
    text_encoder: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
) -> LTXVModel:
    """An LTX-Video model from an official single file (+ a T5 folder) or a diffusers folder (``model_index.json``).

    Nothing is read but headers and configs until a component is used.

    Raises:
        ModelLoadError: the path is neither layout or not LTX-Video (LTX-2 files are refused here).
    """
    if isinstance(paths, ModelPaths):
        root, text_encoder = paths.root, text_encoder or paths.text_encoder
    else:
        root = paths
    root = Path(root).expanduser()
    text_path = Path(text_encoder).expanduser() if text_encoder else None
    if text_path is not None and not text_path.exists():
        raise ModelLoadError(f"{text_path}: T5 text encoder folder not found")
    if root.is_file():
        sf = SingleFile(root)
        if not is_ltxv_single_file(sf.metadata, sf.keys):
            raise ModelLoadError(
                f"{root}: not an LTX-Video 0.9.x checkpoint (no model.diffusion_model.patchify_proj, or an LTX-2 "
                "file with an audio stream). LTX-2 files load through ltx_trainer.models.families.load_model."
            )
        return LTXVModel(ltxv_spec_from_single_file(sf), sf, text_path, dtype)
    index = root / "model_index.json"
    if not index.is_file():
        raise ModelLoadError(
            f"{root}: neither an LTX-Video single file nor a diffusers folder (no model_index.json in it)"
        )
    pipeline = read_json(index).get("_class_name", "")
    if not pipeline.startswith("LTX") or pipeline.startswith("LTX2"):
        raise ModelLoadError(f"{index}: pipeline {pipeline!r} is not an LTX-Video 0.9.x pipeline (LTXPipeline, ...)")
    return LTXVModel(ltxv_spec_from_diffusers(root), root, text_path, dtype)


# ---------------------------------------------------------------------------------------------------------------------
# Tiny model
# ---------------------------------------------------------------------------------------------------------------------
# A 0.9.5+-shaped LTXV at the smallest widths the architecture accepts: 128 latent channels, 8x temporal and 32x
# spatial compression (patch 4 x four 2x space-to-depth stages), timestep-conditioned decoder.
TINY_TRANSFORMER = {
    "in_channels": 128,
    "out_channels": 128,
    "num_attention_heads": 4,
    "attention_head_dim": 8,
    "cross_attention_dim": 32,
    "num_layers": 2,
    "caption_channels": 32,
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
    "attention_bias": True,
    "activation_fn": "gelu-approximate",
}
TINY_VAE = {
    "latent_channels": 128,
    "block_out_channels": (8, 16, 32, 64, 128),
    "down_block_types": ("LTXVideo095DownBlock3D",) * 4,
    "decoder_block_out_channels": (16, 32, 64),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_layers_per_block": (1, 1, 1, 1),
    "spatio_temporal_scaling": (True,) * 4,
    "decoder_spatio_temporal_scaling": (True,) * 3,
    "decoder_inject_noise": (False,) * 4,
    "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    "upsample_residual": (True,) * 3,
    "upsample_factor": (2,) * 3,
    "timestep_conditioning": True,
    "patch_size": 4,
    "spatial_compression_ratio": 32,
    "temporal_compression_ratio": 8,
}
TINY_T5 = {
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 64,
    "num_layers": 2,
    "num_heads": 4,
    "feed_forward_proj": "gated-gelu",
    "relative_attention_num_buckets": 8,
}


def write_tiny_t5(out_dir: Path, seed: int = 0) -> Path:
    """A tiny T5 encoder folder with a Unigram tokenizer trained here with ``tokenizers`` (pad 0, eos 1, unk 2)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    from ltx_trainer.models.tiny import TINY_CORPUS

    out_dir.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=120, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>")
    tok.train_from_iterator([s.lower() for s in TINY_CORPUS] * 4, trainer)
    vocab = [(piece, float(score)) for piece, score in json.loads(tok.to_str())["model"]["vocab"]]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=TEXT_MAX_LENGTH)
    tokenizer.save_pretrained(out_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = T5Config(vocab_size=len(vocab), pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **TINY_T5)
        T5EncoderModel(config).eval().save_pretrained(out_dir)
    return out_dir


def build_tiny_ltxv(seed: int = 0) -> dict[str, nn.Module]:
    """Random tiny diffusers ``transformer`` and ``vae`` with bf16-representable weights (so the bf16 single file and
    the fp32 diffusers folder hold the same numbers)."""
    from ltx_trainer.models.tiny import randomize_

    modules = {
        "transformer": randomize_(LTXVideoTransformer3DModel(**TINY_TRANSFORMER), seed),
        "vae": randomize_(AutoencoderKLLTXVideo(**TINY_VAE), seed + 1),
    }
    with torch.no_grad():
        modules["vae"].decoder.timestep_scale_multiplier.fill_(1000.0)
        for module in modules.values():
            for t in [*module.parameters(), *module.buffers()]:
                if t.is_floating_point():
                    t.copy_(t.to(torch.bfloat16).float())
    return modules


def tiny_official_config(transformer: nn.Module, vae: nn.Module) -> dict:
    """The metadata ``config`` of the tiny single file (official naming)."""
    return {
        "transformer": fmt.transformer_official_config(dict(transformer.config), causal_temporal_positioning=True),
        "vae": fmt.vae_official_config(dict(vae.config)),
    }


def write_tiny_ltxv(out_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Write a tiny 0.9.5+-style LTX-Video in every format a user has.

    Returns:
        ``{"single_file": ltxv-tiny.safetensors (official keys, bf16, metadata config), "diffusers": folder
        (model_index.json; loads with diffusers.LTXPipeline.from_pretrained), "t5": T5 encoder + tokenizer folder}``.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, LTXPipeline
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, T5EncoderModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t5_dir = write_tiny_t5(out_dir / "t5", seed)
    modules = build_tiny_ltxv(seed)
    sd = {
        **fmt.transformer_to_official(modules["transformer"].state_dict()),
        **fmt.vae_to_official(modules["vae"].state_dict(), dict(modules["vae"].config)),
    }
    single = out_dir / "ltxv-tiny.safetensors"
    tensors = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
    config = tiny_official_config(modules["transformer"], modules["vae"])
    save_file(tensors, str(single), metadata={"config": json.dumps(config)})
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )
    pipe = LTXPipeline(
        scheduler=scheduler,
        vae=modules["vae"],
        text_encoder=T5EncoderModel.from_pretrained(t5_dir, local_files_only=True),
        tokenizer=AutoTokenizer.from_pretrained(t5_dir, local_files_only=True),
        transformer=modules["transformer"],
    )
    pipe.save_pretrained(out_dir / "diffusers")
    return {"single_file": single, "diffusers": out_dir / "diffusers", "t5": t5_dir}
