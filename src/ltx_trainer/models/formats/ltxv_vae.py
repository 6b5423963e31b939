"""LTX-Video 0.9.x video VAE: official ``vae.*`` keys (``CausalVideoAutoencoder``) and metadata config <->
diffusers ``AutoencoderKLLTXVideo``. See ``formats/ltxv.py`` for how the block layout is derived.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats.common import StateDict
from ltx_trainer.models.formats.ltxv_transformer import _section

VAE_PREFIX = "vae."

# Released VAE configs (official naming), for checkpoints whose metadata has no config. 0.9.5 also covers
# 0.9.6/0.9.7/0.9.8 (2B and 13B share the VAE).
_VAE_COMMON = {
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "scaling_factor": 1.0, "norm_layer": "pixel_norm", "patch_size": 4, "latent_log_var": "uniform",
    "use_quant_conv": False, "causal_decoder": False,
}  # fmt: skip


def _res(num_layers: int, **extra: object) -> list:
    return ["res_x", {"num_layers": num_layers, **extra}]


_UP = ["compress_all", {"residual": True, "multiplier": 2}]
KNOWN_VAE_CONFIGS = {
    "0.9.0": {
        **_VAE_COMMON,
        "blocks": [["res_x", 4], ["compress_all", 1], ["res_x_y", 1], ["res_x", 3], ["compress_all", 1],
                   ["res_x_y", 1], ["res_x", 3], ["compress_all", 1], ["res_x", 3], ["res_x", 4]],
    },
    "0.9.1": {
        **_VAE_COMMON,
        "timestep_conditioning": True,
        "encoder_blocks": [_res(4), ["compress_all", {}], ["res_x_y", 1], _res(3), ["compress_all", {}],
                           ["res_x_y", 1], _res(3), ["compress_all", {}], _res(3), _res(4)],
        "decoder_blocks": [_res(5, inject_noise=True), _UP, _res(6, inject_noise=True), _UP,
                           _res(7, inject_noise=True), _UP, _res(8, inject_noise=False)],
    },
    "0.9.5": {
        **_VAE_COMMON,
        "timestep_conditioning": True,
        "encoder_blocks": [_res(4), ["compress_space_res", {"multiplier": 2}], _res(6),
                           ["compress_time_res", {"multiplier": 2}], _res(6), ["compress_all_res", {"multiplier": 2}],
                           _res(2), ["compress_all_res", {"multiplier": 2}], _res(2)],
        "decoder_blocks": [_res(5, inject_noise=False), _UP, _res(5, inject_noise=False), _UP,
                           _res(5, inject_noise=False), _UP, _res(5, inject_noise=False)],
    },
}  # fmt: skip

_SPATIAL = ("compress_space", "compress_space_res", "compress_all", "compress_all_res", "compress_all_x_y")
_TEMPORAL = ("compress_time", "compress_time_res", "compress_all", "compress_all_res", "compress_all_x_y")
_DOWNSAMPLE_TYPE = {
    "compress_space_res": "spatial",
    "compress_time_res": "temporal",
    "compress_all_res": "spatiotemporal",
}
_DOWNSAMPLE_KIND = {v: k for k, v in _DOWNSAMPLE_TYPE.items()}


@dataclass(frozen=True)
class VaeLayout:
    """How the original block lists group into diffusers blocks.

    Attributes:
        encoder: per diffusers down block, its parts in order (``resnets``, ``downsamplers.0``, ``conv_out``); the
            original ``encoder.down_blocks`` indices run through these parts in order, then the mid block.
        decoder: per diffusers up block (execution order), its parts (``conv_in``, ``upsamplers.0``, ``resnets``); the
            original ``decoder.up_blocks`` indices are 0 for the mid block, then run through these parts.
    """

    encoder: tuple[tuple[str, ...], ...]
    decoder: tuple[tuple[str, ...], ...]


def _blocks(cfg: dict, which: str) -> list[tuple[str, dict]]:
    raw = cfg.get(f"{which}_blocks", cfg.get("blocks"))
    if not raw:
        raise ModelLoadError(f"VAE config: no '{which}_blocks' (or 'blocks') list in the metadata config")
    out = []
    for entry in raw:
        name, params = entry[0], entry[1] if len(entry) > 1 else {}
        out.append((name, {"num_layers": params} if isinstance(params, int) else dict(params or {})))
    return out


def _unsupported(what: str) -> ModelLoadError:
    return ModelLoadError(
        f"VAE config: {what}. diffusers' AutoencoderKLLTXVideo can't represent this VAE; only the LTX-Video 0.9.x "
        "layouts (0.9.0, 0.9.1, 0.9.5+) and scaled-down copies of them are supported"
    )


def _encoder_groups(blocks: list[tuple[str, dict]]) -> list[list[tuple[str, dict]]]:
    """Original encoder blocks -> groups that each start with a ``res_x``; the last group is the mid block."""
    groups: list[list[tuple[str, dict]]] = []
    for name, params in blocks:
        if name == "res_x":
            groups.append([(name, params)])
        elif not groups:
            raise _unsupported(f"the encoder starts with {name!r} instead of 'res_x'")
        else:
            groups[-1].append((name, params))
    if len(groups) < 2 or len(groups[-1]) != 1:
        raise _unsupported("the encoder must end with a lone 'res_x' (the mid block)")
    return groups


def _decoder_groups(blocks: list[tuple[str, dict]]) -> list[list[tuple[str, dict]]]:
    """Original decoder blocks in execution order (reversed) -> [mid] + groups that each end with a ``res_x``."""
    ordered = list(reversed(blocks))
    if ordered[0][0] != "res_x":
        raise _unsupported("the decoder's first block (last in the list) must be 'res_x'")
    groups, pending = [[ordered[0]]], []
    for name, params in ordered[1:]:
        pending.append((name, params))
        if name == "res_x":
            groups.append(pending)
            pending = []
    if pending:
        raise _unsupported("the decoder's last block (first in the list) must be 'res_x'")
    return groups


_ENCODER_PART = {"res_x": "resnets", "res_x_y": "conv_out"}
_DECODER_PART = {"res_x": "resnets", "res_x_y": "conv_in"}
_ENCODER_ORDER = ("resnets", "downsamplers.0", "conv_out")
_DECODER_ORDER = ("conv_in", "upsamplers.0", "resnets")


def _parts(group: list[tuple[str, dict]], names: dict[str, str], compress_part: str, order: tuple[str, ...]) -> tuple:
    parts = tuple(names.get(n, compress_part if n.startswith("compress") else f"?{n}") for n, _ in group)
    unknown = [p[1:] for p in parts if p.startswith("?")]
    if unknown:
        raise _unsupported(f"block kind(s) {unknown}")
    if len(set(parts)) != len(parts) or list(parts) != sorted(parts, key=order.index):
        raise _unsupported(f"block order {[n for n, _ in group]}")
    return parts


def vae_layout_from_official_config(official: dict) -> VaeLayout:
    cfg = _section(official, "vae")
    enc = _encoder_groups(_blocks(cfg, "encoder"))
    dec = _decoder_groups(_blocks(cfg, "decoder"))
    return VaeLayout(
        encoder=tuple(_parts(g, _ENCODER_PART, "downsamplers.0", _ENCODER_ORDER) for g in enc[:-1]),
        decoder=tuple(_parts(g, _DECODER_PART, "upsamplers.0", _DECODER_ORDER) for g in dec[1:]),
    )


def _block_kind(rest: str) -> str:
    """The original block kind from a key's remainder after ``down_blocks.N.`` / ``up_blocks.N.``."""
    if rest.startswith(("res_blocks.", "time_embedder.")):
        return "res_x"  # UNetMidBlock3D
    if rest.startswith(("conv1.", "conv2.", "norm3.", "conv_shortcut.", "scale_shift_table")):
        return "res_x_y"  # a lone ResnetBlock3D
    return "compress"  # a (space-to-depth / depth-to-space) convolution


