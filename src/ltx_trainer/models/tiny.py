"""Tiny random models in the real architectures, written in every on-disk format a user has.

Tests and the demo use only these: an official single file with config metadata, a diffusers folder, and a Gemma-3
(T5 for LTXV) folder whose tokenizer is trained locally with ``tokenizers`` (``tiny_text``). Nothing is downloaded.

The dims are the smallest the architectures accept (spec/reference-ltx-core.md §2): the VAEs must compress 8x in
time and 32x in space; latents are 128 channels (video) and 8x16 (audio); the audio VAE needs 64 mel bins and
``ch = z * mel / 4``; LTX-2.0's connector width equals the Gemma hidden size.
"""

import json
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ltx_trainer.io import atomic_save_safetensors
from ltx_trainer.models.formats import ltx2_audio, ltx2_text, ltx2_transformer, ltx2_video_vae
from ltx_trainer.models.formats import ltxv as ltxv_fmt
from ltx_trainer.models.sources import write_single_file
from ltx_trainer.models.tiny_text import GEMMA_HIDDEN, GEMMA_LAYERS, write_tiny_gemma, write_tiny_t5

AMP_VOCODER = {  # the tiny BigVGAN-v2 (AMP) vocoder and bandwidth extender of LTX-2.3 and LTX-2.5
    "resblock": "AMP1",
    "stereo": True,
    "activation": "snakebeta",
    "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3, 5]],
    "use_tanh_at_final": False,
    "use_bias_at_final": False,
}


