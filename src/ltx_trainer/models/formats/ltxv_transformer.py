"""LTX-Video 0.9.x transformer: official ``model.diffusion_model.*`` keys and metadata config <-> diffusers
``LTXVideoTransformer3DModel``, a bijective rename of four module names (``patchify_proj``, ``adaln_single``,
``q_norm``, ``k_norm``). See ``formats/ltxv.py`` for the file layout.
"""

from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats.common import StateDict

TRANSFORMER_PREFIX = "model.diffusion_model."

_TRANSFORMER_SEGMENTS = {
    "patchify_proj": "proj_in",
    "adaln_single": "time_embed",
    "q_norm": "norm_q",
    "k_norm": "norm_k",
}
_TRANSFORMER_SEGMENTS_INV = {v: k for k, v in _TRANSFORMER_SEGMENTS.items()}


def module_to_diffusers(path: str) -> str:
    """Official transformer module path (no file prefix) -> diffusers path, e.g. ``adaln_single.linear``."""
    return ".".join(_TRANSFORMER_SEGMENTS.get(p, p) for p in path.split("."))


def module_to_official(path: str) -> str:
    """diffusers transformer module path -> official path (inverse of ``module_to_diffusers``)."""
    return ".".join(_TRANSFORMER_SEGMENTS_INV.get(p, p) for p in path.split("."))


def transformer_to_diffusers(sd: StateDict) -> StateDict:
    """``model.diffusion_model.*`` file keys -> diffusers transformer keys (other keys are ignored)."""
    return {
        module_to_diffusers(k.removeprefix(TRANSFORMER_PREFIX)): v
        for k, v in sd.items()
        if k.startswith(TRANSFORMER_PREFIX)
    }


def transformer_to_official(sd: StateDict) -> StateDict:
    """diffusers transformer keys -> ``model.diffusion_model.*`` file keys."""
    return {TRANSFORMER_PREFIX + module_to_official(k): v for k, v in sd.items()}


# The original ``Transformer3DModel`` constructor defaults (ltx_video/models/transformers/transformer3d.py), used for
# keys a metadata config omits. Released checkpoints set every field that matters.
_TRANSFORMER_DEFAULTS = {
    "num_attention_heads": 16,
    "attention_head_dim": 88,
    "in_channels": None,
    "out_channels": None,
    "num_layers": 1,
    "cross_attention_dim": None,
    "attention_bias": False,
    "activation_fn": "geglu",
    "norm_elementwise_affine": True,
    "norm_eps": 1e-5,
    "caption_channels": None,
    "qk_norm": None,
    "adaptive_norm": "single_scale_shift",
    "standardization_norm": "layer_norm",
    "positional_embedding_type": "rope",
    "positional_embedding_theta": None,
    "positional_embedding_max_pos": None,
    "timestep_scale_multiplier": None,
    "causal_temporal_positioning": False,
}
# What diffusers' LTXVideoTransformer3DModel hard-codes; an official config asking for anything else can't be built.
_TRANSFORMER_FIXED = {
    "qk_norm": "rms_norm",
    "adaptive_norm": "single_scale_shift",
    "standardization_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "positional_embedding_theta": 10000.0,
    "positional_embedding_max_pos": [20, 2048, 2048],
}


def _section(config: dict, name: str) -> dict:
    """Accept either the whole metadata ``config`` or its ``name`` section."""
    return config[name] if isinstance(config.get(name), dict) else config


def transformer_settings(official: dict) -> dict:
    """The official transformer config with the original code's defaults filled in for absent keys."""
    cfg = _section(official, "transformer")
    return {k: cfg.get(k, default) for k, default in _TRANSFORMER_DEFAULTS.items()}