def _official_kinds(keys: Iterable[str], prefix: str) -> list[str]:
    """Block kinds (``res_x``/``res_x_y``/``compress``) of the ``vae.encoder.down_blocks.N`` (or up) keys."""
    kinds: dict[int, str] = {}
    for key in keys:
        if not key.startswith(prefix):
            continue
        index, _, rest = key[len(prefix) :].partition(".")
        if not index.isdigit():
            continue
        kinds.setdefault(int(index), _block_kind(rest))
    if not kinds or sorted(kinds) != list(range(len(kinds))):
        raise ModelLoadError(
            f"VAE: can't infer the block layout from the '{prefix}*' keys (blocks without tensors); "
            "the file needs its metadata config"
        )
    return [kinds[i] for i in range(len(kinds))]


def vae_layout_from_official_keys(keys: Iterable[str]) -> VaeLayout:
    keys = list(keys)
    enc = [(k, {}) for k in _official_kinds(keys, VAE_PREFIX + "encoder.down_blocks.")]
    dec = [(k, {}) for k in _official_kinds(keys, VAE_PREFIX + "decoder.up_blocks.")]
    return VaeLayout(
        encoder=tuple(_parts(g, _ENCODER_PART, "downsamplers.0", _ENCODER_ORDER) for g in _encoder_groups(enc)[:-1]),
        decoder=tuple(
            _parts(g, _DECODER_PART, "upsamplers.0", _DECODER_ORDER) for g in _decoder_groups(list(reversed(dec)))[1:]
        ),
    )


