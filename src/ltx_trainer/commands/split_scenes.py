"""`ltx-trainer split-scenes`: cut raw footage into one clip per shot, with previews and an HTML report.

Register it with ``app.command("split-scenes")(split_scenes)``; the work is done by
:func:`ltx_trainer.data.scenes.split_folder`.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

_LENGTH_FORMS = 'frames ("48"), seconds ("2s", "2.5") or a timecode ("00:00:02.000")'


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not key=value (e.g. luma_only=true)", param_hint="--param")
        params[key.strip().replace("-", "_")] = value.strip()
    return params


def split_scenes(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Video files and/or folders of videos (searched recursively).", show_default=False),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Output folder: the clips, .previews/, scenes.html and scenes.json."),
    ],
    detector: Annotated[
        Literal["content", "adaptive", "threshold", "histogram", "hash"],
        typer.Option(
            help="PySceneDetect detector. content/adaptive/histogram find hard cuts; threshold only finds fades to "
            "black; hash gives false cuts on flat, synthetic footage."
        ),
    ] = "content",
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Detector threshold (adaptive: adaptive_threshold). Defaults: content 27, adaptive 3, threshold 12, "
            "histogram 0.2, hash 0.35. Lower finds more cuts."
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Another detector parameter as key=value, repeatable: luma_only=true, window_width=3, "
            "min_content_val=15, bins=128, fade_bias=0.2, weights=1,1,1,0 ... A wrong name lists the allowed ones.",
        ),
    ] = None,
    min_scene_len: Annotated[
        str, typer.Option(help=f"Drop scenes shorter than this (not merged): {_LENGTH_FORMS}.")
    ] = "15",
    max_scene_len: Annotated[
        str | None,
        typer.Option(
            help=f"Cut longer scenes into pieces of exactly this length plus a remainder (dropped when shorter than "
            f"--min-scene-len): {_LENGTH_FORMS}."
        ),
    ] = None,
    max_scenes: Annotated[int | None, typer.Option(min=1, help="Keep only the first N scenes of each video.")] = None,
    skip_start: Annotated[str, typer.Option(help=f"Ignore the start of each video: {_LENGTH_FORMS}.")] = "0",
    skip_end: Annotated[str, typer.Option(help=f"Ignore the end of each video: {_LENGTH_FORMS}.")] = "0",
    timecode_format: Annotated[
        Literal["frames", "seconds", "timecode"],
        typer.Option(help="How the report (and --timecode-in-name) writes positions: 123, 5.125 or 00:00:05.125."),
    ] = "frames",
    timecode_in_name: Annotated[
        bool, typer.Option(help="Add _<start>_<end> to the clip names (':' written as '-').")
    ] = False,
    split: Annotated[bool, typer.Option(help="Write the clips; --no-split only detects, previews and reports.")] = True,
    preview: Annotated[bool, typer.Option(help="Save the first, middle and last frame of every scene.")] = True,
    image_format: Annotated[Literal["jpg", "png"], typer.Option(help="Preview image format.")] = "jpg",
    crf: Annotated[int, typer.Option(min=0, max=51, help="x264 quality of the clips (18: visually lossless).")] = 18,
    preset: Annotated[str, typer.Option(help="x264 preset of the clips (ultrafast ... veryslow).")] = "veryfast",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Split videos into one clip per scene (H.264 + AAC, frame-exact, with audio), with previews and a report.

    Every input is accounted for in the table: split, kept from an earlier run, no scene kept, damaged (truncated),
    failed, or skipped as not a video. Exit 1 when an input failed or is damaged, or when nothing was produced.
    Rerunning into the same folder resumes: sources already split with the same settings are kept, new ones get
    unique names, and scenes.json / scenes.html accumulate.
    """
    from rich.console import Console
    from rich.table import Table

    from ltx_trainer.data.scenes import split_folder, with_threshold
    from ltx_trainer.errors import PartialFailure, UsageError

    params = with_threshold(detector, _parse_params(param or []), threshold)
    console = Console(soft_wrap=True)
    try:
        summary = split_folder(
            inputs,
            output,
            detector=detector,
            detector_params=params,
            min_scene_len=min_scene_len,
            max_scene_len=max_scene_len,
            max_scenes=max_scenes,
            skip_start=skip_start,
            skip_end=skip_end,
            split=split,
            previews=preview,
            image_format=image_format,
            timecode_format=timecode_format,
            timecodes_in_name=timecode_in_name,
            crf=crf,
            preset=preset,
            show_progress=progress,
        )
    except ValueError as e:  # settings the user gave: detector parameters, lengths, no input found
        raise UsageError(str(e)) from None

    table = Table("input", "scenes", "clips", "status")
    for result in summary.results:
        table.add_row(
            str(result.path),
            str(len(result.scenes)) if result.ok else "-",
            str(sum(clip is not None for clip in result.clips)) if result.ok else "-",
            result.status,
        )
    for path, reason in summary.skipped.items():
        table.add_row(str(path), "-", "-", f"skipped: {reason}")
    console.print(table)
    console.print(f"report: {summary.report}\nscene list: {summary.scene_list}", highlight=False)
    total = len(summary.results) + len(summary.skipped)
    if not summary.produced:
        raise PartialFailure(f"nothing produced: no clip from the {total} input(s) (see the table above)")
    problems = len(summary.failed) + len(summary.damaged)
    if problems:
        parts = [
            f"{count} of {len(summary.results)} input(s) {what}"
            for count, what in ((len(summary.failed), "failed"), (len(summary.damaged), "damaged (clips kept)"))
            if count
        ]
        raise PartialFailure(f"{' and '.join(parts)}; see {summary.report}")
