"""`ltx-trainer compute-reference`: IC-LoRA reference videos from synthetic clips, and the pairing file."""

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer

from cli_outcome import invoke
from ltx_trainer.commands.compute_reference import compute_reference
from ltx_trainer.data.media import probe, read_audio, read_video
from ltx_trainer.data.reference import (
    TRANSFORMS,
    apply_chain,
    build_chain,
    compute_references,
    register_transform,
)
from media_fixtures import clip_frames, make_clip

FRAMES, WIDTH, HEIGHT, FPS = 9, 64, 48, 24


def _run(*args):
    app = typer.Typer()
    app.command()(compute_reference)
    return invoke(app, list(args))


def _high_frequency_energy(frames: np.ndarray) -> float:
    gray = frames.astype(np.float32).mean(axis=-1)
    return float(np.mean([cv2.Laplacian(g, cv2.CV_32F).var() for g in gray]))


@pytest.fixture
def clips(tmp_path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    make_clip(folder / "a.mp4", FRAMES, WIDTH, HEIGHT, fps=FPS, cuts=[4], seed=1)
    (folder / "sub").mkdir()
    make_clip(folder / "sub" / "b.mp4", FRAMES, WIDTH, HEIGHT, fps=FPS, seed=2, audio=False)
    return folder


def test_builtin_transforms_on_frames():
    frames = clip_frames(FRAMES, WIDTH, HEIGHT, cuts=[4], seed=3)
    edges = apply_chain(frames, build_chain(["canny"]))
    assert edges.shape == frames.shape and set(np.unique(edges)) == {0, 255}
    assert (edges[..., 0] == edges[..., 1]).all() and (edges[..., 1] == edges[..., 2]).all()
    gray = apply_chain(frames, build_chain(["grayscale"]))
    assert (gray[..., 0] == gray[..., 2]).all() and gray[..., 0].std() > 10
    small = apply_chain(frames, build_chain(["downscale"]))
    assert small.shape == (FRAMES, HEIGHT // 2, WIDTH // 2, 3)
    assert apply_chain(frames, build_chain(["downscale"], ["factor=4"])).shape == (FRAMES, HEIGHT // 4, WIDTH // 4, 3)
    blurred = apply_chain(frames, build_chain(["blur"], ["sigma=2.5"]))
    assert _high_frequency_energy(blurred) < 0.2 * _high_frequency_energy(frames)
    lax = apply_chain(frames, build_chain(["canny"], ["canny.low=10", "canny.high=30"]))
    assert (lax > 0).sum() >= (edges > 0).sum()
    chained = apply_chain(frames, build_chain(["grayscale", "downscale"]))
    assert chained.shape == (FRAMES, HEIGHT // 2, WIDTH // 2, 3)
    with pytest.raises(ValueError, match="no transform among"):
        build_chain(["canny"], ["sigma=3"])
    with pytest.raises(ValueError, match="unknown reference transform 'sobel'"):
        build_chain(["sobel"])


def test_reference_videos_keep_fps_frames_and_audio(clips):
    result = _run(clips, "--transform", "canny")
    assert result.exit_code == 0, result.output
    ref = clips / "references" / "a.mp4"
    src_info, ref_info = probe(clips / "a.mp4", count_frames=True), probe(ref, count_frames=True)
    assert (ref_info.num_frames, ref_info.fps, ref_info.width, ref_info.height) == (FRAMES, FPS, WIDTH, HEIGHT)
    assert ref_info.has_audio and ref_info.audio_sample_rate == src_info.audio_sample_rate
    src_audio, _ = read_audio(clips / "a.mp4")
    ref_audio, _ = read_audio(ref)
    n = min(src_audio.shape[1], ref_audio.shape[1])
    assert abs(src_audio.shape[1] - ref_audio.shape[1]) < 0.02 * src_audio.shape[1]
    assert np.corrcoef(src_audio[0, 2048 : n - 2048], ref_audio[0, 2048 : n - 2048])[0, 1] > 0.9
    frames, _ = read_video(ref)
    binary = ((frames < 40) | (frames > 215)).float().mean()
    assert binary > 0.95, "Canny output stays near-binary after H.264"
    assert not probe(clips / "references" / "sub" / "b.mp4").has_audio, "no audio in, no audio out"

    rows = list(csv.DictReader((clips / "references.csv").read_text().splitlines()))
    assert [(r["media_path"], r["reference_video"]) for r in rows] == [
        ("a.mp4", "references/a.mp4"),
        ("sub/b.mp4", "references/sub/b.mp4"),
    ]


def test_grayscale_downscale_blur_and_no_audio_videos(clips, tmp_path):
    compute_references(clips / "a.mp4", ["grayscale"], out_dir=tmp_path / "gray", with_audio=False)
    frames, _ = read_video(tmp_path / "gray" / "a.mp4")
    assert (frames[..., 0].int() - frames[..., 2].int()).abs().max() <= 3
    assert not probe(tmp_path / "gray" / "a.mp4").has_audio
    compute_references(clips / "a.mp4", ["downscale"], out_dir=tmp_path / "small")
    info = probe(tmp_path / "small" / "a.mp4", count_frames=True)
    assert (info.width, info.height, info.num_frames) == (WIDTH // 2, HEIGHT // 2, FRAMES) and info.has_audio
    compute_references(clips / "a.mp4", ["blur"], out_dir=tmp_path / "blur")
    source, _ = read_video(clips / "a.mp4")
    blurred, _ = read_video(tmp_path / "blur" / "a.mp4")
    assert _high_frequency_energy(blurred.numpy()) < 0.3 * _high_frequency_energy(source.numpy())


def test_user_transforms_by_registration_and_import_path(clips, tmp_path, monkeypatch):
    @register_transform("invert")
    def invert(frames, amount: int = 255):
        return amount - frames

    try:
        compute_references(clips / "a.mp4", ["invert"], ["amount=255"], out_dir=tmp_path / "inv")
        source, _ = read_video(clips / "a.mp4")
        inverted, _ = read_video(tmp_path / "inv" / "a.mp4")
        assert (inverted.float() - (255 - source.float())).abs().mean() < 4
    finally:
        TRANSFORMS.pop("invert")

    plugin = tmp_path / "my_transforms.py"
    plugin.write_text(
        "import numpy as np\n\n"
        "def red_only(frames, channel=1):\n"
        "    out = np.zeros_like(frames)\n"
        "    out[..., channel] = frames[..., channel]\n"
        "    return out\n"
    )
    spec = f"{plugin}:red_only"
    result = _run(clips / "a.mp4", "-t", spec, "-p", f"{spec}.channel=0", "--out-dir", tmp_path / "red")
    assert result.exit_code == 0, result.output
    red, _ = read_video(tmp_path / "red" / "a.mp4")
    assert red[..., 1:].float().mean() < 6 and red[..., 0].float().mean() > 30

    monkeypatch.syspath_prepend(str(tmp_path))
    result = _run(clips / "a.mp4", "-t", "my_transforms:red_only", "-t", "downscale", "--out-dir", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert probe(tmp_path / "m" / "a.mp4").width == WIDTH // 2

    result = _run(clips / "a.mp4", "-t", "my_transforms:nothing_here")
    assert result.exit_code == 2 and "has no function 'nothing_here'" in result.output


def test_pairing_jsonl_carries_dataset_columns_and_captions(clips, tmp_path):
    dataset = clips / "dataset.jsonl"
    dataset.write_text(
        json.dumps({"video": "a.mp4", "caption": "old caption", "audio": "a.mp4"})
        + "\n"
        + json.dumps({"video": "sub/b.mp4", "caption": "a second clip"})
        + "\n"
    )
    captions = tmp_path / "captions.csv"
    with open(captions, "w", newline="") as f:
        csv.writer(f).writerows([["media_path", "caption"], [str(clips / "a.mp4"), "edges of a moving square"]])
    result = _run(dataset, "--transform", "grayscale", "--captions", captions, "--no-audio")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (clips / "dataset_reference.jsonl").read_text().splitlines()]
    assert rows == [
        {
            "media_path": "a.mp4",
            "reference_video": "references/a.mp4",
            "caption": "edges of a moving square",
            "audio": "a.mp4",
        },
        {"media_path": "sub/b.mp4", "reference_video": "references/sub/b.mp4", "caption": "a second clip"},
    ]
    for row in rows:
        assert probe(clips / row["reference_video"], count_frames=True).num_frames == FRAMES

    (clips / "sub" / "b.txt").write_text("a sidecar caption\n")
    out = tmp_path / "pairs.csv"
    result = _run(clips, "--transform", "canny", "--output", out, "--out-dir", tmp_path / "refs")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [r["media_path"] for r in rows] == ["clips/a.mp4", "clips/sub/b.mp4"], "earlier references are not clips"
    assert [r["caption"] for r in rows] == ["", "a sidecar caption"]
    assert all((out.parent / r["reference_video"]).is_file() for r in rows)
