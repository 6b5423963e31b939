"""What ``preprocess`` reads: the samples of a media folder (sidecar ``.txt`` captions) or of a dataset file.

Every input is accounted for: a sample (:class:`Item`), a skipped one with its reason, or a file that is not a kind
preprocess reads (``not_media``). Dataset files are read by :mod:`ltx_trainer.data.manifest` (its column names).
Audio-only files (``.wav``, ``.mp3``, ...) are reported as skipped: a training sample needs a video or an image
(give an audio track to a video with the ``audio`` column of a dataset file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ltx_trainer.data import manifest as mf
from ltx_trainer.data.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ltx_trainer.errors import DataError

CAPTION_SUFFIX = ".txt"
AUDIO_ONLY = (
    "audio-only file: a training sample needs a video or an image (pair it with a video through the 'audio' column "
    "of a dataset file)"
)


class DatasetNotFound(DataError, FileNotFoundError):
    """The dataset folder or file doesn't exist."""


@dataclass(frozen=True)
class Item:
    """One sample to preprocess.

    Attributes:
        media: the main video or image.
        caption: its caption (the trigger is prepended at encode time).
        sample_id: output name without suffix (the media path relative to the dataset root, suffix removed).
        audio: audio file to use instead of the clip's own track.
        reference_video: IC-LoRA reference clip.
        reference_audio: audio reference.
        video_mask: inpainting mask (image, video, or a mask array file, ``data/masks.py``).
        audio_mask: audio mask (a 1-D mask array file over the clip's duration).
        source: where the sample came from (a file, or ``"dataset.csv line 3"``), for the report.
    """

    media: Path
    caption: str
    sample_id: str
    audio: Path | None = None
    reference_video: Path | None = None
    reference_audio: Path | None = None
    video_mask: Path | None = None
    audio_mask: Path | None = None
    source: str = ""


@dataclass(frozen=True)
class Skipped:
    """An input that produced nothing, and why.

    ``kind`` is ``skipped`` (a sample that failed or was refused) or ``not_media`` (a file in the dataset folder that
    is not a kind preprocess reads; listed, not counted as a failure).
    """

    source: str
    reason: str
    sample_id: str | None = None
    kind: str = "skipped"


def _has_surrogates(text: str) -> bool:
    """Text decoded with ``errors="surrogateescape"`` that contained bytes which aren't UTF-8."""
    return any(0xDC80 <= ord(c) <= 0xDCFF for c in text)


def sample_id(path: Path, root: Path) -> str:
    """``root/clips/a.mp4`` -> ``clips/a``; a path outside ``root`` is mirrored (``/x/y.mp4`` -> ``x/y``)."""
    path = Path(os.path.normpath(path))
    try:
        rel = path.relative_to(Path(os.path.normpath(root)))
    except ValueError:
        rel = Path(*path.parts[1:]) if path.is_absolute() else path
        rel = Path(*[p for p in rel.parts if p != ".."])
    return rel.with_suffix("").as_posix()


def _folder_rows(folder: Path) -> tuple[list[Item], list[Skipped]]:
    items, skipped = [], []
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    media_stems = {p.with_suffix("") for p in files if p.suffix.lower() in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS}
    for path in files:
        rel = path.relative_to(folder).as_posix()
        suffix = path.suffix.lower()
        if suffix in AUDIO_EXTENSIONS:
            skipped.append(Skipped(rel, AUDIO_ONLY))
            continue
        if suffix not in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS:
            if not (suffix == CAPTION_SUFFIX and path.with_suffix("") in media_stems):  # sidecars are captions
                reason = f"not a video or image ({suffix or 'no suffix'}); ignored"
                skipped.append(Skipped(rel, reason, kind="not_media"))
            continue
        sidecar = path.with_suffix(CAPTION_SUFFIX)
        if not sidecar.is_file():
            skipped.append(Skipped(rel, f"no caption: {sidecar.name} is missing next to it"))
            continue
        raw = sidecar.read_bytes()
        try:
            caption = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            skipped.append(
                Skipped(
                    rel, f"caption {sidecar.name} is not UTF-8 (byte {raw[e.start]:#04x} at {e.start}); save as UTF-8"
                )
            )
            continue
        items.append(Item(path, caption, sample_id(path, folder), source=rel))
    return items, skipped


