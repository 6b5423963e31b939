"""Caption metadata I/O: the sidecar .txt files and the CSV/JSON/JSONL dataset manifests (read and written).

The one place of this package that reads dataset manifests (``media_path`` + ``caption`` columns); it is meant to
go through the project's shared manifest reader once there is one.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ltx_trainer import logger
from ltx_trainer.data.captioning.base import CaptionFormat
from ltx_trainer.data.captioning.inputs import find_media, media_kind

#: Column names of the dataset metadata files (the LTX-2 trainer's convention).
MEDIA_COLUMN = "media_path"
CAPTION_COLUMN = "caption"
# Other column names accepted when reading metadata written by other tools.
_READ_MEDIA_COLUMNS = (MEDIA_COLUMN, "video", "image", "audio", "path", "file_name", "file")
_READ_CAPTION_COLUMNS = (CAPTION_COLUMN, "text", "prompt", "combined_caption_english")


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


def _sidecar(media: Path, root: Path, txt_dir: Path | None) -> Path:
    """Where the ``.txt`` caption of ``media`` goes: next to it, or mirrored under ``txt_dir``."""
    if txt_dir is None:
        return media.with_suffix(".txt")
    return (txt_dir / _relative(media, root)).with_suffix(".txt")


def _render_records(records: dict[str, str], fmt: CaptionFormat) -> str:
    rows = [{MEDIA_COLUMN: key, CAPTION_COLUMN: records[key]} for key in sorted(records)]
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[MEDIA_COLUMN, CAPTION_COLUMN], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _pick(row: dict[str, Any], columns: Sequence[str], path: Path, what: str) -> Any:
    for column in columns:
        if row.get(column) not in (None, ""):
            return row[column]
    raise ValueError(f"{path}: a row has no {what} column ({', '.join(columns)}): {str(row)[:200]}")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{number}: not valid JSON ({e.msg})") from e
        return rows
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from e
        if isinstance(data, dict):  # {"media_path": "caption", ...}
            return [{MEDIA_COLUMN: k, CAPTION_COLUMN: v} for k, v in data.items()]
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a list of {{media_path, caption}} objects")
        return data
    raise ValueError(f"{path}: unknown caption file type {suffix!r}; use .txt, .csv, .json or .jsonl")


def read_captions(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> dict[Path, str]:
    """Read captions back from any of the formats :func:`caption_dataset` writes.

    Args:
        path: A ``.csv`` / ``.json`` / ``.jsonl`` metadata file, a folder of media with sidecar ``.txt`` captions,
            or one sidecar ``.txt``.
        root: What relative ``media_path`` values are relative to (default: the metadata file's folder).

    Returns:
        ``{absolute media path: caption}``.
    """
    path = Path(path)
    if path.is_dir():
        return {
            media.resolve(): text
            for media in find_media(path)
            if (sidecar := media.with_suffix(".txt")).is_file()
            and (text := sidecar.read_text(encoding="utf-8").strip())
        }
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such caption file or folder")
    if path.suffix.lower() == ".txt":
        siblings = [p for p in path.parent.glob(f"{glob.escape(path.stem)}.*") if media_kind(p) is not None]
        if not siblings:
            raise ValueError(f"{path}: no media file with the same name next to this caption")
        return {siblings[0].resolve(): path.read_text(encoding="utf-8").strip()}
    base = Path(root) if root is not None else path.parent
    captions: dict[Path, str] = {}
    for row in _read_rows(path):
        media = Path(str(_pick(row, _READ_MEDIA_COLUMNS, path, "media")))
        caption = _pick(row, _READ_CAPTION_COLUMNS, path, "caption")
        captions[(media if media.is_absolute() else base / media).resolve()] = str(caption)
    return captions


def _existing_captions(media: list[Path], root: Path, txt_dir: Path | None, output: Path | None) -> dict[Path, str]:
    """Captions already present for ``media``: sidecars, the output file, and ``captions.*`` files in the root."""
    found: dict[Path, str] = {}
    wanted = {m.resolve() for m in media}
    candidates = [root / f"captions.{fmt}" for fmt in ("csv", "json", "jsonl")]
    if output is not None:
        candidates.insert(0, output)
    for candidate in dict.fromkeys(candidates):
        if candidate.is_file():
            try:
                rows = read_captions(candidate)
            except (ValueError, OSError) as e:
                logger.warning(f"{candidate}: cannot read existing captions for resume ({e})")
                continue
            for key, text in rows.items():
                if key in wanted and text.strip():
                    found.setdefault(key, text.strip())
    for item in media:
        for sidecar in dict.fromkeys([_sidecar(item, root, txt_dir), item.with_suffix(".txt")]):
            if item.resolve() not in found and sidecar.is_file():
                text = sidecar.read_text(encoding="utf-8").strip()
                if text:
                    found[item.resolve()] = text
    return found
