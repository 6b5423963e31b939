"""Reading frames and audio: robust to corrupt packets and truncated files, frames in decoder output order."""

from __future__ import annotations

import os
from pathlib import Path

import av
import av.error
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ltx_trainer import logger
from ltx_trainer.data.media.container import (
    MediaError,
    _decode_stream,
    _DecodeReport,
    _expected_num_frames,
    _frame_to_planar,
    _layout_for,
    _round_half_up,
    _stream_fps,
    decode_video_frames,
    is_image_file,
    open_input,
    quarter_turns,
    video_stream,
    warn_once,
)

# read_audio seeks (instead of decoding from the start) when `start` is past this many seconds ...
_AUDIO_SEEK_THRESHOLD_S = 2.0
# ... and lands this many seconds before `start`, then drops the samples in between.
_AUDIO_SEEK_PREROLL_S = 1.0


def _read_image_as_video(path: Path, max_frames: int | None, start_frame: int, fps: float | None) -> torch.Tensor:
    if start_frame > 0:
        raise MediaError(path, f"start_frame={start_frame} but a still image has a single frame")
    if max_frames is not None and max_frames <= 0:
        raise MediaError(path, f"max_frames={max_frames} selects no frames")
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise MediaError(path, f"cannot decode image ({e})") from e
    return torch.from_numpy(array.copy()).unsqueeze(0)


def _check_window(start: tuple[str, float], length: tuple[str, float | None], rate: tuple[str, float | None]) -> None:
    """A reader's ``(name, value)`` arguments: start >= 0, length >= 0 or None, rate > 0 or None.

    Raises:
        ValueError: One is out of range, named.
    """
    if start[1] < 0:
        raise ValueError(f"{start[0]} must be >= 0, got {start[1]}")
    if length[1] is not None and length[1] < 0:
        raise ValueError(f"{length[0]} must be >= 0 or None, got {length[1]}")
    if rate[1] is not None and not rate[1] > 0:
        raise ValueError(f"{rate[0]} must be > 0 or None, got {rate[1]}")


def read_video(
    path: str | os.PathLike[str],
    max_frames: int | None = None,
    start_frame: int = 0,
    fps: float | None = None,
) -> tuple[torch.Tensor, float]:
    """Decode the frames of a video (mp4, mkv, avi, webm, mov, gif, ...) or a still image.

    Frames are indexed in decoder output order. Corrupt packets are skipped (and logged once), a truncated file
    returns the frames that decoded. A display rotation (phone videos) is applied, so frames come out upright and
    ``H, W`` are the displayed height and width.

    Args:
        path: Video or image file. Images (png, jpg, ...) read as a single frame at 1.0 fps.
        max_frames: Return at most this many frames (after fps resampling). ``None`` reads to the end.
        start_frame: Index of the first frame to return, in source frames (before fps resampling).
        fps: Resample to this frame rate by picking, for each output time ``j / fps``, the nearest source frame
            (frames are dropped or repeated). ``None`` keeps every source frame.

    Returns:
        ``(frames, fps)``: ``uint8`` RGB frames ``[F, H, W, 3]`` and their frame rate (``fps`` when given, otherwise
        the source frame rate).

    Raises:
        MediaError: The file cannot be opened, has no video stream, or yields no frame in the requested range.
        ValueError: An argument is out of range.
    """
    path = Path(path)
    _check_window(("start_frame", start_frame), ("max_frames", max_frames), ("fps", fps))
    if is_image_file(path):
        return _read_image_as_video(path, max_frames, start_frame, fps), float(fps or 1.0)
    if max_frames == 0:
        raise MediaError(path, "max_frames=0 selects no frames")

    with open_input(path) as container:
        stream = video_stream(container)
        if stream is None:
            raise MediaError(path, "no video stream")
        source_fps = _stream_fps(stream)
        if source_fps <= 0:
            source_fps = 25.0
            logger.warning(f"{path}: no frame rate in the file, assuming {source_fps} fps")
        arrays, decoded, complete = _collect_frames(container, path, max_frames, start_frame, source_fps, fps)
        expected = _expected_num_frames(container)
    if complete and expected > decoded + 1:
        warn_once(
            path,
            "truncated",
            f"{path}: decoded {decoded} frames but the header announces about {expected}; "
            "the file may be truncated or damaged",
        )

    if not arrays:
        if decoded == 0:
            raise MediaError(path, "no decodable video frames")
        raise MediaError(path, f"start_frame={start_frame} is past the last frame ({decoded} frames decoded)")
    video = torch.from_numpy(np.stack(arrays))
    return video, float(fps if fps is not None else source_fps)


