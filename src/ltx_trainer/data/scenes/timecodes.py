"""Scenes, lengths and timecodes: the frame arithmetic shared by detection, export and the report."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

Length = int | float | str
TimecodeFormat = Literal["frames", "seconds", "timecode"]
_LENGTH_HELP = "use frames ('48'), seconds ('2s' or '2.5') or a timecode ('00:00:02.000')"


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
