"""The Dataset page's work, as library calls (no gradio here): the same entry points the verbs use.

- split: :func:`ltx_trainer.data.scenes.split_folder` (``split-scenes``),
- caption: :func:`~ltx_trainer.data.captioning.make_captioner` + :func:`~ltx_trainer.data.captioning.caption_dataset`
  (``caption``),
- preprocess: :func:`~ltx_trainer.models.families.load_model` + :func:`~ltx_trainer.data.preprocess.preprocess_dataset`
  (``preprocess``),
- verify: :func:`~ltx_trainer.data.verify.verify_cache` (``verify``) and the cache digest of
  :func:`~ltx_trainer.data.shards.cache_index`.

A dataset is a folder of clips with sidecar ``.txt`` captions, or a CSV/JSON/JSONL file (``media_path``, ``caption``);
:func:`clips` lists its media with captions and preview frames and :func:`save_caption` writes one caption back to
where it came from (the sidecar, or the file's row, other columns kept). :func:`bad_inputs` gathers what the stages
rejected, with their reasons, from the reports they leave on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ltx_trainer.data.captioning.inputs import find_media
from ltx_trainer.data.manifest import (
    CAPTION_COLUMNS,
    MEDIA_COLUMNS,
    caption_cell,
    media_cell,
    read_manifest,
    resolve,
    write_manifest,
)
from ltx_trainer.errors import UsageError
from ltx_trainer.io import atomic_write_text

CAPTION_FILES = ("captions.csv", "captions.json", "captions.jsonl")
PREVIEW_DIR = ".previews"  # data.scenes.export.PREVIEW_DIR


@dataclass(frozen=True)
class Clip:
    media: Path
    caption: str
    preview: Path | None  # a still frame for the grid (split-scenes' middle preview, or the image itself)

    @property
    def name(self) -> str:
        return self.media.name


def dataset_root(dataset: Path) -> Path:
    """The folder a dataset's cache (``.precomputed/``) goes into: the folder itself, or the file's folder."""
    return dataset if dataset.is_dir() else dataset.parent


def caption_file(folder: Path) -> Path | None:
    """The captions file ``caption`` wrote into ``folder`` (``captions.csv/json/jsonl``), if exactly one exists."""
    found = [folder / name for name in CAPTION_FILES if (folder / name).is_file()]
    return found[0] if len(found) == 1 else None


def _preview(media: Path) -> Path | None:
    previews = media.parent / PREVIEW_DIR
    for number in ("02", "01"):
        for suffix in (".jpg", ".png"):
            candidate = previews / f"{media.stem}-{number}{suffix}"
            if candidate.is_file():
                return candidate
    return media if media.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp") else None


def clips(dataset: Path) -> list[Clip]:
    """The media of a dataset folder (sidecar captions) or dataset file (its rows), with captions and previews."""
    dataset = Path(dataset)
    if dataset.is_file():
        manifest = read_manifest(dataset)
        rows = []
        for _, row in manifest.rows:
            value = media_cell(row)
            if value is not None:
                media = resolve(manifest.base, value)
                rows.append(Clip(media, (caption_cell(row) or "").strip(), _preview(media)))
        return rows
    if not dataset.is_dir():
        raise UsageError(f"{dataset}: no such dataset folder or file")
    found = []
    for media in find_media(dataset):
        sidecar = media.with_suffix(".txt")
        text = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""
        found.append(Clip(media, text, _preview(media)))
    return found


def save_caption(dataset: Path, media: Path, text: str) -> Path:
    """Write ``text`` as the caption of ``media``: its sidecar ``.txt`` (folder datasets) or its row in the dataset
    file (added when absent; other rows and columns kept). Returns the file written.

    Raises:
        UsageError: an empty caption (a sample without one is skipped by preprocess; delete the clip instead).
    """
    text = " ".join(text.split())
    if not text:
        raise UsageError(f"{media.name}: empty caption; write one (preprocess skips clips without a caption)")
    dataset = Path(dataset)
    if dataset.is_dir():
        return atomic_write_text(media.with_suffix(".txt"), text + "\n")
    manifest = read_manifest(dataset)
    rows = [row for _, row in manifest.rows]
    target = media.resolve()
    for row in rows:
        value = media_cell(row)
        if value is not None and resolve(manifest.base, value).resolve() == target:
            column = next((c for c in CAPTION_COLUMNS if c in row), CAPTION_COLUMNS[0])
            row[column] = text
            break
    else:
        rows.append(
            {MEDIA_COLUMNS[0]: media.resolve().relative_to(manifest.base.resolve()).as_posix(), "caption": text}
        )
    return write_manifest(dataset, rows)


# ---- the stages ----


def split(raw: Path, clips_dir: Path, detector: str = "content", min_scene_len: str = "15", max_scene_len: str = ""):
    """``split-scenes RAW -o CLIPS``; returns the :class:`~ltx_trainer.data.scenes.report.SplitSummary`."""
    from ltx_trainer.data.scenes import split_folder

    try:
        return split_folder(
            [raw],
            clips_dir,
            detector=detector,
            min_scene_len=min_scene_len or "15",
            max_scene_len=max_scene_len or None,
            show_progress=False,
        )
    except ValueError as e:  # settings: detector parameters, lengths, no input found
        raise UsageError(str(e)) from None


def caption(folder: Path, backend: str, model: str | None, fmt: str, trigger: str | None, overwrite: bool):
    """``caption FOLDER --backend B --format F``; returns the :class:`~ltx_trainer.data.captioning.CaptionSummary`."""
    from ltx_trainer.data.captioning import caption_dataset, make_captioner

    if not find_media(folder):
        raise UsageError(f"{folder}: no video, image or audio files found")
    captioner = make_captioner(backend, model=model or None)
    return caption_dataset(folder, captioner, fmt=fmt, resume=not overwrite, trigger=trigger or None, progress=False)


def preprocess(dataset: Path, model: Path, text_encoder: Path | None, buckets: str, trigger: str | None):
    """``preprocess DATASET --model M --resolution-buckets B``; returns the
    :class:`~ltx_trainer.data.preprocess.PreprocessResult` (the cache goes to ``<root>/.precomputed``)."""
    from ltx_trainer.data.preprocess import PreprocessOptions, parse_buckets, preprocess_dataset
    from ltx_trainer.models.families import load_model

    parsed = parse_buckets(buckets)
    loaded = load_model(model, text_encoder)
    options = PreprocessOptions(
        buckets=parsed,
        trigger=trigger or None,
        progress=False,
        text_encoder=str(text_encoder) if text_encoder is not None else None,
    )
    return preprocess_dataset(dataset, loaded, options)


@dataclass
class CacheStatus:
    verdict: str
    digest: str | None  # over every cache file and the fingerprint it records (``shards.cache_index``)
    settings: dict  # what preprocess recorded (buckets, trigger, model, ...)
    problems: list[tuple[str, str, str]]  # (sample, source, problem)


def verify(data_root: Path, model: Path | None = None, text_encoder: Path | None = None) -> CacheStatus:
    """``verify DATA_ROOT [--model M]``: the verdict, every problem, and the cache's digest and recorded settings."""
    from ltx_trainer.data.fingerprint import report_settings
    from ltx_trainer.data.shards import cache_index
    from ltx_trainer.data.verify import verify_cache

    report = verify_cache(data_root, None, model, text_encoder)
    problems = [(p.sample or "(cache)", p.source or "", p.message) for p in report.problems]
    return CacheStatus(report.verdict, cache_index(report.root)["digest"], report_settings(report.root), problems)


