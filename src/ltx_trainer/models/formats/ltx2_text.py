"""LTX-2 text embeddings processor: the official ``text_embedding_projection.*`` (feature extractor) and
``model.diffusion_model.{video,audio}_embeddings_connector.*`` keys plus the metadata ``transformer`` section <->
diffusers ``LTX2TextConnectors``, and the split the trainer needs.

ltx-core runs Gemma's hidden-state stack through a feature extractor, then one connector per modality:

- V1 (LTX-2.0, ``text_embedding_projection.aggregate_embed.weight``): per-sample, per-layer masked mean/range norm
  (x8), one bias-free Linear to the Gemma width, the same features for video and audio.
- V2 (LTX-2.3, ``text_embedding_projection.{video,audio}_aggregate_embed.{weight,bias}``): per-token RMS norm,
  rescaled by sqrt(target/gemma width), one Linear per modality to the transformer's video / audio width.

In diffusers that is ``text_proj_in`` (V1) or ``{video,audio}_text_proj_in`` (V2) followed by ``video_connector`` /
``audio_connector``. The trainer caches the feature extractor's output (``text_features``) and runs the connectors
every step (``text_context``); ``text_context(text_features(x))`` is ``LTX2TextConnectors.forward(x)``.

LTX-2.5 checkpoints may drop the connectors' feed-forward biases (``connector_ff_bias: false``), which diffusers'
``LTX2TextConnectors`` cannot express: ``build_connectors`` builds them and removes those biases (the config then
carries ``connector_ff_bias: False``; it is left out when the biases exist, so 2.0 / 2.3 configs are unchanged).

The connectors take theta 10000 and 128 learnable registers whatever the metadata says (ltx-core ignores
``connector_num_learnable_registers`` and ``connector_norm_output``; we refuse other register counts). ``rope_type``
and ``frequencies_precision`` are shared with the transformer in the official format.
"""

import math
from collections.abc import Mapping, Sequence

import torch
from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors, per_layer_masked_mean_norm, per_token_rms_norm

from ltx_trainer.models.formats.common import StateDict

PROJECTION_PREFIX = "text_embedding_projection."
CONNECTOR_FILE_PREFIXES = {
    "video_connector.": "model.diffusion_model.video_embeddings_connector.",
    "audio_connector.": "model.diffusion_model.audio_embeddings_connector.",
}
_PROJECTIONS = {  # official feature-extractor module -> diffusers module
    "aggregate_embed": "text_proj_in",
    "video_aggregate_embed": "video_text_proj_in",
    "audio_aggregate_embed": "audio_text_proj_in",
}
_SEGMENTS = {"transformer_1d_blocks": "transformer_blocks", "q_norm": "norm_q", "k_norm": "norm_k"}

# The keys that select feature extractor V2, with the only values ltx-core accepts (encoder_configurator.py)
V2_KEYS = {
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
}
# ltx-core 1.0.0's defaults for absent keys (embeddings_connector.py, encoder_configurator.py, model_configurator.py)
_DEFAULTS = {
    "connector_num_attention_heads": 30,
    "connector_attention_head_dim": 128,
    "connector_num_layers": 2,
    "connector_positional_embedding_max_pos": [1],
    "connector_apply_gated_attention": False,
    "rope_type": "interleaved",
    "frequencies_precision": "float32",
    "num_attention_heads": 32,
    "attention_head_dim": 128,
    "audio_num_attention_heads": 32,
    "audio_attention_head_dim": 64,
}
_GEMMA_3_12B = (3840, 49)  # ltx-core's hard-coded text encoder: hidden size, hidden states (48 layers + embeddings)
_REGISTERS = 128  # hard-coded in ltx-core's Embeddings1DConnector
_ROPE_THETA = 10000.0  # Embeddings1DConnector's default; the configurator never passes one


