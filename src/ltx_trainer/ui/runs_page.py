"""Runs page: every run under the outputs folder, live (re-read from disk every two seconds).

For the selected run: status and progress, loss curves (total and per modality, per sigma bucket), learning rate,
seconds per step, validation samples as they appear, the HTML report once written, the log; Stop, Resume and New run
from its config. What is shown comes from the run folder (:mod:`ltx_trainer.ui.runs`), so a restarted UI finds its
runs, finished or still training, as they are.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import yaml

from ltx_trainer.ui import runs
from ltx_trainer.ui.app import UiContext
from ltx_trainer.ui.tasks import describe_error

REFRESH_S = 2.0
_SIGMA = re.compile(r"^loss_sigma_(\d\.\d\d)_(\d\.\d\d)$")


@dataclass
class RunsPage:
    outputs: Any
    wanted: Any  # hidden: a run folder another page asks to show
    selected: Any
    new_from: Any


def _ago(seconds: float) -> str:
    if seconds <= 0:
        return ""
    delta = time.time() - seconds
    return (
        f"{delta:.0f} s ago"
        if delta < 120
        else f"{delta / 60:.0f} min ago"
        if delta < 7200
        else time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))
    )


def _table(found: list[runs.Run]) -> list[list[Any]]:
    rows = []
    for run in found:
        loss = run.last.get("loss")
        sps = run.last.get("s_per_step")
        rows.append([
            run.name,
            run.status,
            f"{run.step}/{run.total}" if run.total else str(run.step),
            f"{loss:.4f}" if isinstance(loss, float) else "",
            f"{sps:.2f}" if isinstance(sps, float) else "",
            _ago(runs.updated(run.path)),
        ])  # fmt: skip
    return rows


def _frame(metrics: list[dict], series: dict[str, str]) -> pd.DataFrame:
    """Long-format data for a LinePlot: one row per (step, series) with a finite value."""
    rows = [
        {"step": m["step"], "value": float(m[key]), "series": label}
        for m in metrics
        for key, label in series.items()
        if isinstance(m.get(key), int | float)
    ]
    # explicit dtypes: the plot's axis types come from them (an empty object column would make "value" categorical)
    return pd.DataFrame(rows, columns=["step", "value", "series"]).astype(
        {"step": "int64", "value": "float64", "series": "str"}
    )


def plots(metrics: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(loss per modality, loss per sigma bucket, lr, s/step) frames."""
    losses = {"loss": "total", "loss_video": "video", "loss_audio": "audio"}
    keys = sorted({k for m in metrics for k in m if _SIGMA.match(k)})
    sigma = {k: "σ {}–{}".format(*_SIGMA.match(k).groups()) for k in keys}
    return (
        _frame(metrics, losses),
        _frame(metrics, sigma),
        _frame(metrics, {"lr": "lr"}),
        _frame(metrics, {"s_per_step": "s/step"}),
    )


def _file_url(path: Path) -> str:
    return "/gradio_api/file=" + html.escape(str(path))


def _report(run: runs.Run) -> str:
    if run.report is None:
        return "<p>The HTML report is written when the run ends (finished or stopped by the trainer).</p>"
    url = _file_url(run.report)
    return (
        f'<p><a href="{url}" target="_blank">Open report.html</a></p>'
        f'<iframe src="{url}" style="width:100%;height:480px;border:1px solid #ddd;border-radius:6px"></iframe>'
    )


def _summary(run: runs.Run) -> str:
    lines = [f"### {run.name}", f"`{run.path}`", "", f"**{run.summary()}**"]
    if run.last.get("lr") is not None:
        lines.append(f"lr {run.last['lr']:.3g}")
    if run.checkpoints:
        lines.append(f"checkpoints at steps {', '.join(map(str, run.checkpoints[-5:]))} (resume point: the last)")
    if run.message:
        lines.append(f"`{run.message}`")
    return "\n\n".join(lines)


def _samples(run: runs.Run) -> list[tuple[str, str]]:
    out = []
    for path in run.samples:
        match = re.match(r"step_(\d+)_(\d+)", path.stem)
        caption = f"step {int(match[1])} · sample {match[2]}" if match else path.name
        out.append((str(path), caption))
    return out


