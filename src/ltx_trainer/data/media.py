"""Reading, writing and checking media files (video, audio, images) with PyAV.

Everything here goes through PyAV (FFmpeg libraries bundled in the ``av`` wheel); no ``ffmpeg`` binary is needed.

Conventions:

* Video frames are ``uint8`` tensors shaped ``[F, H, W, 3]`` (RGB, channel-last).
* Audio waveforms are ``float32`` tensors shaped ``[C, S]`` with samples in ``[-1, 1]``.
* Frames are counted in decoder output (presentation) order, never from container timestamps, which can start at 1
  or arrive out of order in AVI files.
* Readers are robust to damaged files: corrupt packets are skipped, truncated files return what decoded, and a file
  that yields nothing raises :class:`MediaError` naming the file and the reason.
* Writers are atomic: they write to a temporary file in the destination directory and ``os.replace`` it into place.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import av.error
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ltx_trainer import logger
from ltx_trainer.errors import MediaError
from ltx_trainer.models.geometry import (  # the VAE's rules live with the models; re-exported for data code
    check_num_frames,
    check_resolution,
    nearest_valid_num_frames,
    nearest_valid_size,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MediaError",
    "MediaInfo",
    "check_num_frames",
    "check_resolution",
    "is_image_file",
    "nearest_valid_num_frames",
    "nearest_valid_size",
    "probe",
    "read_audio",
    "read_video",
    "resize_and_crop",
    "write_audio",
    "write_image",
    "write_video",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".avi", ".webm", ".mov", ".m4v", ".gif", ".mpg", ".mpeg", ".ts"})
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".aac", ".m4a", ".ogg", ".opus"})

# FFmpeg's default channel layout for a given channel count.
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}

# read_audio seeks (instead of decoding from the start) when `start` is past this many seconds ...
_AUDIO_SEEK_THRESHOLD_S = 2.0
# ... and lands this many seconds before `start`, then drops the samples in between.
_AUDIO_SEEK_PREROLL_S = 1.0


@dataclass
class MediaInfo:
    """What :func:`probe` found out about a media file.

    Attributes:
        path: The probed file.
        width: Displayed frame width in pixels, display rotation applied as :func:`read_video` does (0 without a
            video stream).
        height: Displayed frame height in pixels (0 without a video stream).
        fps: Frame rate (0.0 without a video stream; 1.0 for still images).
        num_frames: Number of video frames: the decoded count with ``probe(..., count_frames=True)``, otherwise the
            container's frame count or, when the container has none, ``round(duration * fps)``.
        duration: Duration in seconds (0.0 when unknown; ``1 / fps`` for still images).
        has_audio: Whether the file has an audio stream.
        audio_sample_rate: Sample rate of the first audio stream (0 without audio).
        audio_channels: Channel count of the first audio stream (0 without audio).
    """

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    has_audio: bool
    audio_sample_rate: int
    audio_channels: int

    @property
    def has_video(self) -> bool:
        """Whether the file has at least one video frame."""
        return self.num_frames > 0 or (self.width > 0 and self.height > 0)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has a still-image extension (png, jpg, ...)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


# ----------------------------------------------------------------------------------------------------------------------
# Opening and probing
# ----------------------------------------------------------------------------------------------------------------------


def open_input(path: Path) -> av.container.InputContainer:
    """Open ``path`` for reading, turning every failure into a :class:`MediaError`."""
    if not path.exists():
        raise MediaError(path, "file does not exist")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a media file")
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise MediaError(path, f"cannot open as media ({type(e).__name__}: {e.strerror or e})") from e


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first real video stream (cover art attached to audio files does not count), or ``None``."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    """Best frame-rate estimate of a video stream (0.0 when FFmpeg has none)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return 0.0


def _tag_duration(stream: av.stream.Stream) -> float | None:
    """The per-stream ``DURATION`` tag (``HH:MM:SS.nnnnnnnnn``) that Matroska/WebM muxers write, in seconds."""
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if not tag:
        return None
    try:
        hours, minutes, seconds = tag.strip().split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _container_duration(container: av.container.InputContainer, stream: av.stream.Stream | None) -> float:
    """Duration in seconds from the stream, else its ``DURATION`` tag, else the container, else 0.0."""
    if stream is not None and stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if stream is not None and (tagged := _tag_duration(stream)) is not None:
        return tagged
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _expected_num_frames(container: av.container.InputContainer) -> int:
    """Frame count of the first video stream from the header, else ``round(duration * fps)``, else 0."""
    stream = video_stream(container)
    if stream is None:
        return 0
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    duration, fps = _container_duration(container, stream), _stream_fps(stream)
    return round(duration * fps) if duration > 0 and fps > 0 else 0


