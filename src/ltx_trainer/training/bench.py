"""``ltx-trainer bench``: how fast a training configuration runs, how much memory it takes, and where the time goes.

Builds the transformer (and text connectors) of a real architecture with random weights, writes a small synthetic
cache at the requested resolution and sets up the real trainer in a memory *tier* (base weights bf16 / fp8 / int8 /
nf4, N blocks swapped to host RAM). Then it times, interleaved so that drift and noise hit both alike:

* the trainer's own optimizer step (data hand-off, connectors, strategy, loss, backward, clip, step, schedule), and
* a bare step: a plain forward + backward + optimizer step of the same transformer on one fixed batch whose inputs
  and text context were prepared once (no data loading, no connectors, no strategy, a plain MSE).

It reports medians with their spread (min / max), so the trainer's overhead is a difference of medians and not of
two means taken minutes apart. Peak memory: ``max_memory_allocated`` on GPUs, the process's peak RSS on the host (so
run one tier per process: ``scripts/gpu_bench.sh`` does), MFU on GPUs it knows.
"""

import json
import resource
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ltx_trainer import logger
from ltx_trainer.config import parse_config
from ltx_trainer.data.cache import write_sample_file
from ltx_trainer.data.dataset import collate
from ltx_trainer.io import atomic_write_text
from ltx_trainer.models import latents as lat
from ltx_trainer.models.architectures import random_model
from ltx_trainer.models.base import LTXModel
from ltx_trainer.models.devices import resolve_device
from ltx_trainer.training.trainer import Trainer

# Dense bf16 peak of known accelerators (TFLOP/s), for MFU.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0, "RTX 5090": 209.0}


@dataclass(frozen=True)
class Tier:
    """A memory tier: how the frozen base is stored and how many transformer blocks live in host RAM.

    ``acceleration()`` is the config section the tier trains with: the features are plain config fields
    (``acceleration.quantization``, ``acceleration.blocks_to_swap``), so a build that lacks one refuses the tier at
    config load and the bench reports it as not available instead of measuring something else.
    """

    name: str
    weights: str = "bf16"  # bf16 | fp8 | int8 | nf4 (acceleration.quantization; bf16 = none)
    blocks_to_swap: int = 0

    def acceleration(self) -> dict:
        section: dict = {}
        if self.weights != "bf16":
            section["quantization"] = self.weights
        if self.blocks_to_swap:
            section["blocks_to_swap"] = self.blocks_to_swap
        return section


TIERS = {
    t.name: t
    for t in (
        Tier("bf16"),
        Tier("fp8", "fp8"),
        Tier("int8", "int8"),
        Tier("nf4", "nf4"),
        Tier("bf16-swap16", "bf16", 16),
        Tier("fp8-swap16", "fp8", 16),
        Tier("int8-swap24", "int8", 24),
        Tier("nf4-swap24", "nf4", 24),
    )
}


@dataclass
class BenchResult:
    arch: str
    tier: str
    resolution: str
    device: str
    dtype: str
    mode: str
    gradient_checkpointing: bool
    video_tokens: int
    audio_tokens: int
    repeats: int
    s_per_step: float  # median of the trainer's steps
    s_per_step_min: float
    s_per_step_max: float
    data_s: float  # medians of the trainer's phases
    forward_s: float
    backward_s: float
    optimizer_s: float
    bare_s_per_step: float  # median of the bare steps
    bare_s_per_step_min: float
    bare_s_per_step_max: float
    trainer_overhead_pct: float
    data_wait_pct: float
    tokens_per_s: float
    transformer_gb: float  # bytes of the transformer's parameters and buffers as loaded (quantized ones counted)
    peak_vram_gb: float | None
    peak_host_gb: float
    mfu_pct: float | None

    @property
    def peak_memory_gb(self) -> float:
        return self.peak_vram_gb if self.peak_vram_gb is not None else self.peak_host_gb


def build_random_model(arch: str, device: torch.device, dtype: torch.dtype) -> LTXModel:
    """The model's trainable part (transformer, and connectors for LTX-2) with random weights, built on ``device``."""
    return random_model(arch, device, dtype)


def _synthetic_cache(root: Path, model, width: int, height: int, frames: int, samples: int = 4) -> None:
    spec = model.spec
    f, h, w = lat.latent_frames(frames), height // 32, width // 32
    dims = model.text_feature_dims()
    length = spec.text_max_length
    for i in range(samples):
        write_sample_file(
            root / "latents" / f"{i}.safetensors",
            {
                "latents": torch.randn(128, f, h, w, dtype=torch.bfloat16),
                "num_frames": f,
                "height": h,
                "width": w,
                "fps": 24.0,
            },
        )
        write_sample_file(
            root / "conditions" / f"{i}.safetensors",
            {
                "video_prompt_embeds": torch.randn(length, dims[0], dtype=torch.bfloat16),
                "audio_prompt_embeds": torch.randn(length, dims[1], dtype=torch.bfloat16),
                "prompt_attention_mask": (torch.arange(length) >= length - 77).long(),
            },
        )  # 77 real tokens, left padded
        if spec.has_audio:
            steps = lat.audio_latent_steps(frames / 24.0)
            write_sample_file(
                root / "audio_latents" / f"{i}.safetensors",
                {
                    "latents": torch.randn(8, steps, 16),
                    "num_time_steps": steps,
                    "frequency_bins": 16,
                    "duration": frames / 24.0,
                },
            )


