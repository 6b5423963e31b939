"""The scene list (scenes.json) and the HTML report (scenes.html) of :func:`split_folder`.

Both accumulate across runs into the same folder: the scene list holds one entry per source video ever split there
(keyed by its resolved path), with the settings and the source's size and modification time that produced it, so a
rerun can resume a source instead of redoing it, and a new source never takes an older one's clip names.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ltx_trainer import logger
from ltx_trainer.data.scenes.timecodes import Scene, TimecodeFormat
from ltx_trainer.io import atomic_write_text

SCENE_LIST = "scenes.json"
REPORT = "scenes.html"


@dataclass
class InputResult:
    """What happened to one input of :func:`split_folder`.

    Attributes:
        path: The input video.
        name: Base name of its outputs (its stem, made unique among every source split into the folder).
        fps: Its frame rate (0.0 when it could not be read).
        duration: Its decoded duration in seconds (0.0 when unknown).
        scenes: The scenes kept.
        clips: The clip of each scene (empty without splitting).
        previews: The preview images of each scene (empty without previews).
        error: Why the input failed (without the path), or ``None``.
        damaged: Why the input looks truncated or damaged (its clips come from the part that decoded), or ``None``.
        note: Why no scene was kept, or what was changed in its clips (odd sizes padded); ``None`` when nothing.
        resumed: Split by an earlier run with the same settings; its outputs were kept as they are.
        source: Size and modification time of the input when it was split.
        settings: The settings it was split with.
    """

    path: Path
    name: str
    fps: float = 0.0
    duration: float = 0.0
    scenes: list[Scene] = field(default_factory=list)
    clips: list[Path | None] = field(default_factory=list)
    previews: list[list[Path]] = field(default_factory=list)
    error: str | None = None
    damaged: str | None = None
    note: str | None = None
    resumed: bool = False
    source: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def outputs(self) -> list[Path]:
        """Every file written for this input (clips and previews)."""
        return [c for c in self.clips if c is not None] + [p for scene in self.previews for p in scene]

    @property
    def status(self) -> str:
        """One line: failed / damaged / no scene kept / kept from an earlier run / empty when all is well."""
        if self.error:
            return f"failed: {self.error}"
        parts = [self.damaged or "", self.note or "", "kept from an earlier run" if self.resumed else ""]
        return "; ".join(p for p in parts if p)


@dataclass
class SplitSummary:
    """Result of :func:`split_folder`.

    Attributes:
        results: One entry per input video of this run, in input order.
        report: The HTML report (every source split into the folder, across runs).
        scene_list: The JSON scene list (same).
        skipped: Files of this run that are not videos, with the reason (images, audio, other files).
    """

    results: list[InputResult]
    report: Path
    scene_list: Path
    skipped: dict[Path, str] = field(default_factory=dict)

    @property
    def succeeded(self) -> list[InputResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[InputResult]:
        return [r for r in self.results if not r.ok]

    @property
    def damaged(self) -> list[InputResult]:
        return [r for r in self.results if r.ok and r.damaged]

    @property
    def clips(self) -> list[Path]:
        return [clip for r in self.results for clip in r.clips if clip is not None]

    @property
    def produced(self) -> bool:
        """Whether the run left any output: a clip, or with ``split=False`` a scene."""
        return bool(self.clips) or any(r.scenes and not r.clips for r in self.succeeded)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.name.lower()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def source_key(path: Path) -> str:
    """How the scene list names a source: its resolved path."""
    return str(Path(path).resolve())


def _entry(r: InputResult, base: Path, timecode_format: TimecodeFormat) -> dict[str, Any]:
    scenes = []
    for k, scene in enumerate(r.scenes):
        item = {"number": k + 1, **scene.to_dict(timecode_format)}
        if k < len(r.clips) and r.clips[k] is not None:
            item["clip"] = _relative(r.clips[k], base)  # type: ignore[arg-type]
        if k < len(r.previews):
            item["previews"] = [_relative(p, base) for p in r.previews[k]]
        scenes.append(item)
    return {
        "input": str(r.path),
        "source_key": source_key(r.path),
        "name": r.name,
        "fps": r.fps,
        "duration": r.duration,
        "error": r.error,
        "damaged": r.damaged,
        "note": r.note,
        "source": r.source,
        "settings": r.settings,
        "scenes": scenes,
    }


def result_from_entry(entry: Mapping[str, Any], base: Path) -> InputResult:
    """Rebuild an :class:`InputResult` from its scene-list entry (paths relative to ``base``)."""
    fps = float(entry.get("fps") or 0.0)
    result = InputResult(
        Path(entry["input"]),
        str(entry["name"]),
        fps=fps,
        duration=float(entry.get("duration") or 0.0),
        error=entry.get("error"),
        damaged=entry.get("damaged"),
        note=entry.get("note"),
        source=dict(entry.get("source") or {}),
        settings=dict(entry.get("settings") or {}),
    )
    scenes = entry.get("scenes") or []
    result.scenes = [Scene(int(s["start_frame"]), int(s["end_frame"]), fps) for s in scenes]
    if any("clip" in s for s in scenes):
        result.clips = [base / s["clip"] if "clip" in s else None for s in scenes]
    if any("previews" in s for s in scenes):
        result.previews = [[base / p for p in s.get("previews", [])] for s in scenes]
    return result


def read_scene_list(path: Path) -> dict[str, InputResult]:
    """The sources of an existing scene list, by :func:`source_key` (empty when there is none or it is unreadable)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["inputs"]
        return {
            str(e.get("source_key") or source_key(Path(e["input"]))): result_from_entry(e, path.parent) for e in entries
        }
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.warning(f"{path}: cannot read the earlier scene list ({type(e).__name__}: {e}); starting a new one")
        return {}


