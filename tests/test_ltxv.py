"""LTX-Video 0.9.x: the single-file and diffusers layouts, their converters, and the model interface on a tiny model."""

import json
from pathlib import Path

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKLLTXVideo, LTXConditionPipeline, LTXPipeline, LTXVideoTransformer3DModel
from diffusers.loaders.single_file_utils import (
    convert_ltx_transformer_checkpoint_to_diffusers,
    convert_ltx_vae_checkpoint_to_diffusers,
)
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ltx_trainer.models.base import ModalityInput, Perturbation, TextContext
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.families import load_model
from ltx_trainer.models.formats import ltxv as fmt
from ltx_trainer.models.ltxv import LTXVModel, LTXVNoAudioError
from ltx_trainer.models.ltxv_loading import is_ltxv_single_file, ltxv_version
from ltx_trainer.models.tiny import write_tiny_ltxv

FPS = 25.0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tiny_ltxv(tmp_path_factory.mktemp("tiny-ltxv"))


@pytest.fixture(scope="module")
def models(tiny: dict[str, Path]) -> dict[str, LTXVModel]:
    return {
        "single_file": load_model(tiny["single_file"], tiny["t5"]),
        "diffusers": load_model(tiny["diffusers"]),
    }


def _inputs(model: LTXVModel, seed: int = 0, frames: int = 2, size: int = 2) -> tuple[ModalityInput, TextContext]:
    g = torch.Generator().manual_seed(seed)
    n = frames * size * size
    video = ModalityInput(
        latent=torch.randn(1, n, 128, generator=g),
        timesteps=torch.rand(1, n, generator=g),
        sigma=torch.tensor([0.6]),
        positions=model.video_positions(1, frames, size, size, FPS),
    )
    context = model.text_context(model.encode_text(["A cat walks on the beach at sunset"]))
    return video, context


def _rewrite(src: Path, dst: Path, edit) -> Path:
    with safe_open(src, "pt") as f:
        metadata = f.metadata()
    sd = load_file(src)
    edit(sd)
    save_file(sd, str(dst), metadata=metadata)
    return dst


def test_tiny_ltxv_is_written_in_every_format(tiny: dict[str, Path]) -> None:
    with safe_open(tiny["single_file"], "pt") as f:
        keys, metadata = list(f.keys()), f.metadata()
    config = json.loads(metadata["config"])
    assert set(config) == {"transformer", "vae"}
    assert config["transformer"]["_class_name"] == "Transformer3DModel"
    assert config["vae"]["_class_name"] == "CausalVideoAutoencoder"
    assert all(k.startswith(("model.diffusion_model.", "vae.")) for k in keys)
    assert is_ltxv_single_file(metadata, keys)
    assert ltxv_version(metadata, keys) == "0.9.5"
    assert json.loads((tiny["diffusers"] / "model_index.json").read_text())["_class_name"] == "LTXPipeline"
    for sub in ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tiny["diffusers"] / sub).is_dir(), sub
    assert (tiny["t5"] / "tokenizer.json").is_file()


def test_single_file_and_diffusers_folder_give_the_same_model(models: dict[str, LTXVModel]) -> None:
    single, folder = models["single_file"], models["diffusers"]
    assert single.spec == folder.spec
    assert single.spec.family == "ltxv" and not single.spec.has_audio and single.spec.text_max_length == 128
    assert single.causal_fix and folder.causal_fix
    video, context = _inputs(single)
    out_single, audio = single.forward(video, None, context)
    out_folder, _ = folder.forward(video, None, context)
    assert audio is None
    assert out_single.shape == (1, 8, 128)
    assert (out_single - out_folder).abs().max().item() <= 1e-6
    assert out_single.abs().mean().item() > 1e-3


