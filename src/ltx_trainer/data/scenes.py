"""Scene detection and splitting: find the shots of a video with PySceneDetect, cut them out with PyAV.

Detection feeds PySceneDetect's detectors (content, adaptive, threshold, histogram, hash) with frames that PyAV decodes
here, counted in decoder output order, so that the frame numbers of the scenes are the same ones that
:func:`split_video` and :func:`ltx_trainer.data.media.read_video` see. No ``ffmpeg`` binary is needed: clips are
re-encoded (H.264 + AAC) with PyAV, frame-exact, with the audio of the scene.

Conventions:

* A :class:`Scene` covers frames ``start_frame <= i < end_frame`` (``end_frame`` is exclusive) and the seconds
  ``start_frame / fps`` to ``end_frame / fps``.
* A video without any cut is one scene.
* Lengths (``min_scene_len``, ``max_scene_len``, ``skip_start``, ``skip_end``) are frames when given as an ``int`` or a
  string of digits (``48``, ``"48"``), seconds when given as a ``float`` or as ``"2s"``/``"2.5"``, or a timecode
  ``"HH:MM:SS[.mmm]"``/``"MM:SS[.mmm]"`` (see :func:`parse_length`).
* Scenes longer than ``max_scene_len`` are cut into pieces of exactly ``max_scene_len`` (so that as many clips as
  possible have the full training length) plus a remainder; scenes and pieces shorter than ``min_scene_len`` are
  **dropped**, never merged into a neighbour (a merged clip would hold two shots).

Outputs of :func:`split_folder`; the clips lie flat and the previews in a hidden folder, so that ``out_dir`` can go
straight to ``caption``/``preprocess`` (which skip hidden folders) without the previews passing for training images::

    out_dir/<stem>-Scene-001.mp4 ...            one clip per scene, with audio
    out_dir/.previews/<stem>-Scene-001-01.jpg   first, middle and last frame of each scene
    out_dir/scenes.html                         report: thumbnails, timecodes, durations, errors
    out_dir/scenes.json                         the same, machine readable
"""

from __future__ import annotations

import contextlib
import html
import inspect
import itertools
import json
import math
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import av
import av.error
import numpy as np

from ltx_trainer import logger
from ltx_trainer.data.media import (
    VIDEO_EXTENSIONS,
    MediaError,
    decode_video_frames,
    open_input,
    probe,
    quarter_turns,
    read_audio,
    video_stream,
    write_image,
)

if TYPE_CHECKING:
    from scenedetect import SceneDetector

__all__ = [
    "DEFAULT_MIN_SCENE_LEN",
    "DETECTORS",
    "PREVIEW_DIR",
    "InputResult",
    "Scene",
    "SplitSummary",
    "TimecodeFormat",
    "check_detector_params",
    "collect_inputs",
    "detect_scenes",
    "format_timecode",
    "parse_length",
    "save_previews",
    "scene_file_name",
    "split_folder",
    "split_video",
    "write_report",
]

Length = int | float | str
TimecodeFormat = Literal["frames", "seconds", "timecode"]
DetectorName = Literal["content", "adaptive", "threshold", "histogram", "hash"]

#: Detector names and the PySceneDetect classes behind them.
DETECTORS: dict[str, str] = {
    "content": "ContentDetector",  # HSV (+ optional edge) difference between frames: hard cuts
    "adaptive": "AdaptiveDetector",  # content score relative to its neighbours: hard cuts with fast camera motion
    "threshold": "ThresholdDetector",  # mean brightness crossing a level: fades to/from black only
    "histogram": "HistogramDetector",  # YUV histogram correlation: hard cuts
    "hash": "HashDetector",  # perceptual hash distance: hard cuts (false cuts on flat synthetic frames)
}

#: Folder of the preview images inside the output folder of :func:`split_folder` (hidden: not training data).
PREVIEW_DIR = ".previews"
#: Shortest scene kept by default, in frames (PySceneDetect's own default).
DEFAULT_MIN_SCENE_LEN = 15
# Detectors never place two cuts closer than this (frames) unless min_scene_len is smaller: short shots are found and
# then dropped, instead of being merged into the next scene by the detector.
_DETECTOR_MIN_SCENE_LEN = 15
# Frames are downscaled so that their longer side is at most this before detection (as PySceneDetect does).
_DETECTION_SIZE = 256
# Sample rates the AAC encoder takes; other rates are resampled to 48 kHz.
_AAC_RATES = frozenset({7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000})
_LENGTH_HELP = "use frames ('48'), seconds ('2s' or '2.5') or a timecode ('00:00:02.000')"


