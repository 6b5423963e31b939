"""``ltx-trainer plan``: which memory tier fits a GPU and a host, and which of those is fastest.

Parameter bytes are exact: the transformer is built on the meta device (``models.architectures``) and every tier is
counted layer by layer with the same rule the loader applies (``models.quantization.planned_parameter_bytes``; the
tests check that a loaded, quantized model stores exactly these bytes). Activations, offload traffic and step time
come from the formula documented in docs/benchmarks.md ("planner model"); its constants are below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from torch import nn

from ltx_trainer.models.geometry import Geometry
from ltx_trainer.models.quantization import linear_bytes, planned_parameter_bytes, quantizable_linears

GB = 1e9
TIERS: dict[str, str | None] = {"bf16": None, "fp8": "fp8", "int8": "int8", "int4": "int4", "nf4": "nf4"}
DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")

# ---- the planner model (docs/benchmarks.md, "planner model"); uncalibrated until bench runs on a GPU -----------------
BLOCK_ACTIVATION_FACTOR = 34  # bytes per token x width x 2 that one block keeps for backward (SDPA, 4x FFN, bf16)
CUDA_OVERHEAD_GB = 1.5  # context, cuBLAS workspaces, allocator slack
HEADROOM = 0.95  # plan to use at most 95 % of the card
HOST_BASE_GB = 4.0  # python, torch, CUDA host allocations, dataloader
PCIE_GB_S = 25.0  # effective pinned host->device bandwidth (PCIe 4 x16)
GPU_TFLOPS = 150.0  # sustained bf16 dense throughput of a 24-48 GB card (4090/L40S/A6000 class)
QUANT_SLOWDOWN = {None: 1.0, "fp8": 1.08, "int8": 1.15, "int4": 1.30, "nf4": 1.25}  # dequantize per matmul
TRAINABLE_BYTES = 16  # fp32 weight + fp32 grad + AdamW's two fp32 moments per trainable parameter


@dataclass(frozen=True)
class Shape(Geometry):
    """What one training step sees: a clip's geometry, with or without audio."""

    audio: bool = True

    @property
    def video_tokens(self) -> int:
        return self.latent_grid().tokens

    @property
    def audio_tokens(self) -> int:
        return math.ceil(self.seconds * 25) if self.audio else 0  # 25 audio latents per second, rounded up


@dataclass(frozen=True)
class ModelSizes:
    """Exact bytes of the transformer, per tier (bf16 compute), from the meta-device model."""

    name: str
    blocks: int
    params: int
    video_width: int
    audio_width: int
    block_bytes: dict[str, int]  # tier -> bytes of one block
    other_bytes: dict[str, int]  # tier -> bytes outside the blocks
    lora_params_per_rank: int  # LoRA parameters per unit of rank on DEFAULT_TARGETS

    def total_bytes(self, tier: str) -> int:
        return self.blocks * self.block_bytes[tier] + self.other_bytes[tier]


@dataclass(frozen=True)
class Row:
    tier: str
    blocks_to_swap: int
    checkpointing: bool
    vram_gb: float
    host_gb: float
    relative_time: float
    fits: bool


@cache
def meta_transformer(arch: str | None = None, model: Path | None = None) -> tuple[str, nn.Module]:
    """The transformer of a released/tiny architecture or of a single file's metadata, on the meta device (cached:
    it holds no data, and callers only read it)."""
    from ltx_trainer.models.architectures import official_transformer

    if model is not None:
        from ltx_trainer.models.formats import ltx2_transformer
        from ltx_trainer.models.sources import SingleFile

        official = SingleFile(Path(model)).config.get("transformer")
        if official is None or Path(model).is_dir():
            raise ValueError(f"{model}: plan reads LTX-2 single files (config metadata); use --arch for others")
        family, name = "ltx2", Path(model).name
    else:
        family, official, _ = official_transformer(arch)
        name = arch
    with torch.device("meta"):
        if family == "ltx2":
            from diffusers import LTX2VideoTransformer3DModel

            from ltx_trainer.models.formats import ltx2_transformer

            return name, LTX2VideoTransformer3DModel(**ltx2_transformer.diffusers_config(official))
        from diffusers import LTXVideoTransformer3DModel

        from ltx_trainer.models.formats import ltxv as ltxv_formats

        return name, LTXVideoTransformer3DModel(**ltxv_formats.transformer_diffusers_config(official))


