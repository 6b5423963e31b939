"""The web app: four pages (Dataset, Train, Runs, Sample) in one gradio Blocks, and how it is served.

Served on 127.0.0.1 unless another host is asked for, and then only with a login. The browser may fetch files only
from the allowed roots (gradio's ``allowed_paths``), the same folders every path typed into a page is checked
against (:mod:`ltx_trainer.ui.roots`).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from ltx_trainer.errors import EnvironmentProblem, UsageError
from ltx_trainer.ui.roots import Roots

AUTH_ENV = "LTX_TRAINER_UI_AUTH"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

CSS = """
.field-error p { color: #b42318; font-weight: 600; margin: 0; }
.clip-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px; }
.clip-card video { width: 100%; border-radius: 4px; background: #000; }
.mono textarea { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
"""


@dataclass(frozen=True)
class UiContext:
    """What every page needs: the allowed roots, where runs live, where relative paths start, the presets folder."""

    roots: Roots
    outputs: Path
    cwd: Path
    presets: Path | None


def presets_folder() -> Path | None:
    """The repository's ``configs/`` (one YAML per conditioning mode) when running from a checkout."""
    folder = Path(__file__).resolve().parents[3] / "configs"
    return folder if folder.is_dir() else None


def build_app(ctx: UiContext):
    """The gradio Blocks of the whole UI (not launched)."""
    import gradio as gr

    from ltx_trainer.ui import dataset_page, runs_page, sample_page, train_page

    with gr.Blocks(title="ltx-trainer", analytics_enabled=False) as app:
        gr.Markdown(
            f"## ltx-trainer\nFolders this UI may read and write: `{ctx.roots.describe()}` · runs under `{ctx.outputs}`"
        )
        with gr.Tabs() as tabs:
            with gr.Tab("Dataset", id="dataset"):
                dataset = dataset_page.build(ctx)
            with gr.Tab("Train", id="train"):
                train = train_page.build(ctx)
            with gr.Tab("Runs", id="runs"):
                runs = runs_page.build(ctx)
            with gr.Tab("Sample", id="sample"):
                sample_page.build(ctx)
        # links between the pages: a dataset to train on, a run's config to start from, a new run to watch
        app.load(train.check, train.widgets, [*train.errors, train.summary])
        dataset_page.link_to_train(dataset, train, tabs)
        runs_page.link_to_train(runs, train, tabs, ctx)
        train_page.link_to_runs(train, runs, tabs)
    return app


def check_host(host: str, auth: str | None) -> tuple[str, str] | None:
    """The login for ``host`` (None on a loopback address); another address without a login is refused."""
    if auth:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise UsageError(f"--auth / {AUTH_ENV}: expected USER:PASSWORD")
        return user, password
    try:
        local = host in LOCAL_HOSTS or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        raise UsageError(
            f"--host {host}: serving beyond this machine needs a login; set {AUTH_ENV}=USER:PASSWORD (or --auth)"
        )
    return None


def serve(
    roots: list[Path],
    port: int = 7860,
    host: str = "127.0.0.1",
    outputs: Path | None = None,
    auth: str | None = None,
) -> None:
    """Start the UI and block until interrupted.

    Raises:
        UsageError: a bad root, outputs folder outside the roots, or a non-local host without a login.
        EnvironmentProblem: gradio is not installed.
    """
    allowed = Roots.of(roots)
    login = check_host(host, auth or os.environ.get(AUTH_ENV) or None)
    outputs_dir = allowed.check(outputs if outputs is not None else allowed.folders[0] / "outputs", "--outputs")
    try:
        import gradio as gr
    except ImportError:
        raise EnvironmentProblem(
            "the web UI needs gradio: pip install 'ltx-trainer[ui]' (or uv sync --extra ui)"
        ) from None
    ctx = UiContext(allowed, outputs_dir, Path.cwd(), presets_folder())
    app = build_app(ctx)
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    app.queue(default_concurrency_limit=1).launch(
        server_name=host,
        server_port=port,
        auth=login,
        allowed_paths=[str(folder) for folder in allowed.folders],
        show_error=True,
        footer_links=[],
        theme=theme,
        css=CSS,
    )
