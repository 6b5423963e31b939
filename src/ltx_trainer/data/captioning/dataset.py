"""Captioning a whole dataset: resume, failures, sidecar or metadata outputs (:func:`caption_dataset`)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ltx_trainer import logger
from ltx_trainer.data.captioning.base import (
    CAPTION_FORMATS,
    FAILURES_FILE,
    Captioner,
    CaptionError,
    CaptionFormat,
    CaptionStyle,
    NothingToCaption,
)
from ltx_trainer.data.captioning.dataset_io import (
    CAPTION_COLUMN,
    MEDIA_COLUMN,
    _existing_captions,
    _relative,
    _render_records,
    _sidecar,
)
from ltx_trainer.data.captioning.inputs import find_media
from ltx_trainer.data.captioning.text import apply_trigger, clean_caption, format_sections, parse_sections
from ltx_trainer.io import atomic_write_text


@dataclass
class CaptionSummary:
    """What :func:`caption_dataset` did.

    Attributes:
        root: The dataset root that ``media_path`` values are relative to.
        total: Media files found.
        captioned: Files captioned in this run.
        skipped: Files that already had a caption (resume).
        failed: Files that failed, with the reason.
        empty: Files with nothing for this captioner to describe (no speech for the whisper backend), with the
            reason: skipped, not failures, and they get no caption.
        output: The metadata file written (``None`` for sidecar ``.txt`` files).
        failures_file: ``caption_failures.json`` when something failed.
        seconds: Wall time.
    """

    root: Path
    total: int = 0
    captioned: int = 0
    skipped: int = 0
    failed: dict[Path, str] = field(default_factory=dict)
    empty: dict[Path, str] = field(default_factory=dict)
    output: Path | None = None
    failures_file: Path | None = None
    seconds: float = 0.0

    @property
    def succeeded(self) -> int:
        """Files that have a caption after the run (new or kept)."""
        return self.captioned + self.skipped

    def describe(self) -> str:
        """One line accounting for every file: captioned, kept, nothing to caption, failed."""
        empty = f", nothing to caption {len(self.empty)}" if self.empty else ""
        return (
            f"captioned {self.captioned}, kept {self.skipped}{empty}, failed {len(self.failed)} "
            f"of {self.total} files in {self.seconds:.1f}s"
        )


def _dataset_root(inputs: Sequence[Path], media: list[Path]) -> Path:
    if len(inputs) == 1 and inputs[0].is_dir():
        return inputs[0]
    parents = [str(m.resolve().parent) for m in media] or [str(Path.cwd())]
    return Path(os.path.commonpath(parents))


def _finish_caption(text: str, style: CaptionStyle | None, clean: bool, trigger: str | None) -> str:
    if clean:
        text = clean_caption(text)
    if style == "sections" and (sections := parse_sections(text)):
        text = format_sections(sections)
    return apply_trigger(text, trigger) if text else ""


def caption_dataset(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    captioner: Captioner,
    output: str | os.PathLike[str] | None = None,
    fmt: CaptionFormat = "txt",
    resume: bool = True,
    trigger: str | None = None,
    style: CaptionStyle | None = None,
    clean: bool = True,
    root: str | os.PathLike[str] | None = None,
    progress: bool = True,
    save_every: int = 25,
) -> CaptionSummary:
    """Caption every media file of a dataset.

    Args:
        inputs: A dataset folder (searched recursively), or a list of media files and folders.
        captioner: The backend.
        output: For ``txt``: a folder to mirror the sidecar captions into (default: next to each media file). For
            ``csv``/``json``/``jsonl``: the metadata file (default: ``<root>/captions.<fmt>``).
        fmt: ``txt`` (one sidecar per file), ``csv``, ``json`` or ``jsonl`` (columns ``media_path``, ``caption``;
            ``media_path`` is relative to the metadata file's folder, the dataset root by default).
        resume: Skip files that already have a caption, in any format (sidecar ``.txt``, the output file,
            ``captions.csv/json/jsonl`` in the root); their captions are carried into the output.
        trigger: LoRA trigger word prepended to new captions.
        style: The caption style (default: the captioner's ``style``); ``sections`` captions are normalised to
            ``[VISUAL]: … [SPEECH]: … [SOUNDS]: … [TEXT]: …``.
        clean: Run :func:`clean_caption` on each caption.
        root: The dataset root that ``media_path`` values are relative to (default: the input folder, or the common
            folder of the input files).
        progress: Show a progress bar.
        save_every: Rewrite the CSV/JSON file after this many new captions (JSONL is appended line by line).

    Returns:
        A :class:`CaptionSummary`. Files that fail are logged, listed in ``<root>/caption_failures.json`` and skipped.
    """
    from rich.progress import Progress

    from ltx_trainer.data.progress import progress_columns

    start = time.perf_counter()
    if fmt not in CAPTION_FORMATS:
        raise ValueError(f"unknown caption format {fmt!r}; use one of {', '.join(CAPTION_FORMATS)}")
    items = [Path(inputs)] if isinstance(inputs, str | os.PathLike) else [Path(i) for i in inputs]
    media = find_media(items)
    dataset_root = Path(root) if root is not None else _dataset_root(items, media)
    style = style or getattr(captioner, "style", None)
    txt_dir = Path(output) if fmt == "txt" and output is not None else None
    output_file = None
    if fmt != "txt":
        output_file = Path(output) if output is not None else dataset_root / f"captions.{fmt}"
        if output_file.is_dir():
            output_file = output_file / f"captions.{fmt}"
    # media_path values are relative to the metadata file's folder, which is the dataset root unless -o says otherwise
    base = output_file.parent if output_file is not None else dataset_root
    summary = CaptionSummary(root=dataset_root, total=len(media), output=output_file)

    existing = _existing_captions(media, dataset_root, txt_dir, output_file) if resume else {}
    records: dict[str, str] = {}  # relative media path -> caption, for the structured formats
    todo: list[Path] = []
    for item in media:
        if item.resolve() in existing:
            records[_relative(item, base)] = existing[item.resolve()]
            summary.skipped += 1
        else:
            todo.append(item)
    if summary.skipped:
        logger.info(f"resume: {summary.skipped} of {len(media)} files already captioned")

    def save() -> None:
        if output_file is not None:
            atomic_write_text(output_file, _render_records(records, fmt))

    jsonl = None
    if fmt == "jsonl":
        save()  # start from the carried-over captions, then append
        jsonl = open(output_file, "a", encoding="utf-8")  # noqa: SIM115 - closed in the finally below
    columns = progress_columns()
    unsaved = 0
    try:
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task("captioning", total=len(todo))
            for item in todo:
                relative = _relative(item, base)
                bar.update(task, description=f"captioning {item.name}")
                try:
                    text = _finish_caption(captioner.caption(item), style, clean, trigger)
                    if not text:
                        raise CaptionError("the captioner returned an empty caption")
                except NothingToCaption as e:
                    summary.empty[item] = str(e)
                    logger.info(f"{item}: {e}, no caption")
                    bar.advance(task)
                    continue
                except Exception as e:  # one bad file must not stop a dataset run
                    reason = f"{type(e).__name__}: {e}"
                    summary.failed[item] = reason
                    logger.warning(f"{item}: caption failed, skipped ({reason})")
                    bar.advance(task)
                    continue
                summary.captioned += 1
                records[relative] = text
                if fmt == "txt":
                    atomic_write_text(_sidecar(item, dataset_root, txt_dir), text + "\n")
                elif jsonl is not None:
                    jsonl.write(json.dumps({MEDIA_COLUMN: relative, CAPTION_COLUMN: text}, ensure_ascii=False) + "\n")
                    jsonl.flush()
                else:
                    unsaved += 1
                    if unsaved >= save_every:
                        save()
                        unsaved = 0
                bar.advance(task)
    finally:
        if jsonl is not None:
            jsonl.close()
        save()  # final, sorted, atomic
        failures = dataset_root / FAILURES_FILE
        if summary.failed:
            rows = [
                {MEDIA_COLUMN: _relative(path, dataset_root), "error": reason}
                for path, reason in summary.failed.items()
            ]
            atomic_write_text(failures, json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
            summary.failures_file = failures
            logger.warning(f"{len(summary.failed)} file(s) failed; see {failures}")
        elif failures.is_file():
            failures.unlink()  # stale list from an earlier run
    summary.seconds = time.perf_counter() - start
    return summary