# ----------------------------------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------------------------------
def uses_feature_extractor_v2(official_transformer: dict) -> bool:
    """ltx-core's rule: V2 when the caption-projection keys are present (all four, with the expected values)."""
    present = official_transformer.keys() & V2_KEYS.keys()
    if not present:
        return False
    missing = V2_KEYS.keys() - present
    wrong = {k: official_transformer[k] for k in present if official_transformer[k] != V2_KEYS[k]}
    if missing or wrong:
        raise ValueError(
            f"transformer config selects neither text feature extractor: missing {sorted(missing)}, "
            f"unexpected values {wrong} (ltx-core accepts only {V2_KEYS})"
        )
    return True


def _gemma_dims(gemma_config: object | None) -> tuple[int, int] | None:
    """(hidden size, number of hidden states = layers + 1) of a Gemma config dict / object, or None."""
    if gemma_config is None:
        return None

    def get(obj: object, key: str) -> object:
        return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)

    text = get(gemma_config, "text_config") or gemma_config
    hidden, layers = get(text, "hidden_size"), get(text, "num_hidden_layers")
    if hidden is None or layers is None:
        raise ValueError("Gemma config has no text_config.hidden_size / num_hidden_layers")
    return int(hidden), int(layers) + 1


def _weight_shape(sd: StateDict | None, module: str) -> tuple[int, int] | None:
    if sd is None:
        return None
    t = sd.get(f"{PROJECTION_PREFIX}{module}.weight")
    return None if t is None else (int(t.shape[0]), int(t.shape[1]))


def connectors_diffusers_config(
    official_transformer: dict, sd: StateDict | None = None, gemma_config: object | None = None
) -> dict:
    """Metadata ``config["transformer"]`` (+ the file's ``text_embedding_projection.*`` weights, + optionally the
    Gemma config) -> ``LTX2TextConnectors`` kwargs.

    The Gemma width (``caption_channels``) and hidden-state count (``text_proj_in_factor``) come from the Gemma config
    when given, else from the aggregate-embed weight (V1: [width, width * states]; V2: the input width divided by
    ``caption_channels``), else from ltx-core's hard-coded Gemma-3-12B (3840 x 49). Everything else follows
    ltx-core's configurators and defaults.
    """
    t = {**_DEFAULTS, **official_transformer}
    v2 = uses_feature_extractor_v2(official_transformer)
    if sd is not None:
        file_v2 = _weight_shape(sd, "video_aggregate_embed") is not None
        file_v1 = _weight_shape(sd, "aggregate_embed") is not None
        if (file_v1 or file_v2) and file_v2 != v2:
            raise ValueError(
                f"the metadata selects text feature extractor {'V2' if v2 else 'V1'} but the file has "
                f"{'V2 (video/audio_aggregate_embed)' if file_v2 else 'V1 (aggregate_embed)'} weights"
            )

    gemma = _gemma_dims(gemma_config)
    shape = _weight_shape(sd, "video_aggregate_embed" if v2 else "aggregate_embed")
    if gemma is not None:
        width, states = gemma
    elif shape is not None:
        width = int(t.get("caption_channels", _GEMMA_3_12B[0])) if v2 else shape[0]
        if shape[1] % width:
            raise ValueError(
                f"aggregate embed input width {shape[1]} is not a multiple of the Gemma width {width}; "
                "pass the Gemma config the checkpoint was made for"
            )
        states = shape[1] // width
    else:
        width, states = (t["caption_channels"], _GEMMA_3_12B[1]) if "caption_channels" in t else _GEMMA_3_12B
    if shape is not None and (shape[1] != width * states or (not v2 and shape[0] != width)):
        raise ValueError(
            f"aggregate embed weight {list(shape)} doesn't fit a Gemma of width {width} with {states} hidden states"
        )

    if v2:
        video_dim = t["num_attention_heads"] * t["attention_head_dim"]
        audio_dim = t["audio_num_attention_heads"] * t["audio_attention_head_dim"]
    else:
        video_dim = audio_dim = width
    max_pos = list(t["connector_positional_embedding_max_pos"])
    if len(max_pos) != 1:
        raise ValueError(f"connector_positional_embedding_max_pos={max_pos}: the connectors have 1-D positions")
    registers = t.get("connector_num_learnable_registers", _REGISTERS)
    if registers != _REGISTERS:
        raise ValueError(f"connector_num_learnable_registers={registers}: ltx-core always uses {_REGISTERS}")
    heads, head_dim = t["connector_num_attention_heads"], t["connector_attention_head_dim"]
    gated = bool(t["connector_apply_gated_attention"])
    no_ff_bias = {} if t.get("connector_ff_bias", True) else {"connector_ff_bias": False}
    return {
        **no_ff_bias,
        "caption_channels": width,
        "text_proj_in_factor": states,
        "video_connector_num_attention_heads": heads,
        "video_connector_attention_head_dim": head_dim,
        "video_connector_num_layers": t["connector_num_layers"],
        "video_connector_num_learnable_registers": _REGISTERS,
        "video_gated_attn": gated,
        "audio_connector_num_attention_heads": t.get("audio_connector_num_attention_heads", heads),
        "audio_connector_attention_head_dim": t.get("audio_connector_attention_head_dim", head_dim),
        "audio_connector_num_layers": t.get("audio_connector_num_layers", t["connector_num_layers"]),
        "audio_connector_num_learnable_registers": _REGISTERS,
        "audio_gated_attn": gated,
        "connector_rope_base_seq_len": max_pos[0],
        "rope_theta": _ROPE_THETA,
        "rope_double_precision": t["frequencies_precision"] == "float64",
        "causal_temporal_positioning": False,
        "rope_type": t["rope_type"],
        "per_modality_projections": v2,
        "video_hidden_dim": video_dim,
        "audio_hidden_dim": audio_dim,
        "proj_bias": v2,
    }


