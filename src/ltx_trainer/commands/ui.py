"""``ltx-trainer ui``: the web UI (gradio) over the whole path; see docs/ui.md.

cli.py registers it lazily; gradio is imported only when the server starts (:func:`ltx_trainer.ui.app.serve`).
"""

from pathlib import Path
from typing import Annotated

import typer


def ui(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 7860,
    host: Annotated[
        str,
        typer.Option(help="Address to bind. Anything but 127.0.0.1/localhost needs a login (--auth or the env var)."),
    ] = "127.0.0.1",
    root: Annotated[
        list[Path] | None,
        typer.Option(
            "--root",
            help="A folder the UI may read and write (repeatable); every path typed in a page must be inside one. "
            "Default: the current folder.",
        ),
    ] = None,
    outputs: Annotated[
        Path | None, typer.Option(help="Where runs are listed and created (default: <first root>/outputs).")
    ] = None,
    auth: Annotated[
        str | None,
        typer.Option(
            help="USER:PASSWORD login (prefer the LTX_TRAINER_UI_AUTH environment variable: arguments are visible "
            "to other users in the process list)."
        ),
    ] = None,
) -> None:
    """Start the web UI: build a dataset, configure and launch runs, watch them, sample (Ctrl-C stops the server;
    runs keep going)."""
    from ltx_trainer.ui.app import serve

    typer.echo(f"ltx-trainer ui on http://{host}:{port} (Ctrl-C stops the server; training runs keep going)")
    serve(root or [Path.cwd()], port, host, outputs, auth)
