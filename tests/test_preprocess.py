"""``ltx-trainer preprocess``: buckets, dataset formats, the official cache layout, fingerprints, resume, shards,
bad input, images, masks and IC-LoRA references, on the tiny LTX-2 models and synthetic media."""

import json
import logging
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import typer

from cli_outcome import invoke
from ltx_trainer import logger
from ltx_trainer.commands.preprocess import preprocess
from ltx_trainer.data.cache import read_fingerprint, read_sample_file
from ltx_trainer.data.dataset import PrecomputedDataset
from ltx_trainer.data.fingerprint import check_cache_fingerprint, encoder_hash, forget_hashes, module_hash
from ltx_trainer.data.media import write_video
from ltx_trainer.data.preprocess import (
    Bucket,
    PreprocessOptions,
    audio_mask_to_latent_steps,
    check_options,
    choose_bucket,
    load_dataset,
    parse_buckets,
    preprocess_dataset,
    video_mask_to_latent_grid,
)
from ltx_trainer.models.base import FamilySpec
from ltx_trainer.models.families import load_model
from media_fixtures import (
    make_audio_only,
    make_clip,
    make_corrupt,
    make_image,
    make_truncated,
    make_video_without_audio,
    make_wav,
)

SMALL = "64x64x9"


@pytest.fixture(scope="module")
def model20(tiny_ltx2):
    return load_model(tiny_ltx2["2.0"]["single_file"], tiny_ltx2["2.0"]["gemma"])


def options(buckets: str = SMALL, **kwargs) -> PreprocessOptions:
    return PreprocessOptions(buckets=parse_buckets(buckets), progress=False, **kwargs)


