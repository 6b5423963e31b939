"""LTX-2 / LTX-2.3 video VAE: official single-file ``vae.*`` tensors <-> diffusers ``AutoencoderKLLTX2Video``.

The official file describes the VAE in ``__metadata__["config"]["vae"]`` (ltx-core's ``CausalVideoAutoencoder``
config) as two block lists. ltx-core builds the encoder from ``encoder_blocks`` in order, and the decoder from
``decoder_blocks`` in *reverse* order; ``vae.encoder.down_blocks.{i}`` / ``vae.decoder.up_blocks.{i}`` are
numbered by position in the built order. diffusers groups the same modules differently:

- encoder: ``down_blocks[j]`` = (``res_x`` resnets, then one downsampler), and ``mid_block`` = the trailing ``res_x``;
- decoder: ``mid_block`` = the leading ``res_x`` (built order), and ``up_blocks[j]`` = (one upsampler, then resnets).

So the key mapping is derived from the block lists: a ``res_x`` and the compress block next to it share one diffusers
block, with zero resnets where the list has no ``res_x`` (the tiny oracle checkpoints have none between their
compress blocks, which diffusers' fixed table in ``convert_ltx2_vae_to_diffusers`` assumes).

Layouts diffusers cannot express raise ``ModelLoadError``: ``group_norm``, a log-variance other than ``uniform``,
``res_x_y`` / ``attn_res_x`` / ``compress_all_x_y`` blocks, plain strided ``compress_time`` / ``compress_space`` in the
encoder, ``dims`` other than 3, and different non-default encoder/decoder padding modes when writing.

One diffusers-only detail: with ``timestep_conditioning`` every diffusers decoder block owns a ``time_embedder``, even
one without resnets, where ltx-core has no module. Its output is never used; ``to_diffusers`` fills those tensors with
zeros and ``to_official`` drops them.

Latent statistics: the file's ``vae.per_channel_statistics.{mean-of-means,std-of-means}`` become diffusers'
``latents_mean`` / ``latents_std``; the other statistics some files carry (``channel``, ``mean-of-stds``, ...) are
dropped, as diffusers does. ltx-core's ``PerChannelStatistics`` registers only those two buffers, so they are all
``to_official`` writes and all ltx-core needs to load with no tensor missing.

``encode`` / ``decode`` reproduce ltx-core's ``VideoEncoder.forward`` / ``VideoDecoder.forward``: the encoder returns
the per-channel *normalized mean* (no sampling); the decoder (when timestep-conditioned) blends in Gaussian noise,
``x = 0.025 * noise + 0.975 * x``, before denormalizing, and conditions on timestep 0.05 unless one is given.
"""

from dataclasses import dataclass, field
from inspect import signature
from typing import Any

import torch

from ltx_trainer import logger
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats.common import StateDict

FILE_PREFIX = "vae."
DECODE_TIMESTEP = 0.05  # ltx-core VideoDecoder.decode_timestep: the default decoder conditioning
DECODE_NOISE_SCALE = 0.025  # ltx-core VideoDecoder.decode_noise_scale: noise blended into the latent before decoding

# ltx-core's VideoEncoderConfigurator / VideoDecoderConfigurator defaults for keys absent from the metadata.
_LTX_DEFAULTS: dict[str, Any] = {
    "dims": 3,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 128,
    "patch_size": 4,
    "norm_layer": "pixel_norm",
    "latent_log_var": "uniform",
    "causal_decoder": False,
    "timestep_conditioning": True,
    "decoder_base_channels": 128,
    "encoder_blocks": [],
    "decoder_blocks": [],
}
# ltx-core reads one "spatial_padding_mode" key for both halves but defaults it differently for each.
_ENCODER_PADDING_DEFAULT = "zeros"
_DECODER_PADDING_DEFAULT = "reflect"
# ltx-core's VideoDecoder hard-codes its first width as base_channels * 8 (three 2x channel reductions).
_DECODER_WIDTH_FACTOR = 8
_RESNET_EPS = 1e-6

