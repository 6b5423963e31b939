"""``ltx-trainer demo``: the whole path on tiny models, no downloads, a few minutes on a laptop CPU.

raw synthetic footage (motion, hard cuts, stereo audio) -> ``split-scenes`` -> ``caption`` (template captioner)
-> ``preprocess`` (video latents, audio latents, text features) -> LoRA training on a tiny LTX-2 model (joint audio
+ video, first-frame conditioning) with a validation prompt sampled at the start (the base model), halfway and at the
end -> the before/after comparison on two training clips (``training/compare.py``) -> the HTML report: verdict,
clips next to the base and trained samples with posters, the validation grid, the loss by modality and sigma.
"""

import time
from pathlib import Path

import av
import numpy as np
import torch

from ltx_trainer import logger
from ltx_trainer.config import parse_config
from ltx_trainer.data.captioning import TemplateCaptioner, caption_dataset
from ltx_trainer.data.media import write_video
from ltx_trainer.data.preprocess import Bucket, PreprocessOptions, preprocess_dataset
from ltx_trainer.data.scenes import split_folder
from ltx_trainer.models.families import load_model
from ltx_trainer.models.tiny import write_tiny_ltx2
from ltx_trainer.sampling.efficacy import EFFICACY_FILE, Efficacy
from ltx_trainer.training.compare import efficacy_dir, summary_of, validation_samples, write_run_report
from ltx_trainer.training.trainer import Trainer

WIDTH, HEIGHT, FRAMES, FPS = 96, 64, 17, 24.0
SCENE_FRAMES = 20  # each raw video holds three 20-frame shots separated by hard cuts
TRIGGER = "tinystyle"
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]
LORA_TARGETS += ["audio_ff.net.0.proj", "audio_ff.net.2"]


