"""`ltx-trainer verify` and `ltx-trainer decode` on real caches made from synthetic clips with the tiny LTX-2 model."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import typer

from cli_outcome import invoke
from ltx_trainer.commands.decode import decode
from ltx_trainer.commands.verify import verify
from ltx_trainer.config import dump_config
from ltx_trainer.data.cache import read_sample_file, write_sample_file
from ltx_trainer.data.dataset import PrecomputedDataset
from ltx_trainer.data.media import probe
from ltx_trainer.data.verify import (
    sources_from_config,
    sources_from_names,
    verify_cache,
)
from training_fixtures import LARGE, SMALL, make_dataset, training_config

SOURCES = ["latents", "conditions", "audio_latents", "video_masks"]
MASKED_STRATEGY = {
    "name": "flexible",
    "video": {
        "is_generated": True,
        "latents_dir": "latents",
        "conditions": [{"type": "mask", "mask_dir": "video_masks"}],
    },
    "audio": {"is_generated": True, "latents_dir": "audio_latents"},
}


def _app(command) -> typer.Typer:
    app = typer.Typer()
    app.command()(command)
    return app


def _run(command, *args: str):
    return invoke(_app(command), list(args))


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.safetensors")}


@pytest.fixture(scope="module")
def built_cache(tiny_ltx2, tmp_path_factory) -> Path:
    """Six samples in two buckets: latents, conditions, audio latents, and a video mask on each latent grid."""
    root = tmp_path_factory.mktemp("cache")
    model = tiny_ltx2["2.0"]
    make_dataset(root, model["single_file"], model["gemma"], buckets=(SMALL, LARGE), clips_per_bucket=3)
    cache = root / ".precomputed"
    for path in sorted((cache / "latents").glob("*.safetensors")):
        latents = read_sample_file(path)
        grid = (latents["num_frames"], latents["height"], latents["width"])
        mask = torch.zeros(grid)
        mask[0] = 1.0
        write_sample_file(cache / "video_masks" / path.name, {"mask": mask})
    return root


@pytest.fixture
def cache(built_cache, tmp_path) -> Path:
    """A private copy: the tests move and damage files."""
    root = tmp_path / "data"
    shutil.copytree(built_cache, root)
    return root


def test_clean_cache_verifies_ok_from_config_and_from_sources(cache, tiny_ltx2, tmp_path):
    cfg = training_config(tiny_ltx2["2.0"]["single_file"], cache, tmp_path / "out", training_strategy=MASKED_STRATEGY)
    assert sources_from_config(cfg) == {
        "conditions": "conditions",
        "latents": "video_latents",
        "video_masks": "video_mask",
        "audio_latents": "audio_latents",
    }
    report = verify_cache(cache, sources_from_config(cfg), model=tiny_ltx2["2.0"]["single_file"])
    assert report.ok and not report.problems
    assert len(report.samples) == len(report.good_samples) == 6

    config_file = tmp_path / "train.yaml"
    config_file.write_text(dump_config(cfg))
    result = _run(verify, "--config", config_file)
    assert result.exit_code == 0, result.output
    assert "cache ok" in result.output
    written = json.loads((cache / ".precomputed" / "verify_report.json").read_text())
    assert written["ok"] and written["num_samples"] == 6 and written["problems"] == []

    result = _run(verify, cache, *(a for s in SOURCES for a in ("--source", s)))
    assert result.exit_code == 0, result.output


def test_fix_quarantines_exactly_the_broken_samples(cache):
    root = cache / ".precomputed"
    before = _files(root)
    (root / "conditions" / "b0_1.safetensors").unlink()  # incomplete
    (root / "audio_latents" / "b1_0.safetensors").write_bytes(b"\x00garbage" * 64)  # unreadable
    nan = read_sample_file(root / "latents" / "b0_2.safetensors")
    nan["latents"][3, 0, 1, 1] = float("nan")
    write_sample_file(root / "latents" / "b0_2.safetensors", nan)
    write_sample_file(root / "video_masks" / "b1_1.safetensors", {"mask": torch.zeros(3, 2, 2)})  # grid is 3x2x3
    broken = {"b0_1", "b1_0", "b0_2", "b1_1"}
    twin = read_sample_file(root / "video_masks" / "b0_2.safetensors")
    write_sample_file(root / "video_masks" / "b0_2.pt", twin)  # a stray official-format twin

    args = [cache, *(a for s in SOURCES for a in ("--source", s))]
    result = _run(verify, *args)
    assert result.exit_code == 1, result.output
    report = json.loads((root / "verify_report.json").read_text())
    assert set(report["bad_samples"]) == broken
    kinds = {(p["sample"], p["source"], p["kind"]) for p in report["problems"]}
    assert kinds == {
        ("b0_1", "conditions", "missing"),
        ("b1_0", "audio_latents", "unreadable"),
        ("b0_2", "latents", "non_finite"),
        ("b1_1", "video_masks", "mismatch"),
    }
    assert _files(root) == before - {"conditions/b0_1.safetensors"}, "verify without --fix changes nothing"

    result = _run(verify, *args, "--fix")
    assert result.exit_code == 0, result.output
    report = json.loads((root / "verify_report.json").read_text())
    assert set(report["quarantined"]) == broken and report["ok"]
    moved = {f for files in report["quarantined"].values() for f in files}
    assert _files(root / "quarantine") == moved - {"video_masks/b0_2.pt"}
    assert {Path(f).stem for f in moved} == broken
    assert len(moved) == 4 * len(broken), "every file of a broken sample, in every source, is moved"
    assert "video_masks/b0_2.pt" in moved and (root / "quarantine" / "video_masks" / "b0_2.pt").is_file()
    assert {f.removeprefix("quarantine/") for f in _files(root)} == before - {"conditions/b0_1.safetensors"}

    assert verify_cache(cache, sources_from_names(SOURCES)).ok
    dataset = PrecomputedDataset(cache, {"latents": "video_latents", "conditions": "conditions"})
    assert sorted(dataset.ids) == ["b0_0", "b1_2"]


def test_shape_and_duration_disagreements_are_named(tmp_path):
    root = tmp_path / "cache"
    video = {"latents": torch.randn(128, 3, 2, 2), "num_frames": 3, "height": 2, "width": 2, "fps": 24.0}
    audio = {"latents": torch.randn(8, 18, 16), "num_time_steps": 18, "frequency_bins": 16, "duration": 17 / 24}
    text = {"video_prompt_embeds": torch.randn(16, 8), "prompt_attention_mask": torch.ones(16, dtype=torch.long)}
    for name in ("good", "scalars", "late_audio", "steps", "text"):
        write_sample_file(root / "latents" / f"{name}.safetensors", video)
        write_sample_file(root / "audio_latents" / f"{name}.safetensors", audio)
        write_sample_file(root / "conditions" / f"{name}.safetensors", text)
        write_sample_file(root / "audio_masks" / f"{name}.safetensors", {"mask": torch.zeros(18)})
    write_sample_file(root / "latents" / "scalars.safetensors", {**video, "height": 3})
    late = {"latents": torch.randn(8, 31, 16), "num_time_steps": 31, "frequency_bins": 16, "duration": 1.2}
    write_sample_file(root / "audio_latents" / "late_audio.safetensors", late)
    write_sample_file(root / "audio_masks" / "late_audio.safetensors", {"mask": torch.zeros(31)})
    write_sample_file(root / "audio_latents" / "steps.safetensors", {**audio, "num_time_steps": 17})
    write_sample_file(root / "conditions" / "text.safetensors", {**text, "prompt_attention_mask": torch.ones(15)})
    report = verify_cache(root)
    assert report.sources == {
        "latents": "video_latents",
        "conditions": "conditions",
        "audio_latents": "audio_latents",
        "audio_masks": "audio_mask",
    }
    problems = {p.sample: p for p in report.problems}
    assert set(problems) == {"scalars", "late_audio", "steps", "text"}
    assert "height=3" in problems["scalars"].message and problems["scalars"].kind == "shape"
    assert problems["late_audio"].kind == "mismatch" and "audio duration 1.200 s vs video 0.708 s" in (
        problems["late_audio"].message
    )
    assert problems["steps"].kind == "shape" and "num_time_steps=17" in problems["steps"].message
    assert problems["text"].source == "conditions"


def test_missing_source_folder_and_stale_fingerprint(cache, tiny_ltx2):
    root = cache / ".precomputed"
    report = verify_cache(cache, sources_from_names([*SOURCES, "reference_latents"]))
    assert [(p.sample, p.kind) for p in report.problems] == [(None, "missing")]
    assert "reference_latents: source folder missing" in report.problems[0].message
    assert report.bad_samples == [], "a missing folder is the cache's problem, not six broken samples"

    path = root / "latents" / "b0_0.safetensors"
    write_sample_file(path, read_sample_file(path), {"fingerprint": json.dumps({"family": "ltx2", "version": "2.3"})})
    report = verify_cache(cache, sources_from_names(SOURCES), model=tiny_ltx2["2.0"]["single_file"])
    assert [(p.source, p.kind) for p in report.problems] == [("latents", "fingerprint")]
    assert report.problems[0].sample is None, "fingerprints are checked per source folder"
    assert "were made with ltx2 2.3, but the model is ltx2 2.0" in report.problems[0].message
    result = _run(verify, cache, "--source", "latents", "--model", tiny_ltx2["2.0"]["single_file"], "--fix")
    assert result.exit_code == 1, "a stale cache is not quarantined: it needs preprocessing again"
    assert path.exists()


def test_decode_writes_mp4_with_audio(cache, tiny_ltx2, tmp_path):
    model = tiny_ltx2["2.0"]["single_file"]
    root = cache / ".precomputed"
    result = _run(decode, root / "latents" / "b1_0.safetensors", "--model", model, "--device", "cpu")
    assert result.exit_code == 0, result.output
    info = probe(root / "decoded_videos" / "b1_0.mp4", count_frames=True)
    assert (info.num_frames, info.width, info.height) == (LARGE.frames, LARGE.width, LARGE.height)
    assert info.has_audio and info.fps == pytest.approx(24.0)

    shutil.copytree(root / "latents", root / "reference_latents")
    result = _run(decode, cache, "--model", model, "--out", tmp_path / "all", "--limit", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["b0_0.mp4", "b0_1.mp4", "decoded_reference_videos"]
    info = probe(tmp_path / "all" / "b0_1.mp4", count_frames=True)
    assert info.num_frames == SMALL.frames and info.has_audio
    assert not (tmp_path / "decoded_reference_videos").exists(), "--out X keeps the references under X"
    reference = probe(tmp_path / "all" / "decoded_reference_videos" / "b0_1.mp4", count_frames=True)
    assert reference.num_frames == SMALL.frames and not reference.has_audio

    result = _run(decode, root / "audio_latents" / "b0_0.safetensors", "--model", model, "--device", "cpu")
    assert result.exit_code == 0, result.output
    audio_only = probe(root / "decoded_videos" / "b0_0.wav")
    assert audio_only.has_audio and audio_only.duration == pytest.approx(SMALL.frames / 24, abs=0.05)
