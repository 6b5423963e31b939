"""LTX-2.5 video VAE files: the diffusion decoder (``CausalDiffusionVAE``) <-> diffusers
``LTX2VideoDiffusionDecoderModel``, the encoder of that file, and decoding as ltx-pipelines does on any device.

A 2.5 video VAE file is one of two kinds, told apart by ``config.vae._class_name``:

- ``CausalVideoAutoencoder``: the convolutional decoder, the flat 2.3 config: ``ltx2_video_vae`` reads it unchanged.
- anything else (``CausalDiffusionVAE``): ``vae.encoder`` (the 2.3 encoder, described by a nested ``encoder`` config:
  ``blocks``, ``out_channels`` = latent width, ...) and the diffusion decoder (``decoder`` config: stage channels,
  depths, kernels, ``upsamples`` as ``[[stride], channel reduction]``, stage-5 kernel, head dim, timestep embedding
  width, default step count, optional ``timestep_scale_multiplier``), ``model_output_type`` at the ``vae`` level.

Keys: the reference's fused ``attn.qkv`` is split into ``to_q/to_k/to_v`` (rows in that order), ``attn.proj`` is
``to_out.0``, ``q_norm``/``k_norm`` are ``norm_q``/``norm_k``, ``t_embedder.mlp.{0,2}`` is
``t_embedder.timestep_embedder.linear_{1,2}``; ``vae.per_channel_statistics`` are the decoder's ``latents_mean/std``
(and the encoder's). ``coarse_*`` tensors are dropped, as ltx-core does; the legacy static gates
(``gate_msa``/``gate_mlp``/``gate_ctx``) are refused with a message (no released file carries them).

Decoding reproduces ltx-pipelines' default (``DiffVAEMode.CHUNKED_EAGER``), checked against ltx-core 1.2.0's numbers:

1. the latent is edge-padded (replicated at the end of each axis) up to the smallest size every stage's
   neighborhood kernel fits in (``min_latent_size``); the padding is cropped from the pixels at the end;
2. one ``randn`` of the padded pixel shape is the initial noise; stage 5 runs ``default_num_inference_steps`` Euler
   steps; the timestep embedding multiplies ``t`` by ``timestep_scale_multiplier``, **1 when the config omits it**
   (diffusers' class defaults to 1000);
3. neighborhood attention has NATTEN's windows (shifted inward at the borders) in the deterministic stages, but the
   stage-5 blocks attend over a width edge-replicated by ``kernel_w // 2`` columns (the chunked eager path runs stage 5
   in width slabs whose missing halo at the true border is a copy of the edge column), so a border query sees the
   copy (at its own RoPE position) instead of a shifted window. diffusers' processors implement NATTEN's rule
   (FlexAttention, or NATTEN kernels on CUDA); ours (``NeighborhoodSDPA``) is exact for both rules, runs on CPU and
   GPU without natten, and computes in query blocks so memory stays bounded.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLLTX2Video

from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats.common import StateDict

CONV_DECODER_CLASS = "CausalVideoAutoencoder"
_STATS = {"mean-of-means": "latents_mean", "std-of-means": "latents_std"}
_SEGMENTS = {"proj": "to_out.0", "q_norm": "norm_q", "k_norm": "norm_k"}
_TIME = {
    "t_embedder.mlp.0.": "t_embedder.timestep_embedder.linear_1.",
    "t_embedder.mlp.2.": "t_embedder.timestep_embedder.linear_2.",
}
_LEGACY_GATES = (".gate_msa", ".gate_mlp", ".gate_ctx")
DEFAULT_TIMESTEP_SCALE = 1.0  # ltx-core's default when the decoder config has no timestep_scale_multiplier


def is_diffusion_vae(official_vae: dict) -> bool:
    """ltx-core's rule: the convolutional decoder only for ``_class_name == "CausalVideoAutoencoder"``."""
    return official_vae.get("_class_name", CONV_DECODER_CLASS) != CONV_DECODER_CLASS


# ----------------------------------------------------------------------------------------------------------------
# the encoder of a diffusion-decoder file
# ----------------------------------------------------------------------------------------------------------------
class LTX2VideoEncoderOnly(AutoencoderKLLTX2Video):
    """diffusers' ``AutoencoderKLLTX2Video`` without its decoder: the encoder half of a diffusion-decoder file.

    ``encode`` (and tiled encoding) are diffusers' own; the decoder built by the parent is dropped at once (it is
    built on the meta device when loading, so it costs nothing).
    """

    def __init__(self, **config: object):
        super().__init__(**config)
        del self.decoder


