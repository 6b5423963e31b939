"""``ltx-trainer demo``: the whole path on tiny models, no downloads, a few minutes on a laptop CPU.

tiny LTX-2 model (single file + Gemma) -> synthetic clips with motion, hard cuts and stereo audio -> precomputed
latents / audio latents / text features -> LoRA training (joint audio+video, first-frame conditioning) -> a sample
mp4 with audio from the trained LoRA -> HTML report with the loss curve.
"""

import time
from pathlib import Path

import av
import numpy as np
import torch

from ltx_trainer import logger
from ltx_trainer.config import dump_config, parse_config
from ltx_trainer.data.media import write_video
from ltx_trainer.data.preprocess import Bucket, Item, precompute
from ltx_trainer.integrations.report import write_report
from ltx_trainer.models.families import load_model
from ltx_trainer.models.tiny import write_tiny_ltx2
from ltx_trainer.sampling.sampler import SampleSpec, generate, save_sample
from ltx_trainer.training.trainer import Trainer

WIDTH, HEIGHT, FRAMES, FPS = 96, 64, 17, 24.0
CAPTIONS = [
    "A red square slides left to right over a dark floor, then the scene cuts to a blue room. A low hum.",
    "A yellow ball bounces in a green box while a bright tone plays.",
    "Stripes drift upward, the camera cuts to a close-up; a soft chord rings.",
    "A white dot circles a grey field, the lights change at a hard cut, wind noise.",
]


def synthetic_clip(path: Path, seed: int, cut: int, seconds_of_audio: float) -> Path:
    """A moving square on a striped background, a hard cut at ``cut`` (new palette), stereo tones that change too."""
    rng = np.random.default_rng(seed)
    palettes = rng.integers(0, 255, size=(2, 3, 3))
    frames = np.zeros((FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    for t in range(FRAMES):
        bg, fg, stripe = palettes[int(t >= cut)]
        frame = np.where(((xs + ys + 3 * t) // 8 % 2 == 0)[..., None], bg, stripe)
        x0 = (t * 4 + seed * 13) % (WIDTH - 16)
        frame[20:36, x0 : x0 + 16] = fg
        frames[t] = frame
    rate = 44100
    time_axis = np.arange(int(seconds_of_audio * rate)) / rate
    cut_time = cut / FPS
    left = np.where(
        time_axis < cut_time, np.sin(2 * np.pi * (220 + 40 * seed) * time_axis), np.sin(2 * np.pi * 330 * time_axis)
    )
    right = np.sin(2 * np.pi * (440 + 20 * seed) * time_axis)
    audio = torch.from_numpy(0.3 * np.stack([left, right])).float()
    write_video(path, torch.from_numpy(frames), FPS, audio=audio, audio_sample_rate=rate)
    return path


def run_demo(out_dir: Path = Path("outputs/demo"), steps: int = 200) -> dict[str, Path]:
    started = time.perf_counter()
    out_dir = Path(out_dir)
    logger.info("demo: writing a tiny LTX-2 model and synthetic clips to %s", out_dir)
    model_paths = write_tiny_ltx2(out_dir / "model", version="2.0", seed=0)
    clips = [
        synthetic_clip(out_dir / "clips" / f"clip_{i}.mp4", seed=i, cut=6 + 2 * i, seconds_of_audio=FRAMES / FPS)
        for i in range(len(CAPTIONS))
    ]
    model = load_model(model_paths["single_file"], model_paths["gemma"])
    data_root = out_dir / "data"
    items = [Item(clip, caption, clip.stem) for clip, caption in zip(clips, CAPTIONS, strict=True)]
    precompute(model, items, data_root / ".precomputed", Bucket(WIDTH, HEIGHT, FRAMES))
    logger.info("demo: precomputed %d samples (video latents, audio latents, text features)", len(items))

    config = parse_config(
        {
            "model": {
                "model_path": str(model_paths["single_file"]),
                "text_encoder_path": str(model_paths["gemma"]),
                "training_mode": "lora",
            },
            "lora": {
                "rank": 8,
                "alpha": 8,
                "target_modules": [
                    "to_q",
                    "to_k",
                    "to_v",
                    "to_out.0",
                    "ff.net.0.proj",
                    "ff.net.2",
                    "audio_ff.net.0.proj",
                    "audio_ff.net.2",
                ],
            },
            "training_strategy": {
                "name": "flexible",
                "video": {
                    "is_generated": True,
                    "latents_dir": "latents",
                    "conditions": [{"type": "first_frame", "probability": 0.2}],
                },
                "audio": {"is_generated": True, "latents_dir": "audio_latents"},
            },
            "optimization": {
                "steps": steps,
                "batch_size": 2,
                "learning_rate": 2e-3,
                "scheduler_type": "cosine",
                "warmup_steps": 10,
                "max_grad_norm": 1.0,
            },
            "acceleration": {"mixed_precision_mode": "no"},
            "data": {"preprocessed_data_root": str(data_root), "num_dataloader_workers": 0},
            "checkpoints": {"interval": None, "keep_last_n": 1},
            "validation": {"interval": None},
            "flow_matching": {"timestep_sampling_mode": "uniform", "timestep_sampling_params": {"min_value": 0.05}},
            "seed": 0,
            "output_dir": str(out_dir / "run"),
        },
        source="demo",
    )
    trainer = Trainer(config)
    trainer.setup()
    result = trainer.train()
    first, last = np.mean(result.losses[:20]), np.mean(result.losses[-20:])
    logger.info("demo: loss %.4f -> %.4f (mean of the first and last 20 steps)", first, last)

    # Sample with the trained LoRA still in memory: the same prompt as clip 0.
    trainer.model.transformer.eval()
    prompt = model.encode_text([CAPTIONS[0]])
    negative = model.encode_text([""])
    spec = SampleSpec(
        width=WIDTH, height=HEIGHT, frames=FRAMES, fps=FPS, steps=12, seed=1, video_cfg=2.0, audio_cfg=2.0
    )
    sample = generate(trainer.model, prompt, negative, spec)
    sample_path = save_sample(trainer.model, sample, out_dir / "run" / "samples" / "demo_sample", FPS)
    elapsed = time.perf_counter() - started
    report = write_report(
        out_dir / "run",
        "ltx-trainer demo",
        dump_config(config),
        [sample_path],
        {
            "model": "tiny LTX-2 (2.0)",
            "steps": result.steps,
            "loss first 20 steps": f"{first:.4f}",
            "loss last 20 steps": f"{last:.4f}",
            "wall time": f"{elapsed:.0f} s",
            "LoRA": result.weights.name,
        },
    )
    with av.open(str(sample_path)) as container:
        streams = ", ".join(f"{s.type} {s.codec_context.name}" for s in container.streams)
    logger.info("demo: sample %s (%s)", sample_path, streams)
    return {"lora": result.weights, "sample": sample_path, "report": report, "loss_curve": out_dir / "run" / "loss.png"}
