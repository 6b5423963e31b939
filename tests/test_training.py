"""The training core on tiny models of every family: LoRA and full, buckets, accumulation, caption dropout, loss
weights, checkpoints that load in diffusers and in the official code, exact resume after SIGKILL."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from ltx_trainer.config import check_paths
from ltx_trainer.models.families import load_model
from ltx_trainer.training.strategies import FlexibleStrategy
from ltx_trainer.training.timesteps import Fixed
from ltx_trainer.training.trainer import Trainer
from training_fixtures import LARGE, SMALL, make_dataset, training_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_ltxv(tmp_path_factory):
    from ltx_trainer.models.tiny import write_tiny_ltxv

    return write_tiny_ltxv(tmp_path_factory.mktemp("tiny-ltxv"))


@pytest.fixture(scope="session")
def datasets(tiny_ltx2, tiny_ltxv, tmp_path_factory):
    """family -> (model path, text encoder, data root); LTX-2 data has two buckets (64x64x9 and 96x64x17)."""
    out = {}
    for version in ("2.0", "2.3"):
        paths = tiny_ltx2[version]
        root = make_dataset(
            tmp_path_factory.mktemp(f"data-{version}"), paths["single_file"], paths["gemma"], (SMALL, LARGE)
        )
        out[version] = (paths["single_file"], paths["gemma"], root)
    root = make_dataset(tmp_path_factory.mktemp("data-ltxv"), tiny_ltxv["single_file"], tiny_ltxv["t5"], (SMALL,))
    out["ltxv"] = (tiny_ltxv["single_file"], tiny_ltxv["t5"], root)
    return out


def run(config) -> tuple[Trainer, object]:
    trainer = Trainer(config)
    trainer.setup()
    return trainer, trainer.train()


@pytest.mark.parametrize("family", ["2.0", "2.3", "ltxv"])
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_each_family_trains(datasets, tmp_path, family, mode):
    model_path, _, data_root = datasets[family]
    config = training_config(
        model_path,
        data_root,
        tmp_path,
        audio=family != "ltxv",
        model={"training_mode": mode},
        **({"lora": None} if mode == "full" else {}),
    )
    trainer = Trainer(config)
    trainer.setup()
    base_before = {k: v.clone() for k, v in trainer.model.transformer.state_dict().items() if "lora_" not in k}
    result = trainer.train()
    assert result.steps == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    after = trainer.model.transformer.state_dict()
    changed_base = [k for k, v in base_before.items() if not torch.equal(v, after[k])]
    if mode == "lora":
        assert not changed_base  # the base stays frozen
        assert result.weights.name == "lora_weights_step_00003.safetensors"
        keys = load_file(result.weights)
        assert keys and all(k.startswith("diffusion_model.") and ".lora_" in k for k in keys)
        if family == "ltxv":
            diffusers_keys = load_file(result.weights.with_name(result.weights.stem + "_diffusers.safetensors"))
            assert all(k.startswith("transformer.") for k in diffusers_keys)
    else:
        assert changed_base
        assert result.weights.name == "model_weights_step_00003.safetensors"
        reloaded = load_model(result.weights)  # an official single file our loader accepts
        assert reloaded.spec.family == trainer.model.spec.family
        assert set(reloaded.transformer.state_dict()) == set(after)


def test_batch_of_two_over_mixed_buckets(datasets, tmp_path):
    model_path, _, data_root = datasets["2.0"]
    config = training_config(model_path, data_root, tmp_path, optimization={"batch_size": 2, "steps": 4})
    trainer, result = run(config)
    assert result.steps == 4
    shapes = {
        shape
        for i in range(len(trainer.dataset))
        for key, name, shape in trainer.dataset.shape_key(i)
        if (key, name) == ("video_latents", "latents")
    }
    assert shapes == {(128, 2, 2, 2), (128, 3, 2, 3)}  # two buckets, each batch from one of them


def test_accumulation_steps_the_schedule_once_per_optimizer_step(datasets, tmp_path):
    model_path, _, data_root = datasets["2.0"]
    config = training_config(
        model_path,
        data_root,
        tmp_path,
        optimization={"steps": 4, "gradient_accumulation_steps": 3, "scheduler_type": "linear", "learning_rate": 1e-3},
    )
    trainer, _ = run(config)
    assert trainer.batches_consumed == 12
    assert trainer.scheduler.last_epoch == 4
    # linear 1.0 -> 0.1 over 4 steps: after 4 optimizer steps the multiplier is 0.1
    assert trainer.scheduler.get_last_lr()[0] == pytest.approx(1e-4)


def test_caption_dropout_swaps_in_the_empty_prompt(datasets, tmp_path):
    model_path, gemma, data_root = datasets["2.0"]
    config = training_config(
        model_path, data_root, tmp_path, model={"text_encoder_path": str(gemma)}, optimization={"caption_dropout": 1.0}
    )
    trainer = Trainer(config)
    trainer.setup()
    batch = trainer.dataset[0]["conditions"]
    conditions = {k: v.unsqueeze(0) for k, v in batch.items()}
    dropped = trainer._context(conditions)
    empty = trainer.model.text_context(trainer.empty_prompt)
    torch.testing.assert_close(dropped.video, empty.video)
    kept = trainer.model.text_context(_features(conditions))
    assert (kept.video - dropped.video).abs().max() > 1e-3
    assert not trainer.model.text_encoder_loaded  # encoded once, then unloaded


def _features(conditions):
    from ltx_trainer.models.base import TextFeatures

    return TextFeatures(
        conditions["video_prompt_embeds"], conditions["audio_prompt_embeds"], conditions["prompt_attention_mask"]
    )


def test_per_modality_loss_weights(datasets, tmp_path):
    model_path, _, data_root = datasets["2.0"]
    config = training_config(model_path, data_root, tmp_path)
    trainer = Trainer(config)
    trainer.setup()
    from ltx_trainer.data.dataset import collate

    batch = collate([trainer.dataset[0]])
    weighted = config.training_strategy.model_copy(
        update={
            "video": config.training_strategy.video.model_copy(update={"loss_weight": 0.5}),
            "audio": config.training_strategy.audio.model_copy(update={"loss_weight": 2.0}),
        }
    )
    strategy = FlexibleStrategy(weighted)
    prepared = strategy.prepare(batch, trainer.model, Fixed(0.5), torch.Generator().manual_seed(0))
    context = trainer._context(batch["conditions"])
    with torch.no_grad():
        video, audio = trainer.model.forward(prepared["video"].input, prepared["audio"].input, context)
    total, parts = strategy.loss({"video": video, "audio": audio}, prepared)
    torch.testing.assert_close(total, 0.5 * parts["video"] + 2.0 * parts["audio"])
    assert parts["video"].item() > 0 and parts["audio"].item() > 0


def test_lora_reloads_in_diffusers_pipeline_with_the_trained_output(datasets, tiny_ltx2, tmp_path):
    """alpha != rank on purpose: the folded file must reproduce peft's alpha/r scaling everywhere."""
    from diffusers import LTX2Pipeline

    model_path, _, data_root = datasets["2.0"]
    config = training_config(
        model_path, data_root, tmp_path, lora={"rank": 4, "alpha": 8}, optimization={"steps": 3, "learning_rate": 1e-2}
    )
    trainer, result = run(config)
    transformer = trainer.model.transformer.eval()
    inputs = _probe_inputs(trainer.model)
    with torch.no_grad():
        trained = transformer(**inputs, return_dict=False)[0]
    pipe = LTX2Pipeline.from_pretrained(tiny_ltx2["2.0"]["diffusers"])
    with torch.no_grad():
        base = pipe.transformer(**inputs, return_dict=False)[0]
    pipe.load_lora_weights(str(result.weights))
    with torch.no_grad():
        reloaded = pipe.transformer(**inputs, return_dict=False)[0]
    assert (trained - base).abs().max() > 1e-3  # the LoRA does something
    torch.testing.assert_close(reloaded, trained, rtol=0, atol=1e-5)


