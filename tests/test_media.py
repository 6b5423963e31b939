"""Tests for ltx_trainer.data.media: real files written and read with PyAV, no mocks."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from ltx_trainer import logger
from ltx_trainer.data.media import (
    MediaError,
    MediaInfo,
    check_num_frames,
    check_resolution,
    nearest_valid_num_frames,
    nearest_valid_size,
    probe,
    read_audio,
    read_video,
    resize_and_crop,
    write_audio,
    write_image,
    write_video,
)
from media_fixtures import (
    clip_audio,
    clip_frame,
    clip_frames,
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

W, H = 64, 48


def _mae(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


def _corr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(np.asarray(a[:n], dtype=np.float64), np.asarray(b[:n], dtype=np.float64))[0, 1])


def _peak_hz(signal: torch.Tensor, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal.numpy()))
    return float(np.argmax(spectrum) * sample_rate / len(signal))


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


# ---------------------------------------------------------------------------------------------------------------------
# Video round trips and formats
# ---------------------------------------------------------------------------------------------------------------------


def test_write_read_roundtrip(tmp_path: Path) -> None:
    source = torch.from_numpy(clip_frames(17, W, H, cuts=[8]))
    path = tmp_path / "out.mp4"
    write_video(path, source, fps=24)

    frames, fps = read_video(path)
    assert frames.dtype == torch.uint8
    assert tuple(frames.shape) == (17, H, W, 3)
    assert fps == 24.0
    assert _mae(frames, source) < 8.0  # H.264 crf 18 is lossy but close
    for i in (0, 8, 16):  # every frame lands at its own index (no shift)
        errors = [_mae(frames[i], source[j]) for j in range(17)]
        assert int(np.argmin(errors)) == i

    info = probe(path)
    assert isinstance(info, MediaInfo)
    assert (info.width, info.height, info.fps, info.num_frames) == (W, H, 24.0, 17)
    assert info.duration == pytest.approx(17 / 24, abs=1e-3)
    assert not info.has_audio and info.audio_channels == 0
    assert probe(path, count_frames=True).num_frames == 17


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi", ".webm", ".mov"])
def test_read_video_containers(tmp_path: Path, suffix: str) -> None:
    path = make_clip(tmp_path / f"clip{suffix}", 17, W, H, fps=24, cuts=[8])
    frames, fps = read_video(path)
    assert tuple(frames.shape) == (17, H, W, 3)
    assert fps == 24.0
    assert _mae(frames, clip_frames(17, W, H, cuts=[8])) < 12.0
    info = probe(path)
    assert (info.width, info.height, info.fps, info.num_frames) == (W, H, 24.0, 17)
    assert info.has_audio and info.audio_channels == 2


def test_avi_b_frames_counted_in_output_order(tmp_path: Path) -> None:
    # MPEG-4 with B-frames in AVI: packet timestamps start at 1 and do not follow display order.
    path = make_clip(tmp_path / "clip.avi", 17, W, H, cuts=[5, 11], audio=False)
    frames, _ = read_video(path)
    source = clip_frames(17, W, H, cuts=[5, 11])
    assert frames.shape[0] == 17
    for i in range(17):
        errors = [_mae(frames[i], source[j]) for j in range(max(0, i - 2), min(17, i + 3))]
        assert int(np.argmin(errors)) == min(i, 2)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_display_rotation_is_applied(tmp_path: Path, rotation: int) -> None:
    path = make_clip(tmp_path / "phone.mp4", 5, W, H, audio=False, rotation=rotation)
    frames, _ = read_video(path)
    upright = np.rot90(clip_frames(5, W, H), k=rotation // 90, axes=(1, 2))
    assert tuple(frames.shape) == upright.shape
    assert _mae(frames, upright) < 8.0
    info = probe(path)
    assert (info.width, info.height) == (upright.shape[2], upright.shape[1])


def test_read_video_start_and_max_frames(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "clip.mkv", 17, W, H, audio=False)
    full, _ = read_video(path)
    part, fps = read_video(path, max_frames=5, start_frame=3)
    assert fps == 24.0
    assert torch.equal(part, full[3:8])
    tail, _ = read_video(path, start_frame=15, max_frames=10)
    assert torch.equal(tail, full[15:])
    with pytest.raises(MediaError, match="past the last frame"):
        read_video(path, start_frame=40)


def test_read_video_fps_resampling(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "clip.mp4", 17, W, H, fps=24, audio=False)
    full, _ = read_video(path)
    half, fps = read_video(path, fps=12)
    assert fps == 12.0
    assert torch.equal(half, full[::2])
    double, fps = read_video(path, fps=48, max_frames=10)
    assert fps == 48.0
    assert double.shape[0] == 10
    assert torch.equal(double[0::2], full[:5]) and torch.equal(double[1::2], full[1:6])
    shifted, _ = read_video(path, fps=8, start_frame=2)
    assert torch.equal(shifted, full[2::3])


def test_write_video_float_input(tmp_path: Path) -> None:
    source = clip_frames(9, W, H)
    write_video(tmp_path / "u8.mp4", torch.from_numpy(source), fps=25)
    write_video(tmp_path / "f.mp4", torch.from_numpy(source).float() / 255.0, fps=25)
    from_u8, _ = read_video(tmp_path / "u8.mp4")
    from_float, fps = read_video(tmp_path / "f.mp4")
    assert fps == 25.0
    assert tuple(from_float.shape) == (9, H, W, 3)
    assert _mae(from_float, from_u8) < 1.0
    assert _mae(from_float, source) < 8.0


def test_write_video_odd_size_is_padded(tmp_path: Path) -> None:
    source = np.full((3, 25, 33, 3), 128, dtype=np.uint8)
    write_video(tmp_path / "odd.mp4", source, fps=24)
    frames, _ = read_video(tmp_path / "odd.mp4")
    assert tuple(frames.shape) == (3, 26, 34, 3)
    assert _mae(frames, np.full((3, 26, 34, 3), 128)) < 2.0


def test_write_video_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[F, H, W, 3\]"):
        write_video(tmp_path / "bad.mp4", torch.zeros(4, 16, 16), fps=24)
    with pytest.raises(ValueError, match="audio_sample_rate"):
        write_video(
            tmp_path / "bad.mp4", torch.zeros(4, 16, 16, 3, dtype=torch.uint8), fps=24, audio=torch.zeros(2, 10)
        )
    assert list(tmp_path.iterdir()) == []


def test_writes_are_atomic(tmp_path: Path) -> None:
    frames = torch.from_numpy(clip_frames(5, W, H))
    write_video(tmp_path / "a.mp4", frames, fps=24, audio=torch.zeros(2, 9000), audio_sample_rate=44100)
    write_image(tmp_path / "a.png", frames[0])
    write_audio(tmp_path / "a.wav", torch.zeros(2, 1000), 16000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "a.png", "a.wav"]

    # A failing encode (unknown x264 preset) leaves neither a temp file nor a touched destination.
    before = (tmp_path / "a.mp4").read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - whatever FFmpeg raises, nothing may be left behind
        write_video(tmp_path / "a.mp4", frames, fps=24, preset="no-such-preset")
    assert (tmp_path / "a.mp4").read_bytes() == before
    assert _leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------------------


def test_images_read_as_one_frame(tmp_path: Path) -> None:
    png = make_image(tmp_path / "still.png", 40, 30)
    frames, fps = read_video(png)
    assert tuple(frames.shape) == (1, 30, 40, 3) and frames.dtype == torch.uint8
    assert fps == 1.0
    assert np.array_equal(frames[0].numpy(), clip_frame(0, 40, 30))  # png is lossless

    jpg = make_image(tmp_path / "still.jpg", 40, 30)
    frames, _ = read_video(jpg)
    assert tuple(frames.shape) == (1, 30, 40, 3)
    assert _mae(frames[0], clip_frame(0, 40, 30)) < 12.0

    info = probe(png)
    assert (info.width, info.height, info.num_frames, info.has_audio) == (40, 30, 1, False)


def test_write_image_roundtrip(tmp_path: Path) -> None:
    frame = torch.from_numpy(clip_frame(3, W, H))
    write_image(tmp_path / "f.png", frame)
    write_image(tmp_path / "f.jpg", frame.float() / 255.0)
    png, _ = read_video(tmp_path / "f.png")
    jpg, _ = read_video(tmp_path / "f.jpg")
    assert torch.equal(png[0], frame)
    assert _mae(jpg[0], frame) < 12.0


# ---------------------------------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------------------------------


def test_audio_roundtrip_through_mp4(tmp_path: Path) -> None:
    sample_rate = 44100
    source = torch.from_numpy(clip_audio(round(25 / 24 * sample_rate), sample_rate, 2))
    frames = torch.from_numpy(clip_frames(25, W, H))
    path = tmp_path / "av.mp4"
    write_video(path, frames, fps=24, audio=source, audio_sample_rate=sample_rate)

    info = probe(path)
    assert info.has_audio and (info.audio_sample_rate, info.audio_channels) == (sample_rate, 2)
    assert read_video(path)[0].shape[0] == 25

    audio, rate = read_audio(path)
    assert rate == sample_rate
    assert audio.dtype == torch.float32 and audio.shape[0] == 2
    assert abs(audio.shape[1] - source.shape[1]) <= 1024  # within one AAC frame
    assert audio.abs().max() <= 1.0
    for channel in range(2):
        assert _corr(audio[channel], source[channel]) > 0.98
    assert _peak_hz(audio[0], rate) == pytest.approx(scene_frequencies(0, 2)[0], abs=2)
    assert _peak_hz(audio[1], rate) == pytest.approx(scene_frequencies(0, 2)[1], abs=2)


def test_write_video_mono_and_surround_audio_become_stereo(tmp_path: Path) -> None:
    frames = torch.from_numpy(clip_frames(12, W, H))
    mono = torch.from_numpy(clip_audio(24000, 48000, 1))
    write_video(tmp_path / "mono.mp4", frames, fps=24, audio=mono, audio_sample_rate=48000)
    audio, rate = read_audio(tmp_path / "mono.mp4")
    assert rate == 48000 and audio.shape[0] == 2
    assert _corr(audio[0], mono[0]) > 0.98 and _corr(audio[1], mono[0]) > 0.98
    assert float(audio[0].abs().max()) == pytest.approx(0.5, abs=0.05)  # duplicated, not attenuated

    surround = clip_audio(24000, 48000, 6)
    write_video(tmp_path / "surround.mp4", frames, fps=24, audio=surround, audio_sample_rate=48000)
    audio, _ = read_audio(tmp_path / "surround.mp4")
    assert audio.shape[0] == 2
    assert _corr(audio[0], surround[0]) > 0.4 and abs(_corr(audio[0], surround[1])) < 0.1


def test_write_video_refuses_non_finite_audio_by_name(tmp_path: Path) -> None:
    audio = torch.zeros(2, 4800)
    audio[1, 7] = float("nan")
    with pytest.raises(ValueError, match="1 non-finite samples"):
        write_video(tmp_path / "nan.mp4", torch.from_numpy(clip_frames(4, W, H)), 24, audio, 48000)
    assert not (tmp_path / "nan.mp4").exists()


def test_audio_roundtrip_through_wav(tmp_path: Path) -> None:
    source = torch.from_numpy(clip_audio(8000, 16000, 2))
    write_audio(tmp_path / "a.wav", source, 16000)
    audio, rate = read_audio(tmp_path / "a.wav")
    assert rate == 16000
    assert tuple(audio.shape) == (2, 8000)
    assert float((audio - source).abs().max()) < 1e-3  # 16-bit quantisation only
    info = probe(tmp_path / "a.wav")
    assert (info.has_audio, info.audio_sample_rate, info.audio_channels, info.num_frames) == (True, 16000, 2, 0)


def test_read_audio_from_clip_with_cuts(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "clip.mp4", 24, W, H, fps=24, cuts=[12], sample_rate=44100)
    audio, rate = read_audio(path)
    assert rate == 44100 and audio.shape[0] == 2
    source = clip_audio(audio.shape[1], rate, 2, cut_times=[0.5])
    first, second = slice(2000, 20000), slice(24000, 42000)  # away from the cut and the edges
    assert _corr(audio[0, first], source[0, first]) > 0.98
    assert _corr(audio[1, second], source[1, second]) > 0.98
    assert scene_frequencies(0, 2) != scene_frequencies(1, 2)


def test_mono_is_duplicated_to_stereo(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "mono.wav", seconds=0.5, sample_rate=16000, channels=1)
    audio, rate = read_audio(path)
    assert rate == 16000 and tuple(audio.shape) == (2, 8000)
    assert torch.equal(audio[0], audio[1])
    source = clip_audio(8000, 16000, 1)[0]
    assert float((audio[0] - torch.from_numpy(source)).abs().max()) < 1e-3  # duplicated, not attenuated
    kept, _ = read_audio(path, channels=None)
    assert kept.shape[0] == 1


def test_surround_is_downmixed_to_stereo(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "surround.wav", seconds=0.5, sample_rate=16000, channels=6)  # 5.1: FL FR FC LFE BL BR
    assert probe(path).audio_channels == 6
    audio, _ = read_audio(path)
    assert tuple(audio.shape) == (2, 8000)
    source = clip_audio(8000, 16000, 6)
    assert _corr(audio[0], source[0]) > 0.5 and abs(_corr(audio[0], source[1])) < 0.05  # FL left only
    assert _corr(audio[1], source[1]) > 0.5 and abs(_corr(audio[1], source[0])) < 0.05  # FR right only
    assert _corr(audio[0], source[2]) > 0.3 and _corr(audio[1], source[2]) > 0.3  # centre in both
    assert read_audio(path, channels=None)[0].shape[0] == 6
    assert read_audio(path, channels=1)[0].shape[0] == 1

    seven = make_wav(tmp_path / "7.1.wav", seconds=0.25, sample_rate=16000, channels=8)
    assert tuple(read_audio(seven)[0].shape) == (2, 4000)


def test_resample_44k_to_16k(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "a.wav", seconds=1.0, sample_rate=44100, channels=2)
    audio, rate = read_audio(path, sample_rate=16000)
    assert rate == 16000
    assert abs(audio.shape[1] - 16000) <= 16
    assert _peak_hz(audio[0], rate) == pytest.approx(scene_frequencies(0, 2)[0], abs=2)
    assert _peak_hz(audio[1], rate) == pytest.approx(scene_frequencies(0, 2)[1], abs=2)


@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".flac", ".aac", ".m4a"])
def test_read_audio_formats(tmp_path: Path, suffix: str) -> None:
    path = make_audio_only(tmp_path / f"tone{suffix}", seconds=1.0, sample_rate=44100, channels=2)
    audio, rate = read_audio(path)
    assert rate == 44100 and audio.shape[0] == 2
    assert abs(audio.shape[1] - 44100) <= 2048
    assert _peak_hz(audio[0], rate) == pytest.approx(scene_frequencies(0, 2)[0], abs=2)
    with pytest.raises(MediaError, match="no video stream"):
        read_video(path)


def test_cover_art_is_not_a_video(tmp_path: Path) -> None:
    path = make_audio_only(tmp_path / "song.mp3", seconds=0.5, sample_rate=44100, channels=2, cover_art=True)
    with pytest.raises(MediaError, match=r"song\.mp3: no video stream"):
        read_video(path)
    info = probe(path)
    assert (info.width, info.num_frames, info.has_audio) == (0, 0, True)
    assert read_audio(path)[0].shape[0] == 2


def test_read_audio_start_and_duration(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "long.wav", seconds=6.0, sample_rate=16000, channels=2)
    full, _ = read_audio(path)
    assert tuple(full.shape) == (2, 96000)
    early, _ = read_audio(path, start=0.5, duration=1.0)
    assert torch.equal(early, full[:, 8000:24000])
    late, _ = read_audio(path, start=4.25, duration=1.0)  # past the seek threshold: seek, then trim
    assert torch.equal(late, full[:, 68000:84000])
    padded, _ = read_audio(path, start=5.5, duration=1.0)
    assert tuple(padded.shape) == (2, 16000)
    assert torch.equal(padded[:, :8000], full[:, 88000:])
    assert float(padded[:, 8000:].abs().max()) == 0.0
    resampled, rate = read_audio(path, sample_rate=8000, start=1.0, duration=0.5)
    assert rate == 8000 and tuple(resampled.shape) == (2, 4000)


def test_read_audio_seek_matches_full_decode_in_aac(tmp_path: Path) -> None:
    path = make_audio_only(tmp_path / "long.m4a", seconds=5.0, sample_rate=44100, channels=2)
    full, rate = read_audio(path)
    late, _ = read_audio(path, start=3.0, duration=1.0)
    assert tuple(late.shape) == (2, 44100)
    assert float((late - full[:, 3 * rate : 4 * rate]).abs().max()) < 1e-3


def test_no_audio_stream_raises(tmp_path: Path) -> None:
    path = make_video_without_audio(tmp_path / "silent.mp4", num_frames=5)
    with pytest.raises(MediaError, match="no audio stream") as error:
        read_audio(path)
    assert "silent.mp4" in str(error.value)
    assert isinstance(error.value, ValueError)
    assert not probe(path).has_audio


# ---------------------------------------------------------------------------------------------------------------------
# Broken files
# ---------------------------------------------------------------------------------------------------------------------


def test_corrupt_file_raises_media_error(tmp_path: Path) -> None:
    path = make_corrupt(tmp_path / "broken.mp4")
    for reader in (read_video, read_audio, probe):
        with pytest.raises(MediaError) as error:
            reader(path)
        assert "broken.mp4" in str(error.value)
    with pytest.raises(MediaError, match="does not exist"):
        read_video(tmp_path / "missing.mp4")


def test_truncated_file_returns_frames_or_media_error(tmp_path: Path) -> None:
    source = torch.from_numpy(clip_frames(17, W, H))
    write_video(tmp_path / "faststart.mp4", source, fps=24)  # index first: a cut file still decodes up to the cut
    make_clip(tmp_path / "clip.mkv", 17, W, H)
    make_clip(tmp_path / "index_at_end.mp4", 17, W, H)  # moov atom last: cutting the file loses the index
    for name in ("faststart.mp4", "clip.mkv"):
        truncated = make_truncated(tmp_path / name, tmp_path / f"cut_{name}", keep_fraction=0.8)
        frames, fps = read_video(truncated)
        assert 0 < frames.shape[0] < 17 and tuple(frames.shape[1:]) == (H, W, 3)
        assert fps == 24.0
        assert _mae(frames, source[: frames.shape[0]]) < 12.0
    for name, keep in (("index_at_end.mp4", 0.8), ("faststart.mp4", 0.1), ("clip.mkv", 0.02)):
        truncated = make_truncated(tmp_path / name, tmp_path / f"stub_{name}", keep_fraction=keep)
        try:
            frames, _ = read_video(truncated)
        except MediaError as error:  # the only acceptable failure
            assert truncated.name in str(error)
        else:
            assert 0 < frames.shape[0] < 17


class _Records(logging.Handler):
    """Collects the records of the ``ltx_trainer`` logger (which does not propagate, so caplog misses them)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_corrupt_packets_are_skipped_and_logged_once(tmp_path: Path) -> None:
    write_video(tmp_path / "good.mp4", torch.from_numpy(clip_frames(25, W, H)), fps=24)
    damaged = make_damaged(tmp_path / "good.mp4", tmp_path / "damaged.mp4", start_fraction=0.5, length_fraction=0.05)
    records = _Records()
    logger.addHandler(records)
    try:
        frames, fps = read_video(damaged)
    finally:
        logger.removeHandler(records)
    assert fps == 24.0
    assert 0 < frames.shape[0] <= 25
    skipped = [m for m in records.messages if "undecodable packet" in m]
    assert len(skipped) == 1 and "damaged.mp4" in skipped[0]

    # Matroska's demuxer stops silently at garbage: the shortfall against the header is reported instead.
    make_clip(tmp_path / "good.mkv", 25, W, H, audio=False)
    damaged = make_damaged(tmp_path / "good.mkv", tmp_path / "damaged.mkv", start_fraction=0.5, length_fraction=0.05)
    records = _Records()
    logger.addHandler(records)
    try:
        frames, _ = read_video(damaged)
    finally:
        logger.removeHandler(records)
    assert 0 < frames.shape[0] < 25
    assert any("damaged.mkv" in m and "header announces about 25" in m for m in records.messages)


