"""``ltx-trainer run-pipeline``: split-scenes -> caption -> preprocess -> train -> sample in one command.

cli.py registers it lazily; the work is :func:`ltx_trainer.pipeline.run_pipeline`. This module parses, prints a stage
line before each stage (each stage shows its own progress bars) and the summary table at the end.
"""

from pathlib import Path
from typing import Annotated

import typer


def run_pipeline(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Training config with a pipeline: section (docs/pipeline.md).")
    ],
    raw_dir: Annotated[
        Path | None,
        typer.Argument(help="Folder (or file) of raw footage; default pipeline.raw_dir. Needed by the split stage."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Put everything under DIR: the dataset in DIR/dataset, training, report and samples in DIR "
            "(instead of the config's data.preprocessed_data_root and output_dir).",
        ),
    ] = None,
    stages: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated stages to run instead of pipeline.stages: split,caption,preprocess,train,sample."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show each stage's progress bars.")] = True,
) -> None:
    """Footage to LoRA in one command: split-scenes, caption, preprocess, train, sample; reruns skip finished stages.

    Every stage resumes as its own verb does (sources already split, clips already captioned, samples already
    preprocessed, training from its last checkpoint), so a rerun after a failure or a kill goes on where it stopped.
    A failing stage stops the pipeline with its own one-line message and exit code. The report
    (pipeline_report.html in the run folder) links every stage's report and shows the final samples.
    """
    from rich.console import Console
    from rich.table import Table

    from ltx_trainer.pipeline import parse_stages
    from ltx_trainer.pipeline import run_pipeline as run

    console = Console(soft_wrap=True)

    def started(index: int, total: int, stage: str) -> None:
        console.rule(f"[bold][{index}/{total}] {stage}", align="left")

    def finished(index: int, total: int, result) -> None:
        color = "green" if result.status == "done" else "dim"
        console.print(
            f"[{color}][{index}/{total}] {result.name} {result.status}[/{color}]: {result.detail}", highlight=False
        )

    result = run(
        config,
        raw_dir,
        out,
        parse_stages(stages) if stages is not None else None,
        progress=progress,
        on_start=started,
        on_end=finished,
    )
    table = Table("stage", "status", "what it did", "time", title="run-pipeline")
    for stage in result.stages:
        table.add_row(stage.name, stage.status, stage.detail, f"{stage.seconds:.1f} s" if stage.status != "off" else "")
    console.print(table)
    console.print(f"report: {result.report}", highlight=False)