def build_connectors(connector_ff_bias: bool = True, **config: object) -> LTX2TextConnectors:
    """``LTX2TextConnectors(**config)``, without the feed-forward biases of every connector block when
    ``connector_ff_bias`` is False (``ff.net.0.proj.bias`` / ``ff.net.2.bias`` set to None: ``F.linear`` then adds
    nothing, exactly a bias-free layer)."""
    connectors = LTX2TextConnectors(**config)
    if not connector_ff_bias:
        for connector in (connectors.video_connector, connectors.audio_connector):
            for block in connector.transformer_blocks:
                block.ff.net[0].proj.bias = None
                block.ff.net[2].bias = None
    return connectors


def connectors_official_config(diffusers_cfg: dict, official_transformer: dict | None = None) -> dict:
    """``LTX2TextConnectors`` config -> the metadata ``transformer`` fields it owns.

    They go into the same section as the transformer's own fields. ``rope_type`` and ``frequencies_precision`` are
    shared; with ``official_transformer`` (the transformer's part) they are checked to agree, and for V2 the video /
    audio widths are checked against its heads x head_dim. Without it, V2 also emits ``num_attention_heads`` /
    ``attention_head_dim`` / ``audio_*`` from the connectors (what ltx-core sizes V2's projections from).
    """
    c = diffusers_cfg
    problems = []
    if c["rope_theta"] != _ROPE_THETA:
        problems.append(f"rope_theta={c['rope_theta']} (ltx-core: {_ROPE_THETA})")
    for side in ("video", "audio"):
        if c[f"{side}_connector_num_learnable_registers"] != _REGISTERS:
            problems.append(f"{side} registers {c[f'{side}_connector_num_learnable_registers']} (ltx-core: 128)")
    if c["video_gated_attn"] != c["audio_gated_attn"]:
        problems.append("gated attention on one connector only")
    v2 = bool(c["per_modality_projections"])
    if c["proj_bias"] != v2:
        problems.append(f"proj_bias={c['proj_bias']} with per_modality_projections={v2} (ltx-core: bias iff V2)")
    if (
        not v2
        and c["video_connector_num_attention_heads"] * c["video_connector_attention_head_dim"] != c["caption_channels"]
    ):
        problems.append("V1 video connector width != caption_channels")
    if problems:
        raise ValueError("text connectors not representable in ltx-core's format: " + "; ".join(problems))

    heads, head_dim, layers = (
        c["video_connector_num_attention_heads"],
        c["video_connector_attention_head_dim"],
        c["video_connector_num_layers"],
    )
    out = {
        "caption_channels": c["caption_channels"],
        "connector_num_attention_heads": heads,
        "connector_attention_head_dim": head_dim,
        "connector_num_layers": layers,
        "connector_positional_embedding_max_pos": [c["connector_rope_base_seq_len"]],
        "connector_num_learnable_registers": _REGISTERS,
        "connector_apply_gated_attention": bool(c["video_gated_attn"]),
        "rope_type": c["rope_type"],
        "frequencies_precision": "float64" if c["rope_double_precision"] else "float32",
    }
    audio = {
        "audio_connector_num_attention_heads": c["audio_connector_num_attention_heads"],
        "audio_connector_attention_head_dim": c["audio_connector_attention_head_dim"],
        "audio_connector_num_layers": c["audio_connector_num_layers"],
    }
    out.update({k: v for k, v in audio.items() if v != out[k.removeprefix("audio_")]})
    if v2:
        out.update(V2_KEYS)
        dims = {"video": c["video_hidden_dim"], "audio": c["audio_hidden_dim"]}
        if official_transformer is None:
            out.update(
                {
                    "num_attention_heads": heads,
                    "attention_head_dim": head_dim,
                    "audio_num_attention_heads": c["audio_connector_num_attention_heads"],
                    "audio_attention_head_dim": c["audio_connector_attention_head_dim"],
                }
            )
            if (
                heads * head_dim != dims["video"]
                or out["audio_num_attention_heads"] * out["audio_attention_head_dim"] != dims["audio"]
            ):
                raise ValueError("V2 connector widths differ from the projections; pass official_transformer")
    if official_transformer is not None:
        t = {**_DEFAULTS, **official_transformer}
        clash = {k: (t[k], out[k]) for k in ("rope_type", "frequencies_precision") if t[k] != out[k]}
        if v2:
            widths = {
                "video": t["num_attention_heads"] * t["attention_head_dim"],
                "audio": t["audio_num_attention_heads"] * t["audio_attention_head_dim"],
            }
            clash.update({f"{k} width": (widths[k], dims[k]) for k in widths if widths[k] != dims[k]})
        if clash:
            raise ValueError(
                f"text connectors and transformer disagree on shared fields (transformer, connectors): {clash}"
            )
    return out


