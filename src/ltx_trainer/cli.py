"""The `ltx-trainer` command line: one typer app, each verb a thin call into the packages below it.

Start-up stays fast: this module imports no heavy library (torch, diffusers, transformers, av), and the verbs that live
in ``ltx_trainer.commands`` are registered by name only (:data:`LAZY_VERBS`); their module is imported when the verb
runs or shows its own ``--help``. The top-level ``--help`` reads their one-line help from the source without importing.

One error rule for every verb (:mod:`ltx_trainer.errors`): an expected failure (:class:`LtxTrainerError`, a full
disk) prints one line and exits with its code; ``--debug`` adds the traceback. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
import traceback
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ltx_trainer.errors import EXIT_ENVIRONMENT, EXIT_INTERRUPTED, LtxTrainerError, UsageError

COMMANDS_DIR = Path(__file__).resolve().parent / "commands"

# verb -> (module under ltx_trainer.commands, function); imported only when the verb runs.
LAZY_VERBS: dict[str, tuple[str, str]] = {
    "split-scenes": ("split_scenes", "split_scenes"),
    "caption": ("caption", "caption"),
    "preprocess": ("preprocess", "preprocess"),
    "verify": ("verify", "verify"),
    "decode": ("decode", "decode"),
    "compute-reference": ("compute_reference", "compute_reference"),
    "sample": ("sample", "sample"),
    "plan": ("plan", "plan"),
    "run-pipeline": ("run_pipeline", "run_pipeline"),
    "convert": ("convert", "convert"),
    "info": ("info", "info"),
    "push": ("push", "push"),
    "compare": ("compare", "compare"),
    "ui": ("ui", "ui"),
}

_DEBUG_ENV = "LTX_TRAINER_DEBUG"

# Help is click's plain layout: rich's option table squeezes the option-name column at 80 columns and cuts names
# ("--gradient-checkoi…"); click prints every name whole and wraps only the help text.
HELP_MARKUP = None


@cache
def _short_help(module: str, function: str) -> str:
    """First line of a verb's docstring, read from its source file (no import)."""
    try:
        tree = ast.parse((COMMANDS_DIR / f"{module}.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return ""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return (ast.get_docstring(node) or "").strip().splitlines()[0] if ast.get_docstring(node) else ""
    return ""


def _load_verb(name: str) -> Any:
    """The real click command of a lazy verb (imports its module)."""
    module, function = LAZY_VERBS[name]
    callback = getattr(importlib.import_module(f"ltx_trainer.commands.{module}"), function)
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=HELP_MARKUP)
    single.command(name)(callback)
    return typer.main.get_command(single)


class _LazyVerb(typer.core.TyperCommand):
    """Stands in for a verb in the group's help; hands parsing and running to the real command."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, help=_short_help(*LAZY_VERBS[name]), callback=None)
        self._real: Any = None

    def real(self) -> Any:
        if self._real is None:
            self._real = _load_verb(self.name)
        return self._real

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        return self.real().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        return self.real().invoke(ctx)

    def get_params(self, ctx: Any) -> list:
        return self.real().get_params(ctx)

    def shell_complete(self, ctx: Any, incomplete: str) -> list:
        return self.real().shell_complete(ctx, incomplete)


def _debug(ctx: Any) -> bool:
    while ctx is not None:
        if ctx.params.get("debug"):
            return True
        ctx = ctx.parent
    return os.environ.get(_DEBUG_ENV, "") not in ("", "0")


def _expected(exc: BaseException) -> int | None:
    """The exit code of an expected failure, None for a bug."""
    from ltx_trainer.io import DiskFullError

    if isinstance(exc, LtxTrainerError):
        return exc.exit_code
    if isinstance(exc, DiskFullError):
        return EXIT_ENVIRONMENT
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return None


def report_failure(exc: BaseException, debug: bool) -> int | None:
    """Print an expected failure as one line on stderr (with the traceback when ``debug``); returns its exit code."""
    code = _expected(exc)
    if code is None:
        return None
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    message = " ".join(str(exc).split()) if not isinstance(exc, KeyboardInterrupt) else "interrupted"
    kind = "interrupted" if code == EXIT_INTERRUPTED else "error"
    typer.echo(f"{kind}: {message}" + ("" if debug else "  (--debug shows the traceback)"), err=True)
    return code


class LtxTrainerGroup(TyperGroup):
    """The top-level group: lazy verbs, and the one error-to-exit-code rule."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in LAZY_VERBS if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in LAZY_VERBS:
            found = self.commands[cmd_name] = _LazyVerb(cmd_name)
        return found

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (LtxTrainerError, OSError, KeyboardInterrupt) as exc:
            code = report_failure(exc, _debug(ctx))
            if code is None:
                raise
            raise typer.Exit(code) from None


app = typer.Typer(
    cls=LtxTrainerGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=HELP_MARKUP,
)
config_app = typer.Typer(no_args_is_help=True, help="Check and inspect training configs.", rich_markup_mode=HELP_MARKUP)
app.add_typer(config_app, name="config")


APP_HELP = (
    "Train Lightricks LTX video models (LTXV 0.9.x, LTX-2, LTX-2.3): raw footage in, LoRA out.\n\n"
    "Exit codes: 0 ok, 1 partial result, 2 config or usage, 3 data, 4 model, "
    "5 environment (disk full, output directory locked, missing package), 130 interrupted."
)


@app.callback(help=APP_HELP)
def main(
    debug: Annotated[
        bool, typer.Option("--debug", help=f"Show the traceback of expected failures too (or set {_DEBUG_ENV}=1).")
    ] = False,
) -> None:
    """Global options (before the verb)."""


def _console():
    from rich.console import Console

    return Console(soft_wrap=True)


@config_app.command("validate")
def config_validate(file: Annotated[Path, typer.Argument(help="Training config YAML.")]) -> None:
    """Check a config: every problem on its own line, with the key path and what is allowed; warnings for settings
    that train badly (warmup longer than the run, validation that takes minutes per sample)."""
    from ltx_trainer.config import config_warnings, load_config

    cfg = load_config(file)
    console = _console()
    for warning in config_warnings(cfg):
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    console.print(f"[green]ok[/green] {file}")


@config_app.command("show")
def config_show(file: Annotated[Path, typer.Argument(help="Training config YAML.")]) -> None:
    """Print the resolved config: defaults filled in, legacy keys migrated."""
    from rich.syntax import Syntax

    from ltx_trainer.config import dump_config, load_config

    _console().print(Syntax(dump_config(load_config(file)), "yaml", background_color="default"))


@app.command("make-tiny")
def make_tiny(
    out: Annotated[Path, typer.Argument(help="Output folder.")],
    family: Annotated[str, typer.Option(help="ltx2-2.0, ltx2-2.3, ltx2-2.5 or ltxv.")] = "ltx2-2.0",
    version: Annotated[
        str | None, typer.Option(help="LTX-2 version (2.0, 2.3, 2.5): the same as --family ltx2-<version>.")
    ] = None,
    seed: int = 0,
    full_width_blocks: Annotated[
        int,
        typer.Option(
            help="ltx2-2.3 only: instead, one single file with the released 22B widths and this many blocks "
            "(2 blocks: 2.3 GB), for load benchmarks."
        ),
    ] = 0,
    fp8: Annotated[bool, typer.Option(help="Also write the pre-quantized fp8 single file (LTX-2 family).")] = False,
) -> None:
    """Write a tiny random model of a family in every on-disk format (for trying the tool without real weights)."""
    from ltx_trainer.models.tiny import write_tiny

    family = f"ltx2-{version}" if version else family
    try:
        paths = write_tiny(out, family, seed, fp8=fp8, full_width_blocks=full_width_blocks)
    except ValueError as e:
        raise UsageError(f"--family: {e}") from e
    for name, path in paths.items():
        typer.echo(f"{name:12s} {path}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes everything.")] = Path("outputs/demo"),
    steps: Annotated[int, typer.Option(help="Training steps.")] = 200,
) -> None:
    """Run the whole path on tiny models: clips -> cache -> LoRA training -> sample video with audio -> report."""
    from ltx_trainer.demo import run_demo

    paths = run_demo(out, steps)
    console = _console()
    console.print("\n[bold green]demo finished[/bold green]")
    for name, path in paths.items():
        console.print(f"  {name:11s} {path}")


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Training config YAML.")],
    num_processes: Annotated[
        int | None,
        typer.Option(help="Start N processes through Accelerate (GPUs, else gloo on the CPU): docs/distributed.md."),
    ] = None,
    accelerate_config: Annotated[
        Path | None, typer.Option(help="An accelerate config (configs/accelerate/*.yaml) for --num-processes.")
    ] = None,
) -> None:
    """Train a LoRA or a full fine-tune on a preprocessed dataset (resumes from the output dir's last checkpoint)."""
    from ltx_trainer.training.run import launch_from_file, train_from_file

    if num_processes is not None or accelerate_config is not None:
        raise typer.Exit(launch_from_file(config, num_processes or 1, accelerate_config))
    outcome = train_from_file(config)
    if outcome is not None:  # None on the other ranks of a launched job: rank 0 reports
        _console().print(outcome.summary(), highlight=False)


