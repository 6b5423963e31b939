"""The `ltx-trainer` command line: one typer app, each verb a thin call into the packages below it."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from ltx_trainer.commands.caption import caption
from ltx_trainer.commands.compute_reference import compute_reference
from ltx_trainer.commands.decode import decode
from ltx_trainer.commands.preprocess import preprocess
from ltx_trainer.commands.sample import sample
from ltx_trainer.commands.split_scenes import split_scenes
from ltx_trainer.commands.verify import verify

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Train Lightricks LTX video models (LTXV 0.9.x, LTX-2, LTX-2.3): raw footage in, LoRA out.",
)
config_app = typer.Typer(no_args_is_help=True, help="Check and inspect training configs.")
app.add_typer(config_app, name="config")
console = Console(soft_wrap=True)


def fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code=1)


@config_app.command("validate")
def config_validate(file: Annotated[Path, typer.Argument(help="Training config YAML.")]) -> None:
    """Check a config: every problem on its own line, with the key path and what is allowed."""
    from ltx_trainer.config import ConfigError, load_config

    try:
        load_config(file)
    except ConfigError as e:
        fail(str(e))
    console.print(f"[green]ok[/green] {file}")


@config_app.command("show")
def config_show(file: Annotated[Path, typer.Argument(help="Training config YAML.")]) -> None:
    """Print the resolved config: defaults filled in, legacy keys migrated."""
    from ltx_trainer.config import ConfigError, dump_config, load_config

    try:
        cfg = load_config(file)
    except ConfigError as e:
        fail(str(e))
    console.print(Syntax(dump_config(cfg), "yaml", background_color="default"))


@app.command()
def info(model: Annotated[Path, typer.Argument(help="Single-file checkpoint or diffusers folder.")]) -> None:
    """Show what a model path holds: family, version, layout."""
    from ltx_trainer.models.errors import ModelLoadError
    from ltx_trainer.models.families import detect

    try:
        found = detect(model)
    except ModelLoadError as e:
        fail(str(e))
    table = Table(show_header=False)
    for key, value in [
        ("path", found.path),
        ("layout", found.layout),
        ("family", found.spec.family),
        ("version", found.spec.version),
        ("audio", found.spec.has_audio),
        ("transformer blocks", found.spec.num_layers),
    ]:
        table.add_row(key, str(value))
    console.print(table)


@app.command("make-tiny")
def make_tiny(
    out: Annotated[Path, typer.Argument(help="Output folder.")],
    family: Annotated[str, typer.Option(help="ltx2-2.0, ltx2-2.3 or ltxv.")] = "ltx2-2.0",
    seed: int = 0,
) -> None:
    """Write a tiny random model of a family in every on-disk format (for trying the tool without real weights)."""
    from ltx_trainer.models.tiny import write_tiny

    try:
        paths = write_tiny(out, family, seed)
    except ValueError as e:
        fail(str(e))
    for name, path in paths.items():
        console.print(f"{name:12s} {path}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes everything.")] = Path("outputs/demo"),
    steps: Annotated[int, typer.Option(help="Training steps.")] = 200,
) -> None:
    """Run the whole path on tiny models: clips -> cache -> LoRA training -> sample video with audio -> report."""
    from ltx_trainer.demo import run_demo

    paths = run_demo(out, steps)
    console.print("\n[bold green]demo finished[/bold green]")
    for name, path in paths.items():
        console.print(f"  {name:11s} {path}")


@app.command()
def train(config: Annotated[Path, typer.Argument(help="Training config YAML.")]) -> None:
    """Train a LoRA or a full fine-tune on a preprocessed dataset."""
    from ltx_trainer.config import ConfigError, check_paths, load_config
    from ltx_trainer.training.trainer import Trainer

    try:
        cfg = load_config(config)
    except ConfigError as e:
        fail(str(e))
    problems = check_paths(cfg)
    if problems:
        fail(f"{config}: " + "\n  ".join(["paths that don't exist:", *problems]))
    trainer = Trainer(cfg, config_source=config)
    trainer.setup()
    result = trainer.train()
    console.print(f"[bold green]done[/bold green]: {result.steps} steps in {result.seconds:.0f} s -> {result.weights}")


@app.command()
def bench(
    arch: Annotated[
        str, typer.Option(help="tiny-ltx2, tiny-ltx2.3, tiny-ltxv, ltx2-19b, ltx2.3-22b, ltxv-2b, ltxv-13b")
    ] = ("tiny-ltx2"),
    res: Annotated[str, typer.Option(help="W x H x F of the training clips.")] = "256x256x33",
    steps: int = 10,
    warmup: int = 3,
    lora_rank: Annotated[int, typer.Option(help="0 = full fine-tune.")] = 64,
    gradient_checkpointing: bool = True,
    out: Path = Path("outputs/bench"),
) -> None:
    """Measure a training configuration: s/step by phase, trainer overhead, tokens/s, peak memory, MFU."""
    from ltx_trainer.data.preprocess import Bucket
    from ltx_trainer.training.bench import TABLE_HEADER, markdown_row, run_bench, save_result

    try:
        bucket = Bucket.parse(res)
    except ValueError as e:
        fail(f"--res: {e}")
    result = run_bench(
        arch, bucket.width, bucket.height, bucket.frames, steps, warmup, lora_rank, gradient_checkpointing
    )
    console.print(TABLE_HEADER)
    console.print(markdown_row(result))
    console.print(f"saved {save_result(result, out)}")


# Verbs whose implementations live in ltx_trainer.commands (they import their heavy dependencies lazily).
app.command("split-scenes")(split_scenes)
app.command("caption")(caption)
app.command("preprocess")(preprocess)
app.command("verify")(verify)
app.command("decode")(decode)
app.command("compute-reference")(compute_reference)
app.command("sample")(sample)


if __name__ == "__main__":
    app()