# ----------------------------------------------------------------------------------------------------------------
# keys
# ----------------------------------------------------------------------------------------------------------------
def _rename_inner(path: str, table: dict[str, str]) -> str:
    return ".".join(table.get(p, p) for p in path.split("."))


def connectors_to_diffusers(sd: StateDict) -> StateDict:
    """``text_embedding_projection.*`` + ``model.diffusion_model.{video,audio}_embeddings_connector.*`` file keys ->
    ``LTX2TextConnectors`` keys (other keys are ignored)."""
    out = {}
    for key, value in sd.items():
        if key.startswith(PROJECTION_PREFIX):
            module, _, rest = key.removeprefix(PROJECTION_PREFIX).partition(".")
            if module not in _PROJECTIONS:
                raise ValueError(f"unknown text feature extractor tensor {key}")
            out[f"{_PROJECTIONS[module]}.{rest}"] = value
            continue
        for ours, theirs in CONNECTOR_FILE_PREFIXES.items():
            if key.startswith(theirs):
                out[ours + _rename_inner(key.removeprefix(theirs), _SEGMENTS)] = value
    return out


def connectors_to_official(sd: StateDict) -> StateDict:
    """``LTX2TextConnectors`` keys -> file keys (the inverse of ``connectors_to_diffusers``)."""
    projections = {v: k for k, v in _PROJECTIONS.items()}
    segments = {v: k for k, v in _SEGMENTS.items()}
    out = {}
    for key, value in sd.items():
        module, _, rest = key.partition(".")
        if module in projections:
            out[f"{PROJECTION_PREFIX}{projections[module]}.{rest}"] = value
        elif module + "." in CONNECTOR_FILE_PREFIXES:
            out[CONNECTOR_FILE_PREFIXES[module + "."] + _rename_inner(rest, segments)] = value
        else:
            raise ValueError(f"unknown LTX2TextConnectors tensor {key}")
    return out