def encoder_flat_config(official_vae: dict) -> dict:
    """The nested ``vae.encoder`` section of a diffusion-decoder file -> the flat (2.3) ``vae`` config
    ``ltx2_video_vae`` understands, with a placeholder decoder (built, then dropped by ``LTX2VideoEncoderOnly``)."""
    enc = official_vae.get("encoder")
    if not isinstance(enc, dict) or "blocks" not in enc:
        raise ModelLoadError("the metadata 'vae' section has no 'encoder' with 'blocks': not an LTX-2.5 video VAE file")
    latent = enc.get("out_channels", official_vae.get("latent_channels", 128))
    flat = {
        "_class_name": CONV_DECODER_CLASS,
        "dims": enc.get("dims", 3),
        "in_channels": enc.get("in_channels", 3),
        "out_channels": 3,
        "latent_channels": latent,
        "patch_size": enc.get("patch_size", 4),
        "norm_layer": enc.get("norm_layer", "pixel_norm"),
        "latent_log_var": enc.get("latent_log_var", "uniform"),
        "encoder_blocks": enc["blocks"],
        "decoder_blocks": [["compress_all", {"multiplier": 1}]],
        "decoder_base_channels": 1,
        "timestep_conditioning": False,
    }
    if "spatial_padding_mode" in enc:
        flat["spatial_padding_mode"] = enc["spatial_padding_mode"]
    return flat


# ----------------------------------------------------------------------------------------------------------------
# the diffusion decoder: config and keys
# ----------------------------------------------------------------------------------------------------------------
def decoder_diffusers_config(official_vae: dict) -> dict:
    """The metadata ``vae`` section of a diffusion-decoder file -> ``LTX2VideoDiffusionDecoderModel`` kwargs.

    Raises:
        ModelLoadError: a decoder layout diffusers' class cannot hold.
    """
    d = official_vae.get("decoder")
    if not isinstance(d, dict) or "stage_channels" not in d:
        raise ModelLoadError("the metadata 'vae' section has no diffusion 'decoder' config (stage_channels, ...)")
    channels, depths = list(d["stage_channels"]), list(d["stage_depths"])
    kernels = [tuple(k) for k in d["stage_kernels"]]
    upsamples = d["upsamples"]
    if len(upsamples) != len(channels) - 1 or len(depths) != len(channels):
        raise ModelLoadError(
            f"vae.decoder: {len(channels)} stage widths, {len(depths)} depths and {len(upsamples)} upsamples; the "
            "diffusion decoder has one upsample between consecutive stages"
        )
    stage5 = tuple(d.get("stage5_kernel", kernels[-1]))
    if len(kernels) > len(upsamples) and kernels[len(upsamples)] != stage5:
        raise ModelLoadError(f"vae.decoder: stage_kernels[-1] {kernels[-1]} differs from stage5_kernel {stage5}")
    if d.get("stage5_channels", channels[-1]) != channels[-1]:
        raise ModelLoadError(f"vae.decoder: stage5_channels {d['stage5_channels']} != stage_channels[-1]")
    return {
        "out_channels": d.get("out_channels", 3),
        "latent_channels": d.get("in_channels", official_vae.get("latent_channels", 128)),
        "patch_size": d.get("patch_size", 4),
        "decoder_head_dim": d["head_dim"],
        "decoder_stage_channels": tuple(channels),
        "decoder_stage_depths": tuple(depths),
        "decoder_stage_kernels": tuple(kernels[: len(upsamples)]),
        "decoder_upsample_strides": tuple(tuple(stride) for stride, _ in upsamples),
        "decoder_upsample_channel_reductions": tuple(int(reduction) for _, reduction in upsamples),
        "decoder_stage5_kernel": stage5,
        "decoder_t_emb_dim": d["t_emb_dim"],
        "decoder_timestep_scale_multiplier": float(d.get("timestep_scale_multiplier", DEFAULT_TIMESTEP_SCALE)),
        "decoder_model_output_type": official_vae.get("model_output_type", "x0"),
        "decoder_num_inference_steps": d.get("default_num_inference_steps", 1),
    }