def tiny_ltx2_config(version: str = "2.0", video_dim: int = 32) -> dict:
    """The metadata ``config`` of a tiny LTX-2 ("2.0") or LTX-2.3 ("2.3") single-file checkpoint.

    ``video_dim`` is the transformer width (2 heads); 128 or more lets the model represent the identity on the
    128-channel latents, which overfitting tests need.
    """
    transformer = {
        **ltx2_transformer.OFFICIAL_FIXED,
        "_class_name": "AVTransformer3DModel",
        "num_layers": 2,
        "num_attention_heads": 2,
        "attention_head_dim": video_dim // 2,
        "cross_attention_dim": video_dim,
        "audio_num_attention_heads": 2,
        "audio_attention_head_dim": 8,
        "audio_cross_attention_dim": 16,
        "in_channels": 128,
        "out_channels": 128,
        "audio_in_channels": 128,
        "audio_out_channels": 128,
        "norm_eps": 1e-6,
        "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048],
        "audio_positional_embedding_max_pos": [20],
        "timestep_scale_multiplier": 1000,
        "av_ca_timestep_scale_multiplier": 1000,
        "connector_num_layers": 1,
        "activation_fn": "gelu-approximate",
        "attention_bias": True,
        "norm_elementwise_affine": False,
    }
    vocoder: dict
    if version == "2.0":
        transformer.update(
            caption_channels=GEMMA_HIDDEN,
            rope_type="interleaved",
            frequencies_precision="float32",
            connector_num_attention_heads=2,
            connector_attention_head_dim=GEMMA_HIDDEN // 2,
        )
        vocoder = {
            "resblock": "1",
            "stereo": True,
            "upsample_rates": [15, 16],
            "upsample_kernel_sizes": [31, 32],
            "upsample_initial_channel": 32,
            "resblock_kernel_sizes": [3],
            "resblock_dilation_sizes": [[1, 3, 5]],
            "output_sampling_rate": 24000,
        }
    elif version == "2.3":
        transformer.update(
            caption_channels=GEMMA_HIDDEN,
            rope_type="split",
            frequencies_precision="float64",
            cross_attention_adaln=True,
            apply_gated_attention=True,
            caption_proj_before_connector=True,
            caption_projection_first_linear=False,
            caption_proj_input_norm=False,
            caption_projection_second_linear=False,
            connector_apply_gated_attention=True,
            connector_num_attention_heads=2,
            connector_attention_head_dim=video_dim // 2,
            audio_connector_num_attention_heads=2,
            audio_connector_attention_head_dim=8,
        )
        vocoder = {
            "vocoder": {**AMP_VOCODER, "upsample_rates": [10, 16], "upsample_kernel_sizes": [20, 32]},
            "bwe": {
                **AMP_VOCODER,
                "upsample_rates": [15, 16],
                "upsample_kernel_sizes": [31, 32],
                "input_sampling_rate": 16000,
                "output_sampling_rate": 48000,
                "n_fft": 512,
                "hop_length": 80,
                "num_mels": 64,
            },
        }
    else:
        raise ValueError(f"tiny LTX-2 version must be '2.0' or '2.3', not {version!r}")
    vae = {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 128,
        "patch_size": 4,
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "causal_decoder": False,
        "timestep_conditioning": False,
        "decoder_base_channels": 8,
        "encoder_base_channels": 8,
        "encoder_blocks": [
            ["compress_space_res", {"multiplier": 1}],
            ["compress_time_res", {"multiplier": 1}],
            ["compress_all_res", {"multiplier": 1}],
            ["compress_all_res", {"multiplier": 1}],
            ["res_x", {"num_layers": 1}],
        ],
        "decoder_blocks": [
            ["compress_all", {"multiplier": 2, "residual": True}],
            ["compress_all", {"multiplier": 2, "residual": True}],
            ["compress_all", {"multiplier": 2, "residual": True}],
            ["res_x", {"num_layers": 1, "inject_noise": False}],
        ],
    }
    audio_vae = {
        "model": {
            "params": {
                "sampling_rate": 16000,
                "ddconfig": {
                    "ch": 128,
                    "out_ch": 2,
                    "in_channels": 2,
                    "ch_mult": [1, 1, 1],
                    "num_res_blocks": 1,
                    "attn_resolutions": [],
                    "resolution": 256,
                    "z_channels": 8,
                    "double_z": True,
                    "norm_type": "pixel",
                    "causality_axis": "height",
                    "dropout": 0.0,
                    "mid_block_add_attention": False,
                    "mel_bins": 64,
                },
            }
        },
        "preprocessing": {
            "stft": {"filter_length": 1024, "hop_length": 160, "causal": True},
            "mel": {"n_mel_channels": 64},
        },
    }
    return {"transformer": transformer, "vae": vae, "audio_vae": audio_vae, "vocoder": vocoder}


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Seeded random weights everywhere, so no output is trivially zero (diffusers zero-inits some projections)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim <= 1 and ("norm" in name or name.endswith(("gamma", "scale", "alpha", "beta"))):
                p.copy_(1.0 + 0.05 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.ndim > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=g) / max(fan_in, 1) ** 0.5)
        for name, b in module.named_buffers():
            if name.endswith("latents_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("latents_std"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
    return module.eval()


def build_ltx2_components(config: dict, seed: int = 0) -> dict[str, nn.Module]:
    """Random diffusers modules for the official ``config`` (transformer, vae, audio_vae, vocoder, connectors)."""
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

    from ltx_trainer.models.ltx2 import vocoder_class

    text_in = GEMMA_HIDDEN * (GEMMA_LAYERS + 1)
    connector_probe = _connector_probe(config["transformer"], text_in)
    modules = {
        "transformer": LTX2VideoTransformer3DModel(**ltx2_transformer.diffusers_config(config["transformer"])),
        "vae": AutoencoderKLLTX2Video(**ltx2_video_vae.diffusers_config(config["vae"])),
        "audio_vae": AutoencoderKLLTX2Audio(**ltx2_audio.audio_vae_diffusers_config(config["audio_vae"])),
        "vocoder": vocoder_class(config["vocoder"])(**ltx2_audio.vocoder_diffusers_config(config["vocoder"])),
        "connectors": LTX2TextConnectors(
            **ltx2_text.connectors_diffusers_config(config["transformer"], connector_probe)
        ),
    }
    return {name: randomize_(m, seed + i) for i, (name, m) in enumerate(modules.items())}


def _connector_probe(transformer: dict, text_in: int) -> dict[str, torch.Tensor]:
    """Shape-only stand-ins for the text projection weights, from which the connector config reads its input width."""
    if transformer.get("caption_proj_before_connector"):
        v = transformer["connector_num_attention_heads"] * transformer["connector_attention_head_dim"]
        a = transformer["audio_connector_num_attention_heads"] * transformer["audio_connector_attention_head_dim"]
        return {
            "text_embedding_projection.video_aggregate_embed.weight": torch.empty(v, text_in),
            "text_embedding_projection.video_aggregate_embed.bias": torch.empty(v),
            "text_embedding_projection.audio_aggregate_embed.weight": torch.empty(a, text_in),
            "text_embedding_projection.audio_aggregate_embed.bias": torch.empty(a),
        }
    return {"text_embedding_projection.aggregate_embed.weight": torch.empty(transformer["caption_channels"], text_in)}


def official_state_dict(components: dict[str, nn.Module], config: dict) -> dict[str, torch.Tensor]:
    """diffusers modules -> one state dict in the official single-file key layout."""
    sd = {}
    sd.update(ltx2_transformer.to_official(components["transformer"].state_dict()))
    sd.update(ltx2_video_vae.to_official(components["vae"].state_dict(), config["vae"]))
    sd.update(ltx2_audio.audio_vae_to_official(components["audio_vae"].state_dict()))
    sd.update(ltx2_audio.vocoder_to_official(components["vocoder"].state_dict(), config["vocoder"]))
    sd.update(ltx2_text.connectors_to_official(components["connectors"].state_dict()))
    return sd


def save_single_file(
    sd: dict[str, torch.Tensor], config: dict, path: Path, model_version: str, dtype: torch.dtype = torch.bfloat16
) -> Path:
    """Write an official single-file checkpoint: tensors + ``__metadata__`` ``config`` and ``model_version``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_single_file(sd, path, {"config": json.dumps(config), "model_version": model_version}, dtype)
    return path


def write_tiny_ltx2(out_dir: str | Path, version: str = "2.0", seed: int = 0, video_dim: int = 32) -> dict[str, Path]:
    """Write a tiny LTX-2 (``"2.0"``) or LTX-2.3 (``"2.3"``) model in every format.

    Returns:
        ``{"single_file": .safetensors, "diffusers": folder, "gemma": folder}`` (the diffusers folder contains its own
        ``text_encoder``/``tokenizer`` copies of the same Gemma).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline
    from transformers import AutoTokenizer, Gemma3ForConditionalGeneration

    out_dir = Path(out_dir)
    config = tiny_ltx2_config(version, video_dim)
    components = build_ltx2_components(config, seed)
    for module in components.values():  # bf16-representable values: the bf16 single file and fp32 folder agree
        for p in module.parameters():
            p.data = p.data.to(torch.bfloat16).float()
    gemma_dir = write_tiny_gemma(out_dir / "gemma", seed)
    single = save_single_file(
        official_state_dict(components, config), config, out_dir / f"ltx-tiny-{version}.safetensors", f"{version}.0"
    )
    pipe = LTX2Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05),
        text_encoder=Gemma3ForConditionalGeneration.from_pretrained(gemma_dir),
        tokenizer=AutoTokenizer.from_pretrained(gemma_dir),
        **components,
    )
    pipe.save_pretrained(out_dir / "diffusers")
    return {"single_file": single, "diffusers": out_dir / "diffusers", "gemma": gemma_dir}


