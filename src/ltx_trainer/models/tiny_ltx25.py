"""A tiny random LTX-2.5 written as the official split release (``make-tiny --family ltx2-2.5``).

The files, their tensor names and their ``__metadata__`` follow the release layout (``models.ltx25_files``) and
oracle/ltx25's tiny fixture: the same architecture sizes, so the same key sets. One deliberate difference: the audio
VAE has the real 8 x 16 latent (``z_channels`` 8, ``ch`` 128) so that it chains with the transformer's 128-wide
audio tokens (the fixture's 2 x 16 audio VAE does not) and audio can be trained end to end. The Gemma-4 tokenizer is
a byte-level BPE trained here on a few sentences; nothing is downloaded.
"""

import json
from pathlib import Path

import torch
from torch import nn

from ltx_trainer.models.formats import (
    ltx2_audio,
    ltx2_text,
    ltx2_transformer,
    ltx2_video_vae,
    ltx25_text,
    ltx25_video_vae,
)
from ltx_trainer.models.sources import write_single_file
from ltx_trainer.models.tiny import AMP_VOCODER, randomize_
from ltx_trainer.models.tiny_text import train_byte_bpe

GEMMA_VERSION = "gemma4-tiny-ltx-trainer-v1"
MODEL_VERSION = "2.5.0"
FILES = {
    "transformer": "diffusion_models/ltx-2.5-tiny-transformer-fp32.safetensors",
    "text_encoder": "text_encoders/gemma4-tiny-with-proj-ltx-2.5-fp32.safetensors",
    "gemma": "text_encoders/gemma4-tiny-root",
    "video_vae": "vae/ltx-2.5-tiny-video-vae-fp32.safetensors",
    "video_vae_conv": "vae/ltx-2.5-tiny-video-vae-conv-fp32.safetensors",
    "audio_vae": "vae/ltx-2.5-tiny-audio-vae-fp32.safetensors",
}
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<|turn>", "<turn|>", "<|image>", "<image|>"]
SPECIAL_TOKENS += ["<|image|>", "<|audio>", "<audio|>", "<|audio|>", "<|video|>"]
_BLOCKS = [["compress_space_res", {"multiplier": 1}], ["compress_time_res", {"multiplier": 1}]]
ENCODER_BLOCKS = _BLOCKS + [["compress_all_res", {"multiplier": 1}]] * 2


