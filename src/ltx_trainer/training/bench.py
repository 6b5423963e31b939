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
from importlib import resources
from pathlib import Path

import torch

from ltx_trainer.config import parse_config
from ltx_trainer.data.cache import write_sample_file
from ltx_trainer.data.dataset import collate
from ltx_trainer.models import latents as lat
from ltx_trainer.models.base import FamilySpec
from ltx_trainer.training.trainer import Trainer

# Dense bf16 peak of known accelerators (TFLOP/s), for MFU.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0, "RTX 5090": 209.0}
ARCHS = ("tiny-ltx2", "tiny-ltx2.3", "tiny-ltxv", "ltx2-19b", "ltx2.3-22b", "ltxv-2b", "ltxv-13b")
GEMMA_3_12B = {"text_config": {"hidden_size": 3840, "num_hidden_layers": 48}}


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


def _official_transformer(arch: str) -> tuple[str, dict, dict | None]:
    """(family, official transformer config, Gemma config for the connectors)."""
    from ltx_trainer.models.formats import ltxv as ltxv_formats
    from ltx_trainer.models.tiny import GEMMA_HIDDEN, GEMMA_LAYERS, tiny_ltx2_config

    tiny_gemma = {"text_config": {"hidden_size": GEMMA_HIDDEN, "num_hidden_layers": GEMMA_LAYERS}}
    if arch in ("tiny-ltx2", "tiny-ltx2.3"):
        return "ltx2", tiny_ltx2_config("2.0" if arch == "tiny-ltx2" else "2.3")["transformer"], tiny_gemma
    if arch == "ltx2-19b":  # ltx-core's configurator defaults are the 19B model; connectors 30 x 128, 2 layers
        return (
            "ltx2",
            {
                "caption_channels": 3840,
                "connector_num_attention_heads": 30,
                "connector_attention_head_dim": 128,
                "connector_num_layers": 2,
            },
            GEMMA_3_12B,
        )
    if arch == "ltx2.3-22b":
        text = resources.files("ltx_trainer.models").joinpath("configs/ltx-2.3-22b.json").read_text()
        return "ltx2", json.loads(text)["transformer"], GEMMA_3_12B
    if arch in ("tiny-ltxv", "ltxv-2b", "ltxv-13b"):
        if arch == "tiny-ltxv":
            from ltx_trainer.models.ltxv import TINY_TRANSFORMER

            return "ltxv", ltxv_formats.transformer_official_config(TINY_TRANSFORMER), None
        return "ltxv", ltxv_formats.KNOWN_TRANSFORMER_CONFIGS[arch.removeprefix("ltxv-")], None
    raise ValueError(f"--arch {arch!r} is not one of {', '.join(ARCHS)}")


def build_random_model(arch: str, device: torch.device, dtype: torch.dtype):
    """The model's trainable part (transformer, and connectors for LTX-2) with random weights, built on ``device``."""
    family, official, gemma = _official_transformer(arch)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            if family == "ltx2":
                from diffusers import LTX2VideoTransformer3DModel
                from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

                from ltx_trainer.models.formats import ltx2_text, ltx2_transformer
                from ltx_trainer.models.ltx2 import LTX2Model

                spec = FamilySpec(
                    "ltx2", "2.3" if "2.3" in arch else "2.0", True, num_layers=official.get("num_layers", 48)
                )
                model = LTX2Model(spec, Path(arch), dtype=dtype)
                model.__dict__["transformer"] = LTX2VideoTransformer3DModel(
                    **ltx2_transformer.diffusers_config(official)
                )
                model.__dict__["connectors"] = LTX2TextConnectors(
                    **ltx2_text.connectors_diffusers_config(official, None, gemma)
                ).requires_grad_(False)
            else:
                from diffusers import LTXVideoTransformer3DModel

                from ltx_trainer.models.formats import ltxv as ltxv_formats
                from ltx_trainer.models.ltxv import LTXVModel

                config = ltxv_formats.transformer_diffusers_config(official)
                spec = FamilySpec("ltxv", "0.9.5", False, text_max_length=128, num_layers=config["num_layers"])
                model = LTXVModel(spec, Path(arch), dtype=dtype)
                model.__dict__["transformer"] = LTXVideoTransformer3DModel(**config)
    finally:
        torch.set_default_dtype(previous)
    return model


def _synthetic_cache(root: Path, model, width: int, height: int, frames: int, samples: int = 4) -> None:
    spec = model.spec
    f, h, w = lat.latent_frames(frames), height // 32, width // 32
    if spec.family == "ltx2":
        connectors = model.connectors.config
        if connectors.per_modality_projections:
            dims = (connectors.video_hidden_dim, connectors.audio_hidden_dim)
        else:
            dims = (connectors.caption_channels, connectors.caption_channels)
    else:
        dims = (model.transformer.config.caption_channels,) * 2
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
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{result.arch}_{result.resolution}.json"
    path.write_text(json.dumps(asdict(result), indent=1))
    return path