def _diffusers_decoder_plan(cfg: dict) -> list[dict]:
    """Per up block (execution order): channels in/out, upsampler, factor, as ``LTXVideoDecoder3d`` builds them."""

    def rev(name: str, default: tuple) -> list:
        return list(reversed(cfg.get(name, default)))

    block_out = rev("decoder_block_out_channels", (128, 256, 512, 512))
    scaling = rev("decoder_spatio_temporal_scaling", (True, True, True, False))
    factor = rev("upsample_factor", (1, 1, 1, 1))
    output = block_out[0]
    plan = []
    for i, out_ch in enumerate(block_out):
        actual_in = output
        nominal_in, output = output // factor[i], out_ch // factor[i]
        parts = (
            (("conv_in",) if nominal_in != output else ()) + (("upsamplers.0",) if scaling[i] else ()) + ("resnets",)
        )
        plan.append({"in": actual_in, "nominal_in": nominal_in, "out": output, "factor": factor[i], "parts": parts})
    return plan


def vae_layout_from_diffusers_config(diffusers: dict) -> VaeLayout:
    block_out = list(diffusers.get("block_out_channels", (128, 256, 512, 512)))
    types = list(diffusers.get("down_block_types", ("LTXVideoDownBlock3D",) * 4))
    scaling = list(diffusers.get("spatio_temporal_scaling", (True, True, True, False)))
    is_095 = types[-1] == "LTXVideo095DownBlock3D"
    n = len(block_out) - (1 if is_095 else 0)
    encoder = []
    for i in range(n):
        out_ch = block_out[i + 1] if (is_095 or i + 1 < n) else block_out[i]
        conv_out = not is_095 and out_ch != block_out[i]
        encoder.append(("resnets",) + (("downsamplers.0",) if scaling[i] else ()) + (("conv_out",) if conv_out else ()))
    return VaeLayout(encoder=tuple(encoder), decoder=tuple(p["parts"] for p in _diffusers_decoder_plan(diffusers)))


