"""Opening, probing and robust decoding of media files with PyAV: the shared base of reading and writing."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np
from PIL import Image, UnidentifiedImageError

from ltx_trainer import logger
from ltx_trainer.errors import MediaError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".avi", ".webm", ".mov", ".m4v", ".gif", ".mpg", ".mpeg", ".ts"})
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".aac", ".m4a", ".ogg", ".opus"})

# FFmpeg's default channel layout for a given channel count.
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


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


# (file, size, mtime, kind) of the problems already logged: one warning per damaged file and kind of problem, however
# many times the file is decoded (detection, clip export and the audio of every scene each decode it again).
_WARNED: set[tuple[str, int, int, str]] = set()


def warn_once(path: Path, kind: str, message: str) -> None:
    """Log ``message`` as a warning unless one of this ``kind`` was already logged for this version of ``path``."""
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, kind)
    except OSError:
        key = (str(path), 0, 0, kind)
    if key in _WARNED:
        logger.debug(message)
        return
    _WARNED.add(key)
    logger.warning(message)


class _DecodeReport:
    """Collects the problems met while decoding one file, so they can be logged once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bad_packets = 0
        self.first_error: str | None = None
        self.demux_error: str | None = None
        self.concealed_frames = 0
        self.first_concealed: float | None = None

    def decoded(self, frame: av.frame.Frame) -> None:
        """Count ``frame`` when the decoder flagged it corrupt (it concealed a damaged packet: expect artifacts)."""
        if frame.is_corrupt:
            self.concealed_frames += 1
            if self.first_concealed is None:
                self.first_concealed = frame.time

    def bad_packet(self, error: Exception) -> None:
        self.bad_packets += 1
        if self.first_error is None:
            self.first_error = f"{type(error).__name__}: {error}"

    def log(self) -> None:
        if self.bad_packets:
            warn_once(
                self.path,
                "bad packets",
                f"{self.path}: skipped {self.bad_packets} undecodable packet(s) (first: {self.first_error})",
            )
        if self.concealed_frames:
            where = f" (first at {self.first_concealed:.2f} s)" if self.first_concealed is not None else ""
            warn_once(
                self.path,
                "concealed",
                f"{self.path}: {self.concealed_frames} frame(s) decoded with errors the decoder concealed{where}; "
                "they may show artifacts",
            )
        if self.demux_error:
            warn_once(
                self.path,
                "truncated",
                f"{self.path}: stopped reading early, file looks truncated or damaged ({self.demux_error})",
            )


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
        for frame in _decode_stream(container, stream, report):
            report.decoded(frame)
            yield frame
    finally:
        report.log()


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


def _layout_for(channels: int) -> str:
    try:
        return _DEFAULT_LAYOUTS[channels]
    except KeyError:
        raise ValueError(f"unsupported channel count {channels}; use 1-8") from None


def _frame_to_planar(frame: av.AudioFrame) -> np.ndarray:
    """``float32`` ``[C, n]`` from a packed ``flt`` frame."""
    return frame.to_ndarray().reshape(frame.samples, -1).T