def tensor_bytes(t: torch.Tensor) -> int:
    """Storage bytes of a tensor, looking inside tensor subclasses (torchao's quantized weights hold int8/fp8 data
    and scales; their ``element_size`` is that of the dtype they stand for)."""
    flatten = getattr(type(t), "__tensor_flatten__", None)
    if flatten is not None and type(t) is not torch.nn.Parameter and type(t) is not torch.Tensor:
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers (shared tensors counted once)."""
    seen, total = set(), 0
    for t in [*module.parameters(), *module.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += tensor_bytes(t.data if isinstance(t, torch.nn.Parameter) else t)
    return total


def _peak_host_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _mfu(model, tokens: int, s_per_step: float, lora: bool, device: torch.device) -> float | None:
    """Model FLOPs utilisation: 2·N·T forward + attention, x3 (full) or x2 (LoRA: no frozen weight grads)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    if peak is None:
        return None
    params = sum(p.numel() for n, p in model.transformer.named_parameters() if "lora_" not in n)
    cfg = model.transformer.config
    width = cfg.num_attention_heads * cfg.attention_head_dim
    attention = 4 * tokens * tokens * width * cfg.num_layers
    flops = (2 * params * tokens + attention) * (2 if lora else 3)
    return 100 * flops / s_per_step / (peak * 1e12)


def _config(root: Path, model, tier: Tier, lora_rank: int, checkpointing: bool, mixed: str, steps: int) -> object:
    lora = lora_rank > 0
    strategy = {"name": "flexible", "video": {"is_generated": True, "latents_dir": "latents"}}
    if model.spec.has_audio:
        strategy["audio"] = {"is_generated": True, "latents_dir": "audio_latents"}
    return parse_config(
        {
            "model": {"model_path": str(root), "training_mode": "lora" if lora else "full"},
            **({"lora": {"rank": lora_rank, "alpha": lora_rank}} if lora else {}),
            "training_strategy": strategy,
            "optimization": {"steps": steps, "batch_size": 1, "enable_gradient_checkpointing": checkpointing},
            "acceleration": {"mixed_precision_mode": mixed, **tier.acceleration()},
            "data": {"preprocessed_data_root": str(root / "data"), "num_dataloader_workers": 2},
            "checkpoints": {"interval": None, "save_training_state": "off"},
            "validation": {"interval": None},
            "output_dir": str(root / "out"),
        },
        source=f"bench tier {tier.name}",
    )


def run_bench(
    arch: str,
    width: int,
    height: int,
    frames: int,
    steps: int = 10,
    warmup: int = 3,
    lora_rank: int = 64,
    gradient_checkpointing: bool = True,
    dtype: str = "auto",
    tier: str | Tier = "bf16",
) -> BenchResult:
    """Measure ``steps`` trainer steps and ``steps`` bare steps, interleaved, after ``warmup`` of each.

    Args:
        dtype: base weights: ``auto`` (bf16 on GPUs, fp32 on a CPU), ``bf16`` or ``fp32`` (any device).
        tier: a name in ``TIERS`` or a ``Tier``.
    """
    tier = TIERS[tier] if isinstance(tier, str) else tier
    device = resolve_device(None)
    if dtype == "auto":
        dtype = "bf16" if device.type == "cuda" else "fp32"
    weights = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    model = build_random_model(arch, device, weights)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _synthetic_cache(root / "data", model, width, height, frames)
        mixed = "bf16" if dtype == "bf16" else "no"
        config = _config(root, model, tier, lora_rank, gradient_checkpointing, mixed, warmup + steps)
        trainer = Trainer(config)
        trainer.setup(model=model)
        trainer.profile = True
        try:
            trainer_steps, bare_steps = _interleaved(trainer, steps, warmup, device)
        finally:
            trainer._release_output_dir()
        batch = collate([trainer.dataset[0]])
        video_tokens = batch["video_latents"]["latents"][0, 0].numel()
        audio_tokens = batch["audio_latents"]["latents"].shape[2] if "audio_latents" in batch else 0
    tokens = video_tokens + audio_tokens
    seconds = [m["s_per_step"] for m in trainer_steps]
    median = statistics.median(seconds)
    bare = statistics.median(bare_steps)
    phases = {
        k: statistics.median(m.get(k, 0.0) for m in trainer_steps)
        for k in ("data_s", "forward_s", "backward_s", "optimizer_s")
    }
    transformer_bytes = module_bytes(model.transformer)
    dense = sum(p.numel() for n, p in model.transformer.named_parameters() if "lora_" not in n) * weights.itemsize
    if tier.weights != "bf16" and transformer_bytes >= 0.95 * dense:
        logger.warning("tier %s: the transformer still holds %s weights: %s was not applied", tier.name, dtype, tier)
    return BenchResult(
        arch=arch,
        tier=tier.name,
        resolution=f"{width}x{height}x{frames}",
        device=_device_name(device),
        dtype=dtype,
        mode=f"lora r={lora_rank}" if lora_rank > 0 else "full",
        gradient_checkpointing=gradient_checkpointing,
        video_tokens=video_tokens,
        audio_tokens=audio_tokens,
        repeats=steps,
        s_per_step=median,
        s_per_step_min=min(seconds),
        s_per_step_max=max(seconds),
        bare_s_per_step=bare,
        bare_s_per_step_min=min(bare_steps),
        bare_s_per_step_max=max(bare_steps),
        trainer_overhead_pct=100 * (median - bare) / bare,
        data_wait_pct=100 * phases["data_s"] / median,
        tokens_per_s=tokens / median,
        transformer_gb=transformer_bytes / 2**30,
        peak_vram_gb=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        peak_host_gb=_peak_host_gb(),
        mfu_pct=_mfu(model, tokens, median, lora_rank > 0, device),
        **phases,
    )


