"""``ltx-trainer push RUN_DIR REPO_ID``: a finished run to the Hugging Face Hub (``integrations/hub.py`` does the work).

The push folder (``RUN_DIR/hub/``: final weights, model card, samples with animated previews, loss curve) is rebuilt
on every call; ``--dry-run`` stops there and prints it. Registered lazily by cli.py (``LAZY_VERBS``).
"""

from pathlib import Path
from typing import Annotated

import typer


def push(
    run_dir: Annotated[Path, typer.Argument(help="The output_dir of a training run.")],
    repo_id: Annotated[str, typer.Argument(help="Target repository, e.g. user/my-lora (created if missing).")],
    private: Annotated[bool, typer.Option(help="Create the repository private (an existing one keeps its own).")] = (
        False
    ),
    include_checkpoints: Annotated[
        bool, typer.Option(help="Also upload the earlier checkpoints' weights to checkpoints/.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Build and print the folder and its model card; upload nothing.")] = (
        False
    ),
    out: Annotated[Path | None, typer.Option(help="Where to build the push folder (default RUN_DIR/hub).")] = None,
) -> None:
    """Push a trained run to the Hugging Face Hub: weights, a model card, sample previews and the loss curve."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    from rich.console import Console

    from ltx_trainer.errors import UsageError
    from ltx_trainer.integrations.hub import preflight, push_run

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise UsageError(f"REPO_ID: {e} (e.g. user/my-lora)") from None
    console = Console(soft_wrap=True)
    if not dry_run:
        account = preflight("push")  # before building anything: a missing token is one line, at once
        console.print(f"pushing to {repo_id} as {account}", highlight=False)
    result = push_run(run_dir, repo_id, private, include_checkpoints, dry_run, out)
    console.print(f"folder {result.folder}", highlight=False)
    for name in result.files:
        console.print(f"  {name}", highlight=False)
    if dry_run:
        console.print(f"dry run: nothing uploaded; the model card is {result.folder / 'README.md'}", highlight=False)
    else:
        console.print(f"pushed {result.repo_url}\ncommit {result.commit_url}", highlight=False)
