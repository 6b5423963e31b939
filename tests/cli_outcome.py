"""Run a verb the way ``ltx-trainer`` reports it: an expected failure (:class:`LtxTrainerError`) is one message and
its class's exit code (cli.py's handler); anything else is a bug and is raised."""

from types import SimpleNamespace

import typer
from typer.testing import CliRunner

from ltx_trainer.errors import LtxTrainerError


def invoke(app: typer.Typer, args: list) -> SimpleNamespace:
    result = CliRunner().invoke(app, [str(a) for a in args])
    error = result.exception
    if isinstance(error, LtxTrainerError):
        return SimpleNamespace(exit_code=error.exit_code, output=f"{result.output}error: {error}\n", error=error)
    if error is not None and not isinstance(error, SystemExit):
        raise error
    return SimpleNamespace(exit_code=result.exit_code, output=result.output, error=None)