def test_forward_matches_ltx_condition_pipeline_convention(tiny: dict[str, Path], models: dict[str, LTXVModel]) -> None:
    """Positions: pixel coords with the causal fix, time / fps (LTXConditionPipeline, = the original ltx_video code)."""
    model = models["diffusers"]
    frames, size = 3, 2
    video, context = _inputs(model, seed=1, frames=frames, size=size)
    ids = LTXConditionPipeline._prepare_video_ids(1, frames, size, size)
    coords = LTXConditionPipeline._scale_video_ids(ids, scale_factor=32, scale_factor_t=8, frame_index=0).float()
    coords[:, 0] = coords[:, 0] * (1.0 / FPS)
    assert (video.positions[..., 0] - coords).abs().max().item() <= 1e-6  # x / fps vs x * (1 / fps) rounding

    transformer = LTXVideoTransformer3DModel.from_pretrained(tiny["diffusers"] / "transformer").eval()
    with torch.no_grad():
        ref = transformer(
            hidden_states=video.latent,
            encoder_hidden_states=context.video,
            timestep=video.timesteps * 1000,
            encoder_attention_mask=context.mask,
            video_coords=coords,
            return_dict=False,
        )[0]
        ours, _ = model.forward(video, None, context)
    assert (ours - ref).abs().max().item() <= 1e-6


def test_diffusers_folder_runs_in_ltx_pipeline(tiny: dict[str, Path]) -> None:
    pipe = LTXPipeline.from_pretrained(tiny["diffusers"], local_files_only=True)
    out = pipe(
        prompt="a cat walks on the beach",
        height=64,
        width=64,
        num_frames=9,
        num_inference_steps=2,
        max_sequence_length=16,
        output_type="pt",
        generator=torch.Generator().manual_seed(0),
    ).frames
    assert out.shape == (1, 9, 3, 64, 64)
    assert torch.isfinite(out).all()


