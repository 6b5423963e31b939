"""Quantized frozen bases (LoRA mode): the ``acceleration.quantization`` modes, on maintained libraries.

- ``fp8``: diffusers layerwise casting (``apply_layerwise_casting``): e4m3 weight and bias, no scale.
- ``fp8-scaled`` (official ``fp8-quanto``, ``fp8uz-quanto``): torchao ``Float8WeightOnlyConfig``, fp32 scale per row.
- ``int8`` (official ``int8-quanto``): torchao ``Int8WeightOnlyConfig``, per-row scale and zero point.
- ``int4`` (official ``int4-quanto``): torchao ``Int4WeightOnlyConfig``, groups of 128 (CUDA kernels only).
- ``nf4``: bitsandbytes ``Linear4bit`` NF4 (QLoRA), blocks of 64; CUDA, and CPU since bitsandbytes 0.48.

``int2-quanto`` is refused at config load: no maintained 2-bit weight-only backend stores 2 bits per weight.

Which layers: the official exclusions (patchify / proj_out video and audio, ``*adaln*``, ``time_proj``,
``timestep_embedder*``, ``caption_projection*``, ``*norm*``) translated to diffusers module names
(:data:`EXCLUDED_PATTERNS`). In LTX-2, LTX-2.3 and LTXV that leaves exactly the linear layers inside
``transformer_blocks`` (attention, feed-forward, 2.3's gate logits).

Everything runs per module, so a streaming loader can call :func:`quantize_module_` on one block at a time (with
``prefix="transformer_blocks.N."``); :func:`quantize_transformer_` is the whole-model form. peft wraps every result:
torchao tensors through its ``TorchaoLoraLinear``, layerwise-cast and bitsandbytes layers as ordinary linears, so the
exported LoRA has the keys and shapes of an unquantized run.
"""

from __future__ import annotations

import fnmatch

import torch
from torch import nn

from ltx_trainer.config import QUANTIZATION_ALIASES, QUANTIZATION_MODES
from ltx_trainer.models.errors import ModelLoadError

# Official ltx-trainer exclusions (anchors §2) in diffusers module names: proj_in = patchify_proj,
# time_embed / av_cross_attn_* / prompt_adaln = the *adaln_single modules (with their timestep_embedder and time_proj).
EXCLUDED_PATTERNS = (
    "proj_in",
    "audio_proj_in",
    "proj_out",
    "audio_proj_out",
    "*adaln*",
    "*time_embed*",
    "av_cross_attn_*",
    "*time_proj*",
    "*timestep_embedder*",
    "caption_projection*",
    "audio_caption_projection*",
    "*norm*",
)
FP8 = torch.float8_e4m3fn
INT4_GROUP = 128
NF4_BLOCK = 64
NF4_CODE = 16  # values in bitsandbytes' NF4 code book, stored (fp32) with every layer
# torchao modes with one scale (and zero point) per output row: quantized a slice of rows at a time while loading
ROW_WISE_MODES = ("int8", "fp8-scaled")
# Weights per slice (16 MiB float32 temporaries). Measured on a 22B feed-forward weight (16384 x 4096), 2-core CPU:
# peak above the int8 result 0.09 GiB (whole weight at once: 0.50; fp8-scaled 0.11 against 0.94), the same time.
CHUNK_ELEMENTS = 1 << 22


def resolve_mode(name: str) -> str:
    """Our mode for a config name (official ``*-quanto`` names are mapped); raises on anything else."""
    mode = QUANTIZATION_ALIASES.get(name, name)
    if mode not in QUANTIZATION_MODES:
        raise ValueError(f"acceleration.quantization: {name!r} is not one of {', '.join(QUANTIZATION_MODES)}")
    return mode


def is_quantizable(name: str, module: nn.Module) -> bool:
    """A linear layer outside the official exclusions (``name`` is the full diffusers module name)."""
    weight = getattr(module, "weight", None)
    if type(module) is not nn.Linear or type(weight.data) is not torch.Tensor or weight.dtype in FP8_DTYPES:
        return False  # not a linear, or already quantized (a pre-quantized fp8 checkpoint's Float8Tensor)
    return not any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name, f"*.{p}") for p in EXCLUDED_PATTERNS)


def quantizable_linears(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Linear]]:
    named = ((f"{prefix}{n}".rstrip("."), m) for n, m in module.named_modules())
    return [(n, m) for n, m in named if is_quantizable(n, m)]