def _write_scene_list(
    results: Sequence[InputResult],
    path: Path,
    timecode_format: TimecodeFormat,
    settings: Mapping[str, Any],
    skipped: Mapping[Path, str] | None = None,
) -> Path:
    base = path.parent
    data = {
        "timecode_format": timecode_format,
        "settings": settings,
        "inputs": [_entry(r, base, timecode_format) for r in results],
        "skipped": [{"input": str(p), "reason": reason} for p, reason in (skipped or {}).items()],
    }
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
    skipped: Mapping[Path, str] | None = None,
) -> Path:
    """Write an HTML report: per input its scenes with thumbnails, start/end timecodes, durations and clips; the
    inputs that failed with their error, the damaged ones and the files skipped as not videos. Links are relative to
    the report's folder."""
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
    damaged = [r for r in results if r.ok and r.damaged]
    if damaged:
        parts.append("<h2>Damaged</h2><ul>")
        parts.extend(f'<li class="error">{esc(str(r.path))}: {esc(r.damaged or "")}</li>' for r in damaged)
        parts.append("</ul>")
    if skipped:
        parts.append("<h2>Skipped (not videos)</h2><ul>")
        parts.extend(f"<li>{esc(str(p))}: {esc(reason)}</li>" for p, reason in skipped.items())
        parts.append("</ul>")
    for r in results:
        parts.append(f'<h2 id="{esc(r.name)}">{esc(r.path.name)}</h2>')
        meta = f"{esc(str(r.path))} · {r.fps:.3f} fps · {r.duration:.3f} s" if r.fps else esc(str(r.path))
        parts.append(f'<p class="meta">{meta}</p>')
        if r.error:
            parts.append(f'<p class="error">{esc(r.error)}</p>')
            continue
        if r.damaged:
            parts.append(f'<p class="error">{esc(r.damaged)}</p>')
        if not r.scenes:
            parts.append(f"<p>{esc(r.note or 'No scene kept (all shorter than the minimum, or skipped).')}</p>")
            continue
        if r.note:
            parts.append(f"<p>{esc(r.note)}</p>")
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
