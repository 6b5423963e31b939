"""Every shipped config: it loads, and its mode trains 2 steps on the tiny LTX-2.3 model with data made for it.

One dataset serves all modes: 64x64x49 clips with sound (latents 7x2x2, 51 audio steps) through our preprocessing,
plus what the conditions read, written here in the official shapes: ``reference_latents/`` (every other frame at half
size: spatial factor 2, temporal factor 2, fps / 2), ``reference_audio_latents/``, ``video_masks/`` ``{"mask":
[F', H', W']}`` and ``audio_masks/`` ``{"mask": [T]}`` (as official ``.pt`` files). Impossible configs fail with a
message that names the key (or, for reference scales, the files).
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

from ltx_trainer.config import ConfigError, LtxTrainerConfig, check_paths, load_config, parse_config
from ltx_trainer.data.cache import read_sample_file, write_sample_file
from ltx_trainer.data.dataset import collate
from ltx_trainer.data.preprocess import Bucket
from ltx_trainer.training.timesteps import Fixed
from ltx_trainer.training.trainer import Trainer
from training_fixtures import make_dataset

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BUCKET = Bucket(64, 64, 49)
REF_VIDEO_TOKENS = 4  # reference_latents: 4 x 1 x 1
SCALED = {
    "reference_downscale_factor": "2",
    "reference_spatial_scale_factor": "2",
    "reference_temporal_scale_factor": "2",
}


@dataclass(frozen=True)
class Mode:
    """What a config trains: the modalities with a loss, the references it prepends, its LoRA header entries."""

    name: str
    generated: frozenset[str]
    references: frozenset[str] = frozenset()
    metadata: dict[str, str] = field(default_factory=dict)


VIDEO, AUDIO, BOTH = frozenset({"video"}), frozenset({"audio"}), frozenset({"video", "audio"})
MODES = {
    "t2v_lora.yaml": Mode("text-to-video", BOTH),
    "t2v_low_vram_lora.yaml": Mode("text-to-video, low VRAM", BOTH),
    "pipeline_t2v_lora.yaml": Mode("text-to-video from footage (run-pipeline)", BOTH),
    "official_t2v_legacy.yaml": Mode("legacy text_to_video", BOTH),
    "i2v_lora.yaml": Mode("image-to-video", BOTH),
    "video_extend_forward_lora.yaml": Mode("video extension forward (prefix)", BOTH),
    "video_extend_backward_lora.yaml": Mode("video extension backward (suffix)", BOTH),
    "video_inpaint_lora.yaml": Mode("video inpainting (mask)", BOTH),
    "video_outpaint_lora.yaml": Mode("video outpainting (spatial_crop)", BOTH),
    "v2v_ic_lora.yaml": Mode("video-to-video IC-LoRA", VIDEO, VIDEO, SCALED),
    "t2a_lora.yaml": Mode("text-to-audio", AUDIO),
    "audio_extend_lora.yaml": Mode("audio extension forward/backward", AUDIO),
    "audio_inpaint_lora.yaml": Mode("audio inpainting", AUDIO),
    "a2a_ic_lora.yaml": Mode("audio-to-audio IC-LoRA", AUDIO, AUDIO),
    "av2av_ic_lora.yaml": Mode("audio+video IC-LoRA", BOTH, BOTH, SCALED),
    "a2v_lora.yaml": Mode("audio-to-video (audio frozen)", VIDEO),
    "v2a_lora.yaml": Mode("video-to-audio (video frozen)", AUDIO),
}


@pytest.fixture(scope="session")
def mode_data(tiny_ltx2, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(model file, Gemma folder, data root) with every source folder the shipped configs read."""
    paths = tiny_ltx2["2.3"]
    root = make_dataset(tmp_path_factory.mktemp("modes"), paths["single_file"], paths["gemma"], (BUCKET,))
    cache = root / ".precomputed"
    for target in sorted((cache / "latents").rglob("*.safetensors")):
        rel = target.relative_to(cache / "latents")
        video = read_sample_file(target)
        latents = video["latents"]  # [C, 7, 2, 2]
        reference = latents[:, ::2, ::2, ::2].contiguous()  # every other latent frame, half size
        _, frames, height, width = reference.shape
        write_sample_file(
            cache / "reference_latents" / rel,
            {"latents": reference, "num_frames": frames, "height": height, "width": width, "fps": video["fps"] / 2},
        )
        sound = read_sample_file(cache / "audio_latents" / rel)
        write_sample_file(cache / "reference_audio_latents" / rel, {**sound, "latents": sound["latents"].flip(1)})
        video_mask = torch.zeros(latents.shape[1:])
        video_mask[:, :, 0] = 1.0  # keep the left latent column
        write_sample_file(cache / "video_masks" / rel, {"mask": video_mask})
        steps = sound["latents"].shape[1]
        audio_mask = (torch.arange(steps) < steps // 2).float()  # keep the first half
        write_sample_file(cache / "audio_masks" / rel.with_suffix(".pt"), {"mask": audio_mask})
    return paths["single_file"], paths["gemma"], root


VALIDATION_DIMS = [64, 64, 25]  # smaller than the 64x64x49 training clips: validation need not match training


@pytest.fixture(scope="session")
def validation_media(tmp_path_factory) -> dict[str, Path]:
    """Stand-ins for the media the shipped configs' validation conditions name (placeholders like /path/to/x)."""
    import numpy as np
    from PIL import Image

    from media_fixtures import make_clip, make_image, make_wav

    folder = tmp_path_factory.mktemp("validation-media")
    clip = folder / "clip.mp4"
    make_clip(clip, 25, 64, 64, fps=24, cuts=[12])
    image = folder / "frame.png"
    make_image(image, 64, 64)
    wav = folder / "sound.wav"
    make_wav(wav, 2.0, 44100, 2)
    video_mask = folder / "video_mask.png"
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, :32] = 255  # keep the left half
    Image.fromarray(mask).save(video_mask)
    audio_mask = folder / "audio_mask.npy"
    np.save(audio_mask, (np.arange(26) < 13).astype(np.float32))
    return {"image": image, "video": clip, "audio": wav, "video_mask": video_mask, "audio_mask": audio_mask}


