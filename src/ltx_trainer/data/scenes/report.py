"""The scene list (scenes.json) and the HTML report (scenes.html) of :func:`split_folder`."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ltx_trainer.data.scenes.timecodes import Scene, TimecodeFormat
from ltx_trainer.io import atomic_write_text


@dataclass
class InputResult:
    """What happened to one input of :func:`split_folder`.

    Attributes:
        path: The input video.
        name: Base name of its outputs (its stem, made unique among the inputs).
        fps: Its frame rate (0.0 when it could not be read).
        duration: Its duration in seconds (0.0 when unknown).
        scenes: The scenes kept.
        clips: The clip of each scene (empty without splitting).
        previews: The preview images of each scene (empty without previews).
        error: Why the input failed (without the path), or ``None``.
    """

    path: Path
    name: str
    fps: float = 0.0
    duration: float = 0.0
    scenes: list[Scene] = field(default_factory=list)
    clips: list[Path | None] = field(default_factory=list)
    previews: list[list[Path]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class SplitSummary:
    """Result of :func:`split_folder`.

    Attributes:
        results: One entry per input, in input order.
        report: The HTML report.
        scene_list: The JSON scene list.
    """

    results: list[InputResult]
    report: Path
    scene_list: Path

    @property
    def succeeded(self) -> list[InputResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[InputResult]:
        return [r for r in self.results if not r.ok]

    @property
    def clips(self) -> list[Path]:
        return [clip for r in self.results for clip in r.clips if clip is not None]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.name.lower()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def _write_scene_list(
    results: Sequence[InputResult], path: Path, timecode_format: TimecodeFormat, settings: Mapping[str, Any]
) -> Path:
    base = path.parent
    entries = []
    for r in results:
        scenes = []
        for k, scene in enumerate(r.scenes):
            entry = {"number": k + 1, **scene.to_dict(timecode_format)}
            if k < len(r.clips) and r.clips[k] is not None:
                entry["clip"] = _relative(r.clips[k], base)  # type: ignore[arg-type]
            if k < len(r.previews):
                entry["previews"] = [_relative(p, base) for p in r.previews[k]]
            scenes.append(entry)
        entries.append(
            {
                "input": str(r.path),
                "name": r.name,
                "fps": r.fps,
                "duration": r.duration,
                "error": r.error,
                "scenes": scenes,
            }
        )
    data = {"timecode_format": timecode_format, "settings": settings, "inputs": entries}
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: middle; }
th { background: #f4f4f4; }
img { height: 90px; margin-right: 4px; }
.error { color: #b00020; font-weight: bold; }
.meta { color: #666; }
"""


def write_report(
    results: Sequence[InputResult],
    path: str | os.PathLike[str],
    timecode_format: TimecodeFormat = "frames",
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """Write an HTML report: per input its scenes with thumbnails, start/end timecodes, durations and clips; the
    inputs that failed with their error. Links are relative to the report's folder."""
    path = Path(path)
    base = path.parent
    esc = html.escape
    failed = [r for r in results if not r.ok]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Scenes</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>Scenes</h1>",
        f'<p class="meta">{len(results)} input(s), {len(results) - len(failed)} processed, {len(failed)} failed, '
        f"{sum(len(r.scenes) for r in results)} scene(s). Positions in {esc(timecode_format)}; the end of a scene "
        "is exclusive.</p>",
    ]
    if settings:
        shown = ", ".join(f"{esc(str(k))}={esc(str(v))}" for k, v in settings.items() if v not in (None, {}, ""))
        parts.append(f'<p class="meta">{shown}</p>')
    if failed:
        parts.append("<h2>Errors</h2><ul>")
        parts.extend(f'<li class="error">{esc(str(r.path))}: {esc(r.error or "")}</li>' for r in failed)
        parts.append("</ul>")
    for r in results:
        parts.append(f'<h2 id="{esc(r.name)}">{esc(r.path.name)}</h2>')
        meta = f"{esc(str(r.path))} · {r.fps:.3f} fps · {r.duration:.3f} s" if r.fps else esc(str(r.path))
        parts.append(f'<p class="meta">{meta}</p>')
        if r.error:
            parts.append(f'<p class="error">{esc(r.error)}</p>')
            continue
        if not r.scenes:
            parts.append("<p>No scene kept (all shorter than the minimum, or skipped).</p>")
            continue
        parts.append(
            "<table><tr><th>#</th><th>start</th><th>end</th><th>duration</th><th>frames</th>"
            "<th>previews</th><th>clip</th></tr>"
        )
        for k, scene in enumerate(r.scenes):
            start, end = scene.timecodes(timecode_format)
            images = "".join(
                f'<img src="{esc(_relative(p, base))}" alt="{esc(p.name)}" loading="lazy">'
                for p in (r.previews[k] if k < len(r.previews) else [])
            )
            clip = r.clips[k] if k < len(r.clips) else None
            link = f'<a href="{esc(_relative(clip, base))}">{esc(clip.name)}</a>' if clip is not None else ""
            parts.append(
                f'<tr id="{esc(r.name)}-scene-{k + 1}"><td>{k + 1}</td><td>{esc(start)}</td><td>{esc(end)}</td>'
                f"<td>{scene.duration:.3f} s</td><td>{scene.num_frames}</td><td>{images}</td><td>{link}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path
