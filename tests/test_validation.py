"""Validation during training: samples smaller than the training clips, written every interval and before training,
prompts cached once and the text encoder unloaded, samples logged to the tracker and listed in the report."""

import av
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ltx_trainer.config import parse_config
from ltx_trainer.sampling.validation import ValidationRunner, offloaded_optimizer
from ltx_trainer.training.trainer import Trainer
from media_fixtures import make_image
from training_fixtures import LARGE, make_dataset, training_config


@pytest.fixture(scope="module")
def data(tiny_ltx2, tmp_path_factory):
    paths = tiny_ltx2["2.0"]
    root = make_dataset(tmp_path_factory.mktemp("data"), paths["single_file"], paths["gemma"], (LARGE,), 1)
    return paths, root


def test_validation_during_training_writes_smaller_samples_and_reports_them(data, tmp_path):
    paths, root = data
    image = make_image(tmp_path / "first.png", 64, 64, seed=2)
    config = training_config(
        paths["single_file"],
        root,
        tmp_path / "run",
        model={"text_encoder_path": str(paths["gemma"])},
        optimization={"steps": 2},
        acceleration={"offload_optimizer_during_validation": True},
        tensorboard={"enabled": True},
        validation={
            "interval": 2,
            "inference_steps": 2,
            "video_dims": [64, 64, 9],  # training clips are 96x64x17
            "samples": [
                {"prompt": "a square moves", "seed": 3},
                {
                    "prompt": "a square moves, then a cut",
                    "conditions": [{"type": "first_frame", "image_or_video": str(image)}],
                    "video_dims": [64, 64, 17],
                },
            ],
        },
    )
    trainer = Trainer(config)
    trainer.setup()
    assert not trainer.model.text_encoder_loaded  # prompts cached at setup, then the encoder unloaded
    prompts = {"a square moves", "a square moves, then a cut", config.validation.negative_prompt}
    assert set(trainer.validation.runner.features) == prompts
    trainer.train()

    samples = tmp_path / "run" / "samples"
    names = sorted(p.name for p in samples.iterdir())
    assert names == ["step_000000_1.mp4", "step_000000_2.mp4", "step_000002_1.mp4", "step_000002_2.mp4"]
    with av.open(str(samples / "step_000002_2.mp4")) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (64, 64)
        assert sum(1 for _ in container.decode(video)) == 17
    assert trainer.model.transformer.training  # back to training mode after sampling
    report = (tmp_path / "run" / "report.html").read_text()
    assert all(f"samples/{name}" in report for name in names)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    assert {"samples/0/text_summary", "samples/1/text_summary"} <= set(events.Tags()["tensors"])


def test_validation_schedule_and_setup_errors(data, tmp_path):
    paths, root = data
    base = {"interval": 3, "samples": [{"prompt": "x"}]}
    config = training_config(paths["single_file"], root, tmp_path, validation=base)
    runner = ValidationRunner(config.validation, None, tmp_path, "cpu")
    assert [s for s in range(10) if runner.due(s)] == [0, 3, 6, 9]
    assert runner.due(0, starting=True) and runner.due(4, starting=True) and not runner.due(3, starting=True)
    skip = training_config(paths["single_file"], root, tmp_path, validation={**base, "skip_initial_validation": True})
    assert not ValidationRunner(skip.validation, None, tmp_path, "cpu").due(0, starting=True)
    off = training_config(paths["single_file"], root, tmp_path, validation={**base, "interval": None})
    assert ValidationRunner.for_training(off, None, tmp_path, "cpu") is None

    from ltx_trainer.models.families import load_model

    model = load_model(paths["single_file"], paths["gemma"])
    bad = parse_config(
        {**config.model_dump(mode="json"), "validation": {"samples": [{"prompt": "x", "video_dims": [50, 64, 9]}]}}
    )
    with pytest.raises(ValueError, match=r"validation.samples\[0\].video_dims: width=50 is not a multiple of 32"):
        ValidationRunner(bad.validation, model, tmp_path, "cpu").prepare()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_optimizer_state_waits_on_the_cpu_during_validation():
    param = torch.nn.Parameter(torch.ones(4, device="cuda"))
    optimizer = torch.optim.AdamW([param])
    param.grad = torch.ones_like(param)
    optimizer.step()
    with offloaded_optimizer(optimizer) as moved:
        assert moved >= 2 and all(v.device.type == "cpu" for v in optimizer.state[param].values())
    assert all(v.device.type == "cuda" for v in optimizer.state[param].values())