def quantize_module_(
    module: nn.Module, mode: str, compute_dtype: torch.dtype, prefix: str = "", device: torch.device | None = None
) -> list[str]:
    """Quantize the quantizable linears of ``module`` in place (one block, or a whole transformer).

    Args:
        mode: a config name (``fp8``, ``int8``, ``int8-quanto``, ...).
        compute_dtype: the dtype the matmuls run in (bf16 on GPUs, fp32 on CPU); the unquantized weights keep it.
        prefix: the module's own name in the transformer (``"transformer_blocks.3."``), for the exclusions.
        device: move the module there first (quantize on the GPU, block by block); None = where it is.

    Returns:
        the full names of the layers quantized.
    """
    mode = resolve_mode(mode)
    if device is not None:
        module.to(device)
    targets = quantizable_linears(module, prefix)
    if mode == "fp8":
        from diffusers.hooks import apply_layerwise_casting

        for _, linear in targets:  # cast straight to fp8 (from the file's bf16 while streaming: no float32 copy)
            apply_layerwise_casting(linear, FP8, compute_dtype, skip_modules_pattern=None, skip_modules_classes=None)
            linear.compute_dtype = compute_dtype  # peft reads it: LoRA weights in the compute dtype, not fp8
    elif mode == "nf4":
        _to_nf4(module, prefix, targets, compute_dtype)
    else:
        from torchao.quantization import quantize_

        config = _torchao_config(mode)
        for _, linear in targets:
            if mode in ROW_WISE_MODES:
                _quantize_rows_(linear, config, compute_dtype)
            else:
                linear.to(compute_dtype)
                quantize_(linear, config, filter_fn=lambda m, _name, target=linear: m is target)
    return [name for name, _ in targets]


def _quantize_rows_(linear: nn.Linear, config, compute_dtype: torch.dtype) -> None:
    """torchao per-row quantization of ``linear.weight``, :data:`CHUNK_ELEMENTS` weights at a time.

    Every row has its own scale, so quantizing a slice of rows gives exactly those rows of the whole result; the
    slices' data go into tensors of the full size and the weight is rebuilt with torchao's own ``__tensor_unflatten__``.
    torchao makes a few full-precision temporaries of what it quantizes (the rows in float32, divided, rounded): per
    slice they are megabytes, for a whole 22B feed-forward weight up to a gigabyte. The source is cast to
    ``compute_dtype`` a slice at a time too (a bf16 file never becomes a float32 copy of the layer).
    """
    from torchao.quantization import quantize_

    weight = linear.weight.data
    rows = max(1, CHUNK_ELEMENTS // max(1, weight.shape[1]))
    full: dict[str, torch.Tensor] = {}
    first = None
    for start in range(0, weight.shape[0], rows):
        part = weight[start : start + rows]
        piece = nn.Linear(part.shape[1], part.shape[0], bias=False, device="meta")
        piece.weight = nn.Parameter(part.to(compute_dtype), requires_grad=False)
        quantize_(piece, config)
        vars(piece).pop("extra_repr", None)  # torchao's bound repr is a cycle that would keep each slice until a gc
        names, attributes = piece.weight.__tensor_flatten__()
        if first is None:
            if part.shape[0] == weight.shape[0]:  # one slice: the whole weight
                linear.weight = piece.weight
                break
            first = (type(piece.weight), attributes)
            for n in names:
                t = getattr(piece.weight, n)
                if t.shape[0] != part.shape[0]:
                    raise ValueError(f"{type(piece.weight).__name__}.{n} is not laid out per row: {tuple(t.shape)}")
                full[n] = torch.empty((weight.shape[0], *t.shape[1:]), dtype=t.dtype, device=t.device)
        elif (type(piece.weight), attributes) != first:
            raise ValueError(f"torchao quantized rows {start}.. of a weight differently: {attributes} != {first[1]}")
        for n in names:
            full[n][start : start + part.shape[0]] = getattr(piece.weight, n)
        del piece, part
    if first is not None:
        tensor = first[0].__tensor_unflatten__(full, first[1], weight.shape, weight.stride())
        linear.weight = nn.Parameter(tensor, requires_grad=False)
    if linear.bias is not None and linear.bias.dtype != compute_dtype:
        linear.bias = nn.Parameter(linear.bias.data.to(compute_dtype), requires_grad=False)


def quantize_transformer_(
    transformer: nn.Module, mode: str, compute_dtype: torch.dtype, device: torch.device | None = None
) -> int:
    """Quantize a loaded transformer, block by block on ``device`` (the rest moves there too); returns layer count."""
    count = 0
    for name, child in transformer.named_children():
        if isinstance(child, nn.ModuleList):
            for i, block in enumerate(child):
                count += len(quantize_module_(block, mode, compute_dtype, f"{name}.{i}.", device))
        else:
            count += len(quantize_module_(child, mode, compute_dtype, f"{name}.", device))
    for key, p in list(transformer.named_parameters(recurse=False)):
        if device is not None:
            setattr(transformer, key, nn.Parameter(p.data.to(device), requires_grad=p.requires_grad))
    return count


def needs_plain_lora_layers(transformer: nn.Module) -> bool:
    """True when peft must wrap the linears with its plain LoRA layer: peft 0.21's torchao layer refuses int4 weights
    ("only supports int8 weights for now"), while the plain one only calls the base layer, which torchao runs."""
    return any(type(getattr(m, "weight", None)).__name__ == "Int4Tensor" for m in transformer.modules())


def _torchao_config(mode: str):
    from torchao.quantization import Float8WeightOnlyConfig, Int4WeightOnlyConfig, Int8WeightOnlyConfig

    if mode == "int8":
        return Int8WeightOnlyConfig()
    if mode == "fp8-scaled":
        return Float8WeightOnlyConfig()
    if mode == "int4":
        return Int4WeightOnlyConfig(group_size=INT4_GROUP)
    raise ValueError(f"no torchao config for {mode!r}")


def _to_nf4(module: nn.Module, prefix: str, targets: list[tuple[str, nn.Linear]], compute_dtype: torch.dtype) -> None:
    """bitsandbytes NF4 linears in place of ``targets``, quantized on the device the linears are on."""
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise ModelLoadError(
            "acceleration.quantization: 'nf4' needs bitsandbytes (pip install 'ltx-trainer[quantization]')"
        ) from e
    for name, linear in targets:
        nf4 = bnb.nn.Linear4bit(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            compute_dtype=compute_dtype,
            quant_type="nf4",
            device="meta",
        )
        nf4.weight = bnb.nn.Params4bit(
            linear.weight.data.to(compute_dtype), requires_grad=False, quant_type="nf4", compress_statistics=False
        )
        if linear.bias is not None:
            nf4.bias = nn.Parameter(linear.bias.data.to(compute_dtype), requires_grad=False)
        nf4.to(linear.weight.device)  # quantized there (bitsandbytes 0.50 runs NF4 on a CPU too)
        # bitsandbytes 0.50 repacks the weight in place for its AVX512-BF16 CPU kernel the first time the layer runs in
        # eval mode without grad (validation), which needs out_features % 32 == 0 and leaves a different layout for
        # the steps after: keep the one layout training uses
        nf4.support_avx512bf16_for_cpu = False
        parent_name, _, attr = name.removeprefix(prefix).rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, attr, nf4)


