"""`ltx-trainer run-pipeline`: three synthetic videos -> clips -> captions -> cache -> LoRA -> sample -> report on a
tiny LTX-2 model; a SIGKILL during preprocess and a rerun that redoes neither the split nor the finished samples and
ends with the same LoRA and sample; stage options that change their stage; failures that name the stage.

The runs are forked children of the test process (``forked.py``), through the CLI's own error handling."""

import inspect
import json
import signal
import typing
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from cli_outcome import invoke
from forked import Pause, run, start
from ltx_trainer.cli import app
from ltx_trainer.config import PIPELINE_STAGES, CaptionBackend, ConfigError, load_config, parse_config
from media_fixtures import make_clip

STEPS = 3
CLIP_FRAMES, CUT = 18, 9  # each video: two 9-frame shots -> 6 clips of 64x64x9 from three videos


def write_footage(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(3):
        make_clip(folder / f"video_{seed}.mp4", CLIP_FRAMES, 64, 64, fps=24, cuts=[CUT], seed=seed)
    return folder


def pipeline_config(path: Path, paths: dict, root: Path, pipeline: dict | None = None, **sections) -> Path:
    """A tiny t2v LoRA config with a pipeline section (``pipeline`` is merged one level deep into the defaults)."""
    stages = {
        "split": {"detector": "content", "min_scene_len": 9, "previews": False, "preset": "ultrafast"},
        "caption": {"backend": "template", "trigger": "tinystyle"},
        "preprocess": {"resolution_buckets": "64x64x9", "device": "cpu", "compute_dtype": "fp32"},
        "sample": {"prompts": ["tinystyle a square moves"]},
    }
    for key, value in (pipeline or {}).items():
        stages[key] = {**stages[key], **value} if isinstance(value, dict) and key in stages else value
    config = {
        "model": {
            "model_path": str(paths["single_file"]),
            "text_encoder_path": str(paths["gemma"]),
            "training_mode": "lora",
        },
        "lora": {"rank": 4, "alpha": 4},
        "training_strategy": {
            "name": "flexible",
            "video": {"is_generated": True, "latents_dir": "latents"},
            "audio": {"is_generated": True, "latents_dir": "audio_latents"},
        },
        "optimization": {"steps": STEPS, "batch_size": 1, "learning_rate": 1e-3},
        "acceleration": {"mixed_precision_mode": "no"},
        "data": {"preprocessed_data_root": str(root / "dataset"), "num_dataloader_workers": 0},
        "checkpoints": {"interval": None, "precision": "float32"},
        "validation": {"interval": None, "video_dims": [64, 64, 9], "inference_steps": 2, "stg_blocks": [1]},
        "seed": 7,
        "output_dir": str(root / "run"),
        "pipeline": stages,
        **sections,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def tree(folder: Path) -> dict[str, tuple[int, bytes]]:
    """relative path -> (mtime_ns, bytes) of every file below ``folder``."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()
    }


def state(run_dir: Path) -> dict:
    return json.loads((run_dir / "pipeline.json").read_text())["stages"]


@pytest.fixture(scope="module")
def straight(tiny_ltx2, tmp_path_factory):
    """One uninterrupted run-pipeline of three videos (the reference for the kill test)."""
    root = tmp_path_factory.mktemp("pipeline")
    footage = write_footage(root / "footage")
    config = pipeline_config(root / "pipeline.yaml", tiny_ltx2["2.0"], root)
    code, output = run(["run-pipeline", footage, "--config", config, "--no-progress"], root / "run.log", timeout=600)
    assert code == 0, output
    return {"root": root, "footage": footage, "config": config, "output": output, "model": tiny_ltx2["2.0"]}


@pytest.mark.slow
def test_run_pipeline_turns_three_videos_into_a_lora_a_sample_and_a_report(straight):
    root, output = straight["root"], straight["output"]
    dataset, run_dir = root / "dataset", root / "run"
    for k, stage in enumerate(PIPELINE_STAGES, 1):
        assert f"[{k}/5] {stage}" in output  # the stage line before the stage's own progress
        assert f"[{k}/5] {stage} done" in output
    clips = sorted(dataset.glob("*-Scene-*.mp4"))
    assert len(clips) == 6  # two shots per video, cut by split-scenes
    assert all(c.with_suffix(".txt").read_text().startswith("tinystyle ") for c in clips)
    assert len(list((dataset / ".precomputed" / "latents").glob("*.safetensors"))) == 6
    lora = run_dir / "checkpoints" / f"lora_weights_step_{STEPS:05d}.safetensors"
    assert all(k.startswith("diffusion_model.") for k in load_file(lora))
    assert (run_dir / "final_samples" / "sample_1.mp4").stat().st_size > 0
    stages = state(run_dir)
    assert [stages[s]["status"] for s in PIPELINE_STAGES] == ["done"] * 5
    report = (run_dir / "pipeline_report.html").read_text()
    for link in (
        "../dataset/scenes.html",
        "../dataset/.precomputed/preprocess_report.json",
        "report.html",
        "checkpoints/" + lora.name,
        "final_samples/sample_1.mp4",
    ):
        assert f'href="{link}"' in report, link
    assert (run_dir / "report.html").is_file() and (dataset / "scenes.html").is_file()


def _pause_in_preprocess(sample: int) -> Pause:
    return Pause("preprocess-sample", sample)


@pytest.mark.slow
def test_killed_during_preprocess_resumes_without_redoing_split_or_finished_samples(straight, tmp_path):
    footage = straight["footage"]
    config = pipeline_config(tmp_path / "pipeline.yaml", straight["model"], tmp_path)
    args = ["run-pipeline", footage, "--config", config, "--no-progress"]
    child = start(args, tmp_path / "killed.log", [_pause_in_preprocess(3)])
    assert child.wait_paused(timeout=300) == "preprocess-sample 3", child.output()
    assert child.kill() == -signal.SIGKILL  # two samples' latents are written, the third's not yet
    dataset, cache = tmp_path / "dataset", tmp_path / "dataset" / ".precomputed"
    clips = {k: v for k, v in tree(dataset).items() if k.endswith((".mp4", ".txt"))}
    finished = tree(cache / "latents") | {f"audio/{k}": v for k, v in tree(cache / "audio_latents").items()}
    assert len(tree(cache / "latents")) == 2 and not (cache / "conditions").exists()
    assert len(clips) == 12  # split and caption were complete before the kill

    code, output = run(args, tmp_path / "rerun.log", timeout=600)
    assert code == 0, output
    assert "[1/5] split skipped: already split: 3 video(s), 6 clip(s) kept" in output
    assert "[2/5] caption skipped" in output
    # the two finished samples' media are kept (only their text features, written after all media, are new)
    assert "[3/5] preprocess done: 6 written, 0 already done, 0 skipped; 4 clip(s) and 6 caption(s) encoded" in output
    assert {k: v for k, v in tree(dataset).items() if k.endswith((".mp4", ".txt"))} == clips  # bytes and mtimes
    after = tree(cache / "latents") | {f"audio/{k}": v for k, v in tree(cache / "audio_latents").items()}
    assert {k: after[k] for k in finished} == finished

    name = f"checkpoints/lora_weights_step_{STEPS:05d}.safetensors"
    ours, reference = load_file(tmp_path / "run" / name), load_file(straight["root"] / "run" / name)
    assert ours.keys() == reference.keys() and all(ours[k].equal(reference[k]) for k in ours)
    sample = "final_samples/sample_1.mp4"
    assert (tmp_path / "run" / sample).read_bytes() == (straight["root"] / "run" / sample).read_bytes()

    code, output = run(args, tmp_path / "third.log", timeout=600)  # everything done: every stage skipped
    assert code == 0, output
    assert [state(tmp_path / "run")[s]["status"] for s in PIPELINE_STAGES] == ["skipped"] * 5


def test_stage_options_in_the_config_change_their_stage(tiny_ltx2, tmp_path):
    footage = write_footage(tmp_path / "footage")
    outcomes = {}
    for label, options in {
        "defaults": {},
        "options": {"split": {"max_scenes": 1}, "caption": {"trigger": "zqx", "style": "sections"}},
    }.items():
        root = tmp_path / label
        config = pipeline_config(root.with_suffix(".yaml"), tiny_ltx2["2.0"], root, options)
        result = invoke(app, ["run-pipeline", footage, "-c", config, "--stages", "split,caption", "--no-progress"])
        assert result.exit_code == 0, result.output
        clips = sorted((root / "dataset").glob("*.mp4"))
        outcomes[label] = (len(clips), {c.with_suffix(".txt").read_text().split()[0] for c in clips})
        assert [state(root / "run")[s]["status"] for s in ("split", "caption")] == ["done", "done"]
        assert "preprocess" not in state(root / "run")
    assert outcomes["defaults"] == (6, {"tinystyle"})
    assert outcomes["options"] == (3, {"zqx"})  # the first scene of each video only; the other trigger
    assert "[VISUAL]:" in next((tmp_path / "options" / "dataset").glob("*.txt")).read_text()


def test_a_failing_stage_stops_the_pipeline_naming_it_and_a_rerun_goes_on(tiny_ltx2, tmp_path):
    footage = tmp_path / "footage"
    footage.mkdir()
    (footage / "notes.txt").write_text("no video here")
    config = pipeline_config(tmp_path / "p.yaml", tiny_ltx2["2.0"], tmp_path)
    result = invoke(app, ["run-pipeline", footage, "-c", config, "--no-progress"])
    assert result.exit_code == 1, result.output  # split-scenes' own code: nothing produced
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert line.startswith("error: stage 1/5 split failed: no clip from the 0 video(s)"), line
    assert "rerun the same run-pipeline command" in line
    assert state(tmp_path / "run")["split"]["status"] == "failed"
    assert "failed" in (tmp_path / "run" / "pipeline_report.html").read_text()

    write_footage(footage)
    result = invoke(app, ["run-pipeline", footage, "-c", config, "--stages", "split", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert state(tmp_path / "run")["split"]["status"] == "done"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"pipeline": {"split": {"params": {"windw": 3}}}}, "pipeline.split.params: "),
        ({"pipeline": {"split": {"min_scene_len": "soon"}}}, "pipeline.split.min_scene_len: "),
        ({"pipeline": {"preprocess": {"resolution_buckets": "60x64x9"}}}, "pipeline.preprocess.resolution_buckets: "),
        ({"pipeline": {"preprocess": {"resolution_buckets": "64x64x8"}}}, "pipeline.preprocess"),
        (
            {"training_strategy": {"name": "flexible", "video": {"is_generated": True, "latents_dir": "clips"}}},
            "training_strategy.video.latents_dir: 'clips' is not made by the preprocess stage",
        ),
        ({"model": {"model_path": "/nowhere/model.safetensors"}}, "model.model_path: '/nowhere/model.safetensors'"),
    ],
    ids=["detector_param", "length", "bucket_size", "bucket_frames", "strategy_folder", "model_path"],
)
def test_problems_are_found_before_any_stage_runs(tiny_ltx2, tmp_path, change, problem):
    footage = write_footage(tmp_path / "footage")
    config = pipeline_config(tmp_path / "p.yaml", tiny_ltx2["2.0"], tmp_path)
    data = yaml.safe_load(config.read_text())
    for section, value in change.items():
        if section == "pipeline":
            for stage, options in value.items():
                data["pipeline"][stage] = {**data["pipeline"][stage], **options}
        else:
            data[section] = {**data[section], **value} if section == "model" else value
    config.write_text(yaml.safe_dump(data))
    result = invoke(app, ["run-pipeline", footage, "-c", config, "--no-progress"])
    assert result.exit_code in (2, 4), result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert problem in line, line
    assert not (tmp_path / "dataset").exists() and not (tmp_path / "run").exists()  # nothing ran


def test_pipeline_section_errors_are_one_line_at_load(tmp_path):
    base = {"model": {"model_path": "/m"}, "lora": {}, "data": {"preprocessed_data_root": "/d"}}
    for pipeline, problem in [
        ({"stages": ["split", "trian"]}, "pipeline.stages[1]: 'trian' is not one of split, caption"),
        ({"stages": []}, "pipeline.stages: empty"),
        ({"stages": ["caption", "caption"]}, "pipeline.stages: listed more than once: caption"),
        ({}, "pipeline.preprocess.resolution_buckets: required when the preprocess stage runs"),
        ({"stages": ["caption"], "caption": {"backend": "qwen-vl"}}, "pipeline.caption.model: required for backend"),
        ({"stages": ["split"], "split": {"crf": 60}}, "pipeline.split.crf: "),
        ({"stages": ["split"], "spilt": {}}, "pipeline.spilt: unknown key"),
    ]:
        with pytest.raises(ConfigError) as info:
            parse_config({**base, "pipeline": pipeline}, "p.yaml")
        assert len(info.value.problems) == 1 and info.value.problems[0].startswith(problem), info.value.problems
    ordered = parse_config({**base, "pipeline": {"stages": ["sample", "split"]}}, "p.yaml").pipeline
    assert ordered.stages == ["split", "sample"]


def test_every_caption_option_reaches_the_captioner_factory():
    from ltx_trainer.config import PipelineCaptionConfig, PipelineConfig
    from ltx_trainer.data.captioning import BACKENDS, caption_dataset, make_captioner
    from ltx_trainer.pipeline.stages import captioner_options

    assert set(typing.get_args(CaptionBackend)) == set(BACKENDS)
    options = captioner_options(PipelineConfig(stages=["caption"]))
    assert set(options) == set(inspect.signature(make_captioner).parameters)
    rest = set(PipelineCaptionConfig.model_fields) - set(options)
    assert rest == {"trigger", "clean"} and rest <= set(inspect.signature(caption_dataset).parameters)


def test_example_pipeline_config_loads_and_names_its_stages():
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "pipeline_t2v_lora.yaml")
    assert cfg.pipeline is not None and cfg.pipeline.stages == list(PIPELINE_STAGES)
    assert cfg.pipeline.preprocess.resolution_buckets


def test_run_pipeline_needs_a_pipeline_section(tiny_ltx2, tmp_path):
    config = pipeline_config(tmp_path / "p.yaml", tiny_ltx2["2.0"], tmp_path)
    data = yaml.safe_load(config.read_text())
    del data["pipeline"]
    config.write_text(yaml.safe_dump(data))
    result = invoke(app, ["run-pipeline", tmp_path, "-c", config])
    assert result.exit_code == 2
    assert "no pipeline section" in result.output


@pytest.mark.slow
def test_splitting_again_with_other_settings_redoes_only_what_changed(tiny_ltx2, tmp_path):
    """A re-split rewrites clips under the same names: their captions (unedited) and cache files are made again, the
    cache of clips that are gone is removed, an edited caption of a changed clip stops the pipeline."""
    footage = write_footage(tmp_path / "footage")
    args = ["--stages", "split,caption,preprocess", "--no-progress"]
    first = pipeline_config(tmp_path / "a.yaml", tiny_ltx2["2.0"], tmp_path)
    assert invoke(app, ["run-pipeline", footage, "-c", first, *args]).exit_code == 0
    dataset, cache = tmp_path / "dataset", tmp_path / "dataset" / ".precomputed"
    assert len(list((cache / "latents").glob("*.safetensors"))) == 6

    edited = dataset / "video_2-Scene-001.txt"
    edited.write_text("tinystyle my own words\n")
    second = pipeline_config(tmp_path / "b.yaml", tiny_ltx2["2.0"], tmp_path, {"split": {"max_scenes": 1}})
    result = invoke(app, ["run-pipeline", footage, "-c", second, *args])
    assert result.exit_code == 3, result.output
    assert f"stage 2/3 caption failed: {dataset / 'video_2-Scene-001.mp4'}: the clip changed" in result.output

    edited.unlink()
    result = invoke(app, ["run-pipeline", footage, "-c", second, *args])
    assert result.exit_code == 0, result.output
    assert "[2/3] caption done: captioned 3, kept 0" in result.output  # 2 changed clips again, 1 deleted caption
    assert "3 clip(s) and 3 caption(s) encoded" in result.output
    assert sorted(p.stem for p in (cache / "latents").glob("*.safetensors")) == [
        f"video_{i}-Scene-001" for i in range(3)
    ]


def test_a_run_trained_on_another_dataset_is_not_resumed(tmp_path):
    from ltx_trainer.errors import DataError
    from ltx_trainer.pipeline.stages import Context, Layout, _refuse_changed_dataset

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "lora_weights_step_00003.safetensors").write_bytes(b"")
    cfg = parse_config(
        {"model": {"model_path": "/m"}, "lora": {}, "data": {"preprocessed_data_root": str(tmp_path)}}, "p.yaml"
    )
    trained = {"train": {"fingerprint": {"samples": {"a": [1, 2, "x"], "b": [1, 2, "y"]}}}}
    layout = Layout(None, tmp_path / "dataset", run_dir)
    same = Context(
        cfg,
        cfg.pipeline,
        layout,
        tmp_path / "p.yaml",
        previous=trained,
        dataset_samples={"a": [1, 2, "x"], "b": [1, 2, "y"]},
    )
    _refuse_changed_dataset(same)
    other = Context(
        cfg, cfg.pipeline, layout, tmp_path / "p.yaml", previous=trained, dataset_samples={"a": [1, 3, "x"]}
    )
    with pytest.raises(DataError, match=r"trained on another version of the dataset \(2 sample\(s\)"):
        _refuse_changed_dataset(other)


def test_out_puts_everything_under_one_folder_and_raw_dir_names_the_footage(tiny_ltx2, tmp_path):
    footage = write_footage(tmp_path / "footage")
    config = pipeline_config(tmp_path / "p.yaml", tiny_ltx2["2.0"], tmp_path, {"raw_dir": str(footage)})
    out = tmp_path / "elsewhere"
    result = invoke(app, ["run-pipeline", "-c", config, "--out", out, "--stages", "split", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert len(list((out / "dataset").glob("*-Scene-*.mp4"))) == 6
    assert state(out)["split"]["status"] == "done" and (out / "pipeline_report.html").is_file()
    assert not (tmp_path / "dataset").exists() and not (tmp_path / "run").exists()  # the config's folders


def test_preprocess_options_reach_the_preprocess_run(tiny_ltx2, tmp_path):
    import torch

    from ltx_trainer.pipeline.stages import Context, Layout, preprocess_folders, preprocess_setup

    options = {
        "fps": 12.0,
        "crop": "random",
        "seed": 5,
        "vae_tiling": True,
        "audio": False,
        "allow_missing_audio": True,
        "device": "cpu",
        "latents_dtype": "fp32",
        "compute_dtype": "fp32",
    }
    config = pipeline_config(tmp_path / "p.yaml", tiny_ltx2["2.0"], tmp_path, {"preprocess": options})
    cfg = load_config(config)
    ctx = Context(cfg, cfg.pipeline, Layout(None, tmp_path / "dataset", tmp_path / "run"), config)
    model, made = preprocess_setup(ctx)
    assert {k: getattr(made, k) for k in options if hasattr(made, k)} == {
        k: v for k, v in options.items() if k not in ("latents_dtype", "compute_dtype")
    }
    assert made.dtype == torch.float32 and model.dtype == torch.float32
    assert [str(b) for b in made.buckets] == ["64x64x9"] and made.output == tmp_path / "dataset" / ".precomputed"
    assert preprocess_folders(ctx, model) == {"latents", "conditions"}  # audio: false