def _manifest_rows(
    path: Path, caption_column: str | None, media_column: str | None
) -> tuple[list[Item], list[Skipped]]:
    manifest = mf.read_manifest(path)
    skipped = [Skipped(label, reason) for label, reason in manifest.bad]
    root, columns = manifest.base, manifest.columns
    media_columns = (media_column,) if media_column else (*mf.MEDIA_COLUMNS, mf.AUDIO_COLUMN)
    if manifest.rows and not columns & set(media_columns):
        raise mf.ManifestError(
            f"{path}: no media column ({' or '.join(media_columns)}); columns found: {sorted(columns)}. "
            "Name the column media_path (or pass --media-column)."
        )
    caption_names = (caption_column,) if caption_column else mf.CAPTION_COLUMNS
    if manifest.rows and not mf.has_caption_column(columns, caption_column):
        raise mf.ManifestError(
            f"{path}: no caption column ({' or '.join(caption_names)}); columns found: {sorted(columns)}. "
            "Add captions or pass --caption-column."
        )
    items = []
    for label, row in manifest.rows:
        value = mf.media_cell(row, media_column)
        if value is None:
            skipped.append(Skipped(label, f"empty {media_columns[0]}"))
            continue
        media = mf.resolve(root, value)
        audio_only = media_column is None and mf.media_column_of(row) == mf.AUDIO_COLUMN
        paths: dict[str, Path | None] = {}
        for key, names in mf.PATH_COLUMNS.items():
            found = None if (audio_only and key == "audio") else mf.cell(row, names)
            paths[key] = mf.resolve(root, found) if found is not None else None
        caption = mf.caption_cell(row, caption_column) or ""
        items.append(Item(media, caption, sample_id(media, root), source=f"{label} ({value})", **paths))
    return items, skipped


def _validate_items(items: list[Item]) -> tuple[list[Item], list[Skipped]]:
    """Drop samples with missing files, bad captions, audio-only media or a duplicate output name (first one wins)."""
    good, skipped = [], []
    seen: dict[str, str] = {}
    for item in items:
        label = item.source or str(item.media)
        if item.sample_id in seen:
            skipped.append(
                Skipped(
                    label, f"duplicate: same output name {item.sample_id!r} as {seen[item.sample_id]}", item.sample_id
                )
            )
            continue
        missing = [
            f"{name} {path} does not exist"
            for name, path in (
                ("media", item.media),
                ("audio", item.audio),
                ("reference_video", item.reference_video),
                ("reference_audio", item.reference_audio),
                ("video_mask", item.video_mask),
                ("audio_mask", item.audio_mask),
            )
            if path is not None and not path.is_file()
        ]
        if missing:
            skipped.append(Skipped(label, "; ".join(missing), item.sample_id))
            continue
        if item.media.suffix.lower() in AUDIO_EXTENSIONS:
            skipped.append(Skipped(label, AUDIO_ONLY, item.sample_id))
            continue
        if _has_surrogates(item.caption):
            skipped.append(Skipped(label, "caption is not valid UTF-8 text; save the file as UTF-8", item.sample_id))
            continue
        if not item.caption.strip():
            skipped.append(Skipped(label, "empty caption", item.sample_id))
            continue
        seen[item.sample_id] = label
        good.append(item)
    return good, skipped


def load_dataset(
    dataset: str | Path, caption_column: str | None = None, media_column: str | None = None
) -> tuple[list[Item], list[Skipped], Path]:
    """Samples of a media folder (sidecar ``.txt`` captions) or of a CSV / JSON / JSONL dataset file.

    Args:
        dataset: the folder or the file.
        caption_column: the caption column (default: any of ``manifest.CAPTION_COLUMNS``).
        media_column: the media column (default: any of ``manifest.MEDIA_COLUMNS``, else ``audio``).

    Returns:
        ``(items, skipped, root)``: valid samples in a stable order, every other input with its reason (rows skipped,
        audio-only files, files that are not media), and the dataset root that output names are relative to.

    Raises:
        DataError: ``dataset`` doesn't exist, is neither a folder nor a dataset file, or the file can't be read.
    """
    dataset = Path(dataset)
    if not dataset.exists():
        raise DatasetNotFound(f"{dataset}: no such dataset folder or metadata file")
    if dataset.is_dir():
        items, skipped = _folder_rows(dataset)
        root = dataset
    elif mf.is_manifest(dataset):
        root = dataset.parent
        items, skipped = _manifest_rows(dataset, caption_column, media_column)
    else:
        raise DataError(f"{dataset}: expected a folder of media or a metadata file ({', '.join(mf.MANIFEST_SUFFIXES)})")
    items, more = _validate_items(items)
    return items, skipped + more, root
