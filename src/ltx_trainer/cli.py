"""The `ltx-trainer` command line: one typer app, each verb a thin call into the packages."""

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Train LTX video models: footage in, LoRA out.")


@app.command()
def demo() -> None:
    """Run the end-to-end demo on tiny models (arrives with the training core)."""
    typer.echo(app.info.help)


if __name__ == "__main__":
    app()
