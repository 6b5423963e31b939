"""Many inputs: collect, name, detect, export, report (:func:`split_folder`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from ltx_trainer import logger
from ltx_trainer.data.media import VIDEO_EXTENSIONS, MediaError, probe
from ltx_trainer.data.scenes.detection import DEFAULT_MIN_SCENE_LEN, DetectorName, check_detector_params, detect_scenes
from ltx_trainer.data.scenes.export import PREVIEW_DIR, _export
from ltx_trainer.data.scenes.report import InputResult, SplitSummary, _jsonable, _write_scene_list, write_report
from ltx_trainer.data.scenes.timecodes import Length, TimecodeFormat, parse_length


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
