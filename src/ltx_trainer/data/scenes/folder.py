"""Many inputs: collect, name, detect, export, report (:func:`split_folder`).

Every input is accounted for: videos are split (or resumed, failed, found damaged, or kept no scene, each with its
reason); images, audio and other files found in a folder are listed as skipped with the reason. Clip names are
unique per source across runs into the same folder, and the scene list and report accumulate.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from ltx_trainer import logger
from ltx_trainer.data.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, MediaError, probe
from ltx_trainer.data.scenes.detection import DEFAULT_MIN_SCENE_LEN, DetectorName, check_detector_params, detect_video
from ltx_trainer.data.scenes.export import PREVIEW_DIR, _export
from ltx_trainer.data.scenes.report import (
    REPORT,
    SCENE_LIST,
    InputResult,
    SplitSummary,
    _jsonable,
    _write_scene_list,
    read_scene_list,
    source_key,
    write_report,
)
from ltx_trainer.data.scenes.timecodes import Length, TimecodeFormat, parse_length


def _not_a_video(path: Path) -> str | None:
    """Why split-scenes does not take ``path`` (``None`` for a video, or an unknown suffix worth trying)."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "a still image, not a video (nothing to cut; caption and preprocess take it as it is)"
    if suffix in AUDIO_EXTENSIONS:
        return "audio only, not a video (nothing to cut; caption and preprocess take it as it is)"
    return None


def scan_inputs(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], exclude: Path | None = None
) -> tuple[list[Path], dict[Path, str]]:
    """The videos among ``inputs`` (folders searched recursively) and the other files with why they are skipped.

    Hidden files and folders and the content of ``exclude`` (the output folder) are left out silently. A file given
    by name with an unknown suffix is kept as a video to try; images and audio files are skipped.
    """
    items = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    found: dict[Path, None] = {}
    skipped: dict[Path, str] = {}
    excluded = exclude.resolve() if exclude is not None else None
    for item in map(Path, items):
        if not item.is_dir():
            if reason := _not_a_video(item):
                skipped[item] = reason
            else:
                found.setdefault(item, None)
            continue
        videos = []
        for p in sorted(item.rglob("*")):
            relative = p.relative_to(item).parts
            if not p.is_file() or any(part.startswith(".") for part in relative):
                continue
            if excluded is not None and p.resolve().is_relative_to(excluded):
                continue
            if p.suffix.lower() in VIDEO_EXTENSIONS:
                videos.append(p)
            else:
                skipped[p] = _not_a_video(p) or f"not a supported kind ({p.suffix or 'no extension'}; not a video)"
        if not videos:
            logger.warning(f"{item}: no video files ({', '.join(sorted(VIDEO_EXTENSIONS))}) in this folder")
        for p in videos:
            found.setdefault(p, None)
    return list(found), skipped


def collect_inputs(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], exclude: Path | None = None
) -> list[Path]:
    """Expand folders into the video files below them (sorted, by extension); files are kept as given.

    Args:
        inputs: Files and/or folders.
        exclude: A folder whose content is skipped (the output folder, when it lies inside an input folder).
    """
    return scan_inputs(inputs, exclude)[0]


def _has_outputs(out_dir: Path, name: str) -> bool:
    pattern = f"{glob.escape(name)}-Scene-*"
    return any(out_dir.glob(pattern)) or any((out_dir / PREVIEW_DIR).glob(pattern))


def _unique_names(paths: Sequence[Path], earlier: Mapping[str, InputResult], out_dir: Path | None = None) -> list[str]:
    """A base name per input: the one an earlier run gave the same source, else its stem made unique among every
    source of the folder (``b``, ``b-2``, ...) and the files already there."""
    taken = {r.name for key, r in earlier.items()}
    names: list[str] = []
    for p in paths:
        if (previous := earlier.get(source_key(p))) is not None:
            names.append(previous.name)
            continue
        name, n = p.stem, 1
        while name in taken or (out_dir is not None and _has_outputs(out_dir, name)):
            n += 1
            name = f"{p.stem}-{n}"
        taken.add(name)
        names.append(name)
    return names


def _source_stamp(path: Path) -> dict[str, int]:
    try:
        stat = path.stat()
    except OSError:
        return {}
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _resumable(earlier: InputResult | None, stamp: dict[str, int], settings: dict[str, Any]) -> bool:
    """Whether an earlier run split this very source with these settings and all its outputs are still there."""
    return (
        earlier is not None
        and earlier.ok
        and bool(stamp)
        and earlier.source == stamp
        and earlier.settings == settings
        and all(p.is_file() for p in earlier.outputs)
    )


