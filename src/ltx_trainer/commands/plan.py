"""``ltx-trainer plan``: predicted peak VRAM, host RAM and step time per memory tier; the fastest tier that fits."""

from pathlib import Path
from typing import Annotated

import typer

from ltx_trainer.errors import PartialFailure, UsageError


def plan(
    arch: Annotated[
        str | None, typer.Option(help="ltx2-19b, ltx2.3-22b, ltxv-2b, ltxv-13b, tiny-ltx2, tiny-ltx2.3, tiny-ltxv")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="An LTX-2 single file (its config metadata) instead of --arch.")
    ] = None,
    gpu_memory: Annotated[float, typer.Option(help="GPU memory in GB.")] = 24.0,
    ram: Annotated[float, typer.Option(help="Host RAM in GB.")] = 64.0,
    resolution: Annotated[str, typer.Option(help="W x H x F of the training clips.")] = "704x384x97",
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 64,
    mode: Annotated[str, typer.Option(help="lora or full.")] = "lora",
    write: Annotated[Path | None, typer.Option(help="Also write the chosen config sections to this YAML file.")] = None,
) -> None:
    """Which memory tier fits a GPU and a host: a table of tiers x blocks offloaded x checkpointing, and the config."""
    from ltx_trainer.io import atomic_write_text
    from ltx_trainer.models import memory_plan as mp

    if (arch is None) == (model is None):
        raise UsageError("plan: give exactly one of --arch or --model")
    if mode not in ("lora", "full"):
        raise UsageError(f"--mode: {mode!r} is not one of lora, full")
    try:
        width, height, frames = (int(v) for v in resolution.lower().split("x"))
    except ValueError as e:
        raise UsageError(f"--resolution: {resolution!r} is not W x H x F, e.g. 704x384x97") from e
    try:
        name, transformer = mp.meta_transformer(arch, model)
    except ValueError as e:
        raise UsageError(f"--arch/--model: {e}") from e
    sizes = mp.model_sizes(name, transformer)
    rows = mp.plan_rows(sizes, mp.Shape(width, height, frames), gpu_memory, ram, rank, mode)
    best = mp.fastest(rows)
    typer.echo(
        f"{name}: {sizes.params / 1e9:.2f} B transformer parameters, {sizes.blocks} blocks; "
        f"{mode} r={rank}, {width}x{height}x{frames}; GPU {gpu_memory:g} GB, RAM {ram:g} GB"
    )
    typer.echo("weights: " + ", ".join(f"{t} {sizes.total_bytes(t) / 1e9:.2f} GB" for t in sizes.block_bytes))
    typer.echo(f"{'tier':6s} {'swap':>4s} {'ckpt':>4s} {'VRAM GB':>8s} {'RAM GB':>7s} {'time':>5s}  fits")
    for r in rows:
        mark = "  <- fastest that fits" if r == best else ""
        typer.echo(
            f"{r.tier:6s} {r.blocks_to_swap:4d} {'on' if r.checkpointing else 'off':>4s} {r.vram_gb:8.1f} "
            f"{r.host_gb:7.1f} {r.relative_time:5.2f}  {'yes' if r.fits else 'no'}{mark}"
        )
    if best is None:
        least = mp.smallest(rows)
        hint = ""
        if mode == "full":
            lora_rows = mp.plan_rows(sizes, mp.Shape(width, height, frames), gpu_memory, ram, rank, "lora")
            lora, small = mp.fastest(lora_rows), mp.smallest(lora_rows)
            hint = (
                f"; a LoRA fits: {lora.tier}, {lora.blocks_to_swap} blocks swapped (--mode lora)"
                if lora
                else f"; a LoRA would need {small.vram_gb:.1f} GB VRAM ({small.tier}, {small.blocks_to_swap} swapped)"
            )
        raise PartialFailure(
            f"nothing fits {gpu_memory:g} GB GPU / {ram:g} GB RAM for a {mode} run of {name}: the smallest tier "
            f"({least.tier}, {least.blocks_to_swap} blocks swapped, checkpointing) needs {least.vram_gb:.1f} GB VRAM "
            f"and {least.host_gb:.1f} GB RAM{hint}"
        )
    section = mp.acceleration_yaml(best)
    typer.echo(section, nl=False)
    if write is not None:
        typer.echo(f"wrote {atomic_write_text(Path(write), section)}")
