"""Issue 9 checks that have no better home: help that shows every option name whole at 80 columns."""

import re

import pytest
import typer
from typer.testing import CliRunner

from ltx_trainer.cli import LAZY_VERBS, app


def _verbs() -> list[tuple[str, ...]]:
    group = typer.main.get_command(app)
    verbs = []
    for name in sorted(set(group.list_commands(None)) | set(LAZY_VERBS)):
        command = group.get_command(None, name)
        subcommands = getattr(command, "list_commands", None)
        verbs.extend([(name, sub) for sub in subcommands(None)] if subcommands else [(name,)])
    return verbs


def _command(path: tuple[str, ...]):
    command = typer.main.get_command(app)
    for name in path:
        command = command.get_command(None, name)
        command = command.real() if hasattr(command, "real") else command
    return command


@pytest.mark.parametrize("verb", _verbs(), ids=" ".join)
def test_help_shows_every_option_name_whole_at_80_columns(verb, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(app, [*verb, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    names = [opt for param in _command(verb).params for opt in (*param.opts, *param.secondary_opts)]
    names = [n for n in names if n.startswith("-")] + ["--help"]
    for name in names:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", result.output), (name, result.output)
