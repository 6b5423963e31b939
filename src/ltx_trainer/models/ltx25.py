"""LTX-2.5 on diffusers modules: the split release (``models.ltx25_files``) behind the family contract.

LTX-2.5 is the LTX-2 family (FamilySpec ``family="ltx2"``, ``version="2.5"``): the same latents, positions, audio VAE
and vocoder, and the 2.3 transformer with four switches (``formats.ltx2_transformer.LTX25_SWITCHES``). What differs
here, all checked against ltx-core 1.2.0's numbers (tests/test_ltx25.py):

- components come from separate files: transformer + connectors, the packed text encoder (Gemma-4 unified, text
  projection, tokenizer), video VAE (diffusion or convolutional decoder), audio VAE + vocoder;
- text: Gemma-4's inner model, BOS-first left-padded prompts (``formats.ltx25_text``), feature extractor V2 from the
  packed file, connectors that may lack feed-forward biases (``formats.ltx2_text.build_connectors``);
- transformer forward: the keyframe embedding on ``ModalityInput.keyframes`` (the first latent frame), and the
  audio-video cross-attention modulated by each modality's own per-token timesteps with gates from the other
  modality's sigma (``formats.ltx2_transformer.gates_from_other_sigma``);
- video: the encoder is the 2.3 one; decoding uses the convolutional decoder when its file is there (the default),
  the diffusion decoder (``formats.ltx25_video_vae``) when selected or when it is the only one.
"""

import json
from functools import cached_property
from pathlib import Path

import torch
from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, LTX2VideoDiffusionDecoderModel
from torch import nn

from ltx_trainer.models.base import FamilySpec, TextFeatures
from ltx_trainer.models.devices import device_of
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats import (
    ltx2_audio,
    ltx2_text,
    ltx2_transformer,
    ltx2_video_vae,
    ltx25_text,
    ltx25_video_vae,
)
from ltx_trainer.models.formats.common import StateDict
from ltx_trainer.models.loading import build_module
from ltx_trainer.models.ltx2 import CONNECTOR_FILE_PREFIXES, LTX2Model, ltx2_version, vocoder_class
from ltx_trainer.models.ltx25_files import SplitRelease, find_release, is_split_transformer, kind
from ltx_trainer.models.sources import SingleFile, read_safetensors_dir

__all__ = ["LTX25Model", "detect"]


def detect(source: SingleFile | Path, pipeline: str | None = None) -> FamilySpec | None:
    """The spec of a split LTX-2.5 transformer file; None for anything else.

    Raises:
        ModelLoadError: the packed text encoder or a VAE file given as the model, or a split file of another version.
    """
    if not isinstance(source, SingleFile):
        return None
    what = kind(source)
    if what == "text_encoder":
        raise ModelLoadError(
            f"{source.path}: this is LTX-2.5's packed text encoder (Gemma-4 + text projection), not a model; pass the "
            "transformer file (diffusion_models/ltx-2.5-*-transformer-*.safetensors) or the release folder as the "
            "model, and this file as model.text_encoder_path (it is found automatically next to the transformer)"
        )
    if what in ("video_vae", "video_vae_conv", "audio_vae"):
        raise ModelLoadError(
            f"{source.path}: an LTX-2.5 {what.replace('_', ' ')} file, not a model; pass the transformer file "
            "(diffusion_models/ltx-2.5-*-transformer-*.safetensors) or the release folder"
        )
    if not is_split_transformer(source):
        return None
    version = ltx2_version(source.metadata, source.config, source.keys)
    if version != "2.5":
        raise ModelLoadError(
            f"{source.path}: a transformer-only LTX-2 file (version {version}); split files are loaded for LTX-2.5 "
            f"only. Use the {version} single-file checkpoint (transformer, VAEs and vocoder in one file)."
        )
    section = source.config.get("transformer", {})
    return FamilySpec(family="ltx2", version="2.5", has_audio=True, num_layers=section.get("num_layers", 48))