def _probe_image(path: Path) -> MediaInfo:
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as e:
        raise MediaError(path, f"cannot open as an image ({e})") from e
    return MediaInfo(path, width, height, 1.0, 1, 1.0, False, 0, 0)


def probe(path: str | os.PathLike[str], count_frames: bool = False) -> MediaInfo:
    """Read a media file's stream parameters, decoding only its first video frame (for the display rotation).

    Args:
        path: A video, audio or image file.
        count_frames: Decode the whole video stream to count its frames exactly (slow for long files). Without it,
            ``num_frames`` comes from the container header or from duration times fps.

    Returns:
        The :class:`MediaInfo` of the file.

    Raises:
        MediaError: The file does not exist or FFmpeg cannot open it.
    """
    path = Path(path)
    if is_image_file(path):
        return _probe_image(path)
    with open_input(path) as container:
        video = video_stream(container)
        audio = container.streams.audio[0] if container.streams.audio else None
        width = height = num_frames = 0
        fps = 0.0
        duration = _container_duration(container, video if video is not None else audio)
        if video is not None:
            width, height = video.codec_context.width, video.codec_context.height
            if _first_frame_quarter_turns(container, video) % 2:
                width, height = height, width
            fps = _stream_fps(video)
            num_frames = _expected_num_frames(container)
            if duration <= 0 and num_frames > 0 and fps > 0:
                duration = num_frames / fps
        sample_rate = channels = 0
        if audio is not None:
            sample_rate = int(audio.codec_context.sample_rate or audio.rate or 0)
            channels = int(audio.codec_context.channels or 0)
    info = MediaInfo(path, width, height, fps, num_frames, duration, audio is not None, sample_rate, channels)
    if count_frames and video is not None:
        info.num_frames = _count_video_frames(path)
        if info.fps > 0:
            info.duration = info.num_frames / info.fps
    return info