def tiny_ltx25_config() -> dict:
    """The ``config`` metadata sections of the tiny release: ``transformer``, ``vae`` (diffusion), ``vae_conv``,
    ``audio_vae``, ``vocoder``."""
    transformer = {
        **ltx2_transformer.OFFICIAL_FIXED,
        "_class_name": "AVTransformer3DModel",
        "num_layers": 2,
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "cross_attention_dim": 32,
        "audio_num_attention_heads": 2,
        "audio_attention_head_dim": 8,
        "audio_cross_attention_dim": 16,
        "in_channels": 128,
        "out_channels": 128,
        "audio_in_channels": 128,
        "audio_out_channels": 128,
        "norm_eps": 1e-6,
        "norm_elementwise_affine": False,
        "activation_fn": "gelu-approximate",
        "attention_bias": True,
        "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048],
        "audio_positional_embedding_max_pos": [20],
        "timestep_scale_multiplier": 1000,
        "av_ca_timestep_scale_multiplier": 1,
        "rope_type": "split",
        "frequencies_precision": "float64",
        "cross_attention_adaln": True,
        "apply_gated_attention": True,
        **ltx2_text.V2_KEYS,
        "connector_apply_gated_attention": True,
        "connector_num_attention_heads": 2,
        "connector_attention_head_dim": 16,
        "connector_num_layers": 2,
        "connector_positional_embedding_max_pos": [4096],
        "audio_connector_num_attention_heads": 2,
        "audio_connector_attention_head_dim": 8,
        "ff_bias": False,
        "audio_ff_bias": False,
        "connector_ff_bias": False,
        "use_prompt_adaln_single": False,
        "use_keyframes_abs_pos_embedding": True,
    }
    encoder = {
        "dims": 3,
        "in_channels": 3,
        "out_channels": 128,
        "patch_size": 4,
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "spatial_padding_mode": "zeros",
        "blocks": ENCODER_BLOCKS,
    }
    diffusion = {
        "_class_name": "CausalDiffusionVAE",
        "latent_channels": 128,
        "model_output_type": "v",
        "encoder": encoder,
        "decoder": {
            "in_channels": 128,
            "out_channels": 3,
            "patch_size": 4,
            "head_dim": 16,
            "t_emb_dim": 32,
            "stage_channels": [64, 32, 16, 16, 16],
            "stage_depths": [1, 1, 1, 1, 2],
            "stage_kernels": [[3, 3, 3]] * 5,
            "upsamples": [[[1, 2, 2], 2], [[2, 1, 1], 2], [[2, 2, 2], 1], [[2, 2, 2], 1]],
            "stage5_kernel": [3, 3, 3],
            "stage5_channels": 16,
            "default_num_inference_steps": 2,
        },
    }
    conv = {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 128,
        "patch_size": 4,
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "causal_decoder": False,
        "timestep_conditioning": True,
        "decoder_base_channels": 4,
        "spatial_padding_mode": "reflect",
        "encoder_spatial_padding_mode": "zeros",
        "encoder_blocks": ENCODER_BLOCKS,
        "decoder_blocks": [["compress_all", {"multiplier": 2, "residual": True}]] * 3
        + [["res_x", {"num_layers": 1, "inject_noise": False}]],
    }
    ddconfig = {
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
        "mid_block_add_attention": True,
        "mel_bins": 64,
        "attn_type": "vanilla",
    }
    audio_vae = {
        "model": {"params": {"sampling_rate": 16000, "ddconfig": ddconfig}},
        "preprocessing": {
            "stft": {"filter_length": 1024, "hop_length": 160, "causal": True},
            "mel": {"n_mel_channels": 64},
        },
    }
    vocoder = {
        "vocoder": {**AMP_VOCODER, "upsample_rates": [10, 16], "upsample_kernel_sizes": [20, 32]},
        "bwe": {
            **AMP_VOCODER,
            "upsample_rates": [15, 16],
            "upsample_kernel_sizes": [31, 32],
            "input_sampling_rate": 16000,
            "output_sampling_rate": 48000,
            "n_fft": 256,
            "hop_length": 80,
            "num_mels": 64,
        },
    }
    return {"transformer": transformer, "vae": diffusion, "vae_conv": conv, "audio_vae": audio_vae, "vocoder": vocoder}


def _sub_config(model_type: str, **fields: object) -> dict:
    """A vision / audio sub-config in the schema transformers 5.14 writes (what the release's config.json has)."""
    return {
        "_name_or_path": "",
        "architectures": None,
        "chunk_size_feed_forward": 0,
        "dtype": None,
        "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
        "initializer_range": 0.02,
        "is_encoder_decoder": False,
        "label2id": {"LABEL_0": 0, "LABEL_1": 1},
        "model_type": model_type,
        "output_attentions": False,
        "output_hidden_states": False,
        "problem_type": None,
        "return_dict": True,
        "rms_norm_eps": 1e-06,
        **fields,
    }