def build(ctx: UiContext) -> RunsPage:
    with gr.Row():
        outputs = gr.Textbox(str(ctx.outputs), label="Outputs folder (runs are the folders under it)", scale=4)
        refresh_now = gr.Button("Refresh", size="sm", scale=1)
    table = gr.Dataframe(
        headers=["run", "status", "step", "loss", "s/step", "updated"],
        interactive=False,
        label="Runs",
        elem_id="runs-table",
    )
    selected = gr.Dropdown([], label="Run", allow_custom_value=True, elem_id="runs-selected")
    wanted = gr.Textbox(visible=False)
    summary = gr.Markdown(elem_id="run-summary")
    with gr.Row():
        stop_button = gr.Button("Stop (saves a checkpoint)", elem_id="run-stop")
        resume_button = gr.Button("Resume", elem_id="run-resume")
        new_from = gr.Button("New run from this config", elem_id="run-new-from")
    action = gr.Markdown(elem_id="run-action")
    common = {"x": "step", "y": "value", "color": "series", "height": 260}
    with gr.Row():
        loss_plot = gr.LinePlot(title="loss (total and per modality)", elem_id="plot-loss", **common)
        sigma_plot = gr.LinePlot(title="loss per σ bucket", elem_id="plot-sigma", **common)
    with gr.Row():
        lr_plot = gr.LinePlot(title="learning rate", elem_id="plot-lr", **common)
        speed_plot = gr.LinePlot(title="seconds per step", elem_id="plot-speed", **common)
    gallery = gr.Gallery(
        label="Validation samples", columns=4, height=260, object_fit="contain", preview=False, elem_id="run-samples"
    )
    report = gr.HTML(elem_id="run-report")
    log = gr.Textbox(label="train.log (last lines)", lines=12, max_lines=12, elem_classes="mono", elem_id="run-log")
    seen = gr.State({})
    timer = gr.Timer(REFRESH_S)

    def refresh(outputs_text: str, chosen: str | None, last: dict) -> list[Any]:
        try:
            folder = ctx.roots.check(outputs_text, "Outputs folder")
        except ValueError as e:
            return [gr.skip(), gr.skip(), describe_error(e), *[gr.skip()] * 7, last]
        found = [runs.read_run(p) for p in runs.find_runs(folder)]
        choices = [str(r.path) for r in found]
        chosen = chosen if chosen in choices else (choices[0] if choices else None)
        dropdown = gr.update(choices=choices, value=chosen) if choices != last.get("choices") else gr.skip()
        run = next((r for r in found if str(r.path) == chosen), None)
        if run is None:
            empty = "No run here yet: launch one on the Train page." if not found else ""
            return [_table(found), dropdown, empty, *[gr.skip()] * 7, {"choices": choices}]
        state = {
            "choices": choices,
            "run": chosen,
            "steps": len(run.metrics),
            "samples": len(run.samples),
            "report": run.report is not None,
        }
        same_run = last.get("run") == chosen
        metrics_changed = bool(run.metrics) and (not same_run or last.get("steps") != state["steps"])
        frames = plots(run.metrics) if metrics_changed else (gr.skip(),) * 4
        gallery_update = _samples(run) if not same_run or last.get("samples") != state["samples"] else gr.skip()
        report_update = _report(run) if not same_run or last.get("report") != state["report"] else gr.skip()
        return [_table(found), dropdown, _summary(run), *frames, gallery_update, report_update,
                runs.log_tail(run), state]  # fmt: skip

    def pick(chosen: str | None) -> runs.Run:
        if not chosen:
            raise ValueError("pick a run first")
        return runs.read_run(ctx.roots.check(chosen, "Run"))

    def do_stop(chosen: str | None) -> str:
        try:
            return runs.stop(pick(chosen))
        except (OSError, ValueError) as e:
            return describe_error(e)

    def do_resume(chosen: str | None) -> str:
        try:
            pid = runs.resume(pick(chosen))
        except (OSError, ValueError) as e:
            return describe_error(e)
        return f"Resumed (pid {pid}): the trainer continues from the last checkpoint."

    outputs_ = [table, selected, summary, loss_plot, sigma_plot, lr_plot, speed_plot, gallery, report, log, seen]
    timer.tick(refresh, [outputs, selected, seen], outputs_, show_progress="hidden")
    refresh_now.click(refresh, [outputs, selected, seen], outputs_)
    selected.change(refresh, [outputs, selected, seen], outputs_, show_progress="hidden")
    wanted.change(lambda run_dir: run_dir or gr.skip(), wanted, selected)
    stop_button.click(do_stop, selected, action)
    resume_button.click(do_resume, selected, action)
    return RunsPage(outputs, wanted, selected, new_from)


def next_free(run_dir: Path) -> Path:
    """``run-1`` -> ``run-2`` (the first name not taken), for a new run started from another's config."""
    stem = re.sub(r"-\d+$", "", run_dir.name)
    for n in range(2, 10_000):
        candidate = run_dir.with_name(f"{stem}-{n}")
        if not candidate.exists():
            return candidate
    raise ValueError(f"{run_dir.parent}: no free run name")


def link_to_train(page: RunsPage, train: Any, tabs: Any, ctx: UiContext) -> None:
    """New run from this config: the run's config in the Train form, with a fresh output_dir."""

    def new_run(chosen: str | None) -> list[Any]:
        skip = [gr.skip()] * (len(train.fill_outputs) - 1)
        try:
            run_dir = ctx.roots.check(chosen, "Run")
            data = yaml.safe_load((run_dir / runs.CONFIG).read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"{run_dir / runs.CONFIG}: not a mapping of sections")
        except (OSError, ValueError, yaml.YAMLError) as e:
            return [gr.skip(), *skip, describe_error(e)]
        data["output_dir"] = str(next_free(run_dir))
        message = f"Loaded the config of `{run_dir.name}` with a new output_dir; change what you like and launch."
        return [gr.Tabs(selected="train"), *train.fill(data, message)]

    page.new_from.click(new_run, page.selected, [tabs, *train.fill_outputs])