# ----------------------------------------------------------------------------------------------------------------------
# Scenes, lengths and timecodes
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """One scene of a video: frames ``start_frame <= i < end_frame`` in decoder output order.

    Attributes:
        start_frame: First frame of the scene.
        end_frame: One past the last frame of the scene.
        fps: Frame rate of the video, to turn frames into seconds.
    """

    start_frame: int
    end_frame: int
    fps: float

    def __post_init__(self) -> None:
        if not 0 <= self.start_frame < self.end_frame:
            raise ValueError(f"a scene needs 0 <= start_frame < end_frame, got {self.start_frame}, {self.end_frame}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def start_seconds(self) -> float:
        return self.start_frame / self.fps

    @property
    def end_seconds(self) -> float:
        return self.end_frame / self.fps

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.fps

    def timecodes(self, timecode_format: TimecodeFormat = "timecode") -> tuple[str, str]:
        """Start and end (exclusive) as :func:`format_timecode` strings."""
        return (
            format_timecode(self.start_frame, self.fps, timecode_format),
            format_timecode(self.end_frame, self.fps, timecode_format),
        )

    def to_dict(self, timecode_format: TimecodeFormat = "timecode") -> dict[str, Any]:
        start, end = self.timecodes(timecode_format)
        return {
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "num_frames": self.num_frames,
            "start_seconds": round(self.start_seconds, 6),
            "end_seconds": round(self.end_seconds, 6),
            "duration": round(self.duration, 6),
            "start": start,
            "end": end,
        }


_FRAMES_RE = re.compile(r"^(\d+)f?$")
_SECONDS_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)s?$")
_TIMECODE_RE = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def parse_length(value: Length, fps: float) -> int:
    """A length or position in frames.

    Args:
        value: ``int`` frames; ``float`` seconds; or a string: frames (``"48"``, ``"48f"``), seconds (``"2s"``,
            ``"2.5s"``, ``"2.5"``) or a timecode (``"00:00:02.000"``, ``"01:02.5"``).
        fps: Frame rate used to turn seconds into frames (rounded to the nearest frame).

    Returns:
        The number of frames (>= 0).

    Raises:
        ValueError: The value is negative or cannot be read.
    """
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if isinstance(value, bool):
        raise ValueError(f"cannot read {value!r} as a length: {_LENGTH_HELP}")
    if isinstance(value, int):
        frames = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot read {value!r} as a length: {_LENGTH_HELP}")
        frames = round(value * fps)
    elif isinstance(value, str):
        text = value.strip().lower()
        if match := _FRAMES_RE.match(text):
            frames = int(match.group(1))
        elif match := _SECONDS_RE.match(text):
            frames = round(float(match.group(1)) * fps)
        elif match := _TIMECODE_RE.match(text):
            hours, minutes, seconds = int(match.group(1) or 0), int(match.group(2)), float(match.group(3))
            if minutes >= 60 or seconds >= 60:
                raise ValueError(f"cannot read {value!r} as a timecode: minutes and seconds must be below 60")
            frames = round((hours * 3600 + minutes * 60 + seconds) * fps)
        else:
            raise ValueError(f"cannot read {value!r} as a length: {_LENGTH_HELP}")
    else:
        raise ValueError(f"cannot read {value!r} ({type(value).__name__}) as a length: {_LENGTH_HELP}")
    if frames < 0:
        raise ValueError(f"a length must be >= 0, got {value!r}")
    return frames


def format_timecode(frame: int, fps: float, timecode_format: TimecodeFormat = "timecode") -> str:
    """Write a frame position as frames (``"36"``), seconds (``"1.500"``) or a timecode (``"00:00:01.500"``).

    Seconds and timecodes are rounded to the millisecond.
    """
    if timecode_format == "frames":
        return str(frame)
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if timecode_format == "seconds":
        return f"{frame / fps:.3f}"
    if timecode_format == "timecode":
        millis = round(frame / fps * 1000)
        hours, millis = divmod(millis, 3_600_000)
        minutes, millis = divmod(millis, 60_000)
        seconds, millis = divmod(millis, 1000)
        return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
    raise ValueError(f"timecode_format must be one of {get_args(TimecodeFormat)}, got {timecode_format!r}")


def scene_file_name(name: str, number: int, scene: Scene, timecodes: TimecodeFormat | None = None) -> str:
    """Base name (no suffix) of a scene's clip: ``<name>-Scene-001``, plus ``_<start>_<end>`` with ``timecodes``.

    In timecodes the ``:`` become ``-`` so that the name is valid on every file system.
    """
    base = f"{name}-Scene-{number:03d}"
    if timecodes is None:
        return base
    start, end = (t.replace(":", "-") for t in scene.timecodes(timecodes))
    return f"{base}_{start}_{end}"


# ----------------------------------------------------------------------------------------------------------------------
# Detection
# ----------------------------------------------------------------------------------------------------------------------


def _detector_class(detector: str) -> type[SceneDetector]:
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; choose one of: {', '.join(DETECTORS)}")
    import scenedetect

    return getattr(scenedetect, DETECTORS[detector])