def clip_folder(folder: Path, n: int = 3, frames: int = 12, captions: list[str] | None = None) -> Path:
    """``n`` clips with a hard cut and stereo audio, each with a sidecar caption."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_clip(folder / f"clip{i}.mp4", frames, 64, 64, fps=24, cuts=[frames // 2], seed=i)
        (folder / f"clip{i}.txt").write_text(captions[i] if captions else f"clip number {i}", encoding="utf-8")
    return folder


# ---- buckets ---------------------------------------------------------------------------------------------------------


def test_parse_buckets_reads_semicolon_lists_and_names_bad_ones() -> None:
    assert parse_buckets("768x448x89; 512x512x1;768x448x89") == [Bucket(768, 448, 89), Bucket(512, 512, 1)]
    assert str(Bucket(768, 448, 89)) == "768x448x89"
    for bad, words in [("768x448", "WxHxF"), ("770x448x89", "multiple of 32"), ("768x448x90", "8k+1"), ("", "no")]:
        with pytest.raises(ValueError, match=re.escape(words)):
            parse_buckets(bad)


def test_choose_bucket_takes_nearest_aspect_then_most_frames_then_largest_area() -> None:
    buckets = parse_buckets("768x448x89;768x448x49;960x544x49;512x512x49;256x256x49;512x512x1")
    # 16:9: 960x544 (1.765) is nearer in log aspect than 768x448 (1.714), even with fewer frames
    assert choose_bucket(buckets, 1920, 1080, 200) == Bucket(960, 544, 49)
    # 12:7 exactly: the most frames that fit
    assert choose_bucket(buckets, 1536, 896, 200) == Bucket(768, 448, 89)
    assert choose_bucket(buckets, 1536, 896, 60) == Bucket(768, 448, 49)
    # equal aspect and frames: the largest area
    assert choose_bucket(buckets, 700, 700, 60) == Bucket(512, 512, 49)
    # a square clip too short for every 49-frame bucket falls back to the one-frame bucket, as the official tool does
    assert choose_bucket(buckets, 700, 700, 30) == Bucket(512, 512, 1)
    assert choose_bucket(parse_buckets("512x512x49"), 700, 700, 30) is None
    # still images take only a declared F=1 bucket: no "...x1" bucket is invented for them (issue 9.6)
    assert choose_bucket(buckets, 1920, 1080, 1, image=True) == Bucket(512, 512, 1)
    assert choose_bucket(parse_buckets("768x448x89;512x512x49"), 1920, 1080, 1, image=True) is None


def test_reference_and_fps_options_are_checked_against_the_buckets() -> None:
    model = SimpleNamespace(spec=FamilySpec(family="ltx2", version="2.0", has_audio=True))
    check_options(options("128x64x17", reference_downscale_factor=2, reference_temporal_scale_factor=2), model)
    with pytest.raises(ValueError, match="divisible by 64"):
        check_options(options("96x64x17", reference_downscale_factor=2), model)
    with pytest.raises(ValueError, match=r"16k\+1.*17 or 33"):
        check_options(options("64x64x25", reference_temporal_scale_factor=2), model)
    with pytest.raises(ValueError, match="fps"):
        check_options(options(fps=0), model)
    ltxv = SimpleNamespace(spec=FamilySpec(family="ltxv", version="0.9.5", has_audio=False))
    with pytest.raises(ValueError, match="no audio"):
        check_options(options(audio=True), ltxv)


# ---- dataset formats -------------------------------------------------------------------------------------------------


def test_csv_json_jsonl_and_folder_datasets_give_the_same_samples(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    for name in ("a.mp4", "b.mp4", "ref_a.mp4", "a.wav", "notes.md"):
        (tmp_path / "clips" / name).write_bytes(b"x")
    (tmp_path / "clips" / "a.txt").write_text("first clip")
    (tmp_path / "clips" / "b.txt").write_text("second clip, with a comma")
    (tmp_path / "clips" / "ref_a.txt").write_text("a reference")
    rows = [
        {
            "media_path": "clips/a.mp4",
            "caption": "first clip",
            "reference_video": "clips/ref_a.mp4",
            "audio": "clips/a.wav",
        },
        {"media_path": "clips/b.mp4", "caption": "second clip, with a comma"},
    ]
    (tmp_path / "data.json").write_text(json.dumps(rows))
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    # CSV with the alternative column names of the official tool
    (tmp_path / "data.csv").write_text(
        "video,caption,ref_media_path,audio\nclips/a.mp4,first clip,clips/ref_a.mp4,clips/a.wav\n"
        'clips/b.mp4,"second clip, with a comma",,\n'
    )
    for name in ("data.json", "data.jsonl", "data.csv"):
        items, skipped, root = load_dataset(tmp_path / name)
        assert root == tmp_path and skipped == []
        assert [i.sample_id for i in items] == ["clips/a", "clips/b"]
        assert [i.caption for i in items] == ["first clip", "second clip, with a comma"]
        assert items[0].media == tmp_path / "clips/a.mp4"
        assert items[0].reference_video == tmp_path / "clips/ref_a.mp4" and items[0].audio == tmp_path / "clips/a.wav"
        assert items[1].reference_video is None and items[1].audio is None
    items, skipped, root = load_dataset(tmp_path / "clips")
    # every other file of the folder is accounted for: the audio-only file is skipped with why, the rest is listed
    assert root == tmp_path / "clips"
    assert [(s.source, s.kind) for s in skipped] == [("a.wav", "skipped"), ("notes.md", "not_media")]
    assert "audio-only" in skipped[0].reason
    assert [(i.sample_id, i.caption) for i in items] == [
        ("a", "first clip"),
        ("b", "second clip, with a comma"),
        ("ref_a", "a reference"),
    ]


def test_metadata_problems_name_the_file_and_the_rows(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "nocap.csv").write_text("media_path,notes\na.mp4,hello\n")
    with pytest.raises(ValueError, match=r"nocap\.csv.*caption.*--caption-column"):
        load_dataset(tmp_path / "nocap.csv")
    items, _, _ = load_dataset(tmp_path / "nocap.csv", caption_column="notes")
    assert items[0].caption == "hello"
    (tmp_path / "bad.json").write_text('{"media_path": "a.mp4"}')
    with pytest.raises(ValueError, match=r"bad\.json.*list"):
        load_dataset(tmp_path / "bad.json")
    (tmp_path / "rows.jsonl").write_text(
        '{"media_path": "a.mp4", "caption": "ok"}\nnot json\n{"media_path": "missing.mp4", "caption": "x"}\n'
        '{"media_path": "a.mp4", "caption": "again"}\n'
    )
    items, skipped, _ = load_dataset(tmp_path / "rows.jsonl")
    assert [i.caption for i in items] == ["ok"]
    reasons = {s.source.split(" (")[0]: s.reason for s in skipped}
    assert "invalid JSON" in reasons["rows.jsonl line 2"]
    assert "does not exist" in reasons["rows.jsonl line 3"]
    assert "duplicate" in reasons["rows.jsonl line 4"]


# ---- the cache -------------------------------------------------------------------------------------------------------


def test_safetensors_cache_has_the_official_keys_shapes_dtypes_and_a_fingerprint(tmp_path: Path, model20) -> None:
    data = clip_folder(tmp_path / "data", n=3, frames=20, captions=["same words", "same words", "other words"])
    make_image(data / "still.png", 80, 60)
    (data / "still.txt").write_text("an image")
    result = preprocess_dataset(data, model20, options("64x64x17;64x64x9;64x64x1", trigger="TOK"))
    assert result.written == ["clip0", "clip1", "clip2", "still"] and result.skipped == []
    assert result.calls == {"video": 4, "audio": 3, "text": 3}  # one text-encoder call per unique caption
    root = data / ".precomputed"

    latents = read_sample_file(root / "latents" / "clip0.safetensors")
    assert set(latents) == {"latents", "num_frames", "height", "width", "fps"}
    assert latents["latents"].shape == (128, 3, 2, 2) and latents["latents"].dtype == torch.bfloat16  # 64x64x17
    assert (latents["num_frames"], latents["height"], latents["width"], latents["fps"]) == (3, 2, 2, 24.0)

    audio = read_sample_file(root / "audio_latents" / "clip0.safetensors")
    assert set(audio) == {"latents", "num_time_steps", "frequency_bins", "duration"}
    assert audio["latents"].dtype == torch.float32 and audio["latents"].shape[::2] == (8, 16)
    assert audio["num_time_steps"] == audio["latents"].shape[1] and audio["frequency_bins"] == 16
    assert audio["duration"] == pytest.approx(17 / 24)
    assert abs(audio["num_time_steps"] - 25 * 17 / 24) <= 2  # 25 latent steps per second

    conditions = read_sample_file(root / "conditions" / "clip0.safetensors")
    assert set(conditions) == {"video_prompt_embeds", "audio_prompt_embeds", "prompt_attention_mask"}
    assert (
        conditions["video_prompt_embeds"].shape == (1024, 64)
        and conditions["video_prompt_embeds"].dtype == torch.bfloat16
    )
    assert conditions["prompt_attention_mask"].shape == (1024,)
    assert torch.equal(
        conditions["video_prompt_embeds"],
        read_sample_file(root / "conditions" / "clip1.safetensors")["video_prompt_embeds"],
    )

    # the image is a one-frame sample at 1 fps, without audio latents
    still = read_sample_file(root / "latents" / "still.safetensors")
    assert still["latents"].shape == (128, 1, 2, 2) and still["fps"] == 1.0
    assert not (root / "audio_latents" / "still.safetensors").exists()

    fingerprint = read_fingerprint(root / "latents" / "clip0.safetensors")
    assert fingerprint["family"] == "ltx2" and fingerprint["version"] == "2.0"
    assert fingerprint["bucket"] == "64x64x17" and fingerprint["buckets"] == "64x64x17;64x64x9;64x64x1"
    assert fingerprint["trigger"] == "TOK" and fingerprint["encoders"]["video_vae"].startswith("sha256:")
    assert set(read_fingerprint(root / "conditions" / "clip0.safetensors")["encoders"]) == {
        "text_encoder",
        "feature_extractor",
    }
    assert check_cache_fingerprint(data, model20) == []
    report = json.loads((root / "preprocess_report.json").read_text())
    assert report["counts"] == {"written": 4, "already_done": 0, "redone": 0, "skipped": 0, "not_media": 0}
    assert set(report["timings"]) >= {"decode", "resize", "vae", "audio_vae", "text", "write"}


def test_pt_format_is_the_official_layout_and_loads_in_training(tmp_path: Path, model20) -> None:
    clip_folder(tmp_path / "clips", n=2, frames=9)
    (tmp_path / "dataset.csv").write_text("media_path,caption\nclips/clip0.mp4,first\nclips/clip1.mp4,second\n")
    result = preprocess_dataset(tmp_path / "dataset.csv", model20, options(format="pt"))
    root = tmp_path / ".precomputed"
    assert result.output == root and result.written == ["clips/clip0", "clips/clip1"]
    for folder in ("latents", "conditions", "audio_latents"):
        assert sorted(p.relative_to(root / folder).as_posix() for p in (root / folder).rglob("*.pt")) == [
            "clips/clip0.pt",
            "clips/clip1.pt",
        ]
    latents = torch.load(root / "latents/clips/clip0.pt", weights_only=True)
    assert latents["latents"].dtype == torch.bfloat16 and latents["latents"].shape == (128, 2, 2, 2)
    assert isinstance(latents["num_frames"], int) and isinstance(latents["fps"], float)
    conditions = torch.load(root / "conditions/clips/clip0.pt", weights_only=True)
    assert set(conditions) == {"video_prompt_embeds", "audio_prompt_embeds", "prompt_attention_mask"}
    audio = torch.load(root / "audio_latents/clips/clip0.pt", weights_only=True)
    assert audio["latents"].dtype == torch.float32 and audio["latents"].shape[0] == 8

    dataset = PrecomputedDataset(
        tmp_path, {"latents": "video_latents", "conditions": "conditions", "audio_latents": "audio_latents"}
    )
    assert dataset.ids == ["clips/clip0", "clips/clip1"]
    item = dataset[1]
    assert item["video_latents"]["latents"].shape == (128, 2, 2, 2)
    assert item["conditions"]["video_prompt_embeds"].shape == (1024, 64)
    assert item["audio_latents"]["latents"].shape[::2] == (8, 16)

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger.addHandler(handler)
    try:
        assert check_cache_fingerprint(tmp_path, model20) == []  # official .pt caches have no fingerprint: accepted
    finally:
        logger.removeHandler(handler)
    assert len([r for r in records if "no model fingerprint" in r]) == 1


def test_a_cache_from_another_model_version_is_refused_with_the_rebuild_command(tmp_path: Path, model20, tiny_ltx2):
    data = clip_folder(tmp_path / "data", n=1, frames=9)
    preprocess_dataset(data, model20, options())
    model23 = load_model(tiny_ltx2["2.3"]["single_file"], tiny_ltx2["2.3"]["gemma"])
    problems = check_cache_fingerprint(data, model23)
    assert {Path(p.split(":")[0]).name for p in problems} == {"latents", "conditions", "audio_latents"}
    for problem in problems:
        assert "ltx2 2.0, but the model is ltx2 2.3" in problem
        assert f"ltx-trainer preprocess {data.absolute()} --model {tiny_ltx2['2.3']['single_file']}" in problem
        assert f"--resolution-buckets {SMALL}" in problem and problem.endswith("--overwrite")
    # the same model as a diffusers folder (its own Gemma copy) is the same model: accepted
    assert check_cache_fingerprint(data, load_model(tiny_ltx2["2.0"]["diffusers"])) == []


def test_encoder_hashes_follow_the_weights(tiny_ltx2) -> None:
    model = load_model(tiny_ltx2["2.3"]["single_file"], tiny_ltx2["2.3"]["gemma"])
    before = encoder_hash(model, "video_vae")
    assert before == module_hash(model.video_vae)
    assert encoder_hash(model, "text_encoder").startswith("sha256:")
    with torch.no_grad():
        next(model.video_vae.parameters()).add_(0.5)
    forget_hashes(model)
    assert encoder_hash(model, "video_vae") != before


# ---- resume and shards -----------------------------------------------------------------------------------------------


def test_rerun_skips_finished_samples_and_overwrite_redoes_them(tmp_path: Path, model20) -> None:
    data = clip_folder(tmp_path / "data", n=2, frames=9)
    first = preprocess_dataset(data, model20, options())
    files = sorted((data / ".precomputed").rglob("*.safetensors"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert first.written == ["clip0", "clip1"] and len(files) == 6

    again = preprocess_dataset(data, model20, options())
    assert again.written == [] and again.already_done == ["clip0", "clip1"] and again.calls == {}
    assert {p: p.stat().st_mtime_ns for p in files} == stamps

    (data / ".precomputed" / "conditions" / "clip1.safetensors").unlink()  # e.g. killed during the text phase
    partial = preprocess_dataset(data, model20, options())
    assert partial.written == ["clip1"] and partial.calls == {"text": 1}

    redo = preprocess_dataset(data, model20, options(overwrite=True))
    assert redo.written == ["clip0", "clip1"] and redo.calls == {"video": 2, "audio": 2, "text": 2}
    assert not list((data / ".precomputed").rglob(".*tmp*"))  # atomic writes leave no temporary files


def test_shards_split_the_samples_between_processes(tmp_path: Path, model20) -> None:
    data = clip_folder(tmp_path / "data", n=5, frames=9)
    shard0 = preprocess_dataset(data, model20, options(shard_index=0, num_shards=2))
    shard1 = preprocess_dataset(data, model20, options(shard_index=1, num_shards=2))
    assert shard0.written == ["clip0", "clip2", "clip4"] and shard1.written == ["clip1", "clip3"]
    assert shard0.report.name == "preprocess_report.shard-0-of-2.json" and shard1.report.exists()
    assert sorted(p.stem for p in (data / ".precomputed" / "latents").iterdir()) == [f"clip{i}" for i in range(5)]


# ---- bad input -------------------------------------------------------------------------------------------------------


def bad_folder(folder: Path) -> Path:
    """One good clip and one of every kind of bad input."""
    folder.mkdir(parents=True)
    make_clip(folder / "good.mp4", 12, 64, 64)
    make_clip(folder / "good.webm", 12, 64, 64)  # same output name as good.mp4
    make_corrupt(folder / "corrupt.mp4")
    make_truncated(folder / "good.mp4", folder / "truncated.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    make_audio_only(folder / "music.m4a")
    (folder / "music.m4a").rename(folder / "novideo.mp4")
    make_video_without_audio(folder / "silent.mp4", num_frames=12, width=64, height=64)
    make_clip(folder / "short.mp4", 5, 64, 64)
    make_clip(folder / "latin1.mp4", 12, 64, 64)
    make_clip(folder / "blank.mp4", 12, 64, 64)
    make_clip(folder / "nocaption.mp4", 12, 64, 64)
    for name in ("good", "corrupt", "truncated", "empty", "novideo", "silent", "short"):
        (folder / f"{name}.txt").write_text(f"the {name} clip")
    (folder / "latin1.txt").write_bytes("caf\u00e9 cr\u00e8me".encode("latin-1"))
    (folder / "blank.txt").write_text("  \n")
    return folder


def test_bad_inputs_are_skipped_with_their_reason_and_the_rest_is_cached(tmp_path: Path, model20) -> None:
    data = bad_folder(tmp_path / "data")
    result = preprocess_dataset(data, model20, options())
    assert result.written == ["good"]
    report = json.loads((data / ".precomputed" / "preprocess_report.json").read_text())
    reasons = {Path(s["source"]).name: s["reason"] for s in report["skipped"]}
    expected = {
        "good.webm": "duplicate",
        "corrupt.mp4": "cannot open",
        "truncated.mp4": "cannot open",
        "empty.mp4": "cannot open",
        "novideo.mp4": "no video stream",
        "silent.mp4": "no audio stream",
        "short.mp4": "too few frames: 5 decoded, the shortest bucket needs 9",
        "latin1.mp4": "not UTF-8",
        "blank.mp4": "empty caption",
        "nocaption.mp4": "no caption",
    }
    assert set(reasons) == set(expected)
    for name, words in expected.items():
        assert words in reasons[name], (name, reasons[name])
    assert "--allow-missing-audio" in reasons["silent.mp4"]
    assert report["counts"] == {
        "written": 1,
        "already_done": 0,
        "redone": 0,
        "skipped": len(expected),
        "not_media": 0,
    }
    cached = sorted(p.relative_to(data / ".precomputed").as_posix() for p in (data / ".precomputed").rglob("*.*"))
    assert cached == [
        "audio_latents/good.safetensors",
        "conditions/good.safetensors",
        "latents/good.safetensors",
        "preprocess_report.json",
    ]


def test_cli_exit_code_is_nonzero_only_with_strict_or_when_nothing_succeeded(tmp_path: Path, tiny_ltx2) -> None:
    app = typer.Typer()
    app.command()(preprocess)
    app.command("noop")(lambda: None)  # two commands: the verb name is part of the command line, as in ltx-trainer
    model = ["--model", str(tiny_ltx2["2.0"]["single_file"]), "--text-encoder", str(tiny_ltx2["2.0"]["gemma"])]
    data = bad_folder(tmp_path / "data")
    ok = invoke(app, ["preprocess", str(data), *model, "--resolution-buckets", SMALL, "--allow-missing-audio"])
    assert ok.exit_code == 0, ok.output
    assert "written" in ok.output and "skipped" in ok.output
    assert (data / ".precomputed" / "latents" / "silent.safetensors").exists()  # kept video-only
    assert not (data / ".precomputed" / "audio_latents" / "silent.safetensors").exists()

    strict = invoke(app, ["preprocess", str(data), *model, "--resolution-buckets", SMALL, "--strict"])
    assert strict.exit_code == 1 and "--strict" in strict.output

    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    shutil.copy(data / "corrupt.mp4", only_bad)
    shutil.copy(data / "corrupt.txt", only_bad)
    nothing = invoke(app, ["preprocess", str(only_bad), *model, "--resolution-buckets", SMALL])
    assert nothing.exit_code == 1 and "nothing was preprocessed" in nothing.output

    bad_bucket = invoke(app, ["preprocess", str(data), *model, "--resolution-buckets", "64x64x10"])
    assert bad_bucket.exit_code == 2 and "8k+1" in bad_bucket.output  # a usage error


# ---- masks and references --------------------------------------------------------------------------------------------


def test_mask_grids_pool_space_take_the_max_over_time_and_threshold() -> None:
    mask = torch.zeros(17, 64, 128)
    mask[9:, :, :64] = 1.0  # left half, in the frames of latent frame 2 only
    mask[3, :, 64:80] = 1.0  # a quarter of one patch in one frame: avg 0.5 in patch 2 -> not > 0.5
    grid = video_mask_to_latent_grid(mask)
    assert grid.shape == (3, 2, 4)
    assert grid[2].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]] and grid[:2].sum() == 0
    mask[3, :, 64:90] = 1.0  # now more than half of patch 2 in frame 3: the max over frames 1-8 marks latent frame 1
    assert video_mask_to_latent_grid(mask)[1].tolist() == [[0, 0, 1, 0], [0, 0, 1, 0]]
    steps = audio_mask_to_latent_steps(torch.tensor([0.0, 0.0, 1.0, 1.0, 0.9, 0.0]), 12)
    assert steps.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0]


def test_masks_and_references_have_latent_grid_shapes(tmp_path: Path, model20) -> None:
    make_clip(tmp_path / "target.mp4", 20, 128, 64, fps=24, cuts=[8])
    make_clip(tmp_path / "canny.mp4", 20, 128, 64, fps=24, seed=3)
    make_wav(tmp_path / "voice.wav", seconds=1.0, channels=1)
    frames = torch.zeros(20, 64, 128, 3, dtype=torch.uint8)
    frames[9:, :, :64] = 255  # inpaint the left half from frame 9 on
    write_video(tmp_path / "mask.mp4", frames, fps=24)
    np.save(tmp_path / "audio_mask.npy", np.array([1.0] * 50 + [0.0] * 50))
    row = {
        "video": "target.mp4",
        "caption": "a square moves",
        "reference_video": "canny.mp4",
        "reference_audio": "voice.wav",
        "video_mask": "mask.mp4",
        "audio_mask": "audio_mask.npy",
    }
    (tmp_path / "data.jsonl").write_text(json.dumps(row) + "\n")
    opts = options("128x64x17", reference_downscale_factor=2, reference_temporal_scale_factor=2)
    result = preprocess_dataset(tmp_path / "data.jsonl", model20, opts)
    assert result.written == ["target"], result.skipped
    root = tmp_path / ".precomputed"

    target = read_sample_file(root / "latents" / "target.safetensors")
    assert target["latents"].shape == (128, 3, 2, 4) and target["fps"] == 24.0
    reference = read_sample_file(root / "reference_latents" / "target.safetensors")
    # 17 frames -> frames 0, 2, ..., 16 (9) -> 2 latent frames; 128x64 / 2 -> 64x32 -> 2x1 latents; fps / 2
    assert reference["latents"].shape == (128, 2, 1, 2) and reference["fps"] == 12.0
    assert (reference["num_frames"], reference["height"], reference["width"]) == (2, 1, 2)
    fingerprint = read_fingerprint(root / "reference_latents" / "target.safetensors")
    assert fingerprint["reference_downscale_factor"] == 2 and fingerprint["reference_temporal_scale_factor"] == 2

    video_mask = read_sample_file(root / "video_masks" / "target.safetensors")["mask"]
    assert video_mask.shape == (3, 2, 4) and video_mask.dtype == torch.float32
    assert video_mask[2].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]] and video_mask[:2].sum() == 0
    audio = read_sample_file(root / "audio_latents" / "target.safetensors")
    audio_mask = read_sample_file(root / "audio_masks" / "target.safetensors")["mask"]
    steps = audio["num_time_steps"]
    assert (
        audio_mask.shape == (steps,) and audio_mask[: steps // 2 - 1].all() and not audio_mask[steps // 2 + 1 :].any()
    )
    reference_audio = read_sample_file(root / "reference_audio_latents" / "target.safetensors")
    assert reference_audio["latents"].shape == audio["latents"].shape  # trimmed to the clip's duration


def test_ltxv_caches_have_no_audio_and_t5_features(tmp_path: Path) -> None:
    from ltx_trainer.models.tiny import write_tiny_ltxv

    paths = write_tiny_ltxv(tmp_path / "model")
    model = load_model(paths["single_file"], paths["t5"])
    data = clip_folder(tmp_path / "data", n=1, frames=9)
    result = preprocess_dataset(data, model, options())
    assert result.written == ["clip0"] and result.calls == {"video": 1, "text": 1}
    root = data / ".precomputed"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["conditions", "latents"]
    conditions = read_sample_file(root / "conditions" / "clip0.safetensors")
    assert set(conditions) == {"video_prompt_embeds", "prompt_attention_mask"}  # the reader duplicates it for audio
    assert read_sample_file(root / "latents" / "clip0.safetensors")["latents"].shape == (128, 2, 2, 2)
    assert read_fingerprint(root / "conditions" / "clip0.safetensors")["family"] == "ltxv"
    assert check_cache_fingerprint(data, load_model(paths["diffusers"])) == []