def with_test_media(condition: dict, media: dict[str, Path]) -> dict:
    """A validation condition pointing at the test media, sized for ``VALIDATION_DIMS``."""
    condition = dict(condition)
    if "image_or_video" in condition:
        condition["image_or_video"] = str(media["image"])
    if condition.get("video"):
        condition["video"] = str(media["video"])
    if condition.get("audio"):
        condition["audio"] = str(media["audio"])
    if "mask" in condition:
        condition["mask"] = str(media["video_mask" if condition.get("video") else "audio_mask"])
    if "spatial_region" in condition:
        condition["spatial_region"] = [0, 0, 64, 32]
    return condition


def on_tiny_model(data: dict, model: Path, gemma: Path, root: Path, out: Path, source: str) -> LtxTrainerConfig:
    """The config with the tiny model, the test data, 2 steps, no validation (callers add it); CPU-only switches off."""
    data = {**data, "output_dir": str(out)}
    data["model"] = {**data["model"], "model_path": str(model), "text_encoder_path": str(gemma)}
    data["data"] = {"preprocessed_data_root": str(root), "num_dataloader_workers": 0}
    # adamw8bit and int8-quanto need a CUDA GPU; bf16 autocast on a CPU only makes the test slower
    data["optimization"] = {**data["optimization"], "steps": 2, "warmup_steps": 0, "optimizer_type": "adamw"}
    data["acceleration"] = {**data["acceleration"], "mixed_precision_mode": "no", "quantization": None}
    data["validation"] = {**data["validation"], "interval": None}
    return parse_config(data, source)


def shipped(name: str) -> dict:
    return yaml.safe_load((CONFIGS / name).read_text())


def test_every_config_loads_and_is_a_tested_mode():
    files = {path.name for path in CONFIGS.glob("*.yaml")}
    assert files == set(MODES), "add new configs to MODES (and remove deleted ones)"
    for name in sorted(files):
        assert isinstance(load_config(CONFIGS / name), LtxTrainerConfig)


# make test trains one config per kind of condition (first frame, mask, references at a scale, audio, frozen stream);
# the rest are end-to-end cases of the same code and run in make test-slow (CI runs both).
FAST_MODES = {
    "i2v_lora.yaml",
    "video_inpaint_lora.yaml",
    "av2av_ic_lora.yaml",
    "audio_extend_lora.yaml",
    "a2v_lora.yaml",
}


@pytest.mark.parametrize(
    "name", [n if n in FAST_MODES else pytest.param(n, marks=pytest.mark.slow) for n in sorted(MODES)]
)
def test_each_mode_trains_two_steps_and_validates(mode_data, validation_media, tmp_path, name):
    model, gemma, root = mode_data
    mode = MODES[name]
    cfg = on_tiny_model(shipped(name), model, gemma, root, tmp_path, name)
    first = cfg.validation.samples[0].model_dump(mode="json")  # legacy forms are already migrated to samples
    first["conditions"] = [with_test_media(c, validation_media) for c in first["conditions"]]
    first["video_dims"] = None
    validation = {
        **cfg.validation.model_dump(mode="json"),
        "samples": [first],
        "video_dims": VALIDATION_DIMS,
        "inference_steps": 2,
        "interval": 2,
        "skip_initial_validation": True,
        "stg_blocks": [1],
    }
    cfg = cfg.model_copy(update={"validation": type(cfg.validation).model_validate(validation)})
    assert check_paths(cfg) == []
    trainer = Trainer(cfg)
    trainer.setup()
    assert trainer.strategy.metadata() == mode.metadata

    batch = collate([trainer.dataset[0]])
    prepared = trainer.strategy.prepare(batch, trainer.model, Fixed(0.5), torch.Generator().manual_seed(0))
    assert {m for m, item in prepared.items() if item.target is not None} == mode.generated
    ref_tokens = {
        "video": REF_VIDEO_TOKENS,
        "audio": batch["audio_latents"]["latents"].shape[2] if "audio" in prepared else 0,
    }
    assert {m: item.reference_tokens for m, item in prepared.items()} == {
        m: ref_tokens[m] if m in mode.references else 0 for m in prepared
    }

    result = trainer.train()
    assert result.steps == 2
    losses = torch.tensor(result.losses)
    assert torch.isfinite(losses).all() and (losses > 0).all()
    assert {key.removeprefix("loss_") for key in result.metrics[0] if key in ("loss_video", "loss_audio")} == (
        mode.generated
    )
    assert result.weights is not None and result.weights.is_file()
    samples = sorted((tmp_path / "samples").glob("step_000002_*.*"))
    assert samples, "validation wrote no sample"
    assert all(sample.stat().st_size > 0 for sample in samples)