# ---- bytes ----------------------------------------------------------------------------------------------------------
def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor holds, looking inside tensor subclasses (torchao's qdata + scales, bitsandbytes' quant state)."""
    flatten = getattr(type(t), "__tensor_flatten__", None)
    if flatten is not None and type(t) is not torch.Tensor and type(t) is not nn.Parameter:
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names if getattr(t, n) is not None)
    total = t.numel() * t.element_size()
    state = getattr(t, "quant_state", None)  # bitsandbytes Params4bit: absmax per block (+ nested state)
    if state is not None:
        total += sum(tensor_bytes(x) for x in state.as_dict(packed=False).values() if isinstance(x, torch.Tensor))
    return total


def parameter_bytes(module: nn.Module) -> int:
    """Bytes of every parameter of ``module`` as stored (quantized weights at their real size)."""
    return sum(tensor_bytes(p) for p in module.parameters())


def linear_bytes(out_features: int, in_features: int, bias: bool, mode: str | None, dtype_bytes: int) -> int:
    """Stored bytes of one linear layer in ``mode`` (None = unquantized at ``dtype_bytes`` per value).

    What each backend stores (checked against the real libraries in tests/test_quantization.py):
    fp8 casts weight and bias to one byte each; fp8-scaled keeps an fp32 scale per output row; int8 an fp32 scale and
    an int8 zero point per row; int4 packs two weights a byte with a bf16 scale and zero per 128-group; nf4 packs two
    a byte with an fp32 absmax per 64-block (no double quantization: ``compress_statistics=False``) and keeps its
    16-value fp32 code book (``quant_map``) per layer.
    """
    weights = out_features * in_features
    bias_bytes = out_features * dtype_bytes if bias else 0
    if mode is None:
        return weights * dtype_bytes + bias_bytes
    mode = resolve_mode(mode)
    if mode == "fp8":
        return weights + (out_features if bias else 0)
    if mode == "fp8-scaled":
        return weights + out_features * 4 + bias_bytes
    if mode == "int8":
        return weights + out_features * 5 + bias_bytes
    if mode == "int4":
        groups = out_features * -(-in_features // INT4_GROUP)
        return weights // 2 + groups * 2 * 2 + bias_bytes
    if mode == "nf4":
        return -(-weights // 2) + -(-weights // NF4_BLOCK) * 4 + NF4_CODE * 4 + bias_bytes
    raise ValueError(mode)


def planned_parameter_bytes(transformer: nn.Module, mode: str | None, dtype_bytes: int) -> int:
    """The parameter bytes ``transformer`` (may live on the meta device) would take quantized in ``mode``."""
    quantized = dict(quantizable_linears(transformer)) if mode is not None else {}
    total = 0
    for name, m in transformer.named_modules():
        own = list(m.named_parameters(recurse=False))
        if name in quantized:
            total += linear_bytes(m.out_features, m.in_features, m.bias is not None, mode, dtype_bytes)
        else:
            total += sum(p.numel() * dtype_bytes for _, p in own)
    return total


# ---- pre-quantized fp8 checkpoints ----------------------------------------------------------------------------------
# The released ``*-fp8.safetensors`` (ltx-core's loader, ``quantization/fp8_scaled_mm.py``): each quantized linear
# stores ``weight`` as float8_e4m3fn [out, in] with a float32 scalar ``weight_scale`` (real weight = weight *
# weight_scale) and a float32 scalar ``input_scale`` (a static activation scale for fp8 matmuls); bias and every
# other tensor stay bf16. ltx-core's own fp8 files leave the first and the last five blocks and the patchify /
# adaln / caption / proj_out layers unquantized. We keep these weights in fp8 as torchao ``Float8Tensor`` (per-tensor
# scale, weight-only: dequantized into the compute dtype per matmul) and drop ``input_scale`` (weight-only compute).
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
WEIGHT_SCALE, INPUT_SCALE = ".weight_scale", ".input_scale"


def split_fp8_scales(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(tensors, ``{weight key: weight_scale}``): the scale entries taken out of a state dict (any key naming)."""
    scales = {k.removesuffix(WEIGHT_SCALE) + ".weight": v for k, v in sd.items() if k.endswith(WEIGHT_SCALE)}
    rest = {k: v for k, v in sd.items() if not k.endswith((WEIGHT_SCALE, INPUT_SCALE))}
    return rest, scales


