"""Scene detection: PySceneDetect detectors fed with frames that PyAV decodes, in decoder output order."""

from __future__ import annotations

import inspect
import itertools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import av

from ltx_trainer import logger
from ltx_trainer.data.media import MediaError, decode_video_frames, open_input, probe, video_stream
from ltx_trainer.data.media.container import _expected_num_frames, warn_once
from ltx_trainer.data.scenes.timecodes import Length, Scene, parse_length

if TYPE_CHECKING:
    from scenedetect import SceneDetector

DetectorName = Literal["content", "adaptive", "threshold", "histogram", "hash"]

#: Detector names and the PySceneDetect classes behind them.
DETECTORS: dict[str, str] = {
    "content": "ContentDetector",  # HSV (+ optional edge) difference between frames: hard cuts
    "adaptive": "AdaptiveDetector",  # content score relative to its neighbours: hard cuts with fast camera motion
    "threshold": "ThresholdDetector",  # mean brightness crossing a level: fades to/from black only
    "histogram": "HistogramDetector",  # YUV histogram correlation: hard cuts
    "hash": "HashDetector",  # perceptual hash distance: hard cuts (false cuts on flat synthetic frames)
}

#: Shortest scene kept by default, in frames (PySceneDetect's own default).
DEFAULT_MIN_SCENE_LEN = 15
# Detectors never place two cuts closer than this (frames) unless min_scene_len is smaller: short shots are found and
# then dropped, instead of being merged into the next scene by the detector.
_DETECTOR_MIN_SCENE_LEN = 15
# Frames are downscaled so that their longer side is at most this before detection (as PySceneDetect does).
_DETECTION_SIZE = 256


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


def with_threshold(detector: str, params: Mapping[str, Any], threshold: float | None) -> dict[str, Any]:
    """``params`` with the ``threshold`` option (``split-scenes --threshold``, ``pipeline.split.threshold``), when
    given, under the name ``detector`` takes it by (``adaptive_threshold`` for the adaptive detector); it wins over
    the same key in ``params``."""
    out = dict(params)
    if threshold is not None:
        out["adaptive_threshold" if detector == "adaptive" else "threshold"] = threshold
    return out


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


@dataclass
class Detection:
    """What :func:`detect_video` found: the scenes kept and how much of the video actually decoded.

    Attributes:
        scenes: The scenes kept (after the length rules).
        fps: The video's frame rate.
        decoded_frames: Frames that decoded.
        expected_frames: Frames the container announces (0 when it does not say).
        concealed_frames: Frames the decoder flagged corrupt (it concealed a damaged packet; they decode, with
            artifacts).
        min_frames: ``min_scene_len`` in frames.
        note: Why no scene was kept (``None`` when some were).
    """

    scenes: list[Scene]
    fps: float
    decoded_frames: int
    expected_frames: int
    min_frames: int
    note: str | None = None
    concealed_frames: int = 0

    @property
    def truncated(self) -> str | None:
        """Why the video looks truncated (fewer frames decoded than the container announces), or ``None``."""
        missing = self.expected_frames - self.decoded_frames
        if self.expected_frames <= 0 or missing <= max(1, self.expected_frames // 100):
            return None
        return (
            f"truncated or damaged: only {self.decoded_frames} of the {self.expected_frames} frames the file announces "
            f"decoded ({self.decoded_frames / self.fps:.3f} s of {self.expected_frames / self.fps:.3f} s)"
        )

    @property
    def damaged(self) -> str | None:
        """Why the video looks truncated or damaged (see :attr:`truncated`; or frames the decoder had to conceal), or
        ``None``."""
        concealed = (
            f"damaged: {self.concealed_frames} frame(s) decoded with errors the decoder concealed; clips over them may "
            "show artifacts"
            if self.concealed_frames
            else None
        )
        return "; ".join(r for r in (self.truncated, concealed) if r) or None


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
    return detect_video(
        path, detector, detector_params, min_scene_len, max_scene_len, max_scenes, skip_start, skip_end, progress
    ).scenes


def detect_video(
    path: str | os.PathLike[str],
    detector: DetectorName | str = "content",
    detector_params: Mapping[str, Any] | None = None,
    min_scene_len: Length = DEFAULT_MIN_SCENE_LEN,
    max_scene_len: Length | None = None,
    max_scenes: int | None = None,
    skip_start: Length = 0.0,
    skip_end: Length = 0.0,
    progress: Callable[[int], None] | None = None,
) -> Detection:
    """:func:`detect_scenes` that also says how much of the video decoded and why nothing was kept (see
    :class:`Detection`)."""
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
        total = concealed = 0
        size: tuple[int, int] | None = None
        frames = decode_video_frames(container, path)
        try:
            for index, frame in enumerate(frames):
                total = index + 1
                concealed += frame.is_corrupt
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
        expected = _expected_num_frames(container)

    result = Detection([], fps, total, expected, min_frames, concealed_frames=concealed)
    if truncated := result.truncated:  # concealed frames were already logged by the decoder's report
        warn_once(path, "truncated", f"{path}: {truncated}")
    end = total - skip_end_frames
    if end <= start:
        result.note = (
            f"no scene kept: skip_start ({start} frames) and skip_end ({skip_end_frames} frames) leave nothing of "
            f"its {total} frame(s)"
        )
        logger.warning(f"{path}: {result.note}")
        return result
    scenes = _scenes_from_cuts(cuts, start, end, fps)
    result.scenes = _limit_scenes(scenes, min_frames, max_frames, max_scenes)
    if not result.scenes:
        what = "its single frame is" if total == 1 else f"all {len(scenes)} scene(s) of its {total} frames are"
        result.note = f"no scene kept: {what} shorter than min_scene_len ({min_frames} frames)"
    logger.debug(
        f"{path}: {len(scenes)} scene(s) detected, {len(result.scenes)} kept, cuts at frames {sorted(set(cuts))}"
    )
    return result
