"""LTX-2 / LTX-2.3 / LTX-2.5 transformer: official ``model.diffusion_model.*`` keys and metadata <-> diffusers
``LTX2VideoTransformer3DModel``.

LTX-2.5 adds four metadata switches, each read with the default that reproduces older checkpoints (ltx-core's rule):
``ff_bias`` / ``audio_ff_bias`` (true; 2.5: no feed-forward biases), ``use_prompt_adaln_single`` (true; 2.5: the text
K/V modulation is the static per-block table, no ``prompt_adaln_single`` modules) and
``use_keyframes_abs_pos_embedding`` (false; 2.5: a learned ``keyframes_abs_pos_embedding`` added to the tokens of
single-pixel-frame latents). diffusers' transformer has the same four options under the same names.

The key map is a bijection on dotted-path segments, so the same functions rename state-dict keys, LoRA module paths
and full fine-tune exports. diffusers' own single-file converter misses LTX-2.3's ``prompt_adaln_single`` modules, so we
keep our own table.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ltx_trainer.models.formats.common import StateDict

FILE_PREFIX = "model.diffusion_model."
CONNECTOR_PREFIXES = ("video_embeddings_connector.", "audio_embeddings_connector.")

# Official top-level module -> diffusers module (matched on the first path segment).
_TOP_LEVEL = {
    "patchify_proj": "proj_in",
    "audio_patchify_proj": "audio_proj_in",
    "adaln_single": "time_embed",
    "audio_adaln_single": "audio_time_embed",
    "prompt_adaln_single": "prompt_adaln",
    "audio_prompt_adaln_single": "audio_prompt_adaln",
    "av_ca_video_scale_shift_adaln_single": "av_cross_attn_video_scale_shift",
    "av_ca_a2v_gate_adaln_single": "av_cross_attn_video_a2v_gate",
    "av_ca_audio_scale_shift_adaln_single": "av_cross_attn_audio_scale_shift",
    "av_ca_v2a_gate_adaln_single": "av_cross_attn_audio_v2a_gate",
}
# Segments renamed wherever they appear (inside blocks).
_ANY_LEVEL = {
    "scale_shift_table_a2v_ca_video": "video_a2v_cross_attn_scale_shift_table",
    "scale_shift_table_a2v_ca_audio": "audio_a2v_cross_attn_scale_shift_table",
    "q_norm": "norm_q",
    "k_norm": "norm_k",
}
_TOP_LEVEL_INV = {v: k for k, v in _TOP_LEVEL.items()}
_ANY_LEVEL_INV = {v: k for k, v in _ANY_LEVEL.items()}


def _rename(path: str, top: dict[str, str], anywhere: dict[str, str]) -> str:
    parts = path.split(".")
    parts[0] = top.get(parts[0], parts[0])
    return ".".join(anywhere.get(p, p) for p in parts)


def module_to_diffusers(path: str) -> str:
    """Official module path (no file prefix) -> diffusers path: ``adaln_single.linear`` -> ``time_embed.linear``."""
    return _rename(path, _TOP_LEVEL, _ANY_LEVEL)


def module_to_official(path: str) -> str:
    """diffusers module path -> official module path (inverse of ``module_to_diffusers``)."""
    return _rename(path, _TOP_LEVEL_INV, _ANY_LEVEL_INV)


def to_diffusers(sd: StateDict) -> StateDict:
    """``model.diffusion_model.*`` file keys (connectors excluded) -> diffusers transformer keys."""
    out = {}
    for key, value in sd.items():
        if not key.startswith(FILE_PREFIX):
            continue
        local = key.removeprefix(FILE_PREFIX)
        if local.startswith(CONNECTOR_PREFIXES):
            continue
        out[module_to_diffusers(local)] = value
    return out


def to_official(sd: StateDict) -> StateDict:
    """diffusers transformer keys -> ``model.diffusion_model.*`` file keys."""
    return {FILE_PREFIX + module_to_official(k): v for k, v in sd.items()}


# ltx-core's defaults for keys a checkpoint's metadata may omit (ltx_core/model/transformer/model_configurator.py).
_LTX_CORE_DEFAULTS = {
    "num_layers": 48,
    "num_attention_heads": 32,
    "attention_head_dim": 128,
    "cross_attention_dim": 4096,
    "audio_num_attention_heads": 32,
    "audio_attention_head_dim": 64,
    "audio_cross_attention_dim": 2048,
    "in_channels": 128,
    "out_channels": 128,
    "audio_in_channels": 128,
    "audio_out_channels": 128,
    "positional_embedding_max_pos": [20, 2048, 2048],
    "audio_positional_embedding_max_pos": [20],
    "positional_embedding_theta": 10000.0,
    "timestep_scale_multiplier": 1000,
    "av_ca_timestep_scale_multiplier": 1,
    "rope_type": "interleaved",
    "frequencies_precision": "float32",
    "norm_eps": 1e-6,
    "attention_bias": True,
    "activation_fn": "gelu-approximate",
    "apply_gated_attention": False,
    "cross_attention_adaln": False,
    "caption_proj_before_connector": False,
    "norm_elementwise_affine": False,
}


# The LTX-2.5 switches and the values older checkpoints (which lack them) behave as.
LTX25_SWITCHES = {
    "ff_bias": True,
    "audio_ff_bias": True,
    "use_prompt_adaln_single": True,
    "use_keyframes_abs_pos_embedding": False,
}


def diffusers_config(official: dict) -> dict:
    """Metadata ``config["transformer"]`` -> ``LTX2VideoTransformer3DModel`` kwargs."""
    t = {**_LTX_CORE_DEFAULTS, **official}
    if "caption_channels" not in t and not t["caption_proj_before_connector"]:
        raise ValueError("transformer config has no 'caption_channels' (ltx-core has no default for it)")
    max_pos = t["positional_embedding_max_pos"]
    gated = bool(t["apply_gated_attention"])
    prompt_mod = bool(t["cross_attention_adaln"])
    return {
        "in_channels": t["in_channels"],
        "out_channels": t["out_channels"],
        "patch_size": 1,
        "patch_size_t": 1,
        "num_attention_heads": t["num_attention_heads"],
        "attention_head_dim": t["attention_head_dim"],
        "cross_attention_dim": t["cross_attention_dim"],
        "vae_scale_factors": (8, 32, 32),
        "pos_embed_max_pos": max_pos[0],
        "base_height": max_pos[1],
        "base_width": max_pos[2],
        "gated_attn": gated,
        "cross_attn_mod": prompt_mod,
        "audio_in_channels": t["audio_in_channels"],
        "audio_out_channels": t["audio_out_channels"],
        "audio_num_attention_heads": t["audio_num_attention_heads"],
        "audio_attention_head_dim": t["audio_attention_head_dim"],
        "audio_cross_attention_dim": t["audio_cross_attention_dim"],
        "audio_pos_embed_max_pos": t["audio_positional_embedding_max_pos"][0],
        "audio_gated_attn": gated,
        "audio_cross_attn_mod": prompt_mod,
        "num_layers": t["num_layers"],
        "activation_fn": t["activation_fn"],
        "qk_norm": "rms_norm_across_heads",
        "norm_elementwise_affine": t["norm_elementwise_affine"],
        "norm_eps": t["norm_eps"],
        "caption_channels": t.get("caption_channels", 3840),
        "attention_bias": t["attention_bias"],
        "rope_theta": t["positional_embedding_theta"],
        "rope_double_precision": t["frequencies_precision"] == "float64",
        "causal_offset": 1,
        "timestep_scale_multiplier": t["timestep_scale_multiplier"],
        "cross_attn_timestep_scale_multiplier": t["av_ca_timestep_scale_multiplier"],
        "rope_type": t["rope_type"],
        "use_prompt_embeddings": not t["caption_proj_before_connector"],
        "perturbed_attn": True,  # processor choice only (no weights): lets STG skip self-attention per sample
        **{key: bool(t.get(key, default)) for key, default in LTX25_SWITCHES.items()},
    }


# Values ltx-core's LTXModelConfigurator asserts (a file must carry them) and that no LTX-2 model changes.
OFFICIAL_FIXED = {
    "dropout": 0.0,
    "num_vector_embeds": None,
    "num_embeds_ada_norm": 1000,
    "use_linear_projection": False,
    "only_cross_attention": False,
    "cross_attention_norm": True,
    "double_self_attention": False,
    "upcast_attention": False,
    "standardization_norm": "rms_norm",
    "qk_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "use_audio_video_cross_attention": True,
    "share_ff": False,
    "av_cross_ada_norm": True,
    "use_middle_indices_grid": True,
}


def official_config(diffusers: dict) -> dict:
    """diffusers transformer config -> metadata ``config["transformer"]`` fields (connector fields excluded)."""
    d = diffusers
    v23 = not d["use_prompt_embeddings"]
    cfg = {
        "_class_name": "AVTransformer3DModel",
        "num_layers": d["num_layers"],
        "num_attention_heads": d["num_attention_heads"],
        "attention_head_dim": d["attention_head_dim"],
        "cross_attention_dim": d["cross_attention_dim"],
        "audio_num_attention_heads": d["audio_num_attention_heads"],
        "audio_attention_head_dim": d["audio_attention_head_dim"],
        "audio_cross_attention_dim": d["audio_cross_attention_dim"],
        "in_channels": d["in_channels"],
        "out_channels": d["out_channels"],
        "audio_in_channels": d["audio_in_channels"],
        "audio_out_channels": d["audio_out_channels"],
        "caption_channels": d["caption_channels"],
        "norm_eps": d["norm_eps"],
        "norm_elementwise_affine": d["norm_elementwise_affine"],
        "activation_fn": d["activation_fn"],
        "attention_bias": d["attention_bias"],
        "positional_embedding_theta": d["rope_theta"],
        "positional_embedding_max_pos": [d["pos_embed_max_pos"], d["base_height"], d["base_width"]],
        "audio_positional_embedding_max_pos": [d["audio_pos_embed_max_pos"]],
        "timestep_scale_multiplier": d["timestep_scale_multiplier"],
        "av_ca_timestep_scale_multiplier": d["cross_attn_timestep_scale_multiplier"],
        "rope_type": d["rope_type"],
        "frequencies_precision": "float64" if d["rope_double_precision"] else "float32",
        **OFFICIAL_FIXED,
    }
    if v23:
        cfg.update(
            apply_gated_attention=d["gated_attn"],
            cross_attention_adaln=d["cross_attn_mod"],
            caption_proj_before_connector=True,
            caption_projection_first_linear=False,
            caption_proj_input_norm=False,
            caption_projection_second_linear=False,
        )
    # only what differs from the older checkpoints' behaviour is written: 2.0 / 2.3 files stay as they were
    cfg.update({k: bool(d[k]) for k, default in LTX25_SWITCHES.items() if bool(d.get(k, default)) != default})
    return cfg


@contextmanager
def gates_from_other_sigma(
    transformer: torch.nn.Module, video_sigma: torch.Tensor, audio_sigma: torch.Tensor
) -> Iterator[None]:
    """For one forward run with ``use_cross_timestep=False``: the audio-video cross-attention gates follow the *other*
    modality's sigma while their scale/shift keeps the modality's own per-token timesteps (LTX-2.5, ltx-core 1.2.0).

    diffusers offers either both from the other modality's sigma (``use_cross_timestep=True``, LTX-2.3) or both from
    the own timesteps (``False``); neither reproduces 2.5 once the timesteps differ per token (first-frame
    conditioning). This swaps the input of the two gate embeddings only.

    Args:
        transformer: the ``LTX2VideoTransformer3DModel`` (or a wrapper with ``.module``).
        video_sigma / audio_sigma: ``[B]`` sigmas already scaled as the forward's ``sigma`` argument (x1000).
    """
    module = getattr(transformer, "module", transformer)
    factor = module.config.cross_attn_timestep_scale_multiplier / module.config.timestep_scale_multiplier
    swaps = ((module.av_cross_attn_video_a2v_gate, audio_sigma), (module.av_cross_attn_audio_v2a_gate, video_sigma))
    handles = []
    for gate, sigma in swaps:

        def replace(_module, args, kwargs, sigma=sigma):
            return ((sigma.flatten() * factor).to(args[0]), *args[1:]), kwargs

        handles.append(gate.register_forward_pre_hook(replace, with_kwargs=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