def decoder_official_config(diffusers_cfg: dict, encoder: dict) -> dict:
    """``LTX2VideoDiffusionDecoderModel`` config (+ the nested encoder config) -> the metadata ``vae`` section."""
    c = diffusers_cfg
    kernels = [list(k) for k in c["decoder_stage_kernels"]] + [list(c["decoder_stage5_kernel"])]
    return {
        "_class_name": "CausalDiffusionVAE",
        "latent_channels": c["latent_channels"],
        "model_output_type": c["decoder_model_output_type"],
        "encoder": encoder,
        "decoder": {
            "in_channels": c["latent_channels"],
            "out_channels": c["out_channels"],
            "patch_size": c["patch_size"],
            "head_dim": c["decoder_head_dim"],
            "t_emb_dim": c["decoder_t_emb_dim"],
            "stage_channels": list(c["decoder_stage_channels"]),
            "stage_depths": list(c["decoder_stage_depths"]),
            "stage_kernels": kernels,
            "upsamples": [
                [list(s), r]
                for s, r in zip(c["decoder_upsample_strides"], c["decoder_upsample_channel_reductions"], strict=True)
            ],
            "stage5_kernel": list(c["decoder_stage5_kernel"]),
            "stage5_channels": c["decoder_stage_channels"][-1],
            "default_num_inference_steps": c["decoder_num_inference_steps"],
            **(
                {"timestep_scale_multiplier": c["decoder_timestep_scale_multiplier"]}
                if c["decoder_timestep_scale_multiplier"] != DEFAULT_TIMESTEP_SCALE
                else {}
            ),
        },
    }


def _rename_segments(path: str, table: dict[str, str]) -> str:
    parts = path.split(".")
    if len(parts) >= 3 and parts[-3] == "attn" and parts[-2] in table:  # attn.proj.weight, attn.q_norm.weight
        parts[-2] = table[parts[-2]]
    return ".".join(parts)


def decoder_to_diffusers(sd: StateDict) -> StateDict:
    """``vae.decoder.*`` + ``vae.per_channel_statistics.*`` file keys -> ``LTX2VideoDiffusionDecoderModel`` keys.

    Raises:
        ModelLoadError: legacy static-gate tensors, or no decoder tensors at all.
    """
    out: StateDict = {}
    for key, value in sd.items():
        local = key.removeprefix("vae.")
        if local.startswith("per_channel_statistics."):
            stat = _STATS.get(local.removeprefix("per_channel_statistics."))
            if stat is not None:
                out[stat] = value
            continue
        if not local.startswith("decoder.") or local.startswith("decoder.coarse_"):
            continue
        if local.endswith(_LEGACY_GATES):
            raise ModelLoadError(
                f"{key}: a legacy static gate of the diffusion decoder; this file predates the released layout "
                "(re-download the LTX-2.5 video VAE)"
            )
        for src, dst in _TIME.items():
            local = local.replace(src, dst)
        if ".attn.qkv." in local:
            for name, part in zip(("to_q", "to_k", "to_v"), value.chunk(3, dim=0), strict=True):
                out[local.replace(".qkv.", f".{name}.")] = part
            continue
        out[_rename_segments(local, _SEGMENTS)] = value
    if not any(k.startswith("decoder.") for k in out):
        raise ModelLoadError("the file has no vae.decoder.* diffusion-decoder tensors")
    return out


def decoder_to_official(sd: StateDict) -> StateDict:
    """``LTX2VideoDiffusionDecoderModel`` keys -> file keys (``to_q/k/v`` fused back into ``qkv``)."""
    inverse = {v: k for k, v in _SEGMENTS.items()}
    out: StateDict = {}
    stats = {v: k for k, v in _STATS.items()}
    for key, value in sd.items():
        if key in stats:
            out[f"vae.per_channel_statistics.{stats[key]}"] = value
        elif ".attn.to_q." in key:
            parts = [sd[key.replace(".to_q.", f".{n}.")] for n in ("to_q", "to_k", "to_v")]
            out["vae." + key.replace(".to_q.", ".qkv.")] = torch.cat(parts, dim=0)
        elif ".attn.to_k." in key or ".attn.to_v." in key:
            continue
        else:
            local = key.replace(".attn.to_out.0.", ".attn.proj.")
            for src, dst in _TIME.items():
                local = local.replace(dst, src)
            out["vae." + _rename_segments(local, inverse)] = value
    return out


