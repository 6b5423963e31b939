"""Tiny datasets made the way users make them: synthetic clips -> our preprocessing -> cache on disk."""

from pathlib import Path

from ltx_trainer.config import LtxTrainerConfig, parse_config
from ltx_trainer.data.preprocess import Bucket, Item, precompute
from ltx_trainer.models.families import load_model
from media_fixtures import make_clip

SMALL, LARGE = Bucket(64, 64, 9), Bucket(96, 64, 17)


def make_dataset(
    root: Path, model_path: Path, text_encoder: Path, buckets: tuple[Bucket, ...] = (SMALL,), clips_per_bucket: int = 2
) -> Path:
    """Clips with motion, a hard cut and stereo audio, preprocessed into ``root/.precomputed``."""
    model = load_model(model_path, text_encoder)
    for b, bucket in enumerate(buckets):
        items = []
        for i in range(clips_per_bucket):
            clip = root / "clips" / f"b{b}_{i}.mp4"
            clip.parent.mkdir(parents=True, exist_ok=True)
            make_clip(
                clip, bucket.frames, bucket.width, bucket.height, fps=24, cuts=[bucket.frames // 2], seed=10 * b + i
            )
            items.append(Item(clip, f"clip {i} of bucket {b}: a square moves, then a hard cut", clip.stem))
        precompute(model, items, root / ".precomputed", bucket)
    return root


def training_config(
    model_path: Path, data_root: Path, output_dir: Path, *, audio: bool = True, **overrides
) -> LtxTrainerConfig:
    """A small LoRA config; ``overrides`` replace whole top-level sections (dicts are merged one level deep)."""
    config = {
        "model": {"model_path": str(model_path), "training_mode": "lora"},
        "lora": {"rank": 4, "alpha": 4},
        "training_strategy": {
            "name": "flexible",
            "video": {
                "is_generated": True,
                "latents_dir": "latents",
                "conditions": [{"type": "first_frame", "probability": 0.5}],
            },
            **({"audio": {"is_generated": True, "latents_dir": "audio_latents"}} if audio else {}),
        },
        "optimization": {"steps": 3, "batch_size": 1, "learning_rate": 1e-3},
        "acceleration": {"mixed_precision_mode": "no"},
        "data": {"preprocessed_data_root": str(data_root), "num_dataloader_workers": 0},
        "checkpoints": {"interval": None, "keep_last_n": 2, "precision": "float32", "save_training_state": "full"},
        "validation": {"interval": None},
        "seed": 7,
        "output_dir": str(output_dir),
    }
    for key, value in overrides.items():
        config[key] = (
            {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) else value
        )
    return parse_config(config)