def attach_fp8_weights_(module: nn.Module, scales: dict[str, torch.Tensor], compute_dtype: torch.dtype) -> int:
    """Turn every fp8 linear weight of a loaded module into a torchao ``Float8Tensor`` with its file scale (1.0 when
    the file has none: a plain cast checkpoint); returns how many. Nothing is dequantized."""
    from torchao.quantization import Float8Tensor

    count = 0
    for name, linear in module.named_modules():
        weight = getattr(linear, "weight", None)
        if not isinstance(linear, nn.Linear) or weight is None or weight.dtype not in FP8_DTYPES:
            continue
        scale = scales.get(f"{name}.weight", torch.ones(()))
        qdata = weight.data
        tensor = Float8Tensor(
            qdata, scale.float().reshape(1, 1).to(qdata.device), block_size=list(qdata.shape), dtype=compute_dtype
        )
        linear.weight = nn.Parameter(tensor, requires_grad=False)
        if linear.bias is not None and linear.bias.dtype != compute_dtype:
            linear.bias = nn.Parameter(linear.bias.data.to(compute_dtype), requires_grad=False)
        count += 1
    return count


def quantize_fp8_file_tensors(
    sd: dict[str, torch.Tensor], linear_weight_keys: list[str] | None = None
) -> dict[str, torch.Tensor]:
    """The released fp8 layout for ``linear_weight_keys`` (file keys; default: the block linears the released files
    quantize, see :func:`fp8_file_keys`): e4m3 weight, fp32 ``weight_scale`` (absmax / 448) and ``input_scale``;
    everything else unchanged. Used by ``make-tiny --fp8``."""
    linear_weight_keys = fp8_file_keys(sd) if linear_weight_keys is None else linear_weight_keys
    out = dict(sd)
    fp8_max = torch.finfo(FP8).max
    for key in linear_weight_keys:
        weight = sd[key].float()
        scale = weight.abs().max().clamp(min=1e-12) / fp8_max
        out[key] = (weight / scale).clamp(-fp8_max, fp8_max).to(FP8)
        out[key.removesuffix(".weight") + WEIGHT_SCALE] = scale.reshape(())
        out[key.removesuffix(".weight") + INPUT_SCALE] = torch.ones(())
    return out


def fp8_file_keys(sd: dict[str, torch.Tensor]) -> list[str]:
    """The keys a released fp8 file stores in e4m3: every transformer block linear weight except the first block's
    (and the last five blocks' when there are more than six), as ltx-core's fp8 files do."""
    blocks = "model.diffusion_model.transformer_blocks."
    index = {k: int(k.removeprefix(blocks).split(".")[0]) for k in sd if k.startswith(blocks)}
    count = 1 + max(index.values(), default=-1)
    kept = {0} | (set(range(count - 5, count)) if count > 6 else set())
    return [k for k, i in index.items() if k.endswith(".weight") and sd[k].ndim == 2 and i not in kept]