def model_sizes(name: str, transformer: nn.Module) -> ModelSizes:
    blocks = transformer.transformer_blocks
    block_bytes, other_bytes = {}, {}
    for tier, mode in TIERS.items():
        total = planned_parameter_bytes(transformer, mode, 2)
        block_bytes[tier] = _block_bytes(blocks[0], mode)
        other_bytes[tier] = total - len(blocks) * block_bytes[tier]
    lora = sum(
        m.in_features + m.out_features
        for n, m in transformer.named_modules()
        if isinstance(m, nn.Linear) and any(n == t or n.endswith("." + t) for t in DEFAULT_TARGETS)
    )
    config = transformer.config
    video_width = config.num_attention_heads * config.attention_head_dim
    audio_width = getattr(config, "audio_num_attention_heads", 0) * getattr(config, "audio_attention_head_dim", 0)
    return ModelSizes(
        name,
        len(blocks),
        sum(p.numel() for p in transformer.parameters()),
        video_width,
        audio_width,
        block_bytes,
        other_bytes,
        lora,
    )


def _block_bytes(block: nn.Module, mode: str | None) -> int:
    quantized = {id(m) for _, m in quantizable_linears(block, "transformer_blocks.0.")} if mode else set()
    total = 0
    for m in block.modules():
        if id(m) in quantized:
            total += linear_bytes(m.out_features, m.in_features, m.bias is not None, mode, 2)
        else:
            total += sum(p.numel() * 2 for p in m.parameters(recurse=False))
    return total


def plan_rows(sizes: ModelSizes, shape: Shape, gpu_gb: float, ram_gb: float, rank: int, mode: str) -> list[Row]:
    tiers = list(TIERS) if mode == "lora" else ["bf16"]
    swaps = sorted({0, sizes.blocks // 4, sizes.blocks // 2, 3 * sizes.blocks // 4, sizes.blocks - 1})
    rows = []
    for tier in tiers:
        for swap in swaps:
            for ckpt in (True, False):
                vram, host, time = _estimate(sizes, shape, tier, swap, ckpt, rank, mode)
                fits = vram <= gpu_gb * HEADROOM and host <= ram_gb
                rows.append(Row(tier, swap, ckpt, vram, host, time, fits))
    return rows


def _estimate(
    sizes: ModelSizes, shape: Shape, tier: str, swap: int, ckpt: bool, rank: int, mode: str
) -> tuple[float, float, float]:
    """(peak VRAM GB, peak host GB, step time relative to bf16 without offload or checkpointing)."""
    block = sizes.block_bytes[tier]
    if mode == "full":  # fp32 master weights, grads and AdamW moments for every parameter
        block = block // 2 * TRAINABLE_BYTES
        other = sizes.other_bytes[tier] // 2 * TRAINABLE_BYTES
        trainable = 0
    else:
        other = sizes.other_bytes[tier]
        trainable = sizes.lora_params_per_rank * rank * TRAINABLE_BYTES
    resident = sizes.blocks - swap
    buffers = min(swap, 2) * sizes.block_bytes[tier]  # the swapped block in use and the next one in flight
    token_bytes = 2 * (shape.video_tokens * sizes.video_width + shape.audio_tokens * sizes.audio_width)
    per_block = BLOCK_ACTIVATION_FACTOR * token_bytes
    activations = sizes.blocks * token_bytes + per_block if ckpt else sizes.blocks * per_block
    vram = other + resident * block + buffers + trainable + activations + CUDA_OVERHEAD_GB * GB
    host = HOST_BASE_GB * GB + swap * block + sizes.block_bytes[tier]  # pinned swapped blocks + one loading buffer
    passes = (3 if ckpt else 2) if mode == "lora" else (4 if ckpt else 3)  # forwards + backwards, in forward units
    base_passes = 2 if mode == "lora" else 3
    flops = 2 * sizes.params * (shape.video_tokens + shape.audio_tokens)
    compute_s = flops * passes / (GPU_TFLOPS * 1e12) * QUANT_SLOWDOWN[TIERS[tier]]
    transfer_s = swap * sizes.block_bytes[tier] * (passes - 1) / (PCIE_GB_S * GB)
    overlap_s = compute_s * swap / sizes.blocks  # transfers hide behind the compute of the resident blocks
    step_s = compute_s + max(0.0, transfer_s - overlap_s)
    base_s = flops * base_passes / (GPU_TFLOPS * 1e12)
    return vram / GB, host / GB, step_s / base_s


def fastest(rows: list[Row]) -> Row | None:
    fitting = [r for r in rows if r.fits]
    return min(fitting, key=lambda r: (r.relative_time, r.vram_gb)) if fitting else None


def smallest(rows: list[Row]) -> Row:
    return min(rows, key=lambda r: (r.vram_gb, r.host_gb))


def acceleration_yaml(row: Row) -> str:
    """The config sections that select ``row``."""
    quantization = TIERS[row.tier]
    lines = [
        "acceleration:",
        "  mixed_precision_mode: bf16",
        f"  quantization: {quantization if quantization else 'null'}",
    ]
    if row.blocks_to_swap:
        lines.append(f"  blocks_to_swap: {row.blocks_to_swap}")
    lines += ["optimization:", f"  enable_gradient_checkpointing: {'true' if row.checkpointing else 'false'}"]
    return "\n".join(lines) + "\n"