def test_legacy_video_to_video_trains_with_its_reference(mode_data, tmp_path):
    model, gemma, root = mode_data
    data = shipped("v2v_ic_lora.yaml")
    data["training_strategy"] = {"name": "video_to_video", "first_frame_conditioning_p": 0.5}
    cfg = on_tiny_model(data, model, gemma, root, tmp_path, "legacy.yaml")
    trainer = Trainer(cfg)
    trainer.setup()
    assert trainer.strategy.metadata() == SCALED
    result = trainer.train()
    assert result.steps == 2 and torch.isfinite(torch.tensor(result.losses)).all()


def _audio_condition(condition: dict) -> dict:
    data = shipped("audio_inpaint_lora.yaml")
    data["training_strategy"]["audio"]["conditions"] = [condition]
    return data


def _both_frozen() -> dict:
    data = shipped("v2a_lora.yaml")
    data["training_strategy"]["audio"]["is_generated"] = False
    return data


def _two_frozen_conditions() -> dict:
    data = shipped("v2a_lora.yaml")
    data["validation"]["samples"][0]["conditions"].append({"type": "audio_to_video", "audio": "/path/to/a.wav"})
    return data


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            _audio_condition({"type": "spatial_crop", "spatial_region": [0, 0, 32, 32]}),
            "training_strategy.audio.conditions[0].type: 'spatial_crop' is video-only",
        ),
        (
            _audio_condition({"type": "first_frame"}),
            "training_strategy.audio.conditions[0].type: 'first_frame' is video-only",
        ),
        (_both_frozen(), "training_strategy.audio.is_generated: video and audio are both frozen"),
        (
            _two_frozen_conditions(),
            "validation.samples[0].conditions: video_to_audio and audio_to_video together leave nothing to generate",
        ),
    ],
    ids=["spatial_crop_on_audio", "first_frame_on_audio", "both_frozen", "v2a_and_a2v_in_one_sample"],
)
def test_impossible_configs_fail_at_load_naming_the_key(data, problem):
    with pytest.raises(ConfigError) as info:
        parse_config(data, "cfg.yaml")
    assert [p for p in info.value.problems if p.startswith(problem)], info.value.problems


def test_absent_reference_folder_is_named_by_check_paths_and_setup(mode_data, tmp_path):
    model, gemma, root = mode_data
    data = shipped("v2v_ic_lora.yaml")
    data["training_strategy"]["video"]["conditions"][0]["latents_dir"] = "canny_latents"
    cfg = on_tiny_model(data, model, gemma, root, tmp_path, "cfg.yaml")
    key = "training_strategy.video.conditions[0].latents_dir"
    assert any(p.startswith(f"{key}: folder 'canny_latents' not found") for p in check_paths(cfg))
    with pytest.raises(FileNotFoundError, match=re.escape(f"{key}: folder 'canny_latents' not found")):
        Trainer(cfg).setup()


def test_reference_at_a_non_integer_scale_fails_at_setup_naming_the_files(mode_data, tmp_path):
    model, gemma, _ = mode_data
    cache = tmp_path / "data" / ".precomputed"
    for folder, size in (("latents", 3), ("reference_latents", 2)):  # 3 / 2 = 1.5
        data = {"latents": torch.zeros(128, 2, size, size), "num_frames": 2, "height": size, "width": size, "fps": 24}
        write_sample_file(cache / folder / "clip.safetensors", data)
    cfg = on_tiny_model(shipped("v2v_ic_lora.yaml"), model, gemma, tmp_path / "data", tmp_path / "out", "cfg.yaml")
    with pytest.raises(ValueError, match="spatial scale must be one whole number") as info:
        Trainer(cfg).setup()
    for folder in ("latents", "reference_latents"):
        assert str(cache / folder / "clip.safetensors") in str(info.value)