def vae_layout_from_diffusers_keys(keys: Iterable[str]) -> VaeLayout:
    found: dict[str, dict[int, set[str]]] = {"encoder.down_blocks.": {}, "decoder.up_blocks.": {}}
    for key in keys:
        for prefix, blocks in found.items():
            if key.startswith(prefix):
                index, _, rest = key[len(prefix) :].partition(".")
                part = (
                    "downsamplers.0"
                    if rest.startswith("downsamplers.")
                    else ("upsamplers.0" if rest.startswith("upsamplers.") else rest.split(".")[0])
                )
                blocks.setdefault(int(index), set()).add("resnets" if part == "time_embedder" else part)
    enc, dec = found["encoder.down_blocks."], found["decoder.up_blocks."]
    for blocks in (enc, dec):
        for parts in blocks.values():
            parts.add("resnets")
    return VaeLayout(
        encoder=tuple(tuple(p for p in _ENCODER_ORDER if p in enc[i]) for i in sorted(enc)),
        decoder=tuple(tuple(p for p in _DECODER_ORDER if p in dec[i]) for i in sorted(dec)),
    )


def _prefix_pairs(layout: VaeLayout) -> list[tuple[str, str]]:
    """(official prefix, diffusers prefix) pairs, both without the ``vae.`` file prefix."""
    pairs = []

    def res(official: str, diffusers: str) -> None:
        pairs.append((official + "res_blocks.", diffusers + "resnets."))
        pairs.append((official + "time_embedder.", diffusers + "time_embedder."))

    def blocks(prefix: str, groups: Sequence[Sequence[str]], k: int) -> int:
        """Official flat blocks ``prefix.k`` <- diffusers groups ``prefix.g[.part]``; returns the next ``k``."""
        for g, parts in enumerate(groups):
            for part in parts:
                if part == "resnets":
                    res(f"{prefix}.{k}.", f"{prefix}.{g}.")
                else:
                    pairs.append((f"{prefix}.{k}.", f"{prefix}.{g}.{part}."))
                k += 1
        return k

    k = blocks("encoder.down_blocks", layout.encoder, 0)
    res(f"encoder.down_blocks.{k}.", "encoder.mid_block.")
    res("decoder.up_blocks.0.", "decoder.mid_block.")
    blocks("decoder.up_blocks", layout.decoder, 1)
    pairs += [
        ("decoder.last_time_embedder.", "decoder.time_embedder."),
        ("decoder.last_scale_shift_table", "decoder.scale_shift_table"),
        ("per_channel_statistics.mean-of-means", "latents_mean"),
        ("per_channel_statistics.std-of-means", "latents_std"),
    ]
    return pairs


def _map_prefix(key: str, pairs: list[tuple[str, str]]) -> str | None:
    best = max((p for p in pairs if key.startswith(p[0])), key=lambda p: len(p[0]), default=None)
    return None if best is None else best[1] + key[len(best[0]) :]


_SUFFIXES = ((".conv_shortcut.", ".conv_shortcut.conv."), (".norm3.norm.", ".norm3."))


def vae_to_diffusers(sd: StateDict, official_config: dict | None = None) -> StateDict:
    """``vae.*`` file keys -> ``AutoencoderKLLTXVideo`` keys (other keys are ignored).

    Args:
        official_config: the metadata config (or its ``vae`` section); gives the layout. Without it the layout is
            read from the block kinds in the keys.
    """
    local = {k.removeprefix(VAE_PREFIX): v for k, v in sd.items() if k.startswith(VAE_PREFIX)}
    if official_config:
        layout = vae_layout_from_official_config(official_config)
    else:
        layout = vae_layout_from_official_keys(VAE_PREFIX + k for k in local)
    pairs = _prefix_pairs(layout)
    out = {}
    for key, value in local.items():
        if key.startswith("per_channel_statistics.") and not key.endswith(("mean-of-means", "std-of-means")):
            continue
        new = _map_prefix(key, pairs) or key
        for official, diffusers in _SUFFIXES:
            new = new.replace(official, diffusers)
        out[new] = value
    return out