def gemma4_config(ids: dict[str, int]) -> dict:
    """``config.json`` of the tiny Gemma-4 unified (2 layers: one sliding, one full attention), with
    ``gemma_version``; written as is, so its schema is the release's whatever transformers version writes it."""
    text = {
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attention_k_eq_v": False,
        "bos_token_id": ids["<bos>"],
        "eos_token_id": ids["<eos>"],
        "final_logit_softcapping": None,
        "global_head_dim": 64,
        "head_dim": 32,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 128,
        "layer_types": ["sliding_attention", "full_attention"],
        "max_position_embeddings": 2048,
        "model_type": "gemma4_unified_text",
        "num_attention_heads": 2,
        "num_global_key_value_heads": None,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "num_kv_shared_layers": 0,
        "pad_token_id": ids["<pad>"],
        "rms_norm_eps": 1e-06,
        "rope_parameters": {
            "full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1000000.0, "rope_type": "proportional"},
            "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"},
        },
        "sliding_window": 16,
        "tie_word_embeddings": True,
        "use_bidirectional_attention": "vision",
        "use_cache": True,
        "use_double_wide_mlp": False,
        "vocab_size": 512,
    }
    return {
        "architectures": ["Gemma4UnifiedForConditionalGeneration"],
        "audio_config": _sub_config("gemma4_unified_audio", audio_embed_dim=32),
        "audio_token_id": ids["<|audio|>"],
        "boa_token_id": ids["<|audio>"],
        "boi_token_id": ids["<|image>"],
        "dtype": "float32",
        "eoa_token_index": ids["<audio|>"],
        "eoi_token_id": ids["<image|>"],
        "gemma_version": GEMMA_VERSION,
        "image_token_id": ids["<|image|>"],
        "initializer_range": 0.02,
        "model_type": "gemma4_unified",
        "text_config": text,
        "tie_word_embeddings": True,
        "transformers_version": "5.14.1",
        "video_token_id": ids["<|video|>"],
        "vision_config": _sub_config(
            "gemma4_unified_vision",
            mm_embed_dim=32,
            mm_posemb_size=16,
            output_proj_dims=64,
            patch_size=4,
            pooling_kernel_size=2,
        ),
    }


def write_tiny_gemma4(out_dir: Path, seed: int = 0) -> Path:
    """A tiny Gemma-4 unified Hugging Face folder (config with ``gemma_version``, weights, tokenizer, processor)."""
    from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration, PreTrainedTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    tok, tokenizer = train_byte_bpe(PreTrainedTokenizerFast, SPECIAL_TOKENS, vocab_size=512, mask_token="<mask>")
    tokenizer.save_pretrained(out_dir)
    config = gemma4_config({t: tok.token_to_id(t) for t in SPECIAL_TOKENS})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma4UnifiedForConditionalGeneration(Gemma4UnifiedConfig.from_dict(config))
    model.eval().save_pretrained(out_dir)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    (out_dir / "generation_config.json").unlink(missing_ok=True)  # not part of the release's folder
    processor = {
        "processor_class": "Gemma4UnifiedProcessor",
        "image_seq_length": 16,
        "audio_seq_length": 16,
        "audio_ms_per_token": 40,
        "image_processor": {"patch_size": 16, "image_processor_type": "Gemma4UnifiedImageProcessor"},
        "feature_extractor": {"sampling_rate": 16000, "feature_extractor_type": "Gemma4UnifiedAudioFeatureExtractor"},
        "video_processor": {"patch_size": 16, "video_processor_type": "Gemma4UnifiedVideoProcessor"},
    }
    (out_dir / "processor_config.json").write_text(json.dumps(processor, indent=1))
    return out_dir