# ---- progress and problems, read from disk ----


def count_files(folder: Path, suffixes: tuple[str, ...]) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.rglob("*") if p.suffix in suffixes and not p.name.startswith("."))


def caption_progress(folder: Path) -> str:
    media = find_media(folder) if folder.is_dir() else []
    done = sum(1 for m in media if m.with_suffix(".txt").is_file())
    return f"{done}/{len(media)} files have a sidecar caption"


def preprocess_progress(dataset: Path) -> str:
    cache = dataset_root(dataset) / ".precomputed"
    latents = count_files(cache / "latents", (".safetensors", ".pt"))
    texts = count_files(cache / "conditions", (".safetensors", ".pt"))
    return f"cache: {latents} video latent file(s), {texts} text feature file(s)"


def bad_inputs(dataset: Path) -> list[tuple[str, str, str]]:
    """(file, stage, reason) for every input a stage rejected, from the reports the stages left in the dataset's
    folder: split-scenes' scenes.json, caption's caption_failures.json and preprocess's preprocess_report.json."""
    rows: list[tuple[str, str, str]] = []
    root = dataset_root(Path(dataset))
    scenes = _json(root / "scenes.json")
    scenes = scenes if isinstance(scenes, dict) else {}
    for entry in scenes.get("inputs", []):
        for key, stage in (("error", "split-scenes: failed"), ("damaged", "split-scenes: damaged")):
            if entry.get(key):
                rows.append((str(entry.get("input", "?")), stage, str(entry[key])))
        if entry.get("note") and not entry.get("scenes"):
            rows.append((str(entry.get("input", "?")), "split-scenes: no scene kept", str(entry["note"])))
    for entry in scenes.get("skipped", []):
        rows.append((str(entry.get("input", "?")), "split-scenes: skipped", str(entry.get("reason", "?"))))
    failures = _json(root / "caption_failures.json")
    for row in failures if isinstance(failures, list) else []:
        rows.append((str(row.get("media_path", "?")), "caption", str(row.get("error", "?"))))
    report = _json(root / ".precomputed" / "preprocess_report.json")
    for row in report.get("skipped", []) if isinstance(report, dict) else []:
        rows.append((str(row.get("source", "?")), "preprocess", str(row.get("reason", "?"))))
    return rows


def _json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