def vae_to_official(sd: StateDict, diffusers_config: dict | None = None) -> StateDict:
    """``AutoencoderKLLTXVideo`` keys -> ``vae.*`` file keys (layout from ``diffusers_config``, else from the keys)."""
    layout = (
        vae_layout_from_diffusers_config(diffusers_config) if diffusers_config else vae_layout_from_diffusers_keys(sd)
    )
    pairs = [(d, o) for o, d in _prefix_pairs(layout)]
    out = {}
    for key, value in sd.items():
        new = key
        for official, diffusers in _SUFFIXES:
            new = new.replace(diffusers, official)
        out[VAE_PREFIX + (_map_prefix(new, pairs) or new)] = value
    return out


def _check_vae_fixed(cfg: dict) -> None:
    fixed = {
        "dims": 3,
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "use_quant_conv": False,
        "normalize_latent_channels": False,
        "spatial_padding_mode": "zeros",
    }
    defaults = {
        "norm_layer": "group_norm",
        "latent_log_var": "per_channel",
        "use_quant_conv": True,
        "normalize_latent_channels": False,
        "spatial_padding_mode": "zeros",
    }
    for key, want in fixed.items():
        value = cfg.get(key, defaults.get(key))
        if isinstance(value, list):
            value = tuple(value)
        if value != want:
            raise _unsupported(f"{key}={cfg.get(key, defaults.get(key))!r} (LTX-Video uses {want!r})")


