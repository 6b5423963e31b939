"""Clip export and previews: frame-exact H.264 + AAC clips and preview images in one decoding pass."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import av.error
import numpy as np

from ltx_trainer import logger
from ltx_trainer.data.media import MediaError, decode_video_frames, probe, quarter_turns, read_audio, write_image
from ltx_trainer.data.media.write import add_h264_stream
from ltx_trainer.data.scenes.detection import _frame_rate, _open_video
from ltx_trainer.data.scenes.timecodes import Scene, TimecodeFormat, scene_file_name
from ltx_trainer.io import atomic_path

# Sample rates the AAC encoder takes; other rates are resampled to 48 kHz.
#: Folder of the preview images inside the output folder of :func:`split_folder` (hidden: not training data).
PREVIEW_DIR = ".previews"
_AAC_RATES = frozenset({7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000})


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
        # The clip is written through io.atomic_path (a temporary name that keeps the .mp4 suffix for the muxer),
        # entered here and left in close() (fsync + rename) or abort() (the temporary file is removed).
        self._atomic = contextlib.ExitStack()
        self.tmp = self._atomic.enter_context(atomic_path(path))
        self.container = av.open(str(self.tmp), mode="w", container_options={"movflags": "+faststart"})
        try:
            # Every stream must exist before the first packet is muxed.
            self.video = add_h264_stream(self.container, rate, *self.size, crf, preset)
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
            self._atomic.close()
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(av.error.FFmpegError, ValueError, OSError):
            self.container.close()
        aborted = RuntimeError(f"{self.path}: clip export aborted")
        with contextlib.suppress(RuntimeError):
            self._atomic.__exit__(RuntimeError, aborted, None)  # removes the temporary file
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
