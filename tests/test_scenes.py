"""Tests for ltx_trainer.data.scenes and `ltx-trainer split-scenes`: real clips, real PySceneDetect, real PyAV."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ltx_trainer.commands.split_scenes import split_scenes
from ltx_trainer.data.media import probe, read_audio, read_video, write_video
from ltx_trainer.data.scenes import (
    Scene,
    check_detector_params,
    detect_scenes,
    format_timecode,
    parse_length,
    save_previews,
    scene_file_name,
    split_folder,
    split_video,
)
from media_fixtures import (
    CommandResult,
    clip_audio,
    clip_frames,
    invoke_command,
    make_audio_only,
    make_clip,
    make_corrupt,
    make_damaged,
    make_image,
    make_truncated,
    make_video_without_audio,
    make_wav,
    scene_frequencies,
)

W, H, N, CUTS = 128, 96, 96, (30, 61)


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """96 frames at 24 fps, hard cuts at 30 and 61, stereo audio that changes at the cuts."""
    return make_clip(tmp_path_factory.mktemp("clips") / "cuts.mp4", N, W, H, cuts=CUTS)


def _bounds(scenes: list[Scene]) -> list[tuple[int, int]]:
    return [(s.start_frame, s.end_frame) for s in scenes]


def _peak_hz(signal: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal)), n=1 << 15))
    return float(np.argmax(spectrum) * sample_rate / (1 << 15))


# ----------------------------------------------------------------------------------------------------------------------
# Detection
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("detector", ["content", "adaptive", "histogram"])
def test_detectors_find_hard_cuts(cut_clip: Path, detector: str) -> None:
    scenes = detect_scenes(cut_clip, detector)
    assert len(scenes) == 3
    found = [s.start_frame for s in scenes[1:]]
    assert all(abs(f - c) <= 2 for f, c in zip(found, CUTS, strict=True)), found
    assert scenes[0].start_frame == 0 and scenes[-1].end_frame == N
    assert all(a.end_frame == b.start_frame for a, b in itertools.pairwise(scenes))
    assert scenes[-1].end_seconds == pytest.approx(N / 24)


def test_threshold_detector_finds_a_fade_to_black(tmp_path: Path) -> None:
    frames = clip_frames(96, W, H)
    frames[40:48] = 0  # eight black frames: fade out, fade in
    path = tmp_path / "fade.mp4"
    write_video(path, frames, fps=24, preset="ultrafast")
    scenes = detect_scenes(path, "threshold")
    assert len(scenes) == 2
    assert 40 <= scenes[1].start_frame <= 48


def test_clip_without_cut_is_one_scene(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "still.mp4", 40, W, H)
    for detector in ("content", "adaptive", "histogram"):
        scenes = detect_scenes(path, detector)
        assert _bounds(scenes) == [(0, 40)], detector
        assert scenes[0].duration == pytest.approx(40 / 24)


def test_detector_params_are_checked_and_converted(cut_clip: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) treshold.*allowed: threshold, min_scene_len"):
        detect_scenes(cut_clip, "content", {"treshold": 20})
    with pytest.raises(ValueError, match="unknown detector 'sharp'"):
        detect_scenes(cut_clip, "sharp")
    # strings from the command line become the types PySceneDetect wants; threshold is adaptive_threshold there
    assert check_detector_params("adaptive", {"threshold": 2.5}) == {"adaptive_threshold": 2.5}
    scenes = detect_scenes(cut_clip, "content", {"threshold": "20", "luma_only": "true", "filter_mode": "suppress"})
    assert len(scenes) == 3
    scenes = detect_scenes(cut_clip, "adaptive", {"threshold": "2.5", "window_width": "3"})
    assert len(scenes) == 3
    with pytest.raises(ValueError, match="luma_only='maybe'"):
        detect_scenes(cut_clip, "content", {"luma_only": "maybe"})
    # an impossible threshold finds nothing: still one scene
    assert _bounds(detect_scenes(cut_clip, "content", {"threshold": 255})) == [(0, N)]


def test_min_max_scene_len_and_max_scenes(cut_clip: Path) -> None:
    # scenes are 30, 31 and 35 frames long
    assert _bounds(detect_scenes(cut_clip, min_scene_len=31)) == [(30, 61), (61, 96)]
    assert _bounds(detect_scenes(cut_clip, min_scene_len="1.5s")) == []  # 36 frames: all dropped, none merged
    assert _bounds(detect_scenes(cut_clip, min_scene_len="00:00:01.250")) == [(0, 30), (30, 61), (61, 96)]

    pieces = detect_scenes(cut_clip, min_scene_len=1, max_scene_len=16)
    assert _bounds(pieces) == [(0, 16), (16, 30), (30, 46), (46, 61), (61, 77), (77, 93), (93, 96)]
    # pieces shorter than min_scene_len (the remainders) are dropped
    assert _bounds(detect_scenes(cut_clip, min_scene_len=15, max_scene_len="16")) == [
        (0, 16),
        (30, 46),
        (46, 61),
        (61, 77),
        (77, 93),
    ]
    assert _bounds(detect_scenes(cut_clip, max_scenes=2)) == [(0, 30), (30, 61)]
    with pytest.raises(ValueError, match="max_scene_len"):
        detect_scenes(cut_clip, min_scene_len=20, max_scene_len=10)


def test_skip_start_and_end(cut_clip: Path) -> None:
    scenes = detect_scenes(cut_clip, skip_start=10, skip_end="0.5s")  # 10 frames, 12 frames
    assert _bounds(scenes) == [(10, 30), (30, 61), (61, 84)]
    scenes = detect_scenes(cut_clip, skip_start=1.5, min_scene_len=1)  # 36 frames: the first two scenes are gone
    assert _bounds(scenes) == [(36, 61), (61, 96)]
    assert detect_scenes(cut_clip, skip_start="3s", skip_end="2s") == []


def test_lengths_and_timecodes() -> None:
    assert parse_length(48, 24.0) == 48
    assert parse_length("48", 24.0) == 48
    assert parse_length("48f", 24.0) == 48
    assert parse_length(2.0, 24.0) == 48
    assert parse_length("2s", 24.0) == 48
    assert parse_length("2.5", 24.0) == 60
    assert parse_length("00:00:02.000", 24.0) == 48
    assert parse_length("01:02.5", 10.0) == 625
    assert parse_length("1:00:00", 1.0) == 3600
    for bad in ("2x", "-3", "00:61:00", "", True):
        with pytest.raises(ValueError):
            parse_length(bad, 24.0)

    assert format_timecode(36, 24.0, "frames") == "36"
    assert format_timecode(36, 24.0, "seconds") == "1.500"
    assert format_timecode(36, 24.0, "timecode") == "00:00:01.500"
    assert format_timecode(90_061 * 24 + 12, 24.0, "timecode") == "25:01:01.500"
    assert format_timecode(1001, 30000 / 1001, "timecode") == "00:00:33.400"
    with pytest.raises(ValueError, match="timecode_format"):
        format_timecode(1, 24.0, "smpte")  # type: ignore[arg-type]

    scene = Scene(30, 61, 24.0)
    assert scene.timecodes("seconds") == ("1.250", "2.542")
    assert scene_file_name("clip", 2, scene) == "clip-Scene-002"
    assert scene_file_name("clip", 2, scene, "timecode") == "clip-Scene-002_00-00-01.250_00-00-02.542"
    with pytest.raises(ValueError):
        Scene(5, 5, 24.0)


# ----------------------------------------------------------------------------------------------------------------------
# Splitting
# ----------------------------------------------------------------------------------------------------------------------


def test_split_video_is_frame_exact_and_keeps_audio(cut_clip: Path, tmp_path: Path) -> None:
    scenes = detect_scenes(cut_clip)
    clips = split_video(cut_clip, scenes, tmp_path / "out")
    assert [c.name for c in clips] == ["cuts-Scene-001.mp4", "cuts-Scene-002.mp4", "cuts-Scene-003.mp4"]
    source, _ = read_video(cut_clip)
    source = source.numpy().astype(np.float32)
    for number, (scene, clip) in enumerate(zip(scenes, clips, strict=True)):
        info = probe(clip, count_frames=True)
        assert abs(info.num_frames - scene.num_frames) <= 1
        assert info.fps == pytest.approx(24.0)
        assert (info.width, info.height) == (W, H)
        # every frame of the clip is the matching frame of the source (re-encoding changes pixels a little)
        frames, _ = read_video(clip)
        for j, frame in enumerate(frames.numpy().astype(np.float32)):
            nearest = int(np.abs(source - frame).mean(axis=(1, 2, 3)).argmin())
            assert nearest == scene.start_frame + j
        # the audio is there, as long as the scene (within one AAC frame), and is the scene's own tone
        assert info.has_audio and info.audio_channels == 2
        audio, rate = read_audio(clip)
        assert abs(audio.shape[1] / rate - scene.duration) < 0.03
        expected = scene_frequencies(number, 2)
        for channel in range(2):
            for part in (audio[channel, :2048], audio[channel, -2048:]):
                assert _peak_hz(part.numpy(), rate) == pytest.approx(expected[channel], rel=0.02)


def test_clip_export_is_byte_reproducible(cut_clip: Path, tmp_path: Path) -> None:
    # The same scene exported here and by a fresh process (its first encode, where x264's mbtree used to vary) gives
    # the same bytes: clips feed the cache fingerprints and the demo's LoRA.
    scene = detect_scenes(cut_clip)[1]
    here = split_video(cut_clip, [scene], tmp_path / "here")[0]
    code = (
        "import sys; from pathlib import Path; from ltx_trainer.data.scenes import detect_scenes, split_video; "
        "split_video(Path(sys.argv[1]), [detect_scenes(Path(sys.argv[1]))[1]], Path(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", code, str(cut_clip), str(tmp_path / "fresh")], check=True)
    assert (tmp_path / "fresh" / here.name).read_bytes() == here.read_bytes()


def test_split_video_without_audio_and_overlapping_scenes(tmp_path: Path) -> None:
    path = make_video_without_audio(tmp_path / "mute.mp4", num_frames=40, width=W, height=H)
    scenes = [Scene(0, 25, 24.0), Scene(10, 40, 24.0)]
    clips = split_video(path, scenes, tmp_path / "out", name="m", timecodes_in_name="frames")
    assert [c.name for c in clips] == ["m-Scene-001_0_25.mp4", "m-Scene-002_10_40.mp4"]
    for scene, clip in zip(scenes, clips, strict=True):
        info = probe(clip, count_frames=True)
        assert info.num_frames == scene.num_frames and not info.has_audio
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


def test_previews_first_middle_last_upright(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "turned.mp4", 40, W, H, rotation=90)
    previews = save_previews(path, [Scene(0, 20, 24.0), Scene(20, 40, 24.0)], tmp_path / "p", image_format="png")
    assert [[p.name for p in scene] for scene in previews] == [
        ["turned-Scene-001-01.png", "turned-Scene-001-02.png", "turned-Scene-001-03.png"],
        ["turned-Scene-002-01.png", "turned-Scene-002-02.png", "turned-Scene-002-03.png"],
    ]
    first, _ = read_video(previews[0][0])
    assert first.shape == (1, W, H, 3)  # displayed upright: a 90-degree turn swaps width and height
    expected = np.rot90(clip_frames(40, W, H)[0], k=1)
    assert np.abs(first[0].numpy().astype(np.float32) - expected).mean() < 6
    clips = split_video(path, [Scene(0, 20, 24.0)], tmp_path / "c")
    assert probe(clips[0]).width == H  # the clip keeps the display rotation


# ----------------------------------------------------------------------------------------------------------------------
# Folders, report, command
# ----------------------------------------------------------------------------------------------------------------------


def test_split_folder_skips_a_corrupt_input_and_reports(cut_clip: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    make_clip(inputs / "a.mp4", 48, W, H, cuts=[24], seed=1)
    make_clip(inputs / "sub" / "a.mp4", 40, W, H, seed=2)  # same stem in a sub-folder
    make_corrupt(inputs / "broken.mp4")
    (inputs / "notes.txt").write_text("not a video")
    out = tmp_path / "out"

    summary = split_folder(inputs, out, timecode_format="timecode", show_progress=False)

    assert [r.path.name for r in summary.results] == ["a.mp4", "broken.mp4", "a.mp4"]
    assert [r.name for r in summary.results] == ["a", "broken", "a-2"]
    assert len(summary.succeeded) == 2 and len(summary.failed) == 1
    broken = summary.failed[0]
    assert broken.path.name == "broken.mp4" and "cannot open" in (broken.error or "")
    assert [len(r.scenes) for r in summary.succeeded] == [2, 1]
    assert sorted(p.name for p in summary.clips) == ["a-2-Scene-001.mp4", "a-Scene-001.mp4", "a-Scene-002.mp4"]
    assert all(p.parent == out for p in summary.clips)

    html = summary.report.read_text()
    assert "broken.mp4" in html and "cannot open" in html
    for result in summary.succeeded:
        for k, scene in enumerate(result.scenes):
            assert f'id="{result.name}-scene-{k + 1}"' in html
            start, end = scene.timecodes("timecode")
            assert f"<td>{start}</td><td>{end}</td>" in html
            assert result.clips[k] is not None and f'href="{result.clips[k].name}"' in html
            assert len(result.previews[k]) == 3
            for image in result.previews[k]:
                assert image.is_file() and f'src=".previews/{image.name}"' in html

    data = json.loads(summary.scene_list.read_text())
    assert [e["error"] is None for e in data["inputs"]] == [True, False, True]
    assert data["inputs"][0]["scenes"][1]["start"] == "00:00:01.000"
    assert data["inputs"][0]["scenes"][1]["clip"] == "a-Scene-002.mp4"

    # detect-only: report and previews, no clips
    summary = split_folder([cut_clip], tmp_path / "detect", split=False, show_progress=False)
    assert summary.clips == [] and not list((tmp_path / "detect").glob("*.mp4"))
    assert len(summary.results[0].previews) == 3

    with pytest.raises(ValueError, match="unknown parameter"):
        split_folder(inputs, out, detector_params={"nope": 1}, show_progress=False)
    with pytest.raises(ValueError, match="skip_end"):
        split_folder(inputs, out, skip_end="soon", show_progress=False)


def _split(*args: str) -> CommandResult:
    return invoke_command(split_scenes, *args)


def test_split_scenes_command(cut_clip: Path, tmp_path: Path) -> None:
    broken = make_corrupt(tmp_path / "broken.mp4")
    out = tmp_path / "out"
    args = [str(cut_clip), str(broken), "-o", str(out), "--no-progress"]
    result = _split(*args, "--detector", "adaptive", "--threshold", "2.5", "--max-scene-len", "1s")
    assert result.exit_code == 1, result.output  # one input failed: a partial result, after writing everything
    assert "1 of 2 input(s) failed" in result.output
    clips = sorted(p.name for p in out.glob("*.mp4"))
    assert clips == [f"cuts-Scene-{k:03d}.mp4" for k in range(1, 4)]  # 24 + 6, 24 + 7, 24 + 11 (remainders dropped)
    assert "broken.mp4" in (out / "scenes.html").read_text()

    options = ["--no-progress", "--no-preview", "--timecode-format", "seconds", "--timecode-in-name"]
    options += ["-p", "luma_only=true", "--skip-start", "00:00:01.250", "--max-scenes", "1"]
    result = _split(args[0], "-o", str(tmp_path / "o2"), *options)
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "o2").glob("*.mp4")] == ["cuts-Scene-001_1.250_2.542.mp4"]
    assert not (tmp_path / "o2" / ".previews").exists()

    result = _split(str(broken), "-o", str(tmp_path / "o3"), "--no-progress")
    assert result.exit_code == 1  # nothing succeeded

    result = _split(*args, "-p", "lumaonly=1")
    assert result.exit_code == 2 and "luma_only" in result.output  # the message lists the allowed names
    result = _split(*args, "--min-scene-len", "2 seconds")
    assert result.exit_code == 2 and "min_scene_len" in result.output


# ----------------------------------------------------------------------------------------------------------------------
# Reruns, damaged and unsupported inputs (issue 9: nothing lost, nothing silent)
# ----------------------------------------------------------------------------------------------------------------------


def test_rerun_into_the_same_folder_loses_nothing(tmp_path: Path) -> None:
    make_clip(tmp_path / "b.avi", 40, W, H, seed=1)
    make_clip(tmp_path / "b.mp4", 40, W, H, seed=2)  # same stem, another video
    out = tmp_path / "clips"
    first = split_folder([tmp_path / "b.avi"], out, show_progress=False)
    avi_clip = first.clips[0]
    avi_bytes = avi_clip.read_bytes()

    second = split_folder([tmp_path / "b.mp4"], out, show_progress=False)
    assert second.clips[0] != avi_clip and avi_clip.read_bytes() == avi_bytes  # not overwritten
    assert sorted(p.name for p in out.glob("*.mp4")) == ["b-2-Scene-001.mp4", "b-Scene-001.mp4"]
    data = json.loads(second.scene_list.read_text())
    assert sorted(Path(e["input"]).name for e in data["inputs"]) == ["b.avi", "b.mp4"]  # the manifest accumulates
    html = second.report.read_text()
    assert "b-Scene-001.mp4" in html and "b-2-Scene-001.mp4" in html  # and so does the report

    # A rerun over a source already split is a resume: same names, nothing re-encoded.
    mtime = avi_clip.stat().st_mtime_ns
    third = split_folder([tmp_path / "b.mp4", tmp_path / "b.avi"], out, show_progress=False)
    assert [r.resumed for r in third.results] == [True, True]
    assert [r.name for r in third.results] == ["b-2", "b"]
    assert avi_clip.stat().st_mtime_ns == mtime
    assert len(json.loads(third.scene_list.read_text())["inputs"]) == 2

    # Changed settings redo that source under its own name and remove its clips that no longer exist.
    fourth = split_folder([tmp_path / "b.avi"], out, max_scene_len=20, show_progress=False)
    assert not fourth.results[0].resumed
    assert sorted(p.name for p in out.glob("b-Scene-*.mp4")) == ["b-Scene-001.mp4", "b-Scene-002.mp4"]
    assert (out / "b-2-Scene-001.mp4").is_file()


def _truncated_clip(tmp_path: Path) -> Path:
    """A 5 s camera-like mp4 (index at the front, as cameras and write_video write it) cut to 30 % of its bytes."""
    full = tmp_path / "full.mp4"
    audio = clip_audio(5 * 44100, 44100, 2, [2.5])
    write_video(full, clip_frames(120, W, H, cuts=[60]), fps=24, audio=audio, audio_sample_rate=44100)
    return make_truncated(full, tmp_path / "cut.mp4", keep_fraction=0.3)


def test_truncated_footage_is_reported_as_damaged(tmp_path: Path) -> None:
    cut = _truncated_clip(tmp_path)
    assert probe(cut).duration == pytest.approx(5.0)  # the header still claims the whole length

    summary = split_folder([cut], tmp_path / "out", show_progress=False)
    result = summary.results[0]
    assert result.ok and summary.damaged == [result]
    assert "truncated or damaged" in (result.damaged or "") and "of the 120 frames" in (result.damaged or "")
    assert result.duration < 0.5 * 5.0  # what decoded, not what the header claims
    entry = json.loads(summary.scene_list.read_text())["inputs"][0]
    assert entry["damaged"] == result.damaged and entry["duration"] == pytest.approx(result.duration)
    assert "truncated or damaged" in summary.report.read_text()

    # The command says so, exits 1, and its frames bar ends where decoding ended (not at the header's count).
    command = _split(str(cut), "-o", str(tmp_path / "out2"))
    assert command.exit_code == 1 and "1 of 1 input(s) damaged (clips kept)" in command.output
    assert "failed" not in command.output.splitlines()[-1]
    done, total = re.search(r"frames\D+(\d+)/(\d+)", command.output).groups()  # type: ignore[union-attr]
    assert done == total


def test_footage_the_decoder_concealed_is_reported_as_damaged(tmp_path: Path) -> None:
    """A zeroed run mid-file decodes every frame without a bad packet; the decoder flags the frame it concealed."""
    import logging

    from ltx_trainer import logger

    good = make_clip(tmp_path / "good.mp4", 96, W, H, cuts=[48])
    zeroed = make_damaged(good, tmp_path / "zeroed.mp4", start_fraction=0.5, length_fraction=0.008, zeros=True)
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        summary = split_folder([good, zeroed], tmp_path / "out", show_progress=False)
    finally:
        logger.removeHandler(handler)
    clean, damaged = summary.results
    assert clean.ok and clean.damaged is None
    assert damaged.ok and summary.damaged == [damaged]
    assert "decoder concealed" in (damaged.damaged or "") and "truncated" not in (damaged.damaged or "")
    concealed = [m for m in warnings if "zeroed.mp4" in m and "concealed" in m]
    assert len(concealed) == 1, warnings  # once, though detection and export both decode it
    assert "decoder concealed" in summary.report.read_text()


def test_every_input_is_accounted_for(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    make_clip(raw / "good.mp4", 40, W, H)
    make_clip(raw / "one.mp4", 1, W, H)  # a single frame: nothing to cut
    make_image(raw / "still.png", W, H)
    make_audio_only(raw / "song.mp3")
    make_wav(raw / "voice.wav")
    (raw / "notes.txt").write_text("not media")

    summary = split_folder(raw, tmp_path / "out", show_progress=False)
    assert sorted(p.name for p in summary.skipped) == ["notes.txt", "song.mp3", "still.png", "voice.wav"]
    assert "still image" in summary.skipped[raw / "still.png"] and "audio only" in summary.skipped[raw / "song.mp3"]
    assert "not a supported kind" in summary.skipped[raw / "notes.txt"]
    one = next(r for r in summary.results if r.path.name == "one.mp4")
    assert one.ok and not one.scenes and "single frame" in (one.note or "")
    html = summary.report.read_text()
    assert "still.png" in html and "single frame" in html

    result = _split(str(raw), "-o", str(tmp_path / "out2"), "--no-progress")
    assert result.exit_code == 0, result.output  # good.mp4 gave a clip
    for name in ("still.png", "song.mp3", "voice.wav", "notes.txt", "single frame"):
        assert name in result.output

    # Nothing produced (a PNG and a 1-frame video, or a PNG given by name): exit 1, each listed with its reason.
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    make_image(nothing / "still.png", W, H)
    make_clip(nothing / "one.mp4", 1, W, H)
    result = _split(str(nothing), "-o", str(tmp_path / "out3"), "--no-progress")
    assert result.exit_code == 1 and "nothing produced" in result.output
    assert "still.png" in result.output and "single frame" in result.output
    result = _split(str(nothing / "still.png"), "-o", str(tmp_path / "out4"), "--no-progress")
    assert result.exit_code == 1 and "still image" in result.output


def test_a_corrupt_packet_is_reported_once_per_file(tmp_path: Path) -> None:
    import logging

    from ltx_trainer import logger

    good = make_clip(tmp_path / "good.mp4", 96, W, H, cuts=[48])
    damaged = make_damaged(good, tmp_path / "damaged.mp4", start_fraction=0.3, length_fraction=0.02)
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:  # detection, clip export and the audio of each scene all decode the file again
        summary = split_folder([damaged], tmp_path / "out", show_progress=False)
    finally:
        logger.removeHandler(handler)
    assert summary.results[0].ok
    bad_packets = [m for m in warnings if "damaged.mp4" in m and "undecodable packet" in m]
    assert len(bad_packets) == 1, warnings  # not once per decoding pass


def test_odd_sized_footage_says_its_clips_are_padded(tmp_path: Path) -> None:
    import av

    odd = tmp_path / "odd.mkv"  # FFV1 in 4:4:4 stores odd sizes; H.264 clips (4:2:0) cannot
    with av.open(str(odd), mode="w") as container:
        stream = container.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 65, 47, "yuv444p"
        for index, image in enumerate(clip_frames(24, 65, 47)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    summary = split_folder([odd], tmp_path / "out", show_progress=False)
    result = summary.results[0]
    assert result.ok and len(result.clips) == 1
    assert result.note == (
        "odd size 65x47: clips padded to 66x48 by repeating the last row/column (H.264 in yuv420p needs even sizes)"
    )
    assert probe(result.clips[0]).width == 66 and probe(result.clips[0]).height == 48
    assert result.note in summary.report.read_text()
    command = _split(str(odd), "-o", str(tmp_path / "out2"))
    assert "padded to 66x48" in command.output