def synthetic_footage(path: Path, seed: int, scenes: int = 3) -> Path:
    """A moving square on drifting stripes; every shot has a new palette and new stereo tones (hard cuts)."""
    # (background, square, stripe) per shot: red, blue, green worlds, so every cut is a clear content change
    base = np.array(
        [
            [[170, 30, 30], [250, 240, 60], [90, 10, 10]],
            [[30, 40, 180], [60, 240, 250], [10, 10, 90]],
            [[30, 160, 40], [250, 60, 240], [10, 80, 10]],
        ]
    )
    palettes = np.roll(base, seed, axis=0)[:scenes]
    total = scenes * SCENE_FRAMES
    height, width = 2 * HEIGHT, 2 * WIDTH  # raw footage is larger than the training bucket: preprocess resizes
    ys, xs = np.mgrid[0:height, 0:width]
    frames = np.zeros((total, height, width, 3), dtype=np.uint8)
    for t in range(total):
        bg, fg, stripe = palettes[t // SCENE_FRAMES]
        frame = np.where(((xs + ys + 3 * t) // 12 % 2 == 0)[..., None], bg, stripe)
        x0 = (t * 6 + seed * 13) % (width - 32)
        frame[40:72, x0 : x0 + 32] = fg
        frames[t] = frame
    rate = 44100
    time_axis = np.arange(int(total / FPS * rate)) / rate
    shot = np.minimum((time_axis * FPS // SCENE_FRAMES).astype(int), scenes - 1)
    left = np.sin(2 * np.pi * (220 + 110 * shot + 20 * seed) * time_axis)
    right = np.sin(2 * np.pi * (330 + 55 * shot) * time_axis)
    audio = torch.from_numpy(0.3 * np.stack([left, right])).float()
    write_video(path, torch.from_numpy(frames), FPS, audio=audio, audio_sample_rate=rate)
    return path


def demo_config(model_paths: dict[str, Path], data_root: Path, output_dir: Path, steps: int, prompt: str = ""):
    return parse_config(
        {
            "model": {
                "model_path": str(model_paths["single_file"]),
                "text_encoder_path": str(model_paths["gemma"]),
                "training_mode": "lora",
            },
            "lora": {"rank": 8, "alpha": 8, "target_modules": LORA_TARGETS},
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
            "validation": {
                "interval": max(1, steps // 2),
                "samples": [{"prompt": prompt}] if prompt else [],
                "video_dims": [WIDTH, HEIGHT, FRAMES],
                "frame_rate": FPS,
                "inference_steps": 12,
                "seed": 1,
                "video_cfg_scale": 2.0,
                "audio_cfg_scale": 2.0,
                "video_stg_scale": 0.0,
                "audio_stg_scale": 0.0,
                "guidance_rescale": 0.0,
                "video_modality_guidance_scale": 1.0,
                "audio_modality_guidance_scale": 1.0,
                "negative_prompt": "",
                "efficacy_clips": 2,
                "efficacy_steps": 8,
            },
            "flow_matching": {"timestep_sampling_mode": "uniform", "timestep_sampling_params": {"min_value": 0.05}},
            "seed": 0,
            "output_dir": str(output_dir),
        },
        source="demo",
    )


def run_demo(out_dir: Path = Path("outputs/demo"), steps: int = 200) -> dict[str, Path]:
    started = time.perf_counter()
    out_dir = Path(out_dir)
    logger.info("demo: writing a tiny LTX-2 model and synthetic footage to %s", out_dir)
    model_paths = write_tiny_ltx2(out_dir / "model", version="2.0", seed=0)
    raw = [synthetic_footage(out_dir / "raw" / f"footage_{i}.mp4", seed=i) for i in range(2)]

    clips_dir = out_dir / "clips"
    split = split_folder(raw, clips_dir, detector="histogram", min_scene_len=FRAMES, show_progress=False)
    logger.info("demo: split-scenes cut %d videos into %d clips (report %s)", len(raw), len(split.clips), split.report)
    captions = caption_dataset(clips_dir, TemplateCaptioner(), fmt="txt", trigger=TRIGGER, progress=False)
    logger.info("demo: captioned %d clips with the template captioner", captions.captioned)

    model = load_model(model_paths["single_file"], model_paths["gemma"])
    options = PreprocessOptions(buckets=[Bucket(WIDTH, HEIGHT, FRAMES)], progress=False)
    prepared = preprocess_dataset(clips_dir, model, options)
    logger.info("demo: preprocessed %d samples (video latents, audio latents, text features)", len(prepared.written))

    run_dir = out_dir / "run"
    prompt_text = sorted(clips_dir.glob("*.txt"))[0].read_text().strip()  # validation: the first clip's caption
    config = demo_config(model_paths, clips_dir, run_dir, steps, prompt_text)
    trainer = Trainer(config)
    trainer.setup()
    result = trainer.train()
    first, last = np.mean(result.losses[:20]), np.mean(result.losses[-20:])
    logger.info("demo: loss %.4f -> %.4f (mean of the first and last 20 steps)", first, last)

    # The trainer's report already holds everything; the demo's adds how the data was made.
    comparison = efficacy_dir(run_dir, result.steps) / EFFICACY_FILE
    efficacy = Efficacy.load(comparison)
    sample_path = validation_samples(run_dir)[-1]  # the validation prompt at the last step
    elapsed = time.perf_counter() - started
    summary = summary_of(config, "tiny LTX-2 (2.0)", result.steps, result.weights.name)
    summary.update(
        {
            "clips from split-scenes": len(split.clips),
            "validation prompt": prompt_text,
            "loss first 20 steps": f"{first:.4f}",
            "loss last 20 steps": f"{last:.4f}",
            "wall time": f"{elapsed:.0f} s",
        }
    )
    report = write_run_report(run_dir, config, summary, efficacy, title="ltx-trainer demo")
    with av.open(str(sample_path)) as container:
        streams = ", ".join(f"{s.type} {s.codec_context.name}" for s in container.streams)
    logger.info("demo: sample %s (%s) after %.0f s", sample_path, streams, elapsed)
    logger.info("demo: %s", efficacy.verdict())
    return {
        "lora": result.weights,
        "sample": sample_path,
        "comparison": comparison,
        "report": report,
        "loss_curve": run_dir / "loss.png",
    }
