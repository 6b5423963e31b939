"""The one reader (and writer) of dataset manifests: CSV, JSON and JSONL files with one row per sample.

Every verb that reads a dataset file (``preprocess``, ``caption``, ``compute-reference``) goes through here, so the
same file means the same thing everywhere. Accepted column names (the first non-empty one wins, in this order):

* media: ``media_path``, ``video``, ``image``, ``path``, ``file_name``, ``filename``, ``file``; a row with none of
  them but an ``audio`` cell is an audio-only sample (its media is the audio file);
* caption: ``caption``, ``text``, ``prompt``, ``combined_caption_english``;
* ``audio`` (a separate audio track for a video), ``reference_video`` or ``ref_media_path``, ``reference_audio``,
  ``video_mask``, ``audio_mask``.

A JSON file is a list of objects, or one object ``{media_path: caption}``. Paths are relative to the manifest's
folder. Rows that can't be parsed are returned as ``bad`` with their reason, never dropped silently.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltx_trainer.errors import DataError
from ltx_trainer.io import atomic_write_text

MANIFEST_SUFFIXES = (".csv", ".json", ".jsonl")
MEDIA_COLUMNS = ("media_path", "video", "image", "path", "file_name", "filename", "file")
AUDIO_COLUMN = "audio"
CAPTION_COLUMNS = ("caption", "text", "prompt", "combined_caption_english")
REFERENCE_COLUMNS = ("reference_video", "ref_media_path")
# role -> accepted column names, for the optional per-sample files
PATH_COLUMNS: dict[str, tuple[str, ...]] = {
    "audio": (AUDIO_COLUMN,),
    "reference_video": REFERENCE_COLUMNS,
    "reference_audio": ("reference_audio",),
    "video_mask": ("video_mask",),
    "audio_mask": ("audio_mask",),
}


class ManifestError(DataError):
    """A manifest file that can't be read as a whole (bad JSON, no header, no media column); names the file."""


@dataclass
class Manifest:
    """Rows of a manifest file.

    Attributes:
        path: the file.
        rows: ``(label, row)`` pairs; the label (``"data.csv line 3"``) names the row in messages.
        bad: ``(label, reason)`` of rows that could not be parsed.
    """

    path: Path
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)

    @property
    def base(self) -> Path:
        """What relative paths in the rows are relative to."""
        return self.path.parent

    @property
    def columns(self) -> set[str]:
        return set().union(*(row.keys() for _, row in self.rows)) if self.rows else set()


def is_manifest(path: Path) -> bool:
    return Path(path).suffix.lower() in MANIFEST_SUFFIXES


def read_manifest(path: str | Path) -> Manifest:
    """Rows of a CSV (header row), JSON (list of objects, or ``{media_path: caption}``) or JSONL file.

    Text is decoded as UTF-8 (a BOM is accepted); bytes that are not UTF-8 are kept as surrogates so a caller can
    reject just the row that holds them.

    Raises:
        ManifestError: not a manifest suffix, unparseable JSON, or a CSV without a header.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ManifestError(f"{path}: not a dataset file; expected {', '.join(MANIFEST_SUFFIXES)}")
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    manifest = Manifest(path)
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise ManifestError(f"{path}: empty CSV (expected a header row with media_path and caption)")
        for line, row in enumerate(reader, start=2):
            manifest.rows.append((f"{path.name} line {line}", {(k or "").strip(): v for k, v in row.items()}))
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{path}: invalid JSON ({e.msg} at line {e.lineno}); expected a list of objects") from e
        known = {*MEDIA_COLUMNS, *CAPTION_COLUMNS, *(c for names in PATH_COLUMNS.values() for c in names)}
        if isinstance(data, dict) and data.keys() & known:
            raise ManifestError(
                f"{path}: one object with columns {sorted(data)}; expected a JSON list of objects (one per sample) "
                "or {media_path: caption}"
            )
        if isinstance(data, dict):
            data = [{MEDIA_COLUMNS[0]: k, CAPTION_COLUMNS[0]: v} for k, v in data.items()]
        if not isinstance(data, list):
            found = type(data).__name__
            raise ManifestError(f"{path}: expected a JSON list of objects (one per sample), found {found}")
        for index, row in enumerate(data):
            label = f"{path.name} entry {index}"
            if isinstance(row, dict):
                manifest.rows.append((label, row))
            else:
                manifest.bad.append((label, f"not an object: {str(row)[:60]!r}"))
    else:
        for line, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            label = f"{path.name} line {line}"
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as e:
                manifest.bad.append((label, f"invalid JSON ({e.msg})"))
                continue
            if isinstance(row, dict):
                manifest.rows.append((label, row))
            else:
                manifest.bad.append((label, f"not an object: {raw[:60]!r}"))
    return manifest


def cell(row: dict[str, Any], names: Sequence[str]) -> str | None:
    """The first non-empty value among ``names`` (stripped text), or None."""
    for name in names:
        value = row.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        value = str(value).strip()
        if value:
            return value
    return None


def column(row: dict[str, Any], names: Sequence[str]) -> str | None:
    """The name of the first column among ``names`` with a non-empty value, or None."""
    return next((name for name in names if cell(row, (name,)) is not None), None)


def media_cell(row: dict[str, Any], media_column: str | None = None) -> str | None:
    """The row's main media path: ``media_column`` if given, else the first media column, else the audio cell."""
    if media_column:
        return cell(row, (media_column,))
    return cell(row, MEDIA_COLUMNS) or cell(row, (AUDIO_COLUMN,))


def media_column_of(row: dict[str, Any], media_column: str | None = None) -> str | None:
    """The column :func:`media_cell` took the media from."""
    if media_column:
        return media_column if cell(row, (media_column,)) is not None else None
    return column(row, MEDIA_COLUMNS) or column(row, (AUDIO_COLUMN,))


def caption_cell(row: dict[str, Any], caption_column: str | None = None) -> str | None:
    """The row's caption (not stripped; empty captions are returned as ``""``), or None when there is no column."""
    names = (caption_column,) if caption_column else CAPTION_COLUMNS
    present = False
    for name in names:
        value = row.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        present = True
        if str(value).strip():
            return str(value)
    return "" if present else None


def has_caption_column(columns: set[str], caption_column: str | None = None) -> bool:
    names = (caption_column,) if caption_column else CAPTION_COLUMNS
    return bool(columns & set(names))


def resolve(base: Path, value: str) -> Path:
    """A manifest path: absolute as is, relative to ``base`` otherwise (``~`` expanded)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def render_rows(path: Path, rows: list[dict[str, Any]]) -> str:
    """Rows as CSV (columns: the union in first-seen order), JSONL or JSON text, from ``path``'s suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    if suffix == ".jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if suffix == ".json":
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    raise ManifestError(f"{path}: a dataset file must end in .csv, .jsonl or .json")


def write_manifest(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows (:func:`render_rows`) atomically."""
    path = Path(path)
    return atomic_write_text(path, render_rows(path, rows))