def _collect_frames(
    container: av.container.InputContainer,
    path: Path,
    max_frames: int | None,
    start_frame: int,
    source_fps: float,
    fps: float | None,
) -> tuple[list[np.ndarray], int, bool]:
    """Decode and select frames for :func:`read_video`.

    Returns:
        ``(rgb arrays [H, W, 3], frames decoded, whether decoding ran to the end of the stream)``.
    """
    ratio = source_fps / fps if fps is not None else 1.0
    arrays: list[np.ndarray] = []
    size: tuple[int, int] | None = None  # (width, height) of the first returned frame
    decoded = 0
    complete = True
    next_output = 0  # index j of the next output frame
    frames = decode_video_frames(container, path)
    try:
        for index, frame in enumerate(frames):
            decoded = index + 1
            relative = index - start_frame
            if relative < 0:
                continue
            repeats = 1
            if fps is not None:
                repeats = 0
                while _round_half_up(next_output * ratio) <= relative:
                    if _round_half_up(next_output * ratio) == relative:
                        repeats += 1
                    next_output += 1
            if repeats == 0:
                continue
            if size is None:
                size = (frame.width, frame.height)
            if (frame.width, frame.height) != size:
                array = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
            else:
                array = frame.to_ndarray(format="rgb24")
            turns = quarter_turns(frame)
            if turns:
                array = np.rot90(array, k=turns)
            arrays.extend([array] * repeats)
            if max_frames is not None and len(arrays) >= max_frames:
                del arrays[max_frames:]
                complete = False
                break
    finally:
        frames.close()
    return arrays, decoded, complete


class _SeekMissed(Exception):
    """Seeking did not land before the requested start; decode from the beginning instead."""