# encoder compress block -> (diffusers downsample_type, stride, channel multiplier applies)
_ENCODER_COMPRESS = {
    "compress_space_res": ("spatial", (1, 2, 2), True),
    "compress_time_res": ("temporal", (2, 1, 1), True),
    "compress_all_res": ("spatiotemporal", (2, 2, 2), True),
    "compress_all": ("conv", (2, 2, 2), False),  # plain strided causal conv, channels unchanged
}
# decoder compress block -> (diffusers upsample_type, stride); ltx-core reads "residual" for compress_all only
_DECODER_COMPRESS = {
    "compress_space": ("spatial", (1, 2, 2)),
    "compress_time": ("temporal", (2, 1, 1)),
    "compress_all": ("spatiotemporal", (2, 2, 2)),
}
_ENCODER_NAME = {kind: name for name, (kind, _, _) in _ENCODER_COMPRESS.items()}
_ENCODER_STRIDE = {kind: stride for kind, stride, _ in _ENCODER_COMPRESS.values()}
_DECODER_NAME = {kind: name for name, (kind, _) in _DECODER_COMPRESS.items()}
_STATS = "vae.per_channel_statistics."
_STAT_KEYS = {"mean-of-means": "latents_mean", "std-of-means": "latents_std"}


@dataclass
class _Block:
    """One diffusers block and the official blocks it holds (indices in ltx-core's built order)."""

    layers: int = 0
    res_index: int | None = None  # the res_x block, if any
    scale_index: int | None = None  # the compress block, if any
    kind: str | None = None  # diffusers down/upsample type
    multiplier: int = 1
    residual: bool = False
    inject_noise: bool = False
    channels: int = 0  # width of the block's resnets


@dataclass
class _Layout:
    """Both halves of the VAE, parsed from the official block lists."""

    down: list[_Block] = field(default_factory=list)
    encoder_mid: _Block = field(default_factory=_Block)
    decoder_mid: _Block = field(default_factory=_Block)
    up: list[_Block] = field(default_factory=list)  # in built (reversed) order
    down_out: list[int] = field(default_factory=list)  # channels after each down block
    up_in: list[int] = field(default_factory=list)  # channels entering each up block


def _vae_section(official: dict) -> dict:
    """Accept the metadata ``vae`` section or the whole metadata ``config`` (then its ``vae`` section is used)."""
    return official["vae"] if isinstance(official.get("vae"), dict) else official


def _get(vae: dict, key: str) -> Any:
    return vae.get(key, _LTX_DEFAULTS[key])


def _block_params(name: str, params: Any, where: str, index: int) -> dict:
    if isinstance(params, int):  # ltx-core accepts ["res_x", 4] as ["res_x", {"num_layers": 4}]
        return {"num_layers": params}
    if not isinstance(params, dict):
        raise ModelLoadError(f"vae.{where}[{index}] = [{name!r}, {params!r}]: the parameters must be a dict or an int")
    if name == "res_x" and "num_layers" not in params:
        raise ModelLoadError(f"vae.{where}[{index}] ('res_x') has no 'num_layers'")
    return params


def _unsupported(where: str, index: int, name: str) -> ModelLoadError:
    return ModelLoadError(
        f"vae.{where}[{index}] is a {name!r} block, which diffusers' AutoencoderKLLTX2Video cannot represent "
        f"(supported: res_x, {', '.join(_ENCODER_COMPRESS if where == 'encoder_blocks' else _DECODER_COMPRESS)}); "
        "this checkpoint's video VAE needs the official ltx-core code."
    )


