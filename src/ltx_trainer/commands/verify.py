"""``ltx-trainer verify``: check a precomputed cache (presence, shapes, NaN/Inf, AV durations, fingerprints)."""

from pathlib import Path
from typing import Annotated

import typer


def verify(
    data_root: Annotated[
        Path | None,
        typer.Argument(help="Data root written by preprocessing (or its .precomputed/); default: the config's."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Training config: its strategy decides which sources every sample needs."),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            "-s",
            help="A source folder every sample needs (repeat it), e.g. latents, conditions, audio_latents; "
            "FOLDER:KIND sets the kind (video_latents, audio_latents, conditions, video_reference, audio_reference, "
            "video_mask, audio_mask). Default: the official folders present.",
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="Model the cache must have been made with (fingerprints); default: the config's, if any."),
    ] = None,
    text_encoder: Annotated[
        Path | None,
        typer.Option(help="Text encoder folder, to compare conditions/ fingerprints too; default: the config's."),
    ] = None,
    fix: Annotated[
        bool,
        typer.Option("--fix", help="Move incomplete or broken samples (all their files) to <root>/quarantine/."),
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Where the JSON report goes; default <cache root>/verify_report.json.")
    ] = None,
    max_rows: Annotated[int, typer.Option(help="Problems listed in the table (all are in the report).")] = 40,
) -> None:
    """Check every sample of a cache; exit 1 while problems remain. `--fix` quarantines broken samples."""
    from rich.console import Console
    from rich.table import Table

    from ltx_trainer.config import load_config
    from ltx_trainer.data.verify import quarantine, sources_from_config, sources_from_names, verify_cache, write_report
    from ltx_trainer.errors import PartialFailure, UsageError

    console = Console(soft_wrap=True)
    sources = None
    if config is not None:
        cfg = load_config(config)
        sources = sources_from_config(cfg)
        data_root = data_root or Path(cfg.data.preprocessed_data_root)
        if model is None and Path(cfg.model.model_path).exists():
            model = Path(cfg.model.model_path)
            text_encoder = text_encoder or cfg.model.text_encoder_path
    if source:
        sources = {**(sources or {}), **sources_from_names(source)}
    if data_root is None:
        raise UsageError("give a data root (or --config, whose data.preprocessed_data_root is used)")
    result = verify_cache(data_root, sources, model, text_encoder)
    if fix:
        quarantine(result)
    path = write_report(result, report)

    summary = Table(title=f"cache {result.root}", show_lines=False)
    for column in ("source", "kind", "files", "problems"):
        summary.add_column(column)
    for folder, kind in result.sources.items():
        count = sum(1 for p in result.problems if p.source == folder)
        files = sum(1 for _ in (result.root / folder).rglob("*.*")) if (result.root / folder).is_dir() else 0
        summary.add_row(folder, kind, str(files), f"[red]{count}[/red]" if count else "[green]0[/green]")
    console.print(summary)
    if result.problems:
        table = Table(title="problems")
        for column in ("sample", "source", "kind", "problem", "fixed"):
            table.add_column(column, overflow="fold")
        for p in result.problems[:max_rows]:
            fixed = "quarantined" if p.sample in result.quarantined and p.quarantinable else ""
            table.add_row(p.sample or "(cache)", p.source or "", p.kind, p.message, fixed)
        console.print(table)
        if len(result.problems) > max_rows:
            console.print(f"... and {len(result.problems) - max_rows} more in {path}")
    if result.quarantined:
        console.print(
            f"moved {len(result.quarantined)} sample(s) to {result.root / 'quarantine'} (nothing deleted)",
            highlight=False,
        )
    console.print(f"report: {path}", highlight=False)
    if not result.ok:
        hint = "" if fix or not result.bad_samples else "; --fix moves broken samples to quarantine/"
        raise PartialFailure(f"{result.verdict}{hint}")
    console.print(f"[green]{result.verdict}[/green]", highlight=False)