def _decode_audio(
    path: Path,
    out_rate: int | None,
    channels: int | None,
    start: float,
    duration: float | None,
    seek: bool,
) -> tuple[np.ndarray, int, bool]:
    """Decode, downmix and resample audio.

    Returns:
        ``(waveform [C', S], sample_rate, duplicate_mono)`` where ``waveform`` already starts at ``start`` but is not
        trimmed or padded yet, and ``duplicate_mono`` says a mono source must still be duplicated to stereo.
    """
    with open_input(path) as container:
        if not container.streams.audio:
            raise MediaError(path, "no audio stream")
        stream = container.streams.audio[0]
        rate = int(out_rate or stream.codec_context.sample_rate or 0)
        time_base = stream.time_base
        stream_start = stream.start_time or 0
        offset = 0.0  # time of the first decoded sample, relative to the stream start
        if seek and time_base is not None:
            target = int((start - _AUDIO_SEEK_PREROLL_S) / time_base) + stream_start
            try:
                container.seek(target, stream=stream, backward=True)
            except av.error.FFmpegError:
                raise _SeekMissed from None

        report = _DecodeReport(path)
        resampler: av.AudioResampler | None = None
        out_channels = 1
        duplicate = False
        chunks: list[np.ndarray] = []
        collected = 0
        skip = 0
        needed: int | None = None
        frames = _decode_stream(container, stream, report)
        try:
            for frame in frames:
                if resampler is None:
                    if seek:
                        if frame.pts is None or time_base is None:
                            raise _SeekMissed
                        offset = float((frame.pts - stream_start) * time_base)
                        if offset > start + 1e-6:
                            raise _SeekMissed
                    rate = int(out_rate or frame.sample_rate)
                    source_channels = frame.layout.nb_channels
                    target_channels = channels or source_channels
                    duplicate = source_channels == 1 and target_channels == 2
                    if duplicate:
                        layout = av.AudioLayout("mono")
                    elif channels is None:
                        layout = frame.layout
                    else:
                        layout = av.AudioLayout(_layout_for(target_channels))
                    resampler = av.AudioResampler(format="flt", layout=layout, rate=rate)
                    out_channels = layout.nb_channels
                    skip = max(0, _round_half_up((start - offset) * rate))
                    if duration is not None:
                        needed = skip + _round_half_up(duration * rate)
                try:
                    outs = resampler.resample(frame)
                except ValueError:  # the stream changed rate/layout mid-way: flush, then start a fresh resampler
                    outs = resampler.resample(None)
                    resampler = av.AudioResampler(format="flt", layout=layout, rate=rate)
                    outs += resampler.resample(frame)
                for out in outs:
                    chunk = _frame_to_planar(out)
                    chunks.append(chunk)
                    collected += chunk.shape[1]
                if needed is not None and collected >= needed:
                    break
            else:
                if resampler is not None:
                    for out in resampler.resample(None):
                        chunk = _frame_to_planar(out)
                        chunks.append(chunk)
                        collected += chunk.shape[1]
        finally:
            frames.close()
            report.log()

    if resampler is None:
        raise MediaError(path, "no decodable audio samples")
    waveform = np.concatenate(chunks, axis=1) if chunks else np.zeros((out_channels, 0), dtype=np.float32)
    return waveform[:, skip:], rate, duplicate


def read_audio(
    path: str | os.PathLike[str],
    sample_rate: int | None = None,
    channels: int | None = 2,
    start: float = 0.0,
    duration: float | None = None,
) -> tuple[torch.Tensor, int]:
    """Decode the first audio stream of a file (wav, mp3, flac, aac, or a video with an audio track).

    Mono is duplicated to stereo; surround (5.1, 7.1, ...) is downmixed with FFmpeg's standard matrix; resampling
    goes through ``av.AudioResampler``. Corrupt packets are skipped (logged once).

    Args:
        path: Audio or video file.
        sample_rate: Resample to this rate; ``None`` keeps the source rate.
        channels: Output channel count (2 = stereo, 1 = mono downmix); ``None`` keeps the source channels.
        start: Skip this many seconds from the start of the stream.
        duration: Return exactly ``round(duration * sample_rate)`` samples: trimmed, or zero-padded when the audio is
            shorter. ``None`` reads to the end.

    Returns:
        ``(waveform, sample_rate)``: ``float32`` waveform ``[C, S]`` in ``[-1, 1]`` and its sample rate.

    Raises:
        MediaError: The file cannot be opened, has no audio stream, or yields no audio samples.
        ValueError: An argument is out of range.
    """
    path = Path(path)
    _check_window(("start", start), ("duration", duration), ("sample_rate", sample_rate))
    if channels is not None:
        _layout_for(channels)
    if is_image_file(path):
        raise MediaError(path, "no audio stream (still image)")

    seek = start > _AUDIO_SEEK_THRESHOLD_S
    try:
        waveform, rate, duplicate = _decode_audio(path, sample_rate, channels, start, duration, seek)
    except _SeekMissed:
        waveform, rate, duplicate = _decode_audio(path, sample_rate, channels, start, duration, False)

    if duration is not None:
        needed = _round_half_up(duration * rate)
        if waveform.shape[1] >= needed:
            waveform = waveform[:, :needed]
        else:
            waveform = np.pad(waveform, ((0, 0), (0, needed - waveform.shape[1])))
    if duplicate:
        waveform = np.repeat(waveform[:1], 2, axis=0)
    tensor = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32)).clamp_(-1.0, 1.0)
    return tensor, rate
