"""``ltx-trainer compare``: a run's checkpoint against the base model on its own training clips (before/after)."""

from pathlib import Path
from typing import Annotated

import typer


def compare(
    run_dir: Annotated[Path, typer.Argument(help="A training output_dir (finished, or interrupted with checkpoints).")],
    checkpoint: Annotated[
        int | None, typer.Option("--checkpoint", help="The checkpoint's step; default: the latest saved.")
    ] = None,
    clips: Annotated[
        int | None, typer.Option(help="Training clips to sample; default: the run's validation.efficacy_clips.")
    ] = None,
    device: Annotated[str, typer.Option(help="Where to sample: auto (CUDA when available), cuda, cpu.")] = "auto",
) -> None:
    """Sample a checkpoint and the base model from the same seeds on the training clips; write the before/after
    report (distances to the clips, posters, validation grid, losses)."""
    from rich.console import Console

    from ltx_trainer.errors import UsageError
    from ltx_trainer.training.compare import compare_run

    if clips is not None and clips < 1:
        raise UsageError(f"--clips {clips}: sample at least 1 clip")
    result = compare_run(run_dir, checkpoint, clips, device)
    console = Console(soft_wrap=True)
    console.print(f"[bold]{result.weights.name}[/bold]: {result.efficacy.verdict()}", highlight=False)
    console.print(f"report  {result.report}", highlight=False)
