"""``ltx-trainer info``: what a LoRA, single file or diffusers folder holds (read from the headers)."""

from pathlib import Path
from typing import Annotated

import typer


def info(
    path: Annotated[Path, typer.Argument(help="A LoRA file, an official single file, or a diffusers folder.")],
) -> None:
    """Show what a LoRA or model holds: format, rank, alpha, targets, base model; or family, layout, dtypes, size."""
    from ltx_trainer.models.describe import describe

    rows = describe(path)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"{name:{width}s}  {value}")