def test_video_reader_rejects_audio_only(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "speech.wav", seconds=0.2)
    with pytest.raises(MediaError, match=r"speech\.wav: no video stream"):
        read_video(path)
    info = probe(path)
    assert (info.width, info.height, info.num_frames) == (0, 0, 0)


# ---------------------------------------------------------------------------------------------------------------------
# LTX frame-count and size rules
# ---------------------------------------------------------------------------------------------------------------------


def test_num_frames_rule() -> None:
    for valid in (1, 9, 25, 33, 121):
        check_num_frames(valid)
    with pytest.raises(MediaError, match=r"^num_frames=30 is not 8k\+1; nearest valid: 25 or 33$"):
        check_num_frames(30)
    with pytest.raises(ValueError, match="nearest valid: 1 or 9"):
        check_num_frames(8)
    with pytest.raises(ValueError, match="must be >= 1"):
        check_num_frames(0)
    assert nearest_valid_num_frames(30) == (25, 33)
    assert nearest_valid_num_frames(33) == (33, 33)
    assert nearest_valid_num_frames(0) == (1, 1)
    assert nearest_valid_num_frames(10, temporal_factor=4) == (9, 13)
    check_num_frames(13, temporal_factor=4)


def test_resolution_rule() -> None:
    check_resolution(512, 768)
    with pytest.raises(MediaError, match=r"^width=500 is not a multiple of 32; nearest valid: 480 or 512$"):
        check_resolution(500, 512)
    with pytest.raises(ValueError) as error:
        check_resolution(500, 300)
    assert "width=500" in str(error.value) and "height=300 is not a multiple of 32; nearest valid: 288 or 320" in str(
        error.value
    )
    assert nearest_valid_size(500) == (480, 512)
    assert nearest_valid_size(512) == (512, 512)
    assert nearest_valid_size(10) == (32, 32)
    assert nearest_valid_size(100, spatial_factor=64) == (64, 128)