def test_video_and_text_encoding_shapes(models: dict[str, LTXVModel]) -> None:
    single, folder = models["single_file"], models["diffusers"]
    pixels = torch.rand(1, 3, 9, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    latents = single.encode_video(pixels)
    assert latents.shape == (1, 128, 2, 2, 2)
    assert torch.equal(latents, folder.encode_video(pixels))
    vae = single.vae
    raw = vae.encode(pixels).latent_dist.mode()
    expected = LTXPipeline._normalize_latents(raw, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
    assert (latents - expected).abs().max().item() <= 1e-6
    decoded = single.decode_video(latents)
    assert decoded.shape == (1, 3, 9, 64, 64)
    assert torch.isfinite(decoded).all()
    with pytest.raises(ValueError, match="8k\\+1"):
        single.encode_video(torch.zeros(1, 3, 8, 64, 64))

    features = single.encode_text(["A cat walks on the beach at sunset", "rain"])
    assert features.video.shape == (2, 128, 32)
    assert features.mask.shape == (2, 128)
    assert features.audio is None
    assert features.mask[0].sum() > features.mask[1].sum() > 0
    assert torch.equal(features.video, folder.encode_text(["A cat walks on the beach at sunset", "rain"]).video)
    context = single.text_context(features)
    assert context.video is features.video and context.audio is None


def test_ltxv_has_no_audio(models: dict[str, LTXVModel]) -> None:
    model = models["single_file"]
    with pytest.raises(LTXVNoAudioError, match="no audio"):
        model.encode_audio(torch.zeros(1, 2, 1600), 16000)
    with pytest.raises(LTXVNoAudioError, match="no audio"):
        model.decode_audio(torch.zeros(1, 8, 4, 16))
    video, context = _inputs(model)
    with pytest.raises(LTXVNoAudioError):
        model.forward(video, video, context)


def test_perturbation_skips_self_attention_per_sample(models: dict[str, LTXVModel]) -> None:
    model = models["single_file"]
    video, context = _inputs(model)
    base, _ = model.forward(video, None, context)
    kept, _ = model.forward(video, None, context, Perturbation(blocks=[0], mask=torch.ones(1)))
    skipped, _ = model.forward(video, None, context, Perturbation(blocks=[0], mask=torch.zeros(1)))
    again, _ = model.forward(video, None, context)
    assert torch.equal(base, kept) and torch.equal(base, again)
    assert (base - skipped).abs().max().item() > 1e-4


def test_missing_tensor_is_named(tiny: dict[str, Path], tmp_path: Path) -> None:
    key = "model.diffusion_model.transformer_blocks.1.attn1.to_q.weight"
    broken = _rewrite(tiny["single_file"], tmp_path / "missing.safetensors", lambda sd: sd.pop(key))
    model = load_model(broken, tiny["t5"])
    with pytest.raises(ModelLoadError, match=r"transformer_blocks\.1\.attn1\.to_q\.weight") as err:
        _ = model.transformer
    assert "missing" in str(err.value) and key in str(err.value)

    key = "model.diffusion_model.adaln_single.linear.weight"  # diffusers: time_embed; the error gives both names
    renamed = _rewrite(
        tiny["single_file"],
        tmp_path / "renamed.safetensors",
        lambda sd: sd.update({"model.diffusion_model.adaln.linear.weight": sd.pop(key)}),
    )
    with pytest.raises(ModelLoadError, match=r"time_embed\.linear\.weight") as err:
        _ = load_model(renamed, tiny["t5"]).transformer
    assert key in str(err.value) and "unexpected" in str(err.value)

    vae_key = "vae.decoder.last_scale_shift_table"
    broken_vae = _rewrite(tiny["single_file"], tmp_path / "missing-vae.safetensors", lambda sd: sd.pop(vae_key))
    with pytest.raises(ModelLoadError, match=vae_key):
        _ = load_model(broken_vae, tiny["t5"]).vae


def test_wrongly_shaped_tensor_fails(tiny: dict[str, Path], tmp_path: Path) -> None:
    key = "model.diffusion_model.proj_out.weight"

    def shrink(sd: dict[str, torch.Tensor]) -> None:
        sd[key] = sd[key][:-1]

    model = load_model(_rewrite(tiny["single_file"], tmp_path / "shape.safetensors", shrink), tiny["t5"])
    with pytest.raises(ModelLoadError, match=r"wrongly shaped.*proj_out\.weight"):
        _ = model.transformer


def test_single_file_diffusers_round_trip_is_exact(tiny: dict[str, Path]) -> None:
    official = load_file(tiny["single_file"])
    config = json.loads(safe_open(tiny["single_file"], "pt").metadata()["config"])
    transformer = fmt.transformer_to_diffusers(official)
    vae = fmt.vae_to_diffusers(official, config)
    assert (
        transformer.keys()
        == load_file(tiny["diffusers"] / "transformer" / "diffusion_pytorch_model.safetensors").keys()
    )
    assert vae.keys() == load_file(tiny["diffusers"] / "vae" / "diffusion_pytorch_model.safetensors").keys()
    assert vae.keys() == fmt.vae_to_diffusers(official).keys()  # layout from the keys alone agrees
    vae_config = json.loads((tiny["diffusers"] / "vae" / "config.json").read_text())
    back = {**fmt.transformer_to_official(transformer), **fmt.vae_to_official(vae, vae_config)}
    assert back.keys() == official.keys()
    assert all(back[k] is official[k] for k in official)
    assert fmt.vae_to_official(vae).keys() == fmt.vae_to_official(vae, vae_config).keys()  # layout from keys agrees
    # diffusers' own transformer converter agrees with ours
    assert convert_ltx_transformer_checkpoint_to_diffusers(dict(official)).keys() == transformer.keys()
    # configs round-trip too
    assert fmt.vae_diffusers_config(fmt.vae_official_config(fmt.vae_diffusers_config(config))) == (
        fmt.vae_diffusers_config(config)
    )
    transformer_cfg = fmt.transformer_diffusers_config(config)
    assert fmt.transformer_diffusers_config(fmt.transformer_official_config(transformer_cfg)) == transformer_cfg


# diffusers' scripts/convert_ltx_to_diffusers.py get_vae_config (the fields that define the architecture).
DIFFUSERS_VAE_095 = {
    "block_out_channels": (128, 256, 512, 1024, 2048),
    "down_block_types": ("LTXVideo095DownBlock3D",) * 4,
    "decoder_block_out_channels": (256, 512, 1024),
    "layers_per_block": (4, 6, 6, 2, 2),
    "decoder_layers_per_block": (5, 5, 5, 5),
    "spatio_temporal_scaling": (True, True, True, True),
    "decoder_spatio_temporal_scaling": (True, True, True),
    "decoder_inject_noise": (False, False, False, False),
    "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    "upsample_residual": (True, True, True),
    "upsample_factor": (2, 2, 2),
    "timestep_conditioning": True,
}
DIFFUSERS_VAE_091 = {
    "block_out_channels": (128, 256, 512, 512),
    "decoder_block_out_channels": (256, 512, 1024),
    "layers_per_block": (4, 3, 3, 3, 4),
    "decoder_layers_per_block": (5, 6, 7, 8),
    "decoder_inject_noise": (True, True, True, False),
    "upsample_factor": (2, 2, 2),
}


@pytest.mark.parametrize("version", ["0.9.0", "0.9.1", "0.9.5"])
def test_released_vae_layouts_match_diffusers(version: str) -> None:
    """Full-size released VAEs (on meta): our config derivation and key map equal diffusers' converter."""
    config = fmt.vae_diffusers_config(fmt.KNOWN_VAE_CONFIGS[version])
    expected = {"0.9.5": DIFFUSERS_VAE_095, "0.9.1": DIFFUSERS_VAE_091}.get(version, {})
    assert {k: config[k] for k in expected} == expected
    assert (config["spatial_compression_ratio"], config["temporal_compression_ratio"]) == (32, 8)
    with init_empty_weights(include_buffers=True):
        sd = AutoencoderKLLTXVideo(**config).state_dict()
    official = fmt.vae_to_official(sd, config)
    assert fmt.vae_version_from_official(None, official) == version
    reference = convert_ltx_vae_checkpoint_to_diffusers(dict(official))
    assert reference.keys() == sd.keys()
    assert all(reference[k] is sd[k] for k in sd)  # same tensor -> same key: the maps agree
    assert fmt.vae_to_diffusers(official, fmt.KNOWN_VAE_CONFIGS[version]).keys() == sd.keys()


def test_detection_of_released_variants() -> None:
    def keys(num_layers: int, width: int, vae: str | None) -> list[str]:
        cfg = fmt.transformer_diffusers_config(fmt.KNOWN_TRANSFORMER_CONFIGS["13b" if num_layers == 48 else "2b"])
        assert cfg["num_attention_heads"] * cfg["attention_head_dim"] == width
        with init_empty_weights():
            out = list(fmt.transformer_to_official(LTXVideoTransformer3DModel(**cfg).state_dict()))
            if vae:
                vae_cfg = fmt.vae_diffusers_config(fmt.KNOWN_VAE_CONFIGS[vae])
                out += list(fmt.vae_to_official(AutoencoderKLLTXVideo(**vae_cfg).state_dict(), vae_cfg))
        return out

    assert ltxv_version({}, keys(48, 4096, "0.9.5")) == "0.9.7"
    assert ltxv_version({}, keys(28, 2048, "0.9.5")) == "0.9.5"
    assert ltxv_version({}, keys(28, 2048, "0.9.1")) == "0.9.1"
    assert ltxv_version({}, keys(28, 2048, "0.9.0")) == "0.9.0"
    causal = {"config": json.dumps({"transformer": {"causal_temporal_positioning": True}})}
    assert ltxv_version(causal, keys(28, 2048, None)) == "0.9.5"
    ltx2_like = [*keys(28, 2048, None), "model.diffusion_model.audio_patchify_proj.weight"]
    assert is_ltxv_single_file({}, keys(28, 2048, "0.9.5"))
    assert not is_ltxv_single_file({}, ltx2_like)
    assert not is_ltxv_single_file({}, ["vae.encoder.conv_in.conv.weight"])


def test_file_without_metadata_needs_a_released_architecture(tiny: dict[str, Path], tmp_path: Path) -> None:
    bare = tmp_path / "bare.safetensors"
    save_file(load_file(tiny["single_file"]), str(bare))
    with pytest.raises(ModelLoadError, match="no 'config' metadata"):
        load_model(bare, tiny["t5"])


def test_load_refuses_non_ltxv(tiny: dict[str, Path], tmp_path: Path) -> None:
    ltx2_like = tmp_path / "ltx2.safetensors"
    save_file(
        {
            "model.diffusion_model.patchify_proj.weight": torch.zeros(2, 2),
            "model.diffusion_model.audio_patchify_proj.weight": torch.zeros(2, 2),
        },
        str(ltx2_like),
    )
    with pytest.raises(ModelLoadError, match="transformer-only LTX-2 file"):
        load_model(ltx2_like)
    with pytest.raises(ModelLoadError, match=r"model_index\.json"):
        load_model(tmp_path)
    with pytest.raises(ModelLoadError, match="text encoder folder not found"):
        _ = load_model(tiny["single_file"], tmp_path / "nope")
