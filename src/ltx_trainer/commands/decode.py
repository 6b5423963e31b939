"""``ltx-trainer decode``: cached latents back to media for eyeballing (``data.decode`` does the work).

Video latents (with the sample's audio latents when present) become an mp4 with sound, single-frame latents a png,
audio latents alone a wav. One file, or a whole cache into ``<cache root>/decoded_videos/`` (or ``--out``), reference
latents into ``decoded_reference_videos/`` inside that folder, mirroring the sample ids.
"""

from pathlib import Path
from typing import Annotated

import typer


def decode(
    path: Annotated[Path, typer.Argument(help="A latents file, or a data root / cache folder to decode entirely.")],
    model: Annotated[Path, typer.Option(help="Model whose VAEs decode the latents (single file or diffusers folder).")],
    out: Annotated[
        Path | None,
        typer.Option(help="Output file (one latents file) or folder (a cache); default <cache root>/decoded_videos."),
    ] = None,
    latents_dir: Annotated[str, typer.Option(help="Video latents folder of the cache.")] = "latents",
    audio_latents_dir: Annotated[str, typer.Option(help="Audio latents folder of the cache.")] = "audio_latents",
    reference_dir: Annotated[str, typer.Option(help="Reference latents folder of the cache.")] = "reference_latents",
    audio: Annotated[bool, typer.Option(help="Mux the sample's audio latents into the mp4.")] = True,
    references: Annotated[bool, typer.Option(help="Also decode reference latents (a cache).")] = True,
    skip_existing: Annotated[bool, typer.Option(help="Keep outputs that already exist (resume).")] = False,
    limit: Annotated[int | None, typer.Option(help="Decode at most this many samples per folder.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ... (auto: cuda when available).")] = "auto",
) -> None:
    """Decode cached latents (and audio latents) to mp4 with audio, to check a cache by eye."""
    from rich.console import Console
    from rich.progress import Progress

    from ltx_trainer.data.decode import plan_decode, run_decode
    from ltx_trainer.data.progress import progress_columns
    from ltx_trainer.errors import PartialFailure
    from ltx_trainer.models.devices import resolve_device
    from ltx_trainer.models.families import load_model

    console = Console(soft_wrap=True)
    jobs = plan_decode(path, out, latents_dir, audio_latents_dir, reference_dir, audio, references, limit)
    ltx = load_model(model)
    columns = progress_columns("decoding", elapsed=False)
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("decode", total=len(jobs))
        written, failed = run_decode(
            ltx, jobs, audio, str(resolve_device(device)), skip_existing, lambda: progress.advance(task)
        )
    for line in failed:
        console.print(f"[red]failed[/red] {line}", highlight=False)
    if len(written) == 1 and len(jobs) == 1:
        console.print(f"wrote {written[0]}", highlight=False)
    else:
        where = sorted({str(p.parent) for p in written})
        console.print(f"wrote {len(written)} file(s) under {', '.join(where) or '-'}", highlight=False)
    if failed:
        raise PartialFailure(f"{len(failed)} of {len(jobs)} sample(s) failed to decode")