# ---------------------------------------------------------------------------------------------------------------------
# Resize and crop
# ---------------------------------------------------------------------------------------------------------------------


def test_resize_and_crop_shapes_and_dtypes() -> None:
    frames = torch.from_numpy(clip_frames(5, W, H))  # 64x48
    out = resize_and_crop(frames, 32, 32)
    assert tuple(out.shape) == (5, 32, 32, 3) and out.dtype == torch.uint8
    wide = resize_and_crop(frames, 96, 32)  # upscale to cover, then crop height
    assert tuple(wide.shape) == (5, 32, 96, 3)
    as_float = resize_and_crop(frames.float() / 255, 40, 24)
    assert tuple(as_float.shape) == (5, 24, 40, 3) and as_float.dtype == torch.float32
    single = resize_and_crop(frames[0], 16, 16)
    assert tuple(single.shape) == (16, 16, 3)
    same = resize_and_crop(frames, W, H)
    assert torch.equal(same, frames)


def test_resize_and_crop_content() -> None:
    flat = torch.full((2, 48, 64, 3), 200, dtype=torch.uint8)
    assert torch.equal(resize_and_crop(flat, 32, 32), torch.full((2, 32, 32, 3), 200, dtype=torch.uint8))
    # Left half black, right half white: a centre crop of the same height keeps both halves, aspect preserved.
    halves = torch.zeros(1, 32, 64, 3, dtype=torch.uint8)
    halves[:, :, 32:] = 255
    crop = resize_and_crop(halves, 32, 32)
    assert crop[0, :, :8].float().mean() < 5 and crop[0, :, -8:].float().mean() > 250
    # Random crops: deterministic with a seeded generator, and inside the image.
    first = resize_and_crop(halves, 16, 32, crop="random", generator=torch.Generator().manual_seed(0))
    again = resize_and_crop(halves, 16, 32, crop="random", generator=torch.Generator().manual_seed(0))
    assert torch.equal(first, again)
    offsets = set()
    for seed in range(20):
        window = resize_and_crop(halves, 16, 32, crop="random", generator=torch.Generator().manual_seed(seed))
        offsets.add(float(window.float().mean()))
    assert len(offsets) > 1
    with pytest.raises(ValueError, match="crop"):
        resize_and_crop(halves, 16, 16, crop="corner")  # type: ignore[arg-type]