def _probe_inputs(model) -> dict:
    g = torch.Generator().manual_seed(0)
    cfg = model.transformer.config
    width = cfg.caption_channels
    return {
        "hidden_states": torch.randn(1, 8, 128, generator=g),
        "audio_hidden_states": torch.randn(1, 9, 128, generator=g),
        "encoder_hidden_states": torch.randn(1, 16, width, generator=g),
        "audio_encoder_hidden_states": torch.randn(1, 16, width, generator=g),
        "timestep": torch.full((1, 8), 500.0),
        "audio_timestep": torch.full((1, 9), 500.0),
        "sigma": torch.full((1,), 500.0),
        "audio_sigma": torch.full((1,), 500.0),
        "video_coords": model.video_positions(1, 2, 2, 2, 24.0),
        "audio_coords": model.audio_positions(1, 9),
        "use_cross_timestep": True,
    }


@pytest.mark.oracle
@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_trained_lora_passes_official_lora_check(oracle, datasets, tmp_path, version):
    model_path, _, data_root = datasets[version]
    config = training_config(
        model_path,
        data_root,
        tmp_path,
        lora={
            "rank": 4,
            "alpha": 4,
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
        checkpoints={"precision": "bfloat16"},
    )
    _, result = run(config)
    out = oracle.run("lora_check.py", "--checkpoint", str(model_path), "--lora", str(result.weights))
    assert "RESULT: PASS" in out


@pytest.mark.oracle
def test_full_finetune_passes_official_load_check(oracle, datasets, tmp_path):
    model_path, gemma, data_root = datasets["2.3"]
    config = training_config(
        model_path,
        data_root,
        tmp_path,
        model={"training_mode": "full"},
        lora=None,
        checkpoints={"precision": "bfloat16"},
    )
    _, result = run(config)
    out = oracle.run("load_check.py", "--checkpoint", str(result.weights), "--gemma", str(gemma), "--strict")
    assert "RESULT: PASS" in out


def test_retention_keeps_the_newest_and_final(datasets, tmp_path):
    model_path, _, data_root = datasets["2.0"]
    config = training_config(
        model_path, data_root, tmp_path, optimization={"steps": 5}, checkpoints={"interval": 2, "keep_last_n": 1}
    )
    run(config)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["lora_weights_step_00005.safetensors", "training_state_step_00005.pt"]
    with safe_open(tmp_path / "checkpoints" / names[0], "pt") as f:
        assert f.metadata()["ltx_trainer_alpha_folded_into_B"] == "true"


def test_config_errors_are_named(datasets, tmp_path):
    model_path, _, data_root = datasets["2.0"]
    missing_root = training_config(model_path, tmp_path / "nope", tmp_path)
    assert any("data.preprocessed_data_root" in p for p in check_paths(missing_root))
    absent_source = training_config(
        model_path,
        data_root,
        tmp_path,
        training_strategy={
            "name": "flexible",
            "video": {"is_generated": True, "latents_dir": "latents"},
            "audio": {"is_generated": True, "latents_dir": "my_audio"},
        },
    )
    assert any("training_strategy.audio.latents_dir" in p and "my_audio" in p for p in check_paths(absent_source))
    with pytest.raises(ValueError, match="lora"):
        training_config(model_path, data_root, tmp_path, lora=None)


def test_train_cli_reports_missing_paths(datasets, tmp_path):
    model_path, _, _ = datasets["2.0"]
    config = training_config(model_path, tmp_path / "no-data", tmp_path / "out")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ltx_trainer.cli", "train", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2  # config/usage (errors.py)
    assert "data.preprocessed_data_root" in proc.stdout + proc.stderr
    imported = {line.rpartition("|")[2].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    assert "ltx_trainer.config" in imported and "torch" not in imported  # reported before the heavy imports


@pytest.mark.slow
def test_overfitting_one_clip_drops_the_loss_by_80_percent(tmp_path):
    """The loop really learns: one clip, full fine-tune of a tiny LTX-2 at width 128 (the 32-wide test model can't
    represent the identity on 128-channel latents), sigma held near 0.5 so the velocity target is learnable."""
    from ltx_trainer.data.preprocess import Item, precompute
    from ltx_trainer.models.tiny import write_tiny_ltx2
    from media_fixtures import make_clip

    paths = write_tiny_ltx2(tmp_path / "model", "2.0", video_dim=128)
    clip = tmp_path / "clip.mp4"
    make_clip(clip, 9, 64, 64, fps=24, cuts=[4])
    model = load_model(paths["single_file"], paths["gemma"])
    precompute(model, [Item(clip, "one clip", "clip")], tmp_path / "data" / ".precomputed", SMALL, with_audio=False)
    config = training_config(
        paths["single_file"],
        tmp_path / "data",
        tmp_path / "out",
        audio=False,
        lora=None,
        model={"training_mode": "full"},
        training_strategy={"name": "flexible", "video": {"is_generated": True, "latents_dir": "latents"}},
        optimization={"steps": 270, "learning_rate": 3e-3, "scheduler_type": "constant"},
        flow_matching={
            "timestep_sampling_mode": "uniform",
            "timestep_sampling_params": {"min_value": 0.5, "max_value": 0.51},
        },
    )
    _, result = run(config)
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10  # 270 steps: 1.713 -> 0.307 (0.18)
    assert last <= 0.2 * first, f"loss {first:.3f} -> {last:.3f}"


def test_wandb_offline_and_tensorboard_record_the_run(datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    model_path, _, data_root = datasets["2.0"]
    config = training_config(
        model_path, data_root, tmp_path, wandb={"enabled": True, "mode": "offline"}, tensorboard={"enabled": True}
    )
    run(config)
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    metrics = [line for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if line]
    assert len(metrics) == 3


# ---- issue 9: nothing lost, nothing silent ---------------------------------------------------------------------------


def _metric_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_resume_truncates_metrics_and_a_finished_run_changes_nothing(datasets, tmp_path):
    """Issue 9 items 2, 14, 20: Ctrl-C after the last checkpoint leaves steps the resumed run trains again."""
    model_path, _, data_root = datasets["2.0"]
    config = training_config(model_path, data_root, tmp_path, optimization={"steps": 4}, checkpoints={"interval": 2})
    first = Trainer(config)
    first.setup()
    first.train(stop_after=3)  # checkpoint at 2, step 3 logged and lost
    assert _metric_steps(tmp_path) == [1, 2, 3]
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "lo')  # a line torn by a kill
    stale = tmp_path / "checkpoints" / ".lora_weights_step_00004.safetensors.tmp.999999.0badc0de.safetensors"
    stale.write_bytes(b"partial")
    resumed, result = run(config)
    assert resumed.resumed_from.name == "training_state_step_00002.pt"
    assert _metric_steps(tmp_path) == [1, 2, 3, 4] and result.steps == 2
    assert not stale.exists()  # a killed writer's temp file is cleaned at start
    report = (tmp_path / "report.html").read_bytes()
    files = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()}
    _, again = run(config)  # finished: says so and changes nothing
    assert again.finished_before and again.steps == 0
    assert again.weights.name == "lora_weights_step_00004.safetensors"
    assert (tmp_path / "report.html").read_bytes() == report
    assert {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()} == files
    longer = training_config(model_path, data_root, tmp_path, optimization={"steps": 5}, checkpoints={"interval": 2})
    _, more = run(longer)  # raising steps continues the run
    assert more.steps == 1 and _metric_steps(tmp_path) == [1, 2, 3, 4, 5]


def test_resume_applies_a_changed_lr_and_refuses_changed_target_modules(datasets, tmp_path):
    """Issue 9 item 17."""
    from ltx_trainer.errors import UsageError

    model_path, _, data_root = datasets["2.0"]
    run(training_config(model_path, data_root, tmp_path, optimization={"steps": 2, "scheduler_type": "constant"}))
    changed = training_config(
        model_path, data_root, tmp_path, optimization={"steps": 3, "scheduler_type": "constant", "learning_rate": 0.05}
    )
    trainer = Trainer(changed)
    trainer.setup()
    assert trainer.step == 2 and trainer.scheduler.get_last_lr() == [0.05]
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.05]
    trainer.train()
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["lr"] == 0.05
    retargeted = training_config(model_path, data_root, tmp_path, lora={"target_modules": ["to_q"]})
    with pytest.raises(UsageError, match=r"lora\.target_modules"):
        Trainer(retargeted).setup()


def test_no_resume_refuses_a_directory_holding_another_run(datasets, tmp_path):
    """Issue 9 item 20: no_resume next to old checkpoints would prune and mix two runs."""
    from ltx_trainer.errors import UsageError

    model_path, _, data_root = datasets["2.0"]
    run(training_config(model_path, data_root, tmp_path, optimization={"steps": 1}))
    fresh = training_config(model_path, data_root, tmp_path, checkpoints={"no_resume": True})
    with pytest.raises(UsageError, match=r"no_resume: true but .* holds another run's checkpoints"):
        Trainer(fresh).setup()
    assert (tmp_path / "checkpoints" / "lora_weights_step_00001.safetensors").is_file()


def test_two_identical_runs_write_identical_0644_files(datasets, tmp_path):
    """Issue 9 item 20: byte-reproducible LoRA files, mode 0644."""
    model_path, _, data_root = datasets["2.0"]
    old = os.umask(0o022)
    try:
        a = run(training_config(model_path, data_root, tmp_path / "a", optimization={"steps": 2}))[1].weights
        b = run(training_config(model_path, data_root, tmp_path / "b", optimization={"steps": 2}))[1].weights
    finally:
        os.umask(old)
    assert a.read_bytes() == b.read_bytes()
    for path in (tmp_path / "a").rglob("*"):
        if path.is_file() and path.name != ".ltx-trainer.lock":
            assert path.stat().st_mode & 0o777 == 0o644, path


def test_nan_sample_stops_the_run_naming_it_and_keeps_the_good_checkpoint(datasets, tmp_path):
    """Issue 9 item 12: a NaN cache file never becomes weights and never prunes the last good checkpoint."""
    import shutil

    from ltx_trainer.data.cache import read_sample_file, write_sample_file
    from ltx_trainer.errors import DataError
    from ltx_trainer.training.guards import NonFiniteError

    model_path, _, data_root = datasets["2.0"]
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    victim = sorted((root / ".precomputed" / "latents").rglob("*.safetensors"))[0]
    data = read_sample_file(victim)
    clean = dict(data)
    data["latents"] = torch.full_like(data["latents"], float("nan"))
    write_sample_file(victim, data)
    with pytest.raises(DataError, match=victim.name):  # a NaN file is refused when it is loaded, naming it
        run(training_config(model_path, root, tmp_path / "nan", optimization={"steps": 12}))
    # Finite but huge latents pass the data checks and overflow the loss: the step guard must catch that.
    clean["latents"] = torch.full_like(clean["latents"], 3e38)
    write_sample_file(victim, clean)
    out = tmp_path / "out"
    config = training_config(
        model_path, root, out, optimization={"steps": 12}, checkpoints={"interval": 1, "keep_last_n": 1}
    )
    with pytest.raises(NonFiniteError, match=rf"non-finite loss at step \d+ on sample\(s\) .*{victim.stem}"):
        run(config)
    saved = sorted((out / "checkpoints").glob("lora_weights_step_*.safetensors"))
    assert len(saved) == 1
    assert all(torch.isfinite(t).all() for t in load_file(saved[0]).values())
    skipping = training_config(
        model_path,
        root,
        tmp_path / "skip",
        optimization={"steps": 12, "nonfinite": "skip"},
        checkpoints={"interval": 6},
    )
    _, result = run(skipping)
    assert result.steps == 12 and all(torch.isfinite(t).all() for t in load_file(result.weights).values())
    nulls = [json.loads(line)["loss"] for line in (tmp_path / "skip" / "metrics.jsonl").read_text().splitlines()]
    assert None in nulls  # NaN is logged as JSON null, not a bare NaN


def test_nonfinite_weights_are_never_saved(datasets, tmp_path):
    from ltx_trainer.training.guards import NonFiniteError

    model_path, _, data_root = datasets["2.0"]
    trainer = Trainer(training_config(model_path, data_root, tmp_path))
    trainer.setup()
    next(p for p in trainer.model.transformer.parameters() if p.requires_grad).data.fill_(float("inf"))
    with pytest.raises(NonFiniteError, match="non-finite weights at step 0"):
        trainer.save_checkpoint()
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").iterdir())


def test_full_disk_names_the_file_removes_the_partial_and_keeps_the_last_checkpoint(datasets, tmp_path, monkeypatch):
    """Issue 9 item 15: ENOSPC injected at the safetensors writer (a full disk cannot be made without root)."""
    import errno

    import safetensors.torch

    from ltx_trainer.io import DiskFullError

    model_path, _, data_root = datasets["2.0"]
    config = training_config(model_path, data_root, tmp_path, optimization={"steps": 3}, checkpoints={"interval": 1})
    trainer = Trainer(config)
    trainer.setup()
    trainer.train(stop_after=1)
    real = safetensors.torch.save_file

    def full_disk(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)  # the bytes land, then the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    trainer = Trainer(config)
    trainer.setup()
    with pytest.raises(DiskFullError, match=r"no space left on .* while writing .*lora_weights_step_00002.safetensors"):
        trainer.train(stop_after=1)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["lora_weights_step_00001.safetensors", "training_state_step_00001.pt"]


def test_output_dir_lock_refuses_a_second_run_and_takes_over_a_stale_one(tmp_path):
    """Issue 9 item 13."""
    import socket

    from ltx_trainer.training.run_dir import LOCK_NAME, OutputDirLocked, RunLock

    locked = pytest.raises(OutputDirLocked, match=rf"pid {os.getpid()} on host {socket.gethostname()}")
    with RunLock(tmp_path), locked:
        RunLock(tmp_path).acquire()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 999999, "host": "gone"}))  # left by a kill -9
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_pruning_never_matches_temp_files_and_resume_sorts_steps_numerically(tmp_path):
    """Issue 9 items 13 and 20."""
    from ltx_trainer.training import checkpoints

    for step in (6, 8, 99999, 100001):
        (tmp_path / f"lora_weights_step_{step:05d}.safetensors").write_bytes(b"w")
        (tmp_path / f"training_state_step_{step:05d}.pt").write_bytes(b"s")
    temp = tmp_path / ".lora_weights_step_00006.safetensors.tmp.4242.0123abcd.safetensors"
    temp.write_bytes(b"in progress")
    assert checkpoints.latest_state(tmp_path).name == "training_state_step_100001.pt"
    checkpoints.prune(tmp_path, keep_last_n=1, protect={100001})
    assert temp.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "lora_weights_step_100001.safetensors",
        "training_state_step_100001.pt",
    ]