# ----------------------------------------------------------------------------------------------------------------
# neighborhood attention without natten
# ----------------------------------------------------------------------------------------------------------------
def _window_starts(n: int, kernel: int, device: torch.device) -> torch.Tensor:
    """NATTEN's window start per position: centred, shifted inward at the borders so it always holds ``kernel``."""
    return (torch.arange(n, device=device) - kernel // 2).clamp(0, n - kernel)


SCORES_PER_CALL = 2**23  # query x key pairs of one SDPA call (32 MiB of fp32 scores per head)


def query_block(grid: Sequence[int], kernel: Sequence[int], budget: int = SCORES_PER_CALL) -> tuple[int, int, int]:
    """The largest query block (frames, rows, columns) whose queries x window-union keys stay within ``budget``."""
    best, best_size = (1, 1, 1), 0
    for side in (128, 64, 32, 16, 8, 4, 2, 1):
        bh, bw = min(side, grid[1]), min(side, grid[2])
        for bt in range(grid[0], 0, -1):
            keys = math.prod(min(b + kk - 1, n) for b, kk, n in zip((bt, bh, bw), kernel, grid, strict=True))
            queries = bt * bh * bw
            if queries * keys <= budget and queries > best_size:
                best, best_size = (bt, bh, bw), queries
                break
    return best


def neighborhood_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: Sequence[int], block: Sequence[int] | None = None
) -> torch.Tensor:
    """Exact 3-D neighborhood attention (NATTEN's windows), computed in query blocks with SDPA.

    Args:
        q, k, v: ``[B, T, H, W, heads, head_dim]``; ``q`` already scaled (the softmax scale is 1).
        kernel: window per axis (clipped to the grid).
        block: query block per axis (default ``query_block``); each block reads only the union of its queries'
            windows.

    Returns:
        ``[B, T, H, W, heads, head_dim]``.
    """
    batch, *grid, heads, dim = q.shape
    kernel = [min(kk, n) for kk, n in zip(kernel, grid, strict=True)]
    block = block or query_block(grid, kernel)
    starts = [_window_starts(n, kk, q.device) for n, kk in zip(grid, kernel, strict=True)]
    out = torch.empty_like(q)
    ranges = [range(0, n, b) for n, b in zip(grid, block, strict=True)]
    for t0 in ranges[0]:
        for h0 in ranges[1]:
            for w0 in ranges[2]:
                spans, masks = [], []
                for axis, b0 in enumerate((t0, h0, w0)):
                    b1 = min(b0 + block[axis], grid[axis])
                    s = starts[axis][b0:b1]
                    lo, hi = int(s[0]), int(s[-1]) + kernel[axis]
                    keys = torch.arange(lo, hi, device=q.device)
                    spans.append((b0, b1, lo, hi))
                    masks.append((keys[None, :] >= s[:, None]) & (keys[None, :] < s[:, None] + kernel[axis]))
                (qt0, qt1, kt0, kt1), (qh0, qh1, kh0, kh1), (qw0, qw1, kw0, kw1) = spans
                mt, mh, mw = masks
                mask = (mt[:, None, None, :, None, None] & mh[None, :, None, None, :, None]) & mw[
                    None, None, :, None, None, :
                ]
                nq, nk = (qt1 - qt0) * (qh1 - qh0) * (qw1 - qw0), (kt1 - kt0) * (kh1 - kh0) * (kw1 - kw0)

                def flat(x: torch.Tensor, a: tuple, b: tuple, c: tuple, n: int) -> torch.Tensor:
                    return x[:, a[0] : a[1], b[0] : b[1], c[0] : c[1]].reshape(batch, n, heads, dim).transpose(1, 2)

                qb = flat(q, (qt0, qt1), (qh0, qh1), (qw0, qw1), nq)
                kb = flat(k, (kt0, kt1), (kh0, kh1), (kw0, kw1), nk)
                vb = flat(v, (kt0, kt1), (kh0, kh1), (kw0, kw1), nk)
                ob = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask.reshape(nq, nk), scale=1.0)
                out[:, qt0:qt1, qh0:qh1, qw0:qw1] = ob.transpose(1, 2).reshape(
                    batch, qt1 - qt0, qh1 - qh0, qw1 - qw0, heads, dim
                )
    return out


class NeighborhoodSDPA:
    """Attention processor for diffusers' ``LTX2VideoVaeNeighborhoodAttention``: exact NATTEN windows on any device.

    Args:
        replicate_width: pad the (normed, modulated) input by ``kernel_w // 2`` edge copies on both sides of the width
            and drop them after attention: the stage-5 behaviour of ltx-pipelines' chunked eager decoder.
        block: query block per axis (default: the largest within ``SCORES_PER_CALL``).
    """

    def __init__(self, replicate_width: bool = False, block: Sequence[int] | None = None):
        self.replicate_width = replicate_width
        self.block = tuple(block) if block else None

    def __call__(self, attn: torch.nn.Module, hidden_states: torch.Tensor, block_mask: object = None) -> torch.Tensor:
        halo = attn.kernel_size[2] // 2 if self.replicate_width else 0
        width = hidden_states.shape[3]
        if halo:
            # [B, T, H, W, C] -> replicate the first / last column along W
            hidden_states = torch.cat(
                [
                    hidden_states[:, :, :, :1].expand(-1, -1, -1, halo, -1),
                    hidden_states,
                    hidden_states[:, :, :, -1:].expand(-1, -1, -1, halo, -1),
                ],
                dim=3,
            )
        q, k, v = attn.project_qkv(hidden_states)  # RoPE over the padded grid: scores depend on offsets only
        out = neighborhood_attention(q, k, v, attn.kernel_size, self.block)
        out = out[:, :, :, halo : halo + width]
        return attn.to_out[0](out.flatten(-2))