# ----------------------------------------------------------------------------------------------------------------
# runtime: feature extraction (cached) and connectors (every step)
# ----------------------------------------------------------------------------------------------------------------
def _stack(hidden_states: torch.Tensor | Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """Gemma's hidden states -> [B, T, D, L]: a tuple of L [B, T, D] tensors (``output_hidden_states``), a stacked
    [B, T, D, L] tensor, or diffusers' flattened [B, T, D * L] (width-major, as ``LTX2TextConnectors`` takes it)."""
    if isinstance(hidden_states, (list, tuple)):
        return torch.stack(tuple(hidden_states), dim=-1)
    if hidden_states.ndim == 3:
        return hidden_states.unflatten(2, (width, -1))
    if hidden_states.ndim != 4:
        raise ValueError(f"hidden states must be [B, T, D, L] or [B, T, D*L], got {tuple(hidden_states.shape)}")
    return hidden_states


def text_features(
    connectors: torch.nn.Module,
    hidden_states: torch.Tensor | Sequence[torch.Tensor],
    mask: torch.Tensor,
    padding_side: str = "left",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gemma hidden-state stack + its 0/1 mask ``[B, T]`` -> (video features, audio features), the PRE-connector
    features the trainer caches (ltx-core's feature extractor output: ``video_prompt_embeds`` [B, T, Dv] and
    ``audio_prompt_embeds`` [B, T, Da]). V1 returns the same tensor twice.

    ``padding_side`` is the tokenizer's (Gemma pads on the left); only V1's masked mean/range norm depends on it.
    """
    cfg = connectors.config
    stack = _stack(hidden_states, cfg.caption_channels)
    if stack.shape[2] != cfg.caption_channels:
        raise ValueError(f"hidden states are {stack.shape[2]} wide; these connectors take {cfg.caption_channels}")
    if cfg.per_modality_projections:
        normed = per_token_rms_norm(stack).flatten(2, 3)
        normed = torch.where(mask.bool()[..., None], normed, torch.zeros_like(normed)).to(stack.dtype)
        video_proj, audio_proj = connectors.video_text_proj_in, connectors.audio_text_proj_in
        video = video_proj(normed * math.sqrt(video_proj.out_features / cfg.caption_channels))
        audio = audio_proj(normed * math.sqrt(audio_proj.out_features / cfg.caption_channels))
        return video, audio
    normed = per_layer_masked_mean_norm(stack, mask.sum(dim=-1), stack.device, padding_side=padding_side)
    features = connectors.text_proj_in(normed)
    return features, features


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0/1 mask ``[B, T]`` -> the connectors' additive mask ``[B, 1, 1, T]``: 0 where kept, -finfo(dtype).max else."""
    return (mask.to(torch.int64) - 1).to(dtype).reshape(mask.shape[0], 1, 1, mask.shape[-1]) * torch.finfo(dtype).max


def text_context(
    connectors: torch.nn.Module, video_features: torch.Tensor, audio_features: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cached features + the cached 0/1 mask ``[B, T]`` (Gemma's left padding) -> (video context, audio context,
    context mask ``[B, T]``), what the transformer cross-attends to.

    This is ltx-core's ``EmbeddingsProcessor.create_embeddings`` with the additive mask the trainer builds: each
    connector moves the valid tokens to the front and fills the rest with its learnable registers, so the returned
    mask is all ones; video context is multiplied by it, as in ltx-core. Works for any batch size.
    """
    mask_add = additive_mask(mask, video_features.dtype)
    video, video_mask = connectors.video_connector(video_features, mask_add)
    keep = (video_mask < 1e-6).to(torch.int64).reshape(video.shape[0], video.shape[1], 1)
    audio, _ = connectors.audio_connector(audio_features, mask_add)
    return video * keep, audio, keep.squeeze(-1)