def _parse(vae: dict) -> _Layout:
    """Group the official block lists into diffusers blocks, checking every global setting on the way."""
    for key, want in (("dims", 3), ("norm_layer", "pixel_norm"), ("latent_log_var", "uniform")):
        if _get(vae, key) != want:
            raise ModelLoadError(
                f"vae.{key} = {_get(vae, key)!r}: diffusers' AutoencoderKLLTX2Video only supports {key} = {want!r}"
            )
    enc_blocks, dec_blocks = _get(vae, "encoder_blocks"), _get(vae, "decoder_blocks")
    if not enc_blocks or not dec_blocks:
        raise ModelLoadError(
            "the metadata 'vae' section has no encoder_blocks/decoder_blocks (ltx-core then defaults to an empty VAE); "
            "the file is not an LTX-2 video VAE checkpoint or lost its __metadata__['config']"
        )
    layout = _Layout()

    # encoder: [res_x] compress [res_x] compress ... [res_x]; a compress closes a down block, the tail is the mid block
    channels = _get(vae, "latent_channels")  # ltx-core's encoder conv_in is latent_channels wide
    pending: _Block | None = None
    for i, (name, raw) in enumerate(enc_blocks):
        params = _block_params(name, raw, "encoder_blocks", i)
        if name == "res_x":
            if pending is not None:  # two res_x in a row: the first is a down block without a downsampler
                layout.down.append(pending)
                layout.down_out.append(channels)
            pending = _Block(layers=params["num_layers"], res_index=i, channels=channels)
        elif name in _ENCODER_COMPRESS:
            kind, _, scales_channels = _ENCODER_COMPRESS[name]
            block = pending or _Block(channels=channels)
            block.scale_index, block.kind = i, kind
            block.multiplier = params.get("multiplier", 2) if scales_channels else 1
            layout.down.append(block)
            channels *= block.multiplier
            layout.down_out.append(channels)
            pending = None
        else:
            raise _unsupported("encoder_blocks", i, name)
    layout.encoder_mid = pending or _Block(channels=channels)

    # decoder, in built order: [res_x] compress [res_x] compress ...; the head res_x is the mid block
    channels = _get(vae, "decoder_base_channels") * _DECODER_WIDTH_FACTOR
    layout.decoder_mid = _Block(channels=channels)  # replaced below if the built order starts with a res_x
    built = list(reversed(dec_blocks))
    for j, (name, raw) in enumerate(built):
        i = len(built) - 1 - j  # position in the metadata list, for messages
        params = _block_params(name, raw, "decoder_blocks", i)
        if name == "res_x":
            res = {"layers": params["num_layers"], "res_index": j, "inject_noise": bool(params.get("inject_noise"))}
            if j == 0:
                layout.decoder_mid = _Block(**res, channels=channels)
            elif layout.up and layout.up[-1].kind is not None and layout.up[-1].res_index is None:
                block = layout.up[-1]
                block.layers, block.res_index, block.inject_noise = res["layers"], j, res["inject_noise"]
            else:  # a res_x that follows another res_x: an up block without an upsampler
                layout.up.append(_Block(**res, channels=channels))
                layout.up_in.append(channels)
        elif name in _DECODER_COMPRESS:
            kind, _ = _DECODER_COMPRESS[name]
            multiplier = params.get("multiplier", 1)
            if channels % multiplier:
                raise ModelLoadError(f"vae.decoder_blocks[{i}]: {channels} channels are not divisible by {multiplier}")
            block = _Block(scale_index=j, kind=kind, multiplier=multiplier, channels=channels // multiplier)
            block.residual = bool(params.get("residual", False)) if name == "compress_all" else False
            layout.up.append(block)
            layout.up_in.append(channels)
            channels //= multiplier
        else:
            raise _unsupported("decoder_blocks", i, name)
    if not layout.up:
        raise ModelLoadError("vae.decoder_blocks has no compress block; diffusers' decoder needs at least one")
    return layout


def diffusers_config(official_vae: dict) -> dict:
    """The metadata ``vae`` section -> ``AutoencoderKLLTX2Video`` constructor kwargs.

    Every field comes from the metadata, with ltx-core's defaults for absent keys (e.g. ``timestep_conditioning``
    True, decoder padding ``reflect``, encoder padding ``zeros``).

    Args:
        official_vae: ``json.loads(metadata["config"])["vae"]`` (the whole ``config`` dict is accepted too).

    Returns:
        kwargs for ``AutoencoderKLLTX2Video(**kwargs)``.

    Raises:
        ModelLoadError: the layout has blocks or settings diffusers cannot represent.
    """
    vae = _vae_section(official_vae)
    layout = _parse(vae)
    padding = vae.get("spatial_padding_mode")
    up = layout.up
    # diffusers reverses every decoder list except upsample_type internally, so those are stored in metadata order
    decoder_layers = [layout.decoder_mid.layers] + [b.layers for b in up]
    decoder_noise = [layout.decoder_mid.inject_noise] + [b.inject_noise for b in up]
    strides = [_ENCODER_STRIDE[b.kind] for b in layout.down if b.kind]
    patch_size = _get(vae, "patch_size")
    return {
        "in_channels": _get(vae, "in_channels"),
        "out_channels": _get(vae, "out_channels"),
        "latent_channels": _get(vae, "latent_channels"),
        "block_out_channels": tuple(layout.down_out),
        "down_block_types": ("LTX2VideoDownBlock3D",) * len(layout.down),
        "decoder_block_out_channels": tuple(reversed(layout.up_in)),
        "layers_per_block": (*(b.layers for b in layout.down), layout.encoder_mid.layers),
        "decoder_layers_per_block": tuple(reversed(decoder_layers)),
        "spatio_temporal_scaling": tuple(b.kind is not None for b in layout.down),
        "decoder_spatio_temporal_scaling": tuple(reversed([b.kind is not None for b in up])),
        "decoder_inject_noise": tuple(reversed(decoder_noise)),
        "downsample_type": tuple(b.kind or "spatiotemporal" for b in layout.down),
        "upsample_type": tuple(b.kind or "spatiotemporal" for b in up),
        "upsample_residual": tuple(reversed([b.residual for b in up])),
        "upsample_factor": tuple(reversed([b.multiplier if b.kind else 1 for b in up])),
        "timestep_conditioning": bool(_get(vae, "timestep_conditioning")),
        "patch_size": patch_size,
        "patch_size_t": 1,
        "resnet_norm_eps": _RESNET_EPS,
        "scaling_factor": float(vae.get("scaling_factor", 1.0)),
        "encoder_causal": True,  # ltx-core's encoder always runs its convolutions causally
        "decoder_causal": bool(_get(vae, "causal_decoder")),
        "encoder_spatial_padding_mode": padding or _ENCODER_PADDING_DEFAULT,
        "decoder_spatial_padding_mode": padding or _DECODER_PADDING_DEFAULT,
        # diffusers would derive these as patch * 2**(number of scaling blocks), wrong for time-only/space-only blocks
        "spatial_compression_ratio": patch_size * 2 ** sum(s[1] == 2 for s in strides),
        "temporal_compression_ratio": 2 ** sum(s[0] == 2 for s in strides),
    }


def _diffusers_defaults() -> dict:
    from diffusers import AutoencoderKLLTX2Video

    params = signature(AutoencoderKLLTX2Video.__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self"}


def _as_tuple(value: Any, length: int) -> tuple:
    return (value,) * length if isinstance(value, bool) else tuple(value)


def official_config(diffusers_cfg: dict) -> dict:
    """``AutoencoderKLLTX2Video`` config -> the metadata ``vae`` section ltx-core builds the same VAE from.

    Args:
        diffusers_cfg: ``vae.config`` (absent keys take diffusers' defaults; keys starting with ``_`` are ignored).

    Returns:
        A ``CausalVideoAutoencoder`` config dict, like the ``vae`` section of an official checkpoint.

    Raises:
        ModelLoadError: the diffusers config has no ltx-core equivalent.
    """
    c = {**_diffusers_defaults(), **{k: v for k, v in dict(diffusers_cfg).items() if not k.startswith("_")}}

    def fail(msg: str) -> ModelLoadError:
        return ModelLoadError(f"this AutoencoderKLLTX2Video config can't be written as an official checkpoint: {msg}")

    if c["patch_size_t"] != 1:
        raise fail(f"patch_size_t = {c['patch_size_t']} (ltx-core patchifies 1 frame at a time)")
    if not c["encoder_causal"]:
        raise fail("encoder_causal = False (ltx-core's encoder is always causal)")
    if any(t != "LTX2VideoDownBlock3D" for t in c["down_block_types"]):
        raise fail(f"down_block_types = {c['down_block_types']}")

    # encoder
    out, layers = tuple(c["block_out_channels"]), tuple(c["layers_per_block"])
    scaling = _as_tuple(c["spatio_temporal_scaling"], len(layers) - 1)
    encoder: list[list] = []
    channels = c["latent_channels"]
    for i, width in enumerate(out):
        if layers[i] or not scaling[i] or (encoder and encoder[-1][0] == "res_x"):
            encoder.append(["res_x", {"num_layers": layers[i]}])
        if not scaling[i]:
            if width != channels:
                raise fail(f"down block {i} changes {channels} -> {width} channels without a downsampler")
            continue
        kind = c["downsample_type"][i]
        if kind == "conv":
            if width != channels:
                raise fail(f"down block {i} ('conv' downsampler) changes {channels} -> {width} channels")
            encoder.append(["compress_all", {}])
        elif kind in _ENCODER_NAME:
            if width % channels:
                raise fail(f"down block {i} goes {channels} -> {width} channels, not an integer multiplier")
            encoder.append([_ENCODER_NAME[kind], {"multiplier": width // channels}])
        else:
            raise fail(f"downsample_type[{i}] = {kind!r}")
        channels = width
    if layers[-1] or (encoder and encoder[-1][0] == "res_x"):
        encoder.append(["res_x", {"num_layers": layers[-1]}])

    # decoder, built order (diffusers reverses all these lists except upsample_type)
    n = len(c["decoder_block_out_channels"])
    widths = tuple(reversed(c["decoder_block_out_channels"]))
    d_layers = tuple(reversed(c["decoder_layers_per_block"]))
    d_scaling = tuple(reversed(_as_tuple(c["decoder_spatio_temporal_scaling"], n)))
    d_noise = tuple(reversed(_as_tuple(c["decoder_inject_noise"], n + 1)))
    residual = tuple(reversed(_as_tuple(c["upsample_residual"], n)))
    factor = tuple(reversed(c["upsample_factor"]))
    if widths[0] % _DECODER_WIDTH_FACTOR:
        raise fail(f"the decoder's first width {widths[0]} is not {_DECODER_WIDTH_FACTOR} x decoder_base_channels")

    def res_x(num_layers: int, inject_noise: bool) -> list:
        return ["res_x", {"num_layers": num_layers, "inject_noise": bool(inject_noise)}]

    built: list[list] = []
    if d_layers[0] or not d_scaling[0]:
        built.append(res_x(d_layers[0], d_noise[0]))
    channels = widths[0]
    for i in range(n):
        if widths[i] != channels:
            raise fail(f"up block {i} expects {widths[i]} input channels but gets {channels}")
        if not d_scaling[i]:
            if factor[i] != 1:
                raise fail(f"up block {i} has upsample_factor {factor[i]} but no upsampler")
            built.append(res_x(d_layers[i + 1], d_noise[i + 1]))
            continue
        kind = c["upsample_type"][i]
        if kind not in _DECODER_NAME:
            raise fail(f"upsample_type[{i}] = {kind!r}")
        if channels % factor[i]:
            raise fail(f"up block {i}: {channels} channels are not divisible by upsample_factor {factor[i]}")
        params: dict[str, Any] = {"multiplier": factor[i]}
        if kind == "spatiotemporal":
            params["residual"] = bool(residual[i])
        elif residual[i]:
            raise fail(f"up block {i}: ltx-core's {_DECODER_NAME[kind]!r} upsampler has no residual path")
        built.append([_DECODER_NAME[kind], params])
        channels //= factor[i]
        if d_layers[i + 1] or (i + 1 < n and not d_scaling[i + 1]):
            built.append(res_x(d_layers[i + 1], d_noise[i + 1]))

    enc_pad, dec_pad = c["encoder_spatial_padding_mode"], c["decoder_spatial_padding_mode"]
    vae: dict[str, Any] = {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": c["in_channels"],
        "out_channels": c["out_channels"],
        "latent_channels": c["latent_channels"],
        "encoder_blocks": encoder,
        "decoder_blocks": list(reversed(built)),
        "scaling_factor": float(c["scaling_factor"]),
        "norm_layer": "pixel_norm",
        "patch_size": c["patch_size"],
        "latent_log_var": "uniform",
        "use_quant_conv": False,
        "causal_decoder": bool(c["decoder_causal"]),
        "timestep_conditioning": bool(c["timestep_conditioning"]),
        "normalize_latent_channels": False,
        "encoder_base_channels": c["latent_channels"],  # unread by ltx-core; its encoder conv_in is this wide
        "decoder_base_channels": widths[0] // _DECODER_WIDTH_FACTOR,
    }
    if enc_pad == dec_pad:
        vae["spatial_padding_mode"] = enc_pad
    elif (enc_pad, dec_pad) != (_ENCODER_PADDING_DEFAULT, _DECODER_PADDING_DEFAULT):
        raise fail(
            f"padding modes encoder {enc_pad!r} / decoder {dec_pad!r}: ltx-core has one spatial_padding_mode for both "
            f"(absent: {_ENCODER_PADDING_DEFAULT!r} / {_DECODER_PADDING_DEFAULT!r})"
        )
    return vae


def _key_tables(layout: _Layout, timestep_conditioning: bool) -> tuple[dict[str, str], dict[str, list[int]]]:
    """(official prefix -> diffusers prefix, dead diffusers time_embedder prefix -> [embedding dim])."""
    table = {
        "vae.encoder.conv_in.": "encoder.conv_in.",
        "vae.encoder.conv_out.": "encoder.conv_out.",
        "vae.decoder.conv_in.": "decoder.conv_in.",
        "vae.decoder.conv_out.": "decoder.conv_out.",
        "vae.decoder.last_time_embedder.": "decoder.time_embedder.",
        "vae.decoder.last_scale_shift_table": "decoder.scale_shift_table",
        "vae.decoder.timestep_scale_multiplier": "decoder.timestep_scale_multiplier",
    }
    for j, block in enumerate(layout.down):
        if block.res_index is not None:
            table[f"vae.encoder.down_blocks.{block.res_index}.res_blocks."] = f"encoder.down_blocks.{j}.resnets."
        if block.scale_index is not None:
            table[f"vae.encoder.down_blocks.{block.scale_index}."] = f"encoder.down_blocks.{j}.downsamplers.0."
    if layout.encoder_mid.res_index is not None:
        table[f"vae.encoder.down_blocks.{layout.encoder_mid.res_index}.res_blocks."] = "encoder.mid_block.resnets."
    dead: dict[str, list[int]] = {}
    for name, block in [("mid_block", layout.decoder_mid)] + [(f"up_blocks.{j}", b) for j, b in enumerate(layout.up)]:
        if block.res_index is not None:
            table[f"vae.decoder.up_blocks.{block.res_index}.res_blocks."] = f"decoder.{name}.resnets."
            table[f"vae.decoder.up_blocks.{block.res_index}.time_embedder."] = f"decoder.{name}.time_embedder."
        elif timestep_conditioning:
            dead[f"decoder.{name}.time_embedder."] = [block.channels * 4]
        if block.scale_index is not None:
            table[f"vae.decoder.up_blocks.{block.scale_index}."] = f"decoder.{name}.upsamplers.0."
    return table, dead


def _rename(key: str, table: dict[str, str]) -> str | None:
    """Replace the longest table entry that is a prefix of ``key`` (entries without a trailing dot match whole)."""
    best = None
    for src in table:
        hit = key.startswith(src) if src.endswith(".") else key == src
        if hit and (best is None or len(src) > len(best)):
            best = src
    return None if best is None else table[best] + key[len(best) :]


def _rename_all(sd: StateDict, table: dict[str, str], fixed: dict[str, str | None], what: str) -> StateDict:
    """Every key of ``sd`` (in its order) renamed to ``fixed[key]`` when it is there (``None``: dropped), else by
    ``table`` (``_rename``); raises ``_mismatch`` over the keys that have no place."""
    out: StateDict = {}
    unknown = []
    for key, tensor in sd.items():
        new = fixed[key] if key in fixed else _rename(key, table)
        if new is not None:
            out[new] = tensor
        elif key not in fixed:
            unknown.append(key)
    if unknown:
        raise _mismatch(unknown, what)
    return out


def _tables_for(official_vae: dict) -> tuple[dict[str, str], dict[str, list[int]]]:
    vae = _vae_section(official_vae)
    return _key_tables(_parse(vae), bool(_get(vae, "timestep_conditioning")))


def _mismatch(keys: list[str], what: str) -> ModelLoadError:
    shown = ", ".join(sorted(keys)[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
    return ModelLoadError(
        f"{len(keys)} {what} tensor(s) don't fit the video VAE layout in the metadata config: {shown}. "
        "The file's weights and its __metadata__['config']['vae'] disagree; re-export or re-download it."
    )


def to_diffusers(sd: StateDict, official_vae: dict) -> StateDict:
    """Official ``vae.*`` file keys -> ``AutoencoderKLLTX2Video`` state-dict keys (tensors are not copied).

    Keys outside ``vae.`` are ignored. Unused statistics (``vae.per_channel_statistics.channel`` etc.) are dropped;
    the decoder ``time_embedder`` tensors diffusers has but ltx-core lacks are filled with zeros (never used).

    Raises:
        ModelLoadError: a ``vae.*`` key has no place in the layout the metadata describes.
    """
    table, dead = _tables_for(official_vae)
    vae = {k: v for k, v in sd.items() if k.startswith(FILE_PREFIX)}
    stats = {k: _STAT_KEYS.get(k.removeprefix(_STATS)) for k in vae if k.startswith(_STATS)}
    out = _rename_all(vae, table, stats, "vae.*")
    if not out:
        raise ModelLoadError("the state dict has no vae.* tensors: the file holds no video VAE")
    if dead:
        like = next(iter(out.values()))
        for prefix, (dim,) in dead.items():
            zeros = {"linear_1.weight": (dim, 256), "linear_1.bias": (dim,), "linear_2.weight": (dim, dim)}
            for name, shape in {**zeros, "linear_2.bias": (dim,)}.items():
                out[f"{prefix}timestep_embedder.{name}"] = torch.zeros(shape, dtype=like.dtype, device=like.device)
    return out


def to_official(sd: StateDict, official_vae: dict) -> StateDict:
    """``AutoencoderKLLTX2Video`` state-dict keys -> official ``vae.*`` file keys (tensors are not copied).

    Writes ``vae.per_channel_statistics.{mean-of-means,std-of-means}`` (all ltx-core's encoder and decoder load) and
    drops the never-used decoder ``time_embedder`` tensors that exist only in diffusers.

    Raises:
        ModelLoadError: a key has no place in the official layout.
    """
    table, dead = _tables_for(official_vae)
    reverse = {dst: src for src, dst in table.items()}
    dropped: dict[str, str | None] = {k: None for k in sd if any(k.startswith(prefix) for prefix in dead)}
    stats = {dst: f"{_STATS}{src}" for src, dst in _STAT_KEYS.items()}
    return _rename_all(sd, reverse, {**dropped, **stats}, "diffusers")


def normalize_latents(vae: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """Raw VAE means ``[B, C, F, H, W]`` -> the per-channel normalized latent the transformer sees."""
    mean = vae.latents_mean.view(1, -1, 1, 1, 1).to(latents)
    std = vae.latents_std.view(1, -1, 1, 1, 1).to(latents)
    return (latents - mean) / std


def denormalize_latents(vae: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """Inverse of ``normalize_latents``."""
    mean = vae.latents_mean.view(1, -1, 1, 1, 1).to(latents)
    std = vae.latents_std.view(1, -1, 1, 1, 1).to(latents)
    return latents * std + mean


def encode(vae: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Pixels -> normalized latents, as ltx-core's ``VideoEncoder.forward``.

    The posterior mean is used (ltx-core never samples), then normalized with ``latents_mean`` / ``latents_std``.
    diffusers' ``scaling_factor`` is not applied: ltx-core ignores it (it is 1.0 in every official file).

    Args:
        vae: an ``AutoencoderKLLTX2Video``.
        pixels: ``[B, 3, F, H, W]`` in ``[-1, 1]``; ``F = 1 + 8k`` (extra trailing frames are cropped, as ltx-core
            does), ``H`` and ``W`` multiples of 32.

    Returns:
        ``[B, C, 1 + (F-1)/8, H/32, W/32]`` normalized latents, in the VAE's dtype.

    Raises:
        ValueError: ``H`` or ``W`` is not a multiple of the spatial compression.
    """
    t, s = vae.temporal_compression_ratio, vae.spatial_compression_ratio
    frames, height, width = pixels.shape[2:]
    if height % s or width % s:
        raise ValueError(f"video of {height}x{width} pixels: height and width must be multiples of {s}")
    extra = (frames - 1) % t
    if extra:
        logger.warning("%d frames is not 1 + %d*k: the last %d frames are dropped before encoding", frames, t, extra)
        pixels = pixels[:, :, : frames - extra]
    dtype = next(vae.parameters()).dtype
    means = vae.encode(pixels.to(dtype)).latent_dist.mean
    return normalize_latents(vae, means)


def decode(
    vae: torch.nn.Module,
    latents: torch.Tensor,
    timestep: float | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    noise_scale: float = DECODE_NOISE_SCALE,
) -> torch.Tensor:
    """Normalized latents -> pixels, as ltx-core's ``VideoDecoder.forward``.

    With a timestep-conditioned decoder, ltx-core first blends noise into the latent,
    ``x = noise_scale * randn + (1 - noise_scale) * x`` (``noise_scale`` 0.025, drawn from ``generator``: ltx-pipelines
    pass their seeded generator), then denormalizes, and conditions on ``timestep`` (default 0.05, scaled by the
    decoder's ``timestep_scale_multiplier``). Without timestep conditioning there is no noise and no timestep.

    Args:
        vae: an ``AutoencoderKLLTX2Video``.
        latents: ``[B, C, F', H', W']`` normalized latents.
        timestep: decode timestep, a float or ``[B]``; ``None`` = ``DECODE_TIMESTEP``.
        generator: source of the decode noise (``None``: the global RNG, as ltx-core).
        noise_scale: ``DECODE_NOISE_SCALE`` reproduces ltx-core; 0 decodes deterministically.

    Returns:
        ``[B, 3, 1 + 8(F'-1), 32H', 32W']`` pixels, roughly in ``[-1, 1]``.
    """
    dtype = next(vae.parameters()).dtype
    x = latents.to(dtype)
    temb = None
    if vae.config.timestep_conditioning:
        if noise_scale:
            noise = torch.randn(x.size(), generator=generator, dtype=x.dtype, device=x.device)
            x = noise * noise_scale + (1.0 - noise_scale) * x
        if timestep is None:
            timestep = DECODE_TIMESTEP
        temb = torch.as_tensor(timestep, dtype=x.dtype, device=x.device).expand(x.shape[0])
    return vae.decode(denormalize_latents(vae, x), temb=temb).sample