def vae_diffusers_config(official: dict) -> dict:
    """Official metadata ``vae`` section -> ``AutoencoderKLLTXVideo`` kwargs (original defaults for absent keys).

    Raises:
        ModelLoadError: a layout diffusers can't build (attention blocks, group norm, other padding, ...).
    """
    cfg = _section(official, "vae")
    _check_vae_fixed(cfg)
    patch = int(cfg.get("patch_size", 1))

    # encoder
    enc = _encoder_groups(_blocks(cfg, "encoder"))
    is_095 = any(n.endswith("_res") for g in enc for n, _ in g)
    channels = int(cfg.get("encoder_base_channels", 128))
    block_out, layers, scaling, down_types = [channels], [], [], []
    spatial = temporal = 0
    for gi, group in enumerate(enc[:-1]):
        layers.append(int(group[0][1].get("num_layers", 1)))
        compress = [(n, p) for n, p in group if n.startswith("compress")]
        scaling.append(bool(compress))
        for name, params in compress:
            spatial += name in _SPATIAL
            temporal += name in _TEMPORAL
            if is_095:
                if name not in _DOWNSAMPLE_TYPE:
                    raise _unsupported(f"encoder block {name!r} mixed with space-to-depth blocks")
                down_types.append(_DOWNSAMPLE_TYPE[name])
                channels *= int(params.get("multiplier", 2))
            elif name != "compress_all":
                raise _unsupported(f"encoder block {name!r}")
            else:
                down_types.append("conv")
        if not compress:
            down_types.append("conv")
        for name, params in group[1:]:
            if name == "res_x_y":
                if is_095:
                    raise _unsupported("'res_x_y' in a space-to-depth encoder")
                if gi == len(enc) - 2:
                    raise _unsupported("a channel change ('res_x_y') in the last encoder block")
                channels *= int(params.get("multiplier", 2))
        if is_095 or gi < len(enc) - 2:
            block_out.append(channels)
    layers.append(int(enc[-1][0][1].get("num_layers", 1)))

    # decoder
    dec = _decoder_groups(_blocks(cfg, "decoder"))
    base = int(cfg.get("decoder_base_channels", 128))
    mid_channels = base
    for name, params in _blocks(cfg, "decoder"):
        if name == "res_x_y":
            mid_channels *= int(params.get("multiplier", 2))
        elif name == "compress_all":
            mid_channels *= int(params.get("multiplier", 1))
    c = mid_channels
    rev_out, rev_layers, rev_noise, rev_scaling, rev_residual, rev_factor = [], [], [], [], [], []
    rev_layers.append(int(dec[0][0][1].get("num_layers", 1)))
    rev_noise.append(bool(dec[0][0][1].get("inject_noise", False)))
    for i, group in enumerate(dec[1:]):
        xy, factor, residual, has_up = 1, 1, False, False
        for name, params in group:
            if name == "res_x_y":
                xy = int(params.get("multiplier", 2))
            elif name == "compress_all":
                has_up, factor, residual = True, int(params.get("multiplier", 1)), bool(params.get("residual", False))
            elif name != "res_x":
                raise _unsupported(f"decoder block {name!r} (diffusers upsamples space and time together)")
        if xy != 1 and factor != 1:
            raise _unsupported("a decoder block that changes channels both before and while upsampling")
        if i == 0 and xy != 1:
            raise _unsupported("a channel change ('res_x_y') right after the decoder's mid block")
        rev_out.append(c // xy)
        rev_layers.append(int(group[-1][1].get("num_layers", 1)))
        rev_noise.append(bool(group[-1][1].get("inject_noise", False)))
        rev_scaling.append(has_up)
        rev_residual.append(residual)
        rev_factor.append(factor)
        c = c // xy // factor
    if rev_out[0] != mid_channels:
        raise _unsupported("the decoder's first up block changes channels")

    out = {
        "in_channels": int(cfg.get("in_channels", 3)),
        "out_channels": int(cfg.get("out_channels", 3)),
        "latent_channels": int(cfg["latent_channels"]),
        "block_out_channels": tuple(block_out),
        "down_block_types": (("LTXVideo095DownBlock3D" if is_095 else "LTXVideoDownBlock3D"),) * len(enc[:-1]),
        "decoder_block_out_channels": tuple(reversed(rev_out)),
        "layers_per_block": tuple(layers),
        "decoder_layers_per_block": tuple(reversed(rev_layers)),
        "spatio_temporal_scaling": tuple(scaling),
        "decoder_spatio_temporal_scaling": tuple(reversed(rev_scaling)),
        "decoder_inject_noise": tuple(reversed(rev_noise)),
        "downsample_type": tuple(down_types),
        "upsample_residual": tuple(reversed(rev_residual)),
        "upsample_factor": tuple(reversed(rev_factor)),
        "timestep_conditioning": bool(cfg.get("timestep_conditioning", False)),
        "patch_size": patch,
        "patch_size_t": 1,
        "resnet_norm_eps": 1e-6,
        "scaling_factor": float(cfg.get("scaling_factor", 1.0)),
        "encoder_causal": True,
        "decoder_causal": bool(cfg.get("causal_decoder", False)),
        "spatial_compression_ratio": patch * 2**spatial,
        "temporal_compression_ratio": 2**temporal,
    }
    # Guard against any drift between this derivation and the key layout (both must describe the same VAE).
    if vae_layout_from_diffusers_config(out) != vae_layout_from_official_config(cfg):
        raise _unsupported("the block lists don't map onto diffusers' down/up blocks")
    return out


def vae_official_config(diffusers: dict) -> dict:
    """``AutoencoderKLLTXVideo`` config -> official metadata ``vae`` section (ltx_video ``CausalVideoAutoencoder``)."""
    if not diffusers.get("encoder_causal", True) or diffusers.get("patch_size_t", 1) != 1:
        raise _unsupported("a non-causal encoder or a temporal patch size")
    block_out = list(diffusers.get("block_out_channels", (128, 256, 512, 512)))
    types = list(diffusers.get("down_block_types", ("LTXVideoDownBlock3D",) * 4))
    is_095 = types[-1] == "LTXVideo095DownBlock3D"
    layers = list(diffusers.get("layers_per_block", (4, 3, 3, 3, 4)))
    scaling = list(diffusers.get("spatio_temporal_scaling", (True, True, True, False)))
    down = list(diffusers.get("downsample_type", ("conv",) * len(types)))
    n = len(block_out) - (1 if is_095 else 0)
    encoder: list = []
    for i in range(n):
        encoder.append(["res_x", {"num_layers": layers[i]}])
        out_ch = block_out[i + 1] if (is_095 or i + 1 < n) else block_out[i]
        if is_095:
            if scaling[i]:
                if down[i] not in _DOWNSAMPLE_KIND:
                    raise _unsupported(f"downsample_type {down[i]!r} in a 0.9.5-style encoder")
                encoder.append([_DOWNSAMPLE_KIND[down[i]], {"multiplier": out_ch // block_out[i]}])
            elif out_ch != block_out[i]:
                raise _unsupported("a channel change without downsampling")
        else:
            if scaling[i]:
                encoder.append(["compress_all", {}])
            if out_ch != block_out[i]:
                encoder.append(["res_x_y", {"multiplier": out_ch // block_out[i]}])
    encoder.append(["res_x", {"num_layers": layers[-1]}])

    plan = _diffusers_decoder_plan(diffusers)
    dec_layers = list(reversed(diffusers.get("decoder_layers_per_block", (4, 3, 3, 3, 4))))
    noise = list(reversed(diffusers.get("decoder_inject_noise", (False,) * (len(plan) + 1))))
    residual = list(reversed(diffusers.get("upsample_residual", (False,) * len(plan))))
    forward: list = [["res_x", {"num_layers": dec_layers[0], "inject_noise": bool(noise[0])}]]
    for i, step in enumerate(plan):
        if step["factor"] != 1 and "conv_in" in step["parts"]:
            raise _unsupported("an up block that changes channels both before and while upsampling")
        if "conv_in" in step["parts"]:
            forward.append(["res_x_y", {"multiplier": step["in"] // step["out"]}])
        if "upsamplers.0" in step["parts"]:
            forward.append(["compress_all", {"residual": bool(residual[i]), "multiplier": step["factor"]}])
        elif step["factor"] != 1:
            raise _unsupported("an upsample factor on a block without upsampler")
        forward.append(["res_x", {"num_layers": dec_layers[i + 1], "inject_noise": bool(noise[i + 1])}])
    return {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": diffusers.get("in_channels", 3),
        "out_channels": diffusers.get("out_channels", 3),
        "latent_channels": diffusers.get("latent_channels", 128),
        "encoder_blocks": encoder,
        "decoder_blocks": list(reversed(forward)),
        "scaling_factor": diffusers.get("scaling_factor", 1.0),
        "norm_layer": "pixel_norm",
        "patch_size": diffusers.get("patch_size", 4),
        "latent_log_var": "uniform",
        "use_quant_conv": False,
        "causal_decoder": diffusers.get("decoder_causal", False),
        "timestep_conditioning": diffusers.get("timestep_conditioning", False),
        "normalize_latent_channels": False,
        "encoder_base_channels": block_out[0],
        "decoder_base_channels": plan[-1]["out"],
        "spatial_padding_mode": "zeros",
    }


def vae_version_from_official(official: dict | None, keys: Iterable[str]) -> str | None:
    """``"0.9.0"`` / ``"0.9.1"`` / ``"0.9.5"`` (every space-to-depth VAE, 0.9.5 to 0.9.8); None without VAE."""
    keys = list(keys)
    cfg = _section(official, "vae") if official else {}
    if cfg.get("encoder_blocks") or cfg.get("blocks"):
        names = [n for n, _ in _blocks(cfg, "encoder")]
        if any(n.endswith("_res") for n in names):
            return "0.9.5"
        return "0.9.1" if cfg.get("timestep_conditioning") else "0.9.0"
    if not any(k.startswith(VAE_PREFIX) for k in keys):
        return None
    if any(k.startswith(VAE_PREFIX + "encoder.down_blocks.") and k.endswith(".conv.conv.weight") for k in keys):
        return "0.9.5"
    if any(k.startswith(VAE_PREFIX + "decoder.last_time_embedder.") for k in keys):
        return "0.9.1"
    return "0.9.0"