def _allowed_params(detector: str) -> dict[str, inspect.Parameter]:
    signature = inspect.signature(_detector_class(detector))
    return {
        name: p
        for name, p in signature.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def check_detector_params(detector: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check detector parameter names against PySceneDetect's constructor; returns them with aliases resolved.

    ``threshold`` is accepted for the adaptive detector as ``adaptive_threshold``.

    Raises:
        ValueError: Unknown detector, or unknown parameter names (the message lists the allowed ones).
    """
    allowed = _allowed_params(detector)
    params = dict(params or {})
    if detector == "adaptive" and "threshold" in params:
        if "adaptive_threshold" in params:
            raise ValueError("give either threshold or adaptive_threshold for the adaptive detector, not both")
        params["adaptive_threshold"] = params.pop("threshold")
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for the {detector} detector; allowed: {', '.join(allowed)}"
        )
    return params


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"detector parameter {name}={value!r}: expected true or false")


def _coerce_param(name: str, value: Any, default: Any, fps: float) -> Any:
    """Turn a parameter value (possibly a string from the command line) into the type PySceneDetect expects."""
    if name in ("min_scene_len", "min_out_length"):
        return parse_length(value, fps)
    if isinstance(default, Enum):
        if isinstance(value, Enum):
            return value
        members = {m.name.lower(): m for m in type(default)}
        if str(value).lower() not in members:
            raise ValueError(f"detector parameter {name}={value!r}: expected one of {', '.join(members)}")
        return members[str(value).lower()]
    if isinstance(default, tuple) and hasattr(default, "_fields") and isinstance(value, str):  # weights
        numbers = [float(x) for x in value.replace(" ", "").split(",")]
        if len(numbers) != len(default):
            raise ValueError(f"detector parameter {name}={value!r}: expected {len(default)} comma-separated numbers")
        return type(default)(*numbers)
    if not isinstance(value, str):
        return value
    try:
        if isinstance(default, bool):
            return _parse_bool(name, value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise ValueError(f"detector parameter {name}={value!r}: expected a {type(default).__name__}") from None
    if default is None:  # kernel_size, block_size: optional numbers
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return value


def _make_detector(detector: str, params: Mapping[str, Any] | None, fps: float, min_scene_len: int) -> SceneDetector:
    checked = check_detector_params(detector, params)
    allowed = _allowed_params(detector)
    kwargs = {
        name: _coerce_param(name, value, allowed[name].default, fps)
        for name, value in checked.items()
        if value is not None or allowed[name].default is None
    }
    if "min_scene_len" in allowed:
        kwargs.setdefault("min_scene_len", max(1, min(min_scene_len, _DETECTOR_MIN_SCENE_LEN)))
    try:
        return _detector_class(detector)(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"bad parameters for the {detector} detector ({kwargs}): {e}") from e


def _detection_size(width: int, height: int) -> tuple[int, int]:
    longest = max(width, height)
    if longest <= _DETECTION_SIZE:
        return width, height
    scale = _DETECTION_SIZE / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _open_video(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    container = open_input(path)
    stream = video_stream(container)
    if stream is None:
        container.close()
        raise MediaError(path, "no video stream")
    return container, stream


def _frame_rate(stream: av.video.stream.VideoStream, fallback: float, path: Path) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate.numerator, rate.denominator)
    if fallback > 0:
        return Fraction(fallback).limit_denominator(1001)
    logger.warning(f"{path}: no frame rate in the file, assuming 25 fps")
    return Fraction(25)


def _scenes_from_cuts(cuts: Iterable[int], start: int, end: int, fps: float) -> list[Scene]:
    bounds = [start, *sorted({c for c in cuts if start < c < end}), end]
    return [Scene(a, b, fps) for a, b in itertools.pairwise(bounds) if b > a]


def _limit_scenes(
    scenes: Sequence[Scene], min_frames: int, max_frames: int | None, max_scenes: int | None
) -> list[Scene]:
    """Cut long scenes into pieces of ``max_frames`` (the last piece is the remainder), drop the scenes and pieces
    shorter than ``min_frames``, keep the first ``max_scenes``."""
    pieces: list[Scene] = []
    for scene in scenes:
        step = max_frames or scene.num_frames
        pieces.extend(
            Scene(a, min(a + step, scene.end_frame), scene.fps) for a in range(scene.start_frame, scene.end_frame, step)
        )
    kept = [scene for scene in pieces if scene.num_frames >= min_frames]
    if max_scenes is not None:
        kept = kept[:max_scenes]
    return kept


def detect_scenes(
    path: str | os.PathLike[str],
    detector: DetectorName | str = "content",
    detector_params: Mapping[str, Any] | None = None,
    min_scene_len: Length = DEFAULT_MIN_SCENE_LEN,
    max_scene_len: Length | None = None,
    max_scenes: int | None = None,
    skip_start: Length = 0.0,
    skip_end: Length = 0.0,
    progress: Callable[[int], None] | None = None,
) -> list[Scene]:
    """Find the scenes of a video.

    Frames are decoded with PyAV (corrupt packets skipped), downscaled to at most 256 pixels on their longer side and
    passed to the PySceneDetect detector. A video without a cut is one scene.

    Args:
        path: The video.
        detector: ``content`` (default; hard cuts), ``adaptive`` (hard cuts, steadier with fast motion), ``histogram``
            (hard cuts), ``hash`` (hard cuts; false cuts on flat synthetic frames) or ``threshold`` (fades to and from
            black only, never hard cuts).
        detector_params: Keyword arguments of the PySceneDetect detector class (``threshold``, ``luma_only``,
            ``adaptive_threshold``, ``window_width``, ``min_content_val``, ``bins``, ``fade_bias``, ...); strings
            such as ``"true"`` or ``"3"`` are converted. Their own ``min_scene_len`` (the closest two cuts can be)
            defaults to ``min(min_scene_len, 15 frames)``, so that short shots are found and dropped, not merged.
        min_scene_len: Scenes shorter than this are dropped (see :func:`parse_length` for the forms of lengths).
        max_scene_len: Scenes longer than this are cut into pieces of exactly this length, from their start; the
            remainder is the last piece (dropped when shorter than ``min_scene_len``). ``None``: no limit.
        max_scenes: Keep only the first this many scenes (after the length rules). ``None``: all.
        skip_start: Ignore this much of the start of the video (no scene begins before it).
        skip_end: Ignore this much of the end of the video.
        progress: Called with the number of frames decoded since the last call.

    Returns:
        The scenes in time order (empty when the skips leave nothing or every scene is too short).

    Raises:
        MediaError: The file cannot be opened, has no video stream or no decodable frame.
        ValueError: Bad detector, parameters or lengths.
    """
    path = Path(path)
    if max_scenes is not None and max_scenes < 1:
        raise ValueError(f"max_scenes must be >= 1 or None, got {max_scenes}")
    check_detector_params(detector, detector_params)  # fail on a typo before decoding anything
    info = probe(path)
    container, stream = _open_video(path)
    with container:
        rate = _frame_rate(stream, info.fps, path)
        fps = float(rate)
        min_frames = max(1, parse_length(min_scene_len, fps))
        max_frames = parse_length(max_scene_len, fps) if max_scene_len is not None else None
        if max_frames is not None and max_frames < min_frames:
            raise ValueError(f"max_scene_len ({max_frames} frames) is shorter than min_scene_len ({min_frames} frames)")
        start = parse_length(skip_start, fps)
        skip_end_frames = parse_length(skip_end, fps)
        scene_detector = _make_detector(detector, detector_params, fps, min_frames)

        from scenedetect import FrameTimecode

        cuts: list[int] = []
        total = 0
        size: tuple[int, int] | None = None
        frames = decode_video_frames(container, path)
        try:
            for index, frame in enumerate(frames):
                total = index + 1
                if progress is not None:
                    progress(1)
                if index < start:
                    continue
                if size is None:
                    size = _detection_size(frame.width, frame.height)
                image = frame.reformat(width=size[0], height=size[1], format="bgr24", interpolation="AREA").to_ndarray()
                found = scene_detector.process_frame(FrameTimecode(index, fps=rate), image)
                cuts.extend(tc.frame_num for tc in found)
        finally:
            frames.close()
        if total == 0:
            raise MediaError(path, "no decodable video frames")
        if total > start:
            cuts.extend(tc.frame_num for tc in scene_detector.post_process(FrameTimecode(total - 1, fps=rate)))

    end = total - skip_end_frames
    if end <= start:
        logger.warning(
            f"{path}: skip_start ({start} frames) and skip_end ({skip_end_frames} frames) leave nothing of its "
            f"{total} frames"
        )
        return []
    scenes = _scenes_from_cuts(cuts, start, end, fps)
    kept = _limit_scenes(scenes, min_frames, max_frames, max_scenes)
    logger.debug(f"{path}: {len(scenes)} scene(s) detected, {len(kept)} kept, cuts at frames {sorted(set(cuts))}")
    return kept


# ----------------------------------------------------------------------------------------------------------------------
# Splitting and previews
# ----------------------------------------------------------------------------------------------------------------------


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")


class _ClipWriter:
    """Streams decoded frames (and the scene's audio) into an H.264 + AAC mp4, written atomically."""

    def __init__(
        self,
        path: Path,
        rate: Fraction,
        width: int,
        height: int,
        rotation: float,
        audio: np.ndarray | None,
        sample_rate: int,
        crf: int,
        preset: str,
    ) -> None:
        self.path = path
        self.rate = rate
        self.source_size = (width, height)
        self.size = (width + width % 2, height + height % 2)  # yuv420p needs even sizes: pad odd ones
        self.audio = audio
        self.sample_rate = sample_rate
        self.count = 0
        self.audio_written = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _temp_path(path)
        self.container = av.open(str(self.tmp), mode="w", container_options={"movflags": "+faststart"})
        try:
            # Every stream must exist before the first packet is muxed.
            self.video = self.container.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": preset})
            self.video.width, self.video.height = self.size
            self.video.pix_fmt = "yuv420p"
            if rotation:
                self.video.set_display_rotation(rotation)
            self.audio_stream = None
            if audio is not None:
                self.audio_stream = self.container.add_stream("aac", rate=sample_rate, layout="stereo")
        except BaseException:
            self.abort()
            raise

    def _convert(self, frame: av.VideoFrame) -> av.VideoFrame:
        width, height = self.source_size
        if self.size != self.source_size:
            array = frame.to_ndarray(format="rgb24", width=width, height=height)
            array = np.pad(array, ((0, self.size[1] - height), (0, self.size[0] - width), (0, 0)), mode="edge")
            return av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format="yuv420p")
        # May return the decoded frame itself; changing its pts below is harmless (the encoder takes a reference
        # when it is sent, and frames are counted by position, not by pts).
        return frame.reformat(width=width, height=height, format="yuv420p")

    def add(self, frame: av.VideoFrame) -> None:
        out = self._convert(frame)
        out.pts = self.count
        out.time_base = 1 / self.rate
        out.pict_type = av.video.frame.PictureType.NONE  # let x264 choose frame types
        self.container.mux(self.video.encode(out))
        self.count += 1
        self._mux_audio(_round_half_up(self.count / self.rate * self.sample_rate))

    def _mux_audio(self, end: int) -> None:
        if self.audio_stream is None or self.audio is None:
            return
        end = min(end, self.audio.shape[1])
        if end <= self.audio_written:
            return
        chunk = np.ascontiguousarray(self.audio[:, self.audio_written : end].T, dtype=np.float32).reshape(1, -1)
        audio_frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="stereo")
        audio_frame.sample_rate = self.sample_rate
        audio_frame.pts = self.audio_written
        audio_frame.time_base = Fraction(1, self.sample_rate)
        self.container.mux(self.audio_stream.encode(audio_frame))
        self.audio_written = end

    def close(self) -> Path:
        try:
            self.container.mux(self.video.encode(None))
            if self.audio_stream is not None and self.audio is not None:
                self._mux_audio(_round_half_up(self.count / self.rate * self.sample_rate))  # as long as the video
                self.container.mux(self.audio_stream.encode(None))
            self.container.close()
            self.tmp.replace(self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(av.error.FFmpegError, ValueError, OSError):
            self.container.close()
        self.tmp.unlink(missing_ok=True)


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def _audio_offset(container: av.container.InputContainer, video: av.video.stream.VideoStream) -> float:
    """Seconds to add to a video time to get the same moment on the first audio stream's own clock."""
    if not container.streams.audio:
        return 0.0
    audio = container.streams.audio[0]
    if video.start_time is None or audio.start_time is None or video.time_base is None or audio.time_base is None:
        return 0.0
    return float(video.start_time * video.time_base) - float(audio.start_time * audio.time_base)


def _scene_audio(path: Path, scene: Scene, offset: float, sample_rate: int) -> tuple[np.ndarray, int] | None:
    """The scene's audio as stereo ``[2, S]`` float32 at ``sample_rate`` (``None`` when it cannot be decoded)."""
    try:
        waveform, rate = read_audio(
            path,
            sample_rate=sample_rate,
            channels=2,
            start=max(0.0, scene.start_seconds + offset),
            duration=scene.duration,
        )
    except MediaError as e:
        logger.warning(f"{path}: the clip of frames {scene.start_frame}-{scene.end_frame} gets no audio ({e.reason})")
        return None
    return waveform.numpy(), rate


def _preview_indices(scene: Scene, count: int) -> list[int]:
    """``count`` frame indices spread over the scene: first, (middle,) last."""
    if count == 1:
        return [scene.start_frame + (scene.num_frames - 1) // 2]
    last = scene.num_frames - 1
    return sorted({scene.start_frame + round(k * last / (count - 1)) for k in range(count)})


def _preview_array(frame: av.VideoFrame, width: int | None) -> np.ndarray:
    turns = quarter_turns(frame)
    raw_w, raw_h = frame.width, frame.height
    shown_w = raw_h if turns % 2 else raw_w
    if width is not None and shown_w > width:
        scale = width / shown_w
        array = frame.to_ndarray(
            format="rgb24", width=max(2, round(raw_w * scale)), height=max(2, round(raw_h * scale))
        )
    else:
        array = frame.to_ndarray(format="rgb24")
    return np.ascontiguousarray(np.rot90(array, k=turns)) if turns else array


@dataclass
class _Exported:
    clips: list[Path | None]
    previews: list[list[Path]]


def _export(
    path: Path,
    scenes: Sequence[Scene],
    name: str,
    clip_dir: Path | None,
    preview_dir: Path | None,
    timecodes_in_name: TimecodeFormat | None = None,
    image_format: str = "jpg",
    preview_width: int | None = 480,
    previews_per_scene: int = 3,
    crf: int = 18,
    preset: str = "veryfast",
    progress: Callable[[int], None] | None = None,
) -> _Exported:
    """Write the clips and/or preview images of ``scenes`` in one decoding pass over ``path``."""
    clips: list[Path | None] = [None] * len(scenes)
    previews: list[list[Path]] = [[] for _ in scenes]
    if not scenes or (clip_dir is None and preview_dir is None):
        return _Exported(clips, previews)
    file_names = [scene_file_name(name, k + 1, s, timecodes_in_name) for k, s in enumerate(scenes)]
    starting: dict[int, list[int]] = {}
    ending: dict[int, list[int]] = {}
    wanted_previews: dict[int, list[tuple[int, int]]] = {}
    for k, scene in enumerate(scenes):
        if clip_dir is not None:
            starting.setdefault(scene.start_frame, []).append(k)
            ending.setdefault(scene.end_frame - 1, []).append(k)
        if preview_dir is not None:
            for number, index in enumerate(_preview_indices(scene, previews_per_scene), start=1):
                wanted_previews.setdefault(index, []).append((k, number))
    last_needed = max(scene.end_frame for scene in scenes)
    image_suffix = image_format.lower().lstrip(".")

    info = probe(path)
    container, stream = _open_video(path)
    writers: dict[int, _ClipWriter] = {}
    with container:
        rate = _frame_rate(stream, info.fps, path)
        offset = _audio_offset(container, stream)
        # keep the source rate unless AAC cannot take it
        audio_rate = info.audio_sample_rate if info.audio_sample_rate in _AAC_RATES else 48000
        frames = decode_video_frames(container, path)
        try:
            for index, frame in enumerate(frames):
                if progress is not None:
                    progress(1)
                for k in starting.get(index, []):
                    assert clip_dir is not None
                    audio = _scene_audio(path, scenes[k], offset, audio_rate) if info.has_audio else None
                    writers[k] = _ClipWriter(
                        clip_dir / f"{file_names[k]}.mp4",
                        rate,
                        frame.width,
                        frame.height,
                        frame.rotation if quarter_turns(frame) else 0,
                        audio[0] if audio is not None else None,
                        audio[1] if audio is not None else 0,
                        crf,
                        preset,
                    )
                for writer in writers.values():
                    writer.add(frame)
                for k, number in wanted_previews.get(index, []):
                    assert preview_dir is not None
                    target = preview_dir / f"{file_names[k]}-{number:02d}.{image_suffix}"
                    write_image(target, _preview_array(frame, preview_width))
                    previews[k].append(target)
                for k in ending.get(index, []):
                    clips[k] = writers.pop(k).close()
                if index + 1 >= last_needed:
                    break
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        finally:
            frames.close()
    # The file ended before these scenes did: keep the frames it had.
    for k, writer in writers.items():
        logger.warning(f"{path}: only {writer.count} of the {scenes[k].num_frames} frames of scene {k + 1} decoded")
        clips[k] = writer.close()
    return _Exported(clips, previews)


def split_video(
    path: str | os.PathLike[str],
    scenes: Sequence[Scene],
    out_dir: str | os.PathLike[str],
    name: str | None = None,
    timecodes_in_name: TimecodeFormat | None = None,
    crf: int = 18,
    preset: str = "veryfast",
) -> list[Path]:
    """Write one mp4 per scene, frame-exact, with the scene's audio, in one decoding pass.

    Video is re-encoded as H.264 (libx264, yuv420p, constant frame rate at the source's average rate; a display
    rotation is kept); audio (when the source has some) as stereo AAC at the source rate, cut at
    ``start_frame / fps`` for ``num_frames / fps`` seconds. Scenes may overlap. Files are written atomically.

    Args:
        path: The source video.
        scenes: Scenes of that video, e.g. from :func:`detect_scenes`.
        out_dir: Output folder (created).
        name: Base of the file names (default: the source's stem): ``<name>-Scene-001.mp4``, numbered in the order
            of ``scenes``.
        timecodes_in_name: Add ``_<start>_<end>`` to the names, in this :func:`format_timecode` format.
        crf: x264 constant rate factor (18 is visually lossless).
        preset: x264 preset.

    Returns:
        The clip paths, in the order of ``scenes`` (a scene past the end of the decodable video gets none).

    Raises:
        MediaError: The video cannot be opened or decoded.
    """
    path = Path(path)
    exported = _export(path, scenes, name or path.stem, Path(out_dir), None, timecodes_in_name, crf=crf, preset=preset)
    return [clip for clip in exported.clips if clip is not None]


def save_previews(
    path: str | os.PathLike[str],
    scenes: Sequence[Scene],
    out_dir: str | os.PathLike[str],
    name: str | None = None,
    image_format: Literal["jpg", "png"] | str = "jpg",
    width: int | None = 480,
    per_scene: int = 3,
) -> list[list[Path]]:
    """Save the first, middle and last frame of every scene (``<name>-Scene-001-01.jpg`` ...), upright.

    Args:
        path: The source video.
        scenes: Its scenes.
        out_dir: Output folder (created).
        name: Base of the file names (default: the source's stem).
        image_format: ``jpg``, ``png`` or any suffix PIL writes.
        width: Downscale images wider than this (``None`` keeps the full size).
        per_scene: Images per scene, spread evenly from the first to the last frame (1 = the middle frame).

    Returns:
        Per scene, its image paths.
    """
    if per_scene < 1:
        raise ValueError(f"per_scene must be >= 1, got {per_scene}")
    path = Path(path)
    exported = _export(
        path,
        scenes,
        name or path.stem,
        None,
        Path(out_dir),
        image_format=image_format,
        preview_width=width,
        previews_per_scene=per_scene,
    )
    return exported.previews


# ----------------------------------------------------------------------------------------------------------------------
# Many inputs, report
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class InputResult:
    """What happened to one input of :func:`split_folder`.

    Attributes:
        path: The input video.
        name: Base name of its outputs (its stem, made unique among the inputs).
        fps: Its frame rate (0.0 when it could not be read).
        duration: Its duration in seconds (0.0 when unknown).
        scenes: The scenes kept.
        clips: The clip of each scene (empty without splitting).
        previews: The preview images of each scene (empty without previews).
        error: Why the input failed (without the path), or ``None``.
    """

    path: Path
    name: str
    fps: float = 0.0
    duration: float = 0.0
    scenes: list[Scene] = field(default_factory=list)
    clips: list[Path | None] = field(default_factory=list)
    previews: list[list[Path]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class SplitSummary:
    """Result of :func:`split_folder`.

    Attributes:
        results: One entry per input, in input order.
        report: The HTML report.
        scene_list: The JSON scene list.
    """

    results: list[InputResult]
    report: Path
    scene_list: Path

    @property
    def succeeded(self) -> list[InputResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[InputResult]:
        return [r for r in self.results if not r.ok]

    @property
    def clips(self) -> list[Path]:
        return [clip for r in self.results for clip in r.clips if clip is not None]


def collect_inputs(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], exclude: Path | None = None
) -> list[Path]:
    """Expand folders into the video files below them (sorted, by extension); files are kept as given.

    Args:
        inputs: Files and/or folders.
        exclude: A folder whose content is skipped (the output folder, when it lies inside an input folder).
    """
    items = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    found: list[Path] = []
    excluded = exclude.resolve() if exclude is not None else None
    for item in map(Path, items):
        if item.is_dir():
            videos = sorted(
                p
                for p in item.rglob("*")
                if p.is_file()
                and p.suffix.lower() in VIDEO_EXTENSIONS
                and not p.name.startswith(".")
                and (excluded is None or not p.resolve().is_relative_to(excluded))
            )
            if not videos:
                logger.warning(f"{item}: no video files ({', '.join(sorted(VIDEO_EXTENSIONS))}) in this folder")
            found.extend(videos)
        else:
            found.append(item)
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p, None)
    return list(unique)


def _unique_names(paths: Sequence[Path]) -> list[str]:
    names: list[str] = []
    used: set[str] = set()
    for p in paths:
        name, n = p.stem, 1
        while name in used:
            n += 1
            name = f"{p.stem}-{n}"
        used.add(name)
        names.append(name)
    return names


def split_folder(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    detector: DetectorName | str = "content",
    detector_params: Mapping[str, Any] | None = None,
    min_scene_len: Length = DEFAULT_MIN_SCENE_LEN,
    max_scene_len: Length | None = None,
    max_scenes: int | None = None,
    skip_start: Length = 0.0,
    skip_end: Length = 0.0,
    split: bool = True,
    previews: bool = True,
    image_format: str = "jpg",
    timecode_format: TimecodeFormat = "frames",
    timecodes_in_name: bool = False,
    crf: int = 18,
    preset: str = "veryfast",
    show_progress: bool = True,
) -> SplitSummary:
    """Detect and split the scenes of many videos; one bad input is recorded and skipped, never stops the run.

    Args:
        inputs: Video files and/or folders (searched recursively for video extensions).
        out_dir: Output folder: clips, ``.previews/``, ``scenes.html`` and ``scenes.json`` (see the module docstring).
        detector, detector_params, min_scene_len, max_scene_len, max_scenes, skip_start, skip_end: As in
            :func:`detect_scenes`.
        split: Write the clips (``False``: detect, preview and report only).
        previews: Write first/middle/last frame images per scene.
        image_format: Preview image format (``jpg`` or ``png``).
        timecode_format: How the report writes positions: ``frames``, ``seconds`` or ``timecode``.
        timecodes_in_name: Add ``_<start>_<end>`` (in ``timecode_format``) to the clip names.
        crf: x264 quality of the clips.
        preset: x264 preset of the clips.
        show_progress: Show a rich progress bar (on stderr).

    Returns:
        A :class:`SplitSummary`: per input its scenes, clips, previews or error; the report paths.

    Raises:
        ValueError: Bad settings (detector, parameter names, lengths, formats), checked before any input is read, or
            no input at all.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out_dir = Path(out_dir)
    if timecode_format not in get_args(TimecodeFormat):
        raise ValueError(f"timecode_format must be one of {get_args(TimecodeFormat)}, got {timecode_format!r}")
    check_detector_params(detector, detector_params)
    lengths = {"min_scene_len": min_scene_len, "max_scene_len": max_scene_len, "skip_start": skip_start}
    lengths["skip_end"] = skip_end
    for label, value in lengths.items():
        try:
            if value is not None:
                parse_length(value, 24.0)  # the syntax does not depend on the frame rate
        except ValueError as e:
            raise ValueError(f"{label}: {e}") from None
    if max_scenes is not None and max_scenes < 1:
        raise ValueError(f"max_scenes must be >= 1 or None, got {max_scenes}")
    if previews:
        from PIL import Image

        if f".{image_format.lower().lstrip('.')}" not in Image.registered_extensions():
            raise ValueError(f"image_format {image_format!r} is not an image format PIL writes (use jpg or png)")
    paths = collect_inputs(inputs, exclude=out_dir)
    if not paths:
        raise ValueError(f"no input videos found in {inputs}")
    out_dir.mkdir(parents=True, exist_ok=True)
    preview_dir = out_dir / PREVIEW_DIR if previews else None

    results = [InputResult(p, name) for p, name in zip(paths, _unique_names(paths), strict=True)]
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not show_progress, transient=False) as bar:
        inputs_task = bar.add_task("scenes", total=len(results))
        frames_task = bar.add_task("frames", total=None, visible=False)
        for result in results:
            bar.update(inputs_task, description=f"scenes: {result.path.name}")
            try:
                info = probe(result.path)
                result.fps, result.duration = info.fps, info.duration
                passes = 1 + int(split or previews)
                bar.reset(frames_task, total=max(1, info.num_frames) * passes, visible=show_progress)

                def advance(n: int) -> None:
                    bar.advance(frames_task, n)

                result.scenes = detect_scenes(
                    result.path,
                    detector,
                    detector_params,
                    min_scene_len,
                    max_scene_len,
                    max_scenes,
                    skip_start,
                    skip_end,
                    progress=advance,
                )
                if result.scenes:
                    result.fps = result.scenes[0].fps
                exported = _export(
                    result.path,
                    result.scenes,
                    result.name,
                    out_dir if split else None,
                    preview_dir,
                    timecode_format if timecodes_in_name else None,
                    image_format=image_format,
                    crf=crf,
                    preset=preset,
                    progress=advance,
                )
                result.clips = exported.clips if split else []
                result.previews = exported.previews if previews else []
                logger.info(f"{result.path}: {len(result.scenes)} scene(s)")
            except Exception as e:  # one bad input must not stop the run: record it and go on
                result.error = e.reason if isinstance(e, MediaError) else f"{type(e).__name__}: {e}"
                logger.error(f"skipped {result.path}: {result.error}")
                logger.debug("traceback", exc_info=True)
            bar.advance(inputs_task)
        bar.update(inputs_task, description="scenes")

    settings = {
        "detector": detector,
        "detector_params": {k: _jsonable(v) for k, v in (detector_params or {}).items()},
        "min_scene_len": min_scene_len,
        "max_scene_len": max_scene_len,
        "max_scenes": max_scenes,
        "skip_start": skip_start,
        "skip_end": skip_end,
    }
    scene_list = _write_scene_list(results, out_dir / "scenes.json", timecode_format, settings)
    report = write_report(results, out_dir / "scenes.html", timecode_format, settings)
    failed = sum(1 for r in results if not r.ok)
    logger.info(
        f"{len(results) - failed} of {len(results)} input(s) processed, {failed} failed; "
        f"{sum(len(r.scenes) for r in results)} scene(s); report {report}"
    )
    return SplitSummary(results, report, scene_list)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.name.lower()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_scene_list(
    results: Sequence[InputResult], path: Path, timecode_format: TimecodeFormat, settings: Mapping[str, Any]
) -> Path:
    base = path.parent
    entries = []
    for r in results:
        scenes = []
        for k, scene in enumerate(r.scenes):
            entry = {"number": k + 1, **scene.to_dict(timecode_format)}
            if k < len(r.clips) and r.clips[k] is not None:
                entry["clip"] = _relative(r.clips[k], base)  # type: ignore[arg-type]
            if k < len(r.previews):
                entry["previews"] = [_relative(p, base) for p in r.previews[k]]
            scenes.append(entry)
        entries.append(
            {
                "input": str(r.path),
                "name": r.name,
                "fps": r.fps,
                "duration": r.duration,
                "error": r.error,
                "scenes": scenes,
            }
        )
    data = {"timecode_format": timecode_format, "settings": settings, "inputs": entries}
    _atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: middle; }
th { background: #f4f4f4; }
img { height: 90px; margin-right: 4px; }
.error { color: #b00020; font-weight: bold; }
.meta { color: #666; }
"""


def write_report(
    results: Sequence[InputResult],
    path: str | os.PathLike[str],
    timecode_format: TimecodeFormat = "frames",
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """Write an HTML report: per input its scenes with thumbnails, start/end timecodes, durations and clips; the
    inputs that failed with their error. Links are relative to the report's folder."""
    path = Path(path)
    base = path.parent
    esc = html.escape
    failed = [r for r in results if not r.ok]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Scenes</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>Scenes</h1>",
        f'<p class="meta">{len(results)} input(s), {len(results) - len(failed)} processed, {len(failed)} failed, '
        f"{sum(len(r.scenes) for r in results)} scene(s). Positions in {esc(timecode_format)}; the end of a scene "
        "is exclusive.</p>",
    ]
    if settings:
        shown = ", ".join(f"{esc(str(k))}={esc(str(v))}" for k, v in settings.items() if v not in (None, {}, ""))
        parts.append(f'<p class="meta">{shown}</p>')
    if failed:
        parts.append("<h2>Errors</h2><ul>")
        parts.extend(f'<li class="error">{esc(str(r.path))}: {esc(r.error or "")}</li>' for r in failed)
        parts.append("</ul>")
    for r in results:
        parts.append(f'<h2 id="{esc(r.name)}">{esc(r.path.name)}</h2>')
        meta = f"{esc(str(r.path))} · {r.fps:.3f} fps · {r.duration:.3f} s" if r.fps else esc(str(r.path))
        parts.append(f'<p class="meta">{meta}</p>')
        if r.error:
            parts.append(f'<p class="error">{esc(r.error)}</p>')
            continue
        if not r.scenes:
            parts.append("<p>No scene kept (all shorter than the minimum, or skipped).</p>")
            continue
        parts.append(
            "<table><tr><th>#</th><th>start</th><th>end</th><th>duration</th><th>frames</th>"
            "<th>previews</th><th>clip</th></tr>"
        )
        for k, scene in enumerate(r.scenes):
            start, end = scene.timecodes(timecode_format)
            images = "".join(
                f'<img src="{esc(_relative(p, base))}" alt="{esc(p.name)}" loading="lazy">'
                for p in (r.previews[k] if k < len(r.previews) else [])
            )
            clip = r.clips[k] if k < len(r.clips) else None
            link = f'<a href="{esc(_relative(clip, base))}">{esc(clip.name)}</a>' if clip is not None else ""
            parts.append(
                f'<tr id="{esc(r.name)}-scene-{k + 1}"><td>{k + 1}</td><td>{esc(start)}</td><td>{esc(end)}</td>'
                f"<td>{scene.duration:.3f} s</td><td>{scene.num_frames}</td><td>{images}</td><td>{link}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    _atomic_write_text(path, "\n".join(parts) + "\n")
    return path