@app.command()
def bench(
    arch: Annotated[
        str, typer.Option(help="tiny-ltx2, tiny-ltx2.3, tiny-ltxv, ltx2-19b, ltx2.3-22b, ltxv-2b, ltxv-13b")
    ] = ("tiny-ltx2"),
    res: Annotated[str, typer.Option(help="W x H x F of the training clips.")] = "256x256x33",
    steps: Annotated[int, typer.Option(help="Timed repetitions of each (trainer step, bare step) pair.")] = 10,
    warmup: int = 3,
    lora_rank: Annotated[int, typer.Option(help="0 = full fine-tune.")] = 64,
    gradient_checkpointing: bool = True,
    dtype: Annotated[str, typer.Option(help="Base weights: auto (bf16 on GPUs, fp32 on CPUs), bf16 or fp32.")] = "auto",
    tier: Annotated[
        str, typer.Option(help="Memory tier: bf16, fp8, int8, nf4, bf16-swap16, fp8-swap16, int8-swap24, nf4-swap24.")
    ] = "bf16",
    out: Path = Path("outputs/bench"),
) -> None:
    """Measure a training configuration: s/step (median, min-max) by phase against a bare loop, memory, MFU."""
    from ltx_trainer.data.preprocess import Bucket
    from ltx_trainer.training.bench import TABLE_HEADER, TIERS, markdown_row, run_bench, save_result

    try:
        bucket = Bucket.parse(res)
    except ValueError as e:
        raise UsageError(f"--res: {e}") from e
    if dtype not in ("auto", "bf16", "fp32"):
        raise UsageError(f"--dtype {dtype!r}: use auto, bf16 or fp32")
    if tier not in TIERS:
        raise UsageError(f"--tier {tier!r}: use one of {', '.join(TIERS)}")
    result = run_bench(
        arch, bucket.width, bucket.height, bucket.frames, steps, warmup, lora_rank, gradient_checkpointing, dtype, tier
    )
    typer.echo(TABLE_HEADER)
    typer.echo(markdown_row(result))
    typer.echo(f"saved {save_result(result, out)}")


if __name__ == "__main__":
    app()