def _first_frame_quarter_turns(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Quarter turns of the first decodable frame (0 if none decodes within the first packets)."""
    try:
        for count, packet in enumerate(container.demux(stream)):
            for frame in packet.decode():
                return quarter_turns(frame)
            if count > 64:
                break
    except av.error.FFmpegError:
        pass
    return 0


def _count_video_frames(path: Path) -> int:
    with open_input(path) as container:
        if video_stream(container) is None:
            return 0
        return sum(1 for _ in decode_video_frames(container, path))


# ----------------------------------------------------------------------------------------------------------------------
# Robust decoding
# ----------------------------------------------------------------------------------------------------------------------


class _DecodeReport:
    """Collects the problems met while decoding one file, so they can be logged once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bad_packets = 0
        self.first_error: str | None = None
        self.demux_error: str | None = None

    def bad_packet(self, error: Exception) -> None:
        self.bad_packets += 1
        if self.first_error is None:
            self.first_error = f"{type(error).__name__}: {error}"

    def log(self) -> None:
        if self.bad_packets:
            logger.warning(f"{self.path}: skipped {self.bad_packets} undecodable packet(s) (first: {self.first_error})")
        if self.demux_error:
            logger.warning(f"{self.path}: stopped reading early, file looks truncated or damaged ({self.demux_error})")


def _decode_stream(
    container: av.container.InputContainer, stream: av.stream.Stream, report: _DecodeReport
) -> Iterator[av.frame.Frame]:
    """Yield the decoded frames of ``stream`` in decoder output order, skipping corrupt packets.

    A demuxer error (truncated or damaged container) ends the iteration after flushing the decoder, so that every
    frame that could be decoded is still yielded.
    """
    packets = container.demux(stream)
    flushed = False
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError as e:
            report.demux_error = f"{type(e).__name__}: {e}"
            break
        if packet.size == 0:
            flushed = True  # PyAV's final dummy packet: decoding it flushes the decoder
        try:
            frames = packet.decode()
        except av.error.FFmpegError as e:
            report.bad_packet(e)
            continue
        yield from frames
    if not flushed:
        try:
            yield from stream.codec_context.decode(None)
        except av.error.FFmpegError as e:
            report.bad_packet(e)


def decode_video_frames(container: av.container.InputContainer, path: Path) -> Iterator[av.video.frame.VideoFrame]:
    """Yield every decodable frame of the first video stream of an open container, logging problems once."""
    stream = video_stream(container)
    if stream is None:
        raise MediaError(path, "no video stream")
    stream.thread_type = "AUTO"
    report = _DecodeReport(path)
    try:
        yield from _decode_stream(container, stream, report)
    finally:
        report.log()


# ----------------------------------------------------------------------------------------------------------------------
# Video reading
# ----------------------------------------------------------------------------------------------------------------------


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


def quarter_turns(frame: av.video.frame.VideoFrame) -> int:
    """Counter-clockwise quarter turns that display ``frame`` upright (its display matrix, e.g. phone videos)."""
    try:
        rotation = frame.rotation
    except (AttributeError, ValueError):
        return 0
    if not rotation or not math.isfinite(rotation):
        return 0
    return round(rotation / 90) % 4


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


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
    if start_frame < 0:
        raise ValueError(f"start_frame must be >= 0, got {start_frame}")
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0 or None, got {max_frames}")
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0 or None, got {fps}")
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
        logger.warning(
            f"{path}: decoded {decoded} frames but the header announces about {expected}; "
            "the file may be truncated or damaged"
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


# ----------------------------------------------------------------------------------------------------------------------
# Audio reading
# ----------------------------------------------------------------------------------------------------------------------


def _layout_for(channels: int) -> str:
    try:
        return _DEFAULT_LAYOUTS[channels]
    except KeyError:
        raise ValueError(f"unsupported channel count {channels}; use 1-8") from None


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
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if duration is not None and duration < 0:
        raise ValueError(f"duration must be >= 0 or None, got {duration}")
    if sample_rate is not None and sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0 or None, got {sample_rate}")
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


# ----------------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------------


def _temp_path(path: Path) -> Path:
    """A unique hidden temporary path next to ``path``, keeping its suffix so the muxer is picked from it."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")


def _frames_to_uint8(frames: torch.Tensor | np.ndarray, ndim: int) -> np.ndarray:
    """``uint8`` numpy array from a uint8 tensor/array or a float one in ``[0, 1]``."""
    tensor = torch.as_tensor(frames).detach().cpu()
    if tensor.ndim != ndim or tensor.shape[-1] != 3:
        expected = "[F, H, W, 3]" if ndim == 4 else "[H, W, 3]"
        raise ValueError(f"expected RGB frames shaped {expected}, got {tuple(tensor.shape)}")
    if tensor.is_floating_point():
        tensor = (tensor.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    elif tensor.dtype != torch.uint8:
        raise ValueError(f"expected uint8 or float frames, got {tensor.dtype}")
    return np.ascontiguousarray(tensor.numpy())


def _audio_to_numpy(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    """``float32`` ``[C, S]`` array clamped to ``[-1, 1]``."""
    array = torch.as_tensor(audio).detach().cpu()
    if array.ndim == 1:
        array = array.unsqueeze(0)
    if array.ndim != 2:
        raise ValueError(f"expected an audio waveform shaped [C, S], got {tuple(array.shape)}")
    if array.shape[0] > array.shape[1]:
        logger.warning(f"audio shaped {tuple(array.shape)} has more channels than samples; expected [C, S]")
    if not array.is_floating_point():
        raise ValueError(f"expected a float waveform in [-1, 1], got {array.dtype}")
    return np.ascontiguousarray(array.float().clamp(-1.0, 1.0).numpy())


def _audio_frame(waveform: np.ndarray, layout: str, sample_rate: int, pts: int | None = None) -> av.AudioFrame:
    """An ``av.AudioFrame`` from a ``float32`` ``[C, n]`` array (packed ``flt``: PyAV's planar path breaks at 8 ch)."""
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(waveform.T, dtype=np.float32).reshape(1, -1), format="flt", layout=layout
    )
    frame.sample_rate = sample_rate
    if pts is not None:
        frame.pts = pts
        frame.time_base = Fraction(1, sample_rate)
    return frame


def _frame_to_planar(frame: av.AudioFrame) -> np.ndarray:
    """``float32`` ``[C, n]`` from a packed ``flt`` frame."""
    return frame.to_ndarray().reshape(frame.samples, -1).T


def _to_stereo(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Duplicate mono, keep stereo, downmix surround with FFmpeg's matrix. Returns ``[2, S]``."""
    channels = waveform.shape[0]
    if channels == 2:
        return waveform
    if channels == 1:
        return np.repeat(waveform, 2, axis=0)
    frame = _audio_frame(waveform, _layout_for(channels), sample_rate)
    resampler = av.AudioResampler(format="flt", layout="stereo", rate=sample_rate)
    outs = [_frame_to_planar(f) for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.ascontiguousarray(np.concatenate(outs, axis=1)[:, : waveform.shape[1]])


def _fps_fraction(fps: float | Fraction) -> Fraction:
    if isinstance(fps, Fraction):
        return fps
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def write_video(
    path: str | os.PathLike[str],
    frames: torch.Tensor | np.ndarray,
    fps: float | Fraction,
    audio: torch.Tensor | np.ndarray | None = None,
    audio_sample_rate: int | None = None,
    crf: int = 18,
    preset: str = "medium",
) -> None:
    """Encode frames (and optionally audio) as H.264 (libx264, yuv420p) + AAC stereo, written atomically.

    Frames with an odd width or height are padded by one replicated row/column (yuv420p needs even sizes).

    Args:
        path: Output file, normally ``.mp4`` (``.mov``/``.mkv`` work too). Parent directories are created.
        frames: ``uint8`` frames ``[F, H, W, 3]``, or floats in ``[0, 1]`` of the same shape.
        fps: Frame rate (``23.976`` becomes ``2997/125``; pass a ``Fraction`` such as ``Fraction(24000, 1001)`` for
            an exact NTSC rate).
        audio: Optional ``float`` waveform ``[C, S]`` in ``[-1, 1]``; mono is duplicated, surround downmixed.
        audio_sample_rate: Sample rate of ``audio``; required with it.
        crf: x264 constant rate factor (0 lossless, 18 visually lossless, 23 default).
        preset: x264 preset (``ultrafast`` ... ``veryslow``).

    Raises:
        ValueError: Bad shapes, dtypes or arguments.
    """
    path = Path(path)
    array = _frames_to_uint8(frames, ndim=4)
    num_frames, height, width, _ = array.shape
    if num_frames == 0:
        raise ValueError("cannot write a video with zero frames")
    if height % 2 or width % 2:
        logger.warning(
            f"{path}: {width}x{height} is odd-sized, padding to {width + width % 2}x{height + height % 2} for yuv420p"
        )
        array = np.pad(array, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        num_frames, height, width, _ = array.shape
    rate = _fps_fraction(fps)
    waveform: np.ndarray | None = None
    if audio is not None:
        if audio_sample_rate is None or audio_sample_rate <= 0:
            raise ValueError("audio_sample_rate is required (and > 0) when audio is given")
        waveform = _to_stereo(_audio_to_numpy(audio), audio_sample_rate)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    container_options = {"movflags": "+faststart"} if path.suffix.lower() in {".mp4", ".mov", ".m4v"} else {}
    try:
        with av.open(str(tmp), mode="w", container_options=container_options) as container:
            # Every stream must exist before the first packet is muxed (the header is written then).
            video_stream = container.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": preset})
            video_stream.width = width
            video_stream.height = height
            video_stream.pix_fmt = "yuv420p"
            audio_stream = None
            if waveform is not None:
                audio_stream = container.add_stream("aac", rate=audio_sample_rate, layout="stereo")
            audio_written = 0
            for index in range(num_frames):
                frame = av.VideoFrame.from_ndarray(array[index], format="rgb24")
                frame.pts = index
                container.mux(video_stream.encode(frame))
                if audio_stream is not None and waveform is not None:
                    # Interleave: encode the audio that belongs up to the end of this video frame.
                    end = min(waveform.shape[1], _round_half_up((index + 1) / rate * audio_sample_rate))
                    if index == num_frames - 1:
                        end = waveform.shape[1]
                    if end > audio_written:
                        chunk = _audio_frame(waveform[:, audio_written:end], "stereo", audio_sample_rate, audio_written)
                        container.mux(audio_stream.encode(chunk))
                        audio_written = end
            container.mux(video_stream.encode(None))
            if audio_stream is not None:
                container.mux(audio_stream.encode(None))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_image(path: str | os.PathLike[str], frame: torch.Tensor | np.ndarray, quality: int = 95) -> None:
    """Write one RGB frame as an image (png, jpg, webp, ... from the suffix), atomically.

    Args:
        path: Output file; the format follows its suffix.
        frame: ``uint8`` ``[H, W, 3]`` (or float in ``[0, 1]``); a single-frame video ``[1, H, W, 3]`` also works.
        quality: JPEG/WebP quality.

    Raises:
        ValueError: Bad shape/dtype or unknown image suffix.
    """
    path = Path(path)
    if isinstance(frame, torch.Tensor | np.ndarray) and frame.ndim == 4 and frame.shape[0] == 1:
        frame = frame[0]
    array = _frames_to_uint8(frame, ndim=3)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: unknown image suffix {path.suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    options = {"quality": quality} if image_format in {"JPEG", "WEBP"} else {}
    try:
        Image.fromarray(array, mode="RGB").save(tmp, format=image_format, **options)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_audio(path: str | os.PathLike[str], waveform: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """Write a waveform as 16-bit PCM wav (or flac for a ``.flac`` path) with PyAV, atomically.

    Args:
        path: Output ``.wav`` (pcm_s16le) or ``.flac`` file.
        waveform: ``float`` waveform ``[C, S]`` in ``[-1, 1]`` (values outside are clipped); ``[S]`` is mono.
        sample_rate: Samples per second.

    Raises:
        ValueError: Bad shape/dtype/suffix.
    """
    path = Path(path)
    codec = {".wav": "pcm_s16le", ".flac": "flac"}.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"{path}: write_audio writes .wav or .flac, got {path.suffix!r}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    array = _audio_to_numpy(waveform)
    layout = _layout_for(array.shape[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream(codec, rate=sample_rate, layout=layout)
            if codec == "flac":
                stream.format = "s16"
            block = sample_rate  # one second per frame
            for begin in range(0, array.shape[1], block):
                frame = _audio_frame(array[:, begin : begin + block], layout, sample_rate, begin)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------------------------------------------
# Resize and crop
# ----------------------------------------------------------------------------------------------------------------------


def resize_and_crop(
    frames: torch.Tensor,
    width: int,
    height: int,
    crop: Literal["center", "random"] = "center",
    generator: torch.Generator | None = None,
    chunk_size: int = 16,
) -> torch.Tensor:
    """Aspect-preserving resize so that ``width x height`` is covered, then crop to exactly that size.

    Resizing is bilinear with antialiasing (``torch.nn.functional.interpolate``) in float32, done ``chunk_size``
    frames at a time to bound memory. The same crop window is used for every frame.

    Args:
        frames: ``[F, H, W, 3]`` (or a single ``[H, W, 3]`` frame), ``uint8`` or float.
        width: Target width.
        height: Target height.
        crop: ``"center"`` or ``"random"`` (window drawn with ``generator``).
        generator: Random generator for ``crop="random"``.
        chunk_size: Frames resized per interpolate call.

    Returns:
        ``[F, height, width, 3]`` (or ``[height, width, 3]``) with the input's dtype and device.
    """
    if width < 1 or height < 1:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    if crop not in ("center", "random"):
        raise ValueError(f"crop must be 'center' or 'random', got {crop!r}")
    single = frames.ndim == 3
    if single:
        frames = frames.unsqueeze(0)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames shaped [F, H, W, 3], got {tuple(frames.shape)}")
    _, src_h, src_w, _ = frames.shape
    scale = max(width / src_w, height / src_h)
    new_h = max(height, _round_half_up(src_h * scale))
    new_w = max(width, _round_half_up(src_w * scale))

    if crop == "center":
        top, left = (new_h - height) // 2, (new_w - width) // 2
    else:
        top = int(torch.randint(0, new_h - height + 1, (1,), generator=generator))
        left = int(torch.randint(0, new_w - width + 1, (1,), generator=generator))

    if (new_h, new_w) == (src_h, src_w):
        out = frames[:, top : top + height, left : left + width]
        out = out.contiguous()
        return out[0] if single else out

    outputs = []
    for begin in range(0, frames.shape[0], chunk_size):
        chunk = frames[begin : begin + chunk_size].permute(0, 3, 1, 2).float()
        resized = F.interpolate(chunk, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        resized = resized[:, :, top : top + height, left : left + width]
        if frames.dtype == torch.uint8:
            resized = resized.round_().clamp_(0, 255).to(torch.uint8)
        else:
            resized = resized.to(frames.dtype)
        outputs.append(resized.permute(0, 2, 3, 1))
    out = torch.cat(outputs).contiguous()
    return out[0] if single else out