def build_ltx25_components(config: dict, gemma_config: dict, seed: int = 0) -> dict[str, nn.Module]:
    """Random diffusers modules of the tiny release (weights rounded to bf16-representable values)."""
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        LTX2VideoDiffusionDecoderModel,
        LTX2VideoTransformer3DModel,
    )

    t = config["transformer"]
    text_in = gemma_config["text_config"]["hidden_size"] * (gemma_config["text_config"]["num_hidden_layers"] + 1)
    video_width = t["num_attention_heads"] * t["attention_head_dim"]
    audio_width = t["audio_num_attention_heads"] * t["audio_attention_head_dim"]
    probe = {
        "text_embedding_projection.video_aggregate_embed.weight": torch.empty(video_width, text_in),
        "text_embedding_projection.audio_aggregate_embed.weight": torch.empty(audio_width, text_in),
    }
    modules = {
        "transformer": LTX2VideoTransformer3DModel(**ltx2_transformer.diffusers_config(t)),
        "connectors": ltx2_text.build_connectors(**ltx2_text.connectors_diffusers_config(t, probe, gemma_config)),
        "vae": AutoencoderKLLTX2Video(**ltx2_video_vae.diffusers_config(config["vae_conv"])),
        "diffusion_decoder": LTX2VideoDiffusionDecoderModel(**ltx25_video_vae.decoder_diffusers_config(config["vae"])),
        "audio_vae": AutoencoderKLLTX2Audio(**ltx2_audio.audio_vae_diffusers_config(config["audio_vae"])),
        "vocoder": ltx2_audio.vocoder_class(config["vocoder"])(
            **ltx2_audio.vocoder_diffusers_config(config["vocoder"])
        ),
    }
    modules = {name: randomize_(m, seed + i) for i, (name, m) in enumerate(modules.items())}
    with torch.no_grad():  # one latent space: the diffusion decoder denormalizes with the VAE's statistics
        modules["diffusion_decoder"].latents_mean.copy_(modules["vae"].latents_mean)
        modules["diffusion_decoder"].latents_std.copy_(modules["vae"].latents_std)
        for module in modules.values():
            for p in [*module.parameters(), *module.buffers()]:
                if p.is_floating_point():
                    p.copy_(p.to(torch.bfloat16).float())
    return modules


def write_tiny_ltx25(out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write the tiny LTX-2.5 release under ``out_dir`` (layout: ``FILES``); returns ``{name: path}`` plus
    ``"release"`` (the folder)."""
    out = Path(out_dir)
    paths = {name: out / rel for name, rel in FILES.items()}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    gemma_dir = write_tiny_gemma4(paths["gemma"], seed)
    gemma_config = json.loads((gemma_dir / "config.json").read_text())
    config = tiny_ltx25_config()
    m = build_ltx25_components(config, gemma_config, seed)
    version = {"model_version": MODEL_VERSION}
    connectors = ltx2_text.connectors_to_official(m["connectors"].state_dict())
    projection = {k: v for k, v in connectors.items() if k.startswith(ltx25_text.PROJECTION_PREFIX)}
    _save(
        {**ltx2_transformer.to_official(m["transformer"].state_dict()), **_without(connectors, projection)},
        paths["transformer"],
        {
            "config": json.dumps({"transformer": config["transformer"]}),
            **version,
            "gemma_source_checkpoint": json.dumps({"gemma_version": GEMMA_VERSION}),
        },
    )
    from safetensors.torch import load_file

    gemma = ltx25_text.to_packed(load_file(str(gemma_dir / "model.safetensors")))
    packed = {**gemma, **projection, **ltx25_text.pack_assets(gemma_dir)}
    _save(packed, paths["text_encoder"], {"format": "pt", "gemma_config": json.dumps(gemma_config)})

    vae = ltx2_video_vae.to_official(m["vae"].state_dict(), config["vae_conv"])
    _save(vae, paths["video_vae_conv"], {"config": json.dumps({"vae": config["vae_conv"]}), **version})
    encoder = {k: v for k, v in vae.items() if k.startswith("vae.encoder.")}
    decoder = ltx25_video_vae.decoder_to_official(m["diffusion_decoder"].state_dict())
    _save({**encoder, **decoder}, paths["video_vae"], {"config": json.dumps({"vae": config["vae"]}), **version})
    audio = {
        **ltx2_audio.audio_vae_to_official(m["audio_vae"].state_dict()),
        **ltx2_audio.vocoder_to_official(m["vocoder"].state_dict(), config["vocoder"]),
    }
    sections = {"audio_vae": config["audio_vae"], "vocoder": config["vocoder"]}
    _save(audio, paths["audio_vae"], {"config": json.dumps(sections), **version})
    return {**paths, "release": out}


def _without(sd: dict, drop: dict) -> dict:
    return {k: v for k, v in sd.items() if k not in drop}


def _save(sd: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> Path:
    """The tiny release's files are fp32 (their names say so)."""
    return write_single_file(sd, path, metadata, torch.float32)