def transformer_diffusers_config(official: dict) -> dict:
    """Official metadata ``transformer`` section -> ``LTXVideoTransformer3DModel`` kwargs.

    Raises:
        ModelLoadError: a field diffusers can't represent (another qk-norm, RoPE base, ...) or a missing width.
    """
    s = transformer_settings(official)
    for key, fixed in _TRANSFORMER_FIXED.items():
        value = s[key]
        if isinstance(fixed, float):
            ok = value is not None and float(value) == fixed
        elif isinstance(fixed, list):
            ok = value is not None and [float(v) for v in value] == [float(v) for v in fixed]
        else:
            ok = value == fixed
        if not ok:
            raise ModelLoadError(
                f"transformer config: {key}={value!r} is not supported (LTX-Video 0.9.x uses {fixed!r}); "
                "this checkpoint is not a released LTX-Video model"
            )
    for key in ("in_channels", "cross_attention_dim", "caption_channels"):
        if s[key] is None:
            raise ModelLoadError(f"transformer config: '{key}' is missing from the metadata config")
    return {
        "in_channels": int(s["in_channels"]),
        "out_channels": int(s["out_channels"] or s["in_channels"]),
        "patch_size": 1,
        "patch_size_t": 1,
        "num_attention_heads": int(s["num_attention_heads"]),
        "attention_head_dim": int(s["attention_head_dim"]),
        "cross_attention_dim": int(s["cross_attention_dim"]),
        "num_layers": int(s["num_layers"]),
        "activation_fn": s["activation_fn"],
        "qk_norm": "rms_norm_across_heads",
        "norm_elementwise_affine": bool(s["norm_elementwise_affine"]),
        "norm_eps": float(s["norm_eps"]),
        "caption_channels": int(s["caption_channels"]),
        "attention_bias": bool(s["attention_bias"]),
        "attention_out_bias": True,
    }


def transformer_official_config(diffusers: dict, causal_temporal_positioning: bool = True) -> dict:
    """``LTXVideoTransformer3DModel`` config -> the official metadata ``transformer`` section (ltx_video naming).

    Args:
        causal_temporal_positioning: not a diffusers field; True for 0.9.5+ (RoPE frame positions with the causal
            first-frame fix), False for 0.9.0/0.9.1.
    """
    if diffusers.get("qk_norm", "rms_norm_across_heads") != "rms_norm_across_heads":
        raise ModelLoadError(f"transformer config: qk_norm={diffusers['qk_norm']!r} has no official equivalent")
    if not diffusers.get("attention_out_bias", True):
        raise ModelLoadError("transformer config: attention_out_bias=False has no official equivalent")
    if diffusers.get("patch_size", 1) != 1 or diffusers.get("patch_size_t", 1) != 1:
        raise ModelLoadError("transformer config: LTX-Video 0.9.x uses patch size 1 (the VAE patchifies)")
    in_channels = diffusers.get("in_channels", 128)
    return {
        "_class_name": "Transformer3DModel",
        "activation_fn": diffusers.get("activation_fn", "gelu-approximate"),
        "attention_bias": diffusers.get("attention_bias", True),
        "attention_head_dim": diffusers.get("attention_head_dim", 64),
        "attention_type": "default",
        "caption_channels": diffusers.get("caption_channels", 4096),
        "cross_attention_dim": diffusers.get("cross_attention_dim", 2048),
        "double_self_attention": False,
        "dropout": 0.0,
        "in_channels": in_channels,
        "norm_elementwise_affine": diffusers.get("norm_elementwise_affine", False),
        "norm_eps": diffusers.get("norm_eps", 1e-6),
        "norm_num_groups": 32,
        "num_attention_heads": diffusers.get("num_attention_heads", 32),
        "num_embeds_ada_norm": 1000,
        "num_layers": diffusers.get("num_layers", 28),
        "num_vector_embeds": None,
        "only_cross_attention": False,
        "out_channels": diffusers.get("out_channels") or in_channels,
        "project_to_2d_pos": True,
        "upcast_attention": False,
        "use_linear_projection": False,
        "qk_norm": "rms_norm",
        "standardization_norm": "rms_norm",
        "positional_embedding_type": "rope",
        "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048],
        "timestep_scale_multiplier": 1000,
        "causal_temporal_positioning": bool(causal_temporal_positioning),
    }


# Released transformer architectures, for checkpoints whose metadata has no config (official naming).
_WIDTHS = {"in_channels": 128, "out_channels": 128, "caption_channels": 4096, "num_attention_heads": 32}
KNOWN_TRANSFORMER_CONFIGS = {
    "2b": transformer_official_config(
        {**_WIDTHS, "num_layers": 28, "attention_head_dim": 64, "cross_attention_dim": 2048}
    ),
    "13b": transformer_official_config(
        {**_WIDTHS, "num_layers": 48, "attention_head_dim": 128, "cross_attention_dim": 4096}
    ),
}