def _synced(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _interleaved(trainer: Trainer, steps: int, warmup: int, device: torch.device) -> tuple[list[dict], list[float]]:
    """``warmup`` + ``steps`` of (trainer step, bare step) pairs; the timed ones come back."""
    batches = iter(trainer.dataloader)  # DataLoader workers start once
    bare = _bare_step(trainer, collate([trainer.dataset[0]]))
    trainer_steps, bare_steps = [], []
    for i in range(warmup + steps):
        start = _synced(device)
        metrics = trainer._optimizer_step(batches, trainer.config.optimization.gradient_accumulation_steps)
        metrics["s_per_step"] = _synced(device) - start
        start = _synced(device)
        bare()
        elapsed = _synced(device) - start
        if i >= warmup:
            trainer_steps.append(metrics)
            bare_steps.append(elapsed)
    return trainer_steps, bare_steps


def _bare_step(trainer: Trainer, batch: dict):
    """A plain forward + backward + optimizer step of the trainer's transformer on ``batch``, whose transformer
    inputs, targets and text context are prepared once here (connectors and strategy stay out of the timed step)."""
    model, accelerator = trainer.model, trainer.accelerator
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad(), accelerator.autocast():
        context = trainer._context(batch["conditions"])
        prepared = trainer.strategy.prepare(batch, model, trainer.sigma_sampler, generator)
    for item in prepared.values():
        for name in ("latent", "timesteps", "sigma", "positions"):
            setattr(item.input, name, getattr(item.input, name).to(trainer.device))
        if item.target is not None:
            item.target = item.target.to(trainer.device)
    video = prepared["video"].input if "video" in prepared else None
    audio = prepared["audio"].input if "audio" in prepared else None

    def step() -> None:
        with accelerator.autocast():
            outputs = dict(zip(("video", "audio"), model.forward(video, audio, context), strict=True))
            loss = sum(
                torch.nn.functional.mse_loss(outputs[k][:, p.reference_tokens :].float(), p.target.float())
                for k, p in prepared.items()
                if p.target is not None
            )
        accelerator.backward(loss)
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)

    return step


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def _gb(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "n/a"


def markdown_row(r: BenchResult) -> str:
    mfu = f"{r.mfu_pct:.1f}" if r.mfu_pct is not None else "n/a"
    return (
        f"| {r.arch} | {r.tier} | {r.resolution} | {r.mode}{' + ckpt' if r.gradient_checkpointing else ''} | "
        f"{r.device} | {r.dtype} | {r.video_tokens}+{r.audio_tokens} | "
        f"{r.s_per_step:.3f} ({r.s_per_step_min:.3f}-{r.s_per_step_max:.3f}) | "
        f"{r.data_s:.3f} / {r.forward_s:.3f} / {r.backward_s:.3f} / {r.optimizer_s:.3f} | "
        f"{r.bare_s_per_step:.3f} ({r.bare_s_per_step_min:.3f}-{r.bare_s_per_step_max:.3f}) | "
        f"{r.trainer_overhead_pct:.1f} | {r.data_wait_pct:.2f} | {r.tokens_per_s:.0f} | {r.transformer_gb:.2f} | "
        f"{_gb(r.peak_vram_gb)} | {r.peak_host_gb:.2f} | {mfu} |"
    )


TABLE_HEADER = (
    "| arch | tier | W×H×F | mode | device | dtype | tokens (video+audio) | s/step median (min-max) | "
    "data / fwd / bwd / optim (s, medians) | bare s/step median (min-max) | overhead % | data wait % | tokens/s | "
    "transformer GB | peak VRAM GB | peak host GB | MFU % |\n" + "|---" * 17 + "|"
)


def save_result(result: BenchResult, out_dir: Path) -> Path:
    name = f"{result.arch}_{result.tier}_{result.resolution}.json"
    return atomic_write_text(out_dir / name, json.dumps(asdict(result), indent=1))
