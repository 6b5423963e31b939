"""``ltx-trainer compute-reference``: IC-LoRA reference videos from source clips, and the file that pairs them."""

import os
from pathlib import Path
from typing import Annotated

import typer


def compute_reference(
    source: Annotated[
        Path, typer.Argument(help="A clip, a folder of clips, or a dataset file (CSV/JSON/JSONL; columns kept).")
    ],
    transform: Annotated[
        list[str] | None,
        typer.Option(
            "--transform",
            "-t",
            help="canny, blur, grayscale, downscale, a name registered by --plugin, or module:function / "
            "file.py:function; repeat to chain (applied in order). Default: canny.",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Transform parameter KEY=VALUE or TRANSFORM.KEY=VALUE (repeat), e.g. canny.low=50, factor=2, sigma=4.",
        ),
    ] = None,
    plugin: Annotated[
        list[str] | None,
        typer.Option(help="Module or .py file to import first, so its @register_transform functions exist."),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option(help="Folder for the reference videos; default <source folder>/references.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Pairing file (.csv, .jsonl or .json) with media_path, reference_video (and caption); default "
            "<name>_reference.<ext> next to a dataset file, else references.csv in the source folder."
        ),
    ] = None,
    captions: Annotated[
        Path | None, typer.Option(help="CSV/JSON/JSONL with media path and caption columns, carried over.")
    ] = None,
    audio: Annotated[bool, typer.Option(help="Copy each clip's audio into its reference.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Recompute references that already exist.")] = False,
) -> None:
    """Make IC-LoRA reference videos (same fps, frame count and audio) and a dataset file pairing them with clips."""
    from rich.console import Console
    from rich.progress import Progress

    from ltx_trainer.data.progress import progress_columns
    from ltx_trainer.data.reference import collect_clips, compute_references, load_plugin

    console = Console(soft_wrap=True)
    for module in plugin or []:
        load_plugin(module)
    total = len(collect_clips(source)[1])
    columns = progress_columns("references", elapsed=False)
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("references", total=total)
        pairs, pairs_file = compute_references(
            source,
            transform or ["canny"],
            param or [],
            out_dir=out_dir,
            pairs_file=output,
            captions=captions,
            with_audio=audio,
            overwrite=overwrite,
            on_progress=lambda _: progress.advance(task),
        )
    where = os.path.commonpath([str(p.reference.parent) for p in pairs])
    console.print(f"{len(pairs)} reference video(s) in {where}; pairing file: {pairs_file}", highlight=False)