class LTX25Model(LTX2Model):
    """An LTX-2.5 split release behind the family-agnostic interface of ``models/base.py``.

    Args:
        spec: what the transformer is (``detect``).
        source: the transformer file, or an already collected ``SplitRelease``.
        text_encoder_path: the packed text-encoder file or a Gemma-4 folder (found next to the transformer if None).
        dtype: compute/storage dtype for the loaded modules.
        video_vae_path / audio_vae_path: explicit VAE files (found in the release folder if None).
    """

    VIDEO_DECODERS = ("conv", "diffusion")

    def __init__(
        self,
        spec: FamilySpec,
        source: SingleFile | SplitRelease,
        text_encoder_path: Path | None = None,
        dtype: torch.dtype = torch.float32,
        video_vae_path: Path | None = None,
        audio_vae_path: Path | None = None,
    ):
        release = source
        if not isinstance(source, SplitRelease):
            release = find_release(source.path, text_encoder_path, video_vae_path, audio_vae_path)
        super().__init__(spec, release, release.text_encoder, dtype)
        self.release = release
        self.video_decoder = "conv" if release.video_vae_conv is not None else "diffusion"

    # ---- component loading -------------------------------------------------------------------------------------
    @property
    def _single(self) -> SingleFile:
        return self.release.transformer

    def _file(self, name: str) -> SingleFile:
        sf = getattr(self.release, name)
        if sf is None:
            what = {"video_vae": "video VAE", "audio_vae": "audio VAE"}[name]
            raise ModelLoadError(
                f"{self.release.path}: no LTX-2.5 {what} file found in {self.release.path.parent.parent} "
                f"(vae/ltx-2.5-{name.replace('_', '-')}-*.safetensors); download it or set model.{name}_path"
            )
        return sf

    @property
    def has_video_vae(self) -> bool:
        return self.release.video_vae is not None or self.release.video_vae_conv is not None

    def select_video_decoder(self, name: str) -> None:
        """``"conv"`` (the default when the release has ``vae/ltx-2.5-video-vae-conv-*``) or ``"diffusion"``."""
        available = {"conv": self.release.video_vae_conv, "diffusion": self.release.video_vae}
        if name not in available:
            raise ModelLoadError(f"video decoder {name!r}: LTX-2.5 has 'conv' and 'diffusion'")
        if available[name] is None:
            raise ModelLoadError(
                f"{self.release.path}: the {name} video decoder's file is not in the release "
                f"(vae/ltx-2.5-video-vae{'-conv' if name == 'conv' else ''}-*.safetensors); download it"
            )
        self.video_decoder = name

    @cached_property
    def video_vae(self) -> nn.Module:
        """The encoder (and the convolutional decoder when its file is there; the encoders of both files agree)."""
        conv = self.release.video_vae_conv
        if conv is not None:
            official = conv.config.get("vae", {})
            sd = ltx2_video_vae.to_diffusers(conv.read("vae.", self.dtype), official)
            config = ltx2_video_vae.diffusers_config(official)
            return build_module(AutoencoderKLLTX2Video, config, sd, str(conv.path), "video VAE")
        sf = self._file("video_vae")
        flat = ltx25_video_vae.encoder_flat_config(sf.config.get("vae", {}))
        sd = ltx2_video_vae.to_diffusers(sf.read(("vae.encoder.", "vae.per_channel_statistics."), self.dtype), flat)
        config = ltx2_video_vae.diffusers_config(flat)
        return build_module(_encoder_only, config, sd, str(sf.path), "video encoder")

    @cached_property
    def diffusion_decoder(self) -> LTX2VideoDiffusionDecoderModel:
        sf = self._file("video_vae")
        official = sf.config.get("vae", {})
        sd = ltx25_video_vae.decoder_to_diffusers(sf.read("vae.", self.dtype))
        config = ltx25_video_vae.decoder_diffusers_config(official)
        module = build_module(LTX2VideoDiffusionDecoderModel, config, sd, str(sf.path), "diffusion video decoder")
        ltx25_video_vae.use_neighborhood_sdpa(module)
        return module

    @cached_property
    def audio_vae(self) -> AutoencoderKLLTX2Audio:
        sf = self._file("audio_vae")
        official = _section(sf, "audio_vae")
        sd = ltx2_audio.audio_vae_to_diffusers(sf.read("audio_vae.", self.dtype))
        config = ltx2_audio.audio_vae_diffusers_config(official)
        return build_module(AutoencoderKLLTX2Audio, config, sd, str(sf.path), "audio VAE")

    @cached_property
    def vocoder(self) -> nn.Module:
        sf = self._file("audio_vae")
        official = _section(sf, "vocoder")
        config = ltx2_audio.vocoder_diffusers_config(official)
        sd = ltx2_audio.vocoder_to_diffusers(sf.read("vocoder.", self.dtype), official)
        return build_module(vocoder_class(official), config, sd, str(sf.path), "vocoder")

    @cached_property
    def connectors(self) -> nn.Module:
        """The transformer file's connectors and the packed text encoder's projection (streamed from both files)."""
        refs = {
            **self._single.refs(CONNECTOR_FILE_PREFIXES[1:]),
            **self.release.projection.refs(ltx25_text.PROJECTION_PREFIX),
        }
        gemma = ltx25_text.gemma_config_of(self.release.projection.metadata, str(self.release.projection.path))
        config = ltx2_text.connectors_diffusers_config(_section(self._single, "transformer"), refs, gemma)
        return build_module(
            ltx2_text.build_connectors,
            config,
            ltx2_text.connectors_to_diffusers(refs),
            f"{self._single.path} + {self.release.projection.path}",
            "text connectors",
            **self._streaming(ltx2_text.LTX2TextConnectors),
        )

    @cached_property
    def _text_encoder(self) -> tuple[nn.Module, object]:
        if self.text_encoder_bits == 4:
            raise ModelLoadError(
                "acceleration.load_text_encoder_in_4bit: not supported for LTX-2.5's Gemma-4 yet; use the 8-bit option"
            )
        gemma_dir, packed = self.release.gemma_dir, self.release.projection
        if gemma_dir is not None:
            config = json.loads((gemma_dir / "config.json").read_text())
            model = ltx25_text.load_gemma(read_safetensors_dir(gemma_dir), config, str(gemma_dir), self.dtype)
            import transformers

            tokenizer = transformers.AutoTokenizer.from_pretrained(gemma_dir, local_files_only=True)
            tokenizer.padding_side = "left"
        else:
            config = ltx25_text.gemma_config_of(packed.metadata, str(packed.path))
            tensors = packed.read(ltx25_text.GEMMA_PREFIXES, self.dtype)
            model = ltx25_text.load_gemma(ltx25_text.to_hf(tensors), config, str(packed.path), self.dtype)
            files = ltx25_text.assets(packed.read((ltx25_text.TOKENIZER_KEY, ltx25_text.ASSET_PREFIX)))
            ltx25_text.check_assets(files, str(packed.path))
            tokenizer = ltx25_text.load_tokenizer(files)
        if self.text_encoder_bits == 8:
            from ltx_trainer.models.text_encoders import quantize_int8_weight_only_

            quantize_int8_weight_only_(model)
        return model, tokenizer

    # ---- media and text ------------------------------------------------------------------------------------------
    def codec_modules(self, video: bool = True, audio: bool = True) -> list[nn.Module]:
        """The video VAE (and the diffusion decoder when it decodes); audio VAE and vocoder."""
        videos = [self.video_vae] if video else []
        if video and self.video_decoder == "diffusion":
            videos.append(self.diffusion_decoder)
        return [*videos, *([self.audio_vae, self.vocoder] if audio else [])]

    def unload_codecs(self) -> None:
        super().unload_codecs()
        self.__dict__.pop("diffusion_decoder", None)

    def decode_video(self, latents: torch.Tensor) -> torch.Tensor:
        """Through the selected decoder; the diffusion decoder draws its initial noise from the global RNG (callers
        seed it, as for the convolutional decoder's noise)."""
        if self.video_decoder == "conv":
            return super().decode_video(latents)
        decoder = self.diffusion_decoder
        return ltx25_video_vae.decode(decoder, latents.to(device_of(decoder), self.dtype))

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> TextFeatures:
        model, tokenizer = self._text_encoder
        ids, mask = ltx25_text.tokenize(tokenizer, prompts, self.spec.text_max_length)
        device = device_of(model)
        out = model.model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
        stack = torch.stack(out.hidden_states, dim=-1)  # [B, L, H, layers + 1]
        here = device_of(self.connectors)
        mask = mask.to(here)
        video, audio = ltx2_text.text_features(self.connectors, stack.to(here, self.dtype), mask)
        return TextFeatures(video=video, audio=audio, mask=mask)

    def _run_transformer(self, video_in, audio_in, context, dtype, isolate, stg_blocks, stg_mask, **extra):
        marker = None if video_in.keyframes is None else video_in.keyframes.to(dtype)[..., None]
        with ltx2_transformer.gates_from_other_sigma(self.transformer, video_in.sigma * 1000, audio_in.sigma * 1000):
            return super()._run_transformer(
                video_in,
                audio_in,
                context,
                dtype,
                isolate,
                stg_blocks,
                stg_mask,
                use_cross_timestep=False,
                video_keyframes_mask=marker,
                **extra,
            )

    # ---- files ---------------------------------------------------------------------------------------------------
    def official_file(self, transformer_sd: StateDict | None = None) -> tuple[StateDict, dict[str, str]]:
        """The transformer file of the release in the official split layout (transformer + connectors as stored, with
        the given weights) and its ``__metadata__``; the release's other files stay as they are."""
        transformer = getattr(self.transformer, "module", self.transformer)
        transformer_sd = transformer_sd if transformer_sd is not None else transformer.state_dict()
        section = {
            **_section(self._single, "transformer"),
            **ltx2_transformer.official_config(dict(transformer.config)),
        }
        sd = self._single.read(CONNECTOR_FILE_PREFIXES[1:])
        sd.update(ltx2_transformer.to_official(transformer_sd))
        version = str(self._single.metadata.get("model_version", "2.5.0"))
        metadata = {"config": json.dumps({"transformer": section}), "model_version": version}
        if "gemma_source_checkpoint" in self._single.metadata:
            metadata["gemma_source_checkpoint"] = self._single.metadata["gemma_source_checkpoint"]
        return sd, metadata


def _encoder_only(**config: object) -> nn.Module:
    return ltx25_video_vae.LTX2VideoEncoderOnly(**config)


def _section(sf: SingleFile, name: str) -> dict:
    section = sf.config.get(name)
    if section is None:
        raise ModelLoadError(f"{sf.path}: the metadata 'config' has no '{name}' section; re-download the file")
    return section