def write_fp8_variant(single_file: Path) -> Path:
    """``<name>-fp8.safetensors`` next to an LTX-2 single file, in the released fp8 layout (``models.quantization``):
    block linears in e4m3 with ``weight_scale`` / ``input_scale``, except the first block (and the last five when
    there are more than six, as ltx-core's fp8 files do); the rest as stored."""
    from safetensors import safe_open

    from ltx_trainer.models.quantization import quantize_fp8_file_tensors

    with safe_open(single_file, "pt") as f:
        metadata = f.metadata()
        sd = {k: f.get_tensor(k) for k in f.keys()}
    target = Path(single_file).with_name(Path(single_file).stem + "-fp8.safetensors")
    return atomic_save_safetensors(quantize_fp8_file_tensors(sd), target, metadata)


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


def build_tiny_ltxv(seed: int = 0) -> dict[str, nn.Module]:
    """Random tiny diffusers ``transformer`` and ``vae`` with bf16-representable weights (so the bf16 single file and
    the fp32 diffusers folder hold the same numbers)."""
    from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel

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
        "transformer": ltxv_fmt.transformer_official_config(dict(transformer.config), causal_temporal_positioning=True),
        "vae": ltxv_fmt.vae_official_config(dict(vae.config)),
    }


def write_tiny_ltxv(out_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Write a tiny 0.9.5+-style LTX-Video in every format a user has.

    Returns:
        ``{"single_file": ltxv-tiny.safetensors (official keys, bf16, metadata config), "diffusers": folder
        (model_index.json; loads with diffusers.LTXPipeline.from_pretrained), "t5": T5 encoder + tokenizer folder}``.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, LTXPipeline
    from transformers import AutoTokenizer, T5EncoderModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t5_dir = write_tiny_t5(out_dir / "t5", seed)
    modules = build_tiny_ltxv(seed)
    sd = {
        **ltxv_fmt.transformer_to_official(modules["transformer"].state_dict()),
        **ltxv_fmt.vae_to_official(modules["vae"].state_dict(), dict(modules["vae"].config)),
    }
    single = out_dir / "ltxv-tiny.safetensors"
    config = tiny_official_config(modules["transformer"], modules["vae"])
    write_single_file(sd, single, {"config": json.dumps(config)}, torch.bfloat16)
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


def write_tiny(
    out_dir: str | Path, family: str = "ltx2-2.0", seed: int = 0, fp8: bool = False, full_width_blocks: int = 0
) -> dict[str, Path]:
    """Write a tiny model of ``family`` (``ltx2-2.0``, ``ltx2-2.3``, ``ltx2-2.5`` (split release, ``tiny_ltx25``) or
    ``ltxv``) in every on-disk format; ``fp8`` adds the pre-quantized fp8 single file (LTX-2 2.0 / 2.3);
    ``full_width_blocks`` writes :func:`write_full_width_ltx23` instead (``ltx2-2.3`` only)."""
    if family == "ltx2-2.5" and not (fp8 or full_width_blocks):
        return __import__("ltx_trainer.models.tiny_ltx25", fromlist=["_"]).write_tiny_ltx25(out_dir, seed)
    if full_width_blocks:
        if family != "ltx2-2.3" or fp8:
            raise ValueError(f"full-width files are written for ltx2-2.3 (without fp8), not {family!r}")
        return write_full_width_ltx23(out_dir, full_width_blocks, seed)
    if family in ("ltx2-2.0", "ltx2-2.3"):
        paths = write_tiny_ltx2(out_dir, version=family.removeprefix("ltx2-"), seed=seed)
        return {**paths, "fp8": write_fp8_variant(paths["single_file"])} if fp8 else paths
    if fp8:
        raise ValueError(f"fp8 variants are written for ltx2-2.0 and ltx2-2.3, not {family!r}")
    if family == "ltxv":
        return write_tiny_ltxv(Path(out_dir), seed=seed)
    raise ValueError(f"family {family!r} is not one of ltx2-2.0, ltx2-2.3, ltx2-2.5, ltxv")


def write_full_width_ltx23(out_dir: str | Path, num_layers: int = 2, seed: int = 0) -> dict[str, Path]:
    """An LTX-2.3 single file whose transformer has the released widths (22B: 4096 video / 2048 audio, 32 heads) but
    only ``num_layers`` blocks (2 blocks: a 2.3 GB file), for measuring streaming loads. The text connectors keep
    their widths with one layer each and read a tiny Gemma (also written); VAEs and vocoder are the tiny ones.

    Built in bf16 (the file's dtype), so writing it needs about the file's size in RAM.
    """
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

    out_dir = Path(out_dir)
    released = json.loads(resources.files("ltx_trainer.models").joinpath("configs/ltx-2.3-22b.json").read_text())
    config = tiny_ltx2_config("2.3")
    config["transformer"] = {
        **released["transformer"],
        "num_layers": num_layers,
        "connector_num_layers": 1,
        "caption_channels": GEMMA_HIDDEN,  # the (tiny) text encoder's width
    }
    gemma_dir = write_tiny_gemma(out_dir / "gemma", seed)
    small = build_ltx2_components(tiny_ltx2_config("2.3"), seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        probe = _connector_probe(config["transformer"], GEMMA_HIDDEN * (GEMMA_LAYERS + 1))
        components = {
            **small,
            "transformer": randomize_(
                LTX2VideoTransformer3DModel(**ltx2_transformer.diffusers_config(config["transformer"])), seed
            ),
            "connectors": randomize_(
                LTX2TextConnectors(**ltx2_text.connectors_diffusers_config(config["transformer"], probe)), seed + 1
            ),
        }
    finally:
        torch.set_default_dtype(previous)
    path = out_dir / f"ltx-2.3-full-width-{num_layers}-blocks.safetensors"
    single = save_single_file(official_state_dict(components, config), config, path, "2.3.0")
    return {"single_file": single, "gemma": gemma_dir}