def use_neighborhood_sdpa(decoder_model: torch.nn.Module) -> None:
    """Install ``NeighborhoodSDPA`` on every attention of the decoder: NATTEN windows in the deterministic stages, the
    width-replicated windows in the stage-5 blocks."""
    decoder = decoder_model.decoder
    for blocks in decoder.det_stages:
        for block in blocks:
            block.attn.set_processor(NeighborhoodSDPA())
    for block in decoder.diff_blocks:
        block.attn.set_processor(NeighborhoodSDPA(replicate_width=True))


# ----------------------------------------------------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------------------------------------------------
def min_latent_size(decoder_model: torch.nn.Module) -> tuple[int, int, int]:
    """The smallest latent (F', H', W') whose every stage grid holds that stage's neighborhood kernel.

    Stage grids follow the upsamples (a temporal stride 2 drops its duplicate leading frame: ``2F - 1``); the trailing
    frames the decoder replicates for NATTEN's border do not count, as in ltx-core.
    """
    c = decoder_model.config
    kernels = [*c.decoder_stage_kernels, c.decoder_stage5_kernel]
    strides = c.decoder_upsample_strides
    sizes = []
    for axis in range(3):
        n = 1
        while True:
            grid, fits = n, True
            for stage, kernel in enumerate(kernels):
                fits &= grid >= kernel[axis]
                if stage < len(strides):
                    s = strides[stage][axis]
                    grid = grid * s - (s - 1 if axis == 0 else 0)
            if fits:
                break
            n += 1
        sizes.append(n)
    return tuple(sizes)


def decode(
    decoder_model: torch.nn.Module,
    latents: torch.Tensor,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    num_inference_steps: int | None = None,
) -> torch.Tensor:
    """Normalized latents ``[B, C, F', H', W']`` -> pixels ``[B, 3, 8(F'-1)+1, 32H', 32W']`` in [-1, 1].

    Args:
        decoder_model: an ``LTX2VideoDiffusionDecoderModel`` (``use_neighborhood_sdpa`` applied).
        generator: source of the initial noise (one ``randn`` of the padded pixel shape, drawn on its device).
        noise: that initial noise, given instead (``[B, 3, F_pad, H_pad, W_pad]``).
        num_inference_steps: defaults to the checkpoint's ``default_num_inference_steps``.
    """
    dec = decoder_model.decoder
    dtype = next(decoder_model.parameters()).dtype
    mean = decoder_model.latents_mean.view(1, -1, 1, 1, 1)
    std = decoder_model.latents_std.view(1, -1, 1, 1, 1)
    z = latents.to(dtype) * std.to(dtype) + mean.to(dtype)
    frames, height, width = z.shape[2:]
    pads = [max(0, m - n) for m, n in zip(min_latent_size(decoder_model), (frames, height, width), strict=True)]
    if any(pads):
        z = F.pad(z, (0, pads[2], 0, pads[1], 0, pads[0]), mode="replicate")
    context = dec.forward_stage_4(dec.forward_stages_1_to_3(z))
    shape = (
        z.shape[0],
        dec.out_channels,
        context.shape[1],
        context.shape[2] * dec.patch_size,
        context.shape[3] * dec.patch_size,
    )
    if noise is None:
        device = generator.device if generator is not None else z.device
        noise = torch.randn(shape, generator=generator, device=device, dtype=z.dtype)
    elif tuple(noise.shape) != shape:
        raise ValueError(f"initial noise of shape {tuple(noise.shape)}; this latent needs {shape}")
    steps = num_inference_steps or dec.default_num_inference_steps
    pixels = dec.denoise(context, noise.to(device=z.device, dtype=z.dtype), steps)
    t, s = decoder_model.temporal_compression_ratio, decoder_model.spatial_compression_ratio
    return pixels[:, :, : (frames - 1) * t + 1, : height * s, : width * s]
