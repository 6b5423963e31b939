"""``ltx-trainer convert``: LoRAs between layouts, full checkpoints between single file and diffusers, LoRA merging."""

from pathlib import Path
from typing import Annotated

import typer

from ltx_trainer.errors import UsageError

LAYOUTS_HELP = (
    "Output layout. LoRA: official (= comfyui), ai-toolkit, diffusers, kohya, musubi. Full checkpoint: official "
    "(single file) or diffusers (folder). Not used with --merge (the output is an official single file)."
)


def convert(
    source: Annotated[Path, typer.Argument(help="A LoRA file, an official single file, or a diffusers folder.")],
    out: Annotated[Path, typer.Argument(help="Where the result goes (a file, or a folder for --to diffusers).")],
    to: Annotated[str | None, typer.Option("--to", help=LAYOUTS_HELP)] = None,
    merge: Annotated[
        Path | None,
        typer.Option("--merge", help="Fuse the LoRA SOURCE into this official single file; OUT is the merged file."),
    ] = None,
    strength: Annotated[float, typer.Option(help="LoRA strength for --merge.")] = 1.0,
    fold_alpha: Annotated[
        bool, typer.Option("--fold-alpha", help="kohya/musubi output: fold alpha/rank into lora_up (alpha = rank).")
    ] = False,
    dtype: Annotated[
        str,
        typer.Option(help="keep (as stored), bf16, fp32, or fp8 (official single files: the pre-quantized layout)."),
    ] = "keep",
    text_encoder: Annotated[
        Path | None, typer.Option(help="--to diffusers: also copy this text encoder folder (Gemma / T5) in.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")] = False,
) -> None:
    """Convert a LoRA or checkpoint between layouts (input layout detected), or merge a LoRA into a base model."""
    from ltx_trainer.models import convert as conversion

    if merge is not None:
        if to not in (None, "official", "comfyui"):
            raise UsageError(f"--merge writes an official single file; drop --to {to}")
        if fold_alpha or text_encoder is not None:
            raise UsageError("--fold-alpha and --text-encoder do not apply to --merge")
        written = conversion.merge(source, merge, out, dtype, strength, overwrite)
        typer.echo(f"merged {source} (strength {strength:g}) into {merge}: {written}")
        return
    if to is None:
        raise UsageError("give --to (official, comfyui, ai-toolkit, diffusers, kohya, musubi) or --merge BASE")
    done = conversion.convert(source, out, to, fold_alpha, dtype, text_encoder, overwrite)
    typer.echo(f"{done.kind} {source} ({done.source_layout}) -> {done.out} ({done.layout})")
