"""The pipeline's state file (``pipeline.json``) and its report (``pipeline_report.html``): every stage's status, what
it did, its time, and links to its own report (scenes.html, preprocess_report.json, the training report) and files
(the weights, the final samples, shown in the page)."""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ltx_trainer.io import atomic_write_json, atomic_write_text
from ltx_trainer.pipeline.stages import Layout, StageResult

STATE_VERSION = 1


def read_state(path: Path) -> dict[str, Any]:
    """The state of earlier runs (empty when there is none or it can't be read: it only saves work)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) and state.get("version") == STATE_VERSION else {}


def write_state(path: Path, layout: Layout, results: Iterable[StageResult], earlier: dict[str, Any]) -> Path:
    """Every stage that ran (or failed) this time replaces its earlier entry; stages not run keep theirs."""
    stages = dict(earlier.get("stages", {}))
    for result in results:
        if result.status == "off":
            continue
        stages[result.name] = {
            "status": result.status,
            "detail": result.detail,
            "seconds": round(result.seconds, 3),
            "links": {label: str(p) for label, p in result.links.items()},
        }
        # a failed run keeps what the last successful one recorded (a rerun compares its inputs with it)
        fingerprint = result.fingerprint or earlier.get("stages", {}).get(result.name, {}).get("fingerprint")
        if fingerprint is not None:
            stages[result.name]["fingerprint"] = fingerprint
    state = {
        "version": STATE_VERSION,
        "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "footage": str(layout.raw) if layout.raw is not None else None,
        "dataset": str(layout.dataset),
        "run": str(layout.run),
        "stages": stages,
    }
    return atomic_write_json(path, state)


def _link(path: Path, base: Path, label: str) -> str:
    href = html.escape(Path(os.path.relpath(path, base)).as_posix())
    return f'<a href="{href}">{html.escape(label)}</a>'


def _media(path: Path, base: Path) -> str:
    from ltx_trainer.integrations.report import figure_html  # matplotlib: only when a report is written

    href = html.escape(Path(os.path.relpath(path, base)).as_posix())
    return figure_html(href, path.suffix, html.escape(path.name), 320)


def write_report(layout: Layout, results: list[StageResult]) -> Path:
    """``pipeline_report.html`` in the run folder (links are relative, so the folder can be moved or shared)."""
    base = layout.report.parent
    rows = []
    for k, result in enumerate(results, 1):
        links = " · ".join(_link(p, base, label) for label, p in result.links.items() if p is not None)
        seconds = f"{result.seconds:.1f} s" if result.status not in ("off",) else ""
        rows.append(
            f"<tr><td>{k}</td><th>{html.escape(result.name)}</th><td class='{result.status}'>{result.status}</td>"
            f"<td>{html.escape(result.detail)}</td><td>{seconds}</td><td>{links}</td></tr>"
        )
    sample = next((r for r in results if r.name == "sample"), None)
    media = [_media(p, base) for p in (sample.links.values() if sample else []) if p.is_file()]
    folders = [("footage", layout.raw), ("dataset", layout.dataset), ("run", layout.run)]
    where = "".join(
        f"<tr><th>{name}</th><td>{html.escape(str(path))}</td></tr>" for name, path in folders if path is not None
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>ltx-trainer pipeline</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}th,td{{text-align:left;padding:.2em .6em}}
.done{{color:#2a7}}.skipped{{color:#888}}.failed{{color:#c33;font-weight:bold}}.off{{color:#bbb}}
figure{{display:inline-block;margin:.5em}}</style></head><body>
<h1>ltx-trainer pipeline</h1><p>updated {time.strftime("%Y-%m-%d %H:%M:%S")}</p>
<table><tr><th>#</th><th>stage</th><th>status</th><th>what it did</th><th>time</th><th>reports and files</th></tr>
{"".join(rows)}</table>
<h2>Final samples</h2>{"".join(media) or "<p>none yet</p>"}
<h2>Folders</h2><table>{where}</table>
</body></html>
"""
    return atomic_write_text(layout.report, page)
