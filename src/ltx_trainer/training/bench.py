"""``ltx-trainer bench``: how fast a training configuration runs, and where the time goes.

Builds the transformer (and text connectors) of a real architecture with random weights, writes a small synthetic
cache at the requested resolution, and runs the real trainer with per-phase timing (data wait, forward, backward,
optimizer), then the same model in a bare forward+backward+step loop so the trainer's overhead is a percentage.
Reports tokens/s, peak memory (RSS on CPU, ``max_memory_allocated`` on GPU) and MFU on GPUs.
"""

import json
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

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


@dataclass
class BenchResult:
    arch: str
    resolution: str
    device: str
    mode: str
    gradient_checkpointing: bool
    video_tokens: int
    audio_tokens: int
    s_per_step: float
    data_s: float
    forward_s: float
    backward_s: float
    optimizer_s: float
    bare_s_per_step: float
    trainer_overhead_pct: float
    data_wait_pct: float
    tokens_per_s: float
    peak_memory_gb: float
    mfu_pct: float | None


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


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
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


def run_bench(
    arch: str,
    width: int,
    height: int,
    frames: int,
    steps: int = 10,
    warmup: int = 3,
    lora_rank: int = 64,
    gradient_checkpointing: bool = True,
) -> BenchResult:
    device = resolve_device(None)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = build_random_model(arch, device, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _synthetic_cache(root / "data", model, width, height, frames)
        lora = lora_rank > 0
        strategy = {"name": "flexible", "video": {"is_generated": True, "latents_dir": "latents"}}
        if model.spec.has_audio:
            strategy["audio"] = {"is_generated": True, "latents_dir": "audio_latents"}
        config = parse_config(
            {
                "model": {"model_path": str(root), "training_mode": "lora" if lora else "full"},
                **({"lora": {"rank": lora_rank, "alpha": lora_rank}} if lora else {}),
                "training_strategy": strategy,
                "optimization": {
                    "steps": warmup + steps,
                    "batch_size": 1,
                    "enable_gradient_checkpointing": gradient_checkpointing,
                },
                "acceleration": {"mixed_precision_mode": "bf16" if device.type == "cuda" else "no"},
                "data": {"preprocessed_data_root": str(root / "data"), "num_dataloader_workers": 2},
                "checkpoints": {"interval": None, "save_training_state": "off"},
                "validation": {"interval": None},
                "output_dir": str(root / "out"),
            },
            source="bench",
        )
        trainer = Trainer(config)
        trainer.setup(model=model)
        trainer.profile = True
        result = trainer.train()  # warmup + measured steps in one run: DataLoader workers start once
        timed = result.metrics[warmup:]
        per_step = {
            k: sum(m.get(k, 0.0) for m in timed) / len(timed)
            for k in ("s_per_step", "data_s", "forward_s", "backward_s", "optimizer_s")
        }
        bare = _bare_loop(trainer, steps, device)
        batch = collate([trainer.dataset[0]])
        video_tokens = batch["video_latents"]["latents"][0, 0].numel()
        audio_tokens = batch["audio_latents"]["latents"].shape[2] if "audio_latents" in batch else 0
    tokens = video_tokens + audio_tokens
    return BenchResult(
        arch=arch,
        resolution=f"{width}x{height}x{frames}",
        device=_device_name(device),
        mode=f"lora r={lora_rank}" if lora else "full",
        gradient_checkpointing=gradient_checkpointing,
        video_tokens=video_tokens,
        audio_tokens=audio_tokens,
        s_per_step=per_step["s_per_step"],
        data_s=per_step["data_s"],
        forward_s=per_step["forward_s"],
        backward_s=per_step["backward_s"],
        optimizer_s=per_step["optimizer_s"],
        bare_s_per_step=bare,
        trainer_overhead_pct=100 * (per_step["s_per_step"] - bare) / bare,
        data_wait_pct=100 * per_step["data_s"] / per_step["s_per_step"],
        tokens_per_s=tokens / per_step["s_per_step"],
        peak_memory_gb=_peak_memory_gb(device),
        mfu_pct=_mfu(model, tokens, per_step["s_per_step"], lora, device),
    )


def _bare_loop(trainer: Trainer, steps: int, device: torch.device) -> float:
    """The same model, one fixed batch, forward + backward + optimizer step: no data loading, logging or schedule."""
    batch = collate([trainer.dataset[0]])
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        with trainer.accelerator.autocast():
            loss, _, _ = trainer._loss(batch)
            trainer.accelerator.backward(loss.mean())
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)

    trainer.generator = generator
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def markdown_row(r: BenchResult) -> str:
    mfu = f"{r.mfu_pct:.1f}" if r.mfu_pct is not None else "n/a"
    return (
        f"| {r.arch} | {r.resolution} | {r.mode}{' + ckpt' if r.gradient_checkpointing else ''} | {r.device} | "
        f"{r.video_tokens}+{r.audio_tokens} | {r.s_per_step:.3f} | {r.data_s:.3f} / {r.forward_s:.3f} / "
        f"{r.backward_s:.3f} / {r.optimizer_s:.3f} | {r.bare_s_per_step:.3f} | {r.trainer_overhead_pct:.1f} | "
        f"{r.data_wait_pct:.2f} | {r.tokens_per_s:.0f} | {r.peak_memory_gb:.2f} | {mfu} |"
    )


TABLE_HEADER = (
    "| arch | W×H×F | mode | device | tokens (video+audio) | s/step | data / fwd / bwd / optim (s) | bare s/step | "
    "overhead % | data wait % | tokens/s | peak GB | MFU % |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def save_result(result: BenchResult, out_dir: Path) -> Path:
    return atomic_write_text(out_dir / f"{result.arch}_{result.resolution}.json", json.dumps(asdict(result), indent=1))