def _remove_stale(earlier: InputResult | None, result: InputResult, out_dir: Path) -> None:
    """Delete the outputs an earlier run wrote for this source that the new run no longer produces."""
    if earlier is None:
        return
    keep = {p.resolve() for p in result.outputs}
    root = out_dir.resolve()
    for old in earlier.outputs:
        resolved = old.resolve()
        if resolved not in keep and resolved.is_relative_to(root) and old.name.startswith(f"{earlier.name}-Scene-"):
            old.unlink(missing_ok=True)


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
    from rich.progress import Progress

    from ltx_trainer.data.progress import progress_columns

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
    paths, skipped = scan_inputs(inputs, exclude=out_dir)
    if not paths and not skipped:
        raise ValueError(f"no input videos found in {inputs}")
    for path, reason in skipped.items():
        logger.info(f"skipped {path}: {reason}")
    out_dir.mkdir(parents=True, exist_ok=True)
    preview_dir = out_dir / PREVIEW_DIR if previews else None
    settings = {
        "detector": detector,
        "detector_params": {k: _jsonable(v) for k, v in (detector_params or {}).items()},
        "min_scene_len": min_scene_len,
        "max_scene_len": max_scene_len,
        "max_scenes": max_scenes,
        "skip_start": skip_start,
        "skip_end": skip_end,
    }
    # what decides the outputs of a source: a rerun with the same ones over the same file is a resume
    output_settings = {
        **settings,
        "split": split,
        "previews": previews,
        "image_format": image_format,
        "timecodes_in_name": timecode_format if timecodes_in_name else None,
        "crf": crf,
        "preset": preset,
    }
    earlier = read_scene_list(out_dir / SCENE_LIST)

    results = [InputResult(p, name) for p, name in zip(paths, _unique_names(paths, earlier, out_dir), strict=True)]
    console = Console(stderr=True)
    columns = progress_columns("{task.description}", remaining=False)
    with Progress(*columns, console=console, disable=not show_progress, transient=False) as bar:
        inputs_task = bar.add_task("scenes", total=len(results))
        frames_task = bar.add_task("frames", total=None, visible=False)
        for k, result in enumerate(results):
            bar.update(inputs_task, description=f"scenes: {result.path.name}")
            previous = earlier.get(source_key(result.path))
            stamp = _source_stamp(result.path)
            if _resumable(previous, stamp, output_settings):
                assert previous is not None
                results[k] = result = previous
                result.path, result.resumed = Path(result.path), True
                logger.info(f"{result.path}: already split with these settings, kept ({len(result.scenes)} scene(s))")
                bar.advance(inputs_task)
                continue
            result.source, result.settings = stamp, output_settings
            try:
                info = probe(result.path)
                result.fps, result.duration = info.fps, info.duration
                passes = 1 + int(split or previews)
                bar.reset(frames_task, total=max(1, info.num_frames) * passes, visible=show_progress)

                def advance(n: int) -> None:
                    bar.advance(frames_task, n)

                detection = detect_video(
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
                result.scenes, result.note, result.damaged = detection.scenes, detection.note, detection.damaged
                result.fps, result.duration = detection.fps, detection.decoded_frames / detection.fps
                exporting = bool(result.scenes) and (split or previews)
                export_frames = max(s.end_frame for s in result.scenes) if exporting else 0
                bar.update(frames_task, total=detection.decoded_frames + export_frames)  # what decodes, not the header
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
                if any(result.clips) and (info.width % 2 or info.height % 2):
                    even = f"{info.width + info.width % 2}x{info.height + info.height % 2}"
                    result.note = (
                        f"odd size {info.width}x{info.height}: clips padded to {even} by repeating the last "
                        "row/column (H.264 in yuv420p needs even sizes)"
                    )
                result.previews = exported.previews if previews else []
                logger.info(f"{result.path}: {len(result.scenes)} scene(s)")
            except Exception as e:  # one bad input must not stop the run: record it and go on
                result.error = e.reason if isinstance(e, MediaError) else f"{type(e).__name__}: {e}"
                logger.error(f"skipped {result.path}: {result.error}")
                logger.debug("traceback", exc_info=True)
            _remove_stale(previous, result, out_dir)
            done = bar.tasks[frames_task].completed
            bar.update(frames_task, total=max(done, 1), completed=done)  # the bar ends where the work ended
            bar.advance(inputs_task)
        bar.update(inputs_task, description="scenes")

    # The scene list and report cover every source split into this folder, this run's and earlier ones'.
    merged = dict(earlier)
    for result in results:
        merged[source_key(result.path)] = result
    everything = list(merged.values())
    scene_list = _write_scene_list(everything, out_dir / SCENE_LIST, timecode_format, settings, skipped)
    report = write_report(everything, out_dir / REPORT, timecode_format, settings, skipped)
    failed = sum(1 for r in results if not r.ok)
    logger.info(
        f"{len(results) - failed} of {len(results)} input(s) processed, {failed} failed, {len(skipped)} skipped; "
        f"{sum(len(r.scenes) for r in results)} scene(s); report {report}"
    )
    return SplitSummary(results, report, scene_list, skipped)
