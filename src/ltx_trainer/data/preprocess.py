"""Precompute what training reads: video latents, audio latents, text features, masks and IC-LoRA references.

Input: a folder of media with sidecar captions (``clip.mp4`` + ``clip.txt``), or a CSV / JSON / JSONL metadata file
with the official columns (``media_path`` or ``video``, ``caption``, ``audio``, ``reference_video`` or
``ref_media_path``, ``reference_audio``, ``video_mask``, ``audio_mask``), paths relative to the metadata file.

Output (spec/anchors.md §2.10): one file per sample and source folder, named after the main media path relative to
the dataset root with its suffix replaced (``clips/a.mp4`` -> ``latents/clips/a.safetensors`` or ``.pt``)::

    latents/                  latents [128, F', H', W'] bf16, num_frames, height, width, fps
    conditions/               video_prompt_embeds [L, Dv] bf16, audio_prompt_embeds [L, Da] bf16 (LTX-2),
                              prompt_attention_mask [L]
    audio_latents/            latents [8, T, 16] fp32, num_time_steps, frequency_bins, duration
    reference_latents/        like latents/, at H'/k, W'/k, temporally subsampled by S (fps = source fps / S)
    reference_audio_latents/  like audio_latents/
    video_masks/              mask [F', H', W'] float {0, 1} (1 = conditioning: kept clean, no loss)
    audio_masks/              mask [T] float {0, 1}

Safetensors files (the default) keep the scalars and a fingerprint in the header (``data/fingerprint.py``);
``format="pt"`` writes the official ``torch.save`` dicts exactly (no fingerprint).

Per sample: decode up to the longest bucket's frames (optionally resampled to a target fps), pick the bucket
(:func:`choose_bucket`), take its first F frames, resize to cover and centre/random crop, encode; the audio comes from
the clip (or the ``audio`` column), stereo, trimmed or zero-padded to F / fps seconds. Everything of a sample is
computed before anything is written, so a bad sample leaves no partial files. The next sample is decoded and resized
in a background thread while the encoders work on the current one. Text features are computed once per unique
caption, after the media, for the samples whose media succeeded.

Bad input never stops a run: each bad sample is skipped with its reason, listed in ``preprocess_report.json`` in the
output folder and in a summary table. Runs resume (samples whose outputs exist are skipped unless ``overwrite``),
writes are atomic, and ``num_shards`` processes can split the work (interleaved).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ltx_trainer import __version__, logger
from ltx_trainer.data.cache import FINGERPRINT_KEY, write_sample_file
from ltx_trainer.data.media import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    MediaError,
    check_num_frames,
    check_resolution,
    is_image_file,
    read_audio,
    read_video,
    resize_and_crop,
)
from ltx_trainer.models.base import LTXModel
from ltx_trainer.models.errors import ModelLoadError

METADATA_SUFFIXES = (".csv", ".json", ".jsonl")
MEDIA_COLUMNS = ("media_path", "video")
REFERENCE_COLUMNS = ("reference_video", "ref_media_path")
REPORT_NAME = "preprocess_report.json"
ARRAY_SUFFIXES = (".npy", ".pt", ".json", ".txt", ".csv")
VIDEO_DTYPE = torch.bfloat16  # official: the video VAE and the text encoder run in bf16, latents are stored so
AUDIO_DTYPE = torch.float32  # official: the audio VAE runs in fp32 "for quality"


# ----------------------------------------------------------------------------------------------------------------------
# Buckets
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """Target ``width x height x frames`` of a sample."""

    width: int
    height: int
    frames: int

    @classmethod
    def parse(cls, text: str) -> Bucket:
        try:
            width, height, frames = (int(v) for v in text.strip().lower().split("x"))
        except ValueError as e:
            raise ValueError(f"resolution bucket {text!r} is not WxHxF (e.g. 768x448x89)") from e
        try:
            check_resolution(width, height)
            check_num_frames(frames)
        except MediaError as e:
            raise ValueError(f"resolution bucket {text!r}: {e}") from e
        return cls(width, height, frames)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.frames}"


def parse_buckets(text: str) -> list[Bucket]:
    """``"768x448x89;512x512x1"`` -> buckets (duplicates dropped, order kept).

    Raises:
        ValueError: empty, or a bucket that isn't ``WxHxF`` with W, H multiples of 32 and F = 8k+1.
    """
    parts = [p for p in text.replace(",", ";").split(";") if p.strip()]
    if not parts:
        raise ValueError("no resolution buckets given; expected 'WxHxF;WxHxF' (e.g. '768x448x89;512x512x1')")
    return list(dict.fromkeys(Bucket.parse(p) for p in parts))


def choose_bucket(
    buckets: Iterable[Bucket], width: int, height: int, frames: int, image: bool = False
) -> Bucket | None:
    """The bucket for media of ``width x height`` with ``frames`` frames available, as the official trainer picks it.

    Among the buckets with at most ``frames`` frames: the nearest aspect ratio (in log scale), then the most frames,
    then the largest area. Still images (``image=True``) take the ``F=1`` buckets; when there is none, the nearest
    bucket's size with one frame.

    Returns:
        The bucket, or None when every bucket needs more frames than there are.
    """
    buckets = list(buckets)
    if image:
        candidates = [b for b in buckets if b.frames == 1] or [Bucket(b.width, b.height, 1) for b in buckets]
    else:
        candidates = [b for b in buckets if b.frames <= frames]
    if not candidates or width <= 0 or height <= 0:
        return None
    log_aspect = math.log(width / height)
    return min(
        candidates,
        key=lambda b: (abs(log_aspect - math.log(b.width / b.height)), -b.frames, -(b.width * b.height)),
    )


# ----------------------------------------------------------------------------------------------------------------------
# Dataset rows
# ----------------------------------------------------------------------------------------------------------------------


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
        video_mask: inpainting mask (image, video, or ``.npy``/``.pt`` array ``[F, H, W]`` / ``[H, W]`` in [0, 1]).
        audio_mask: audio mask (``.npy``/``.pt``/``.json``/``.txt``/``.csv`` 1-D array over the clip's duration).
        source: where the sample came from (a file, or ``"dataset.csv row 3"``), for the report.
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
    """A sample (or row) that produced nothing, and why."""

    source: str
    reason: str
    sample_id: str | None = None


def _has_surrogates(text: str) -> bool:
    """Text decoded with ``errors="surrogateescape"`` that contained bytes which aren't UTF-8."""
    return any(0xDC80 <= ord(c) <= 0xDCFF for c in text)


def _sample_id(path: Path, root: Path) -> str:
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
    media = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    for path in media:
        rel = path.relative_to(folder).as_posix()
        sidecar = path.with_suffix(".txt")
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
        items.append(Item(path, caption, _sample_id(path, folder), source=rel))
    return items, skipped


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8-sig", errors="surrogateescape")


def _metadata_rows(path: Path) -> tuple[list[tuple[str, dict]], list[Skipped]]:
    """``(label, row)`` pairs of a CSV / JSON / JSONL file; unparseable rows are skipped."""
    suffix = path.suffix.lower()
    rows: list[tuple[str, dict]] = []
    skipped: list[Skipped] = []
    text = _read_text(path)
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise ValueError(f"{path}: empty CSV (expected a header row with media_path/video and caption)")
        for line, row in enumerate(reader, start=2):
            rows.append((f"{path.name} line {line}", {(k or "").strip(): v for k, v in row.items()}))
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON ({e}); expected a list of objects") from e
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of objects (one per sample), found {type(data).__name__}")
        for index, row in enumerate(data):
            label = f"{path.name} entry {index}"
            if isinstance(row, dict):
                rows.append((label, row))
            else:
                skipped.append(Skipped(label, f"not an object: {str(row)[:60]!r}"))
    else:
        for line, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            label = f"{path.name} line {line}"
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as e:
                skipped.append(Skipped(label, f"invalid JSON ({e})"))
                continue
            if isinstance(row, dict):
                rows.append((label, row))
            else:
                skipped.append(Skipped(label, f"not an object: {raw[:60]!r}"))
    return rows, skipped


def _cell(row: dict, *names: str) -> str | None:
    for name in names:
        value = row.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        value = str(value).strip()
        if value:
            return value
    return None


def _rows_to_items(
    rows: list[tuple[str, dict]], root: Path, metadata: Path, caption_column: str, media_column: str | None
) -> tuple[list[Item], list[Skipped]]:
    columns = set().union(*(row.keys() for _, row in rows)) if rows else set()
    media_columns = (media_column,) if media_column else MEDIA_COLUMNS
    if rows and not columns & set(media_columns):
        raise ValueError(
            f"{metadata}: no media column ({' or '.join(media_columns)}); columns found: {sorted(columns)}. "
            "Name the column media_path (or pass --media-column)."
        )
    if rows and caption_column not in columns:
        raise ValueError(
            f"{metadata}: no {caption_column!r} column; columns found: {sorted(columns)}. "
            "Add captions or pass --caption-column."
        )
    items, skipped = [], []
    for label, row in rows:
        value = _cell(row, *media_columns)
        if value is None:
            skipped.append(Skipped(label, f"empty {media_columns[0]}"))
            continue
        media = root / value
        caption = row.get(caption_column)
        caption = "" if caption is None or (isinstance(caption, float) and math.isnan(caption)) else str(caption)
        paths: dict[str, Path | None] = {}
        for key, names in (
            ("audio", ("audio",)),
            ("reference_video", REFERENCE_COLUMNS),
            ("reference_audio", ("reference_audio",)),
            ("video_mask", ("video_mask",)),
            ("audio_mask", ("audio_mask",)),
        ):
            cell = _cell(row, *names)
            paths[key] = root / cell if cell is not None else None
        items.append(Item(media, caption, _sample_id(media, root), source=f"{label} ({value})", **paths))
    return items, skipped


def _validate_items(items: list[Item]) -> tuple[list[Item], list[Skipped]]:
    """Drop samples with missing files, bad captions or a duplicate output name (the first one wins)."""
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
    dataset: str | Path, caption_column: str = "caption", media_column: str | None = None
) -> tuple[list[Item], list[Skipped], Path]:
    """Samples of a media folder (sidecar ``.txt`` captions) or of a CSV / JSON / JSONL metadata file.

    Returns:
        ``(items, skipped, root)``: valid samples in a stable order, the rows skipped with their reasons, and the
        dataset root (the folder, or the metadata file's folder) that output names are relative to.

    Raises:
        FileNotFoundError: ``dataset`` doesn't exist.
        ValueError: not a folder or a metadata file, unparseable JSON, or no media/caption column.
    """
    dataset = Path(dataset)
    if not dataset.exists():
        raise FileNotFoundError(f"{dataset}: no such dataset folder or metadata file")
    if dataset.is_dir():
        items, skipped = _folder_rows(dataset)
        root = dataset
    elif dataset.suffix.lower() in METADATA_SUFFIXES:
        root = dataset.parent
        rows, skipped = _metadata_rows(dataset)
        items, more = _rows_to_items(rows, root, dataset, caption_column, media_column)
        skipped += more
    else:
        raise ValueError(f"{dataset}: expected a folder of media or a metadata file ({', '.join(METADATA_SUFFIXES)})")
    items, more = _validate_items(items)
    return items, skipped + more, root


# ----------------------------------------------------------------------------------------------------------------------
# Options and results
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class PreprocessOptions:
    """How to preprocess (the command-line options of ``ltx-trainer preprocess``).

    Attributes:
        buckets: resolution buckets.
        output: cache root (default ``<dataset root>/.precomputed``).
        format: ``safetensors`` (ours, fingerprinted) or ``pt`` (the official layout).
        trigger: token prepended to every caption (``"<trigger> <caption>"``).
        crop: ``center`` or ``random`` (seeded per sample from ``seed``, so reruns and shards agree).
        fps: resample frames to this rate (None keeps the source rate).
        vae_tiling: encode in spatial tiles (large resolutions).
        audio: audio latents on/off; None = on for models with audio.
        allow_missing_audio: keep clips without audio as video-only samples instead of skipping them.
        reference_downscale_factor: IC-LoRA references at ``1/k`` of the bucket's width and height.
        reference_temporal_scale_factor: keep reference frame 0, then every S-th (fps stored as fps / S).
        overwrite: recompute outputs that exist.
        shard_index / num_shards: process ``items[shard_index::num_shards]``.
        device: where the VAEs run (``cpu``, ``cuda``, ``auto``).
        progress: show a progress bar.
        write_report: write ``preprocess_report.json`` in the output folder.
        dtype: dtype of the video latents and text features (``bfloat16`` as the official cache; None keeps what
            the encoders return). Audio latents are always float32, as in the official cache.
    """

    buckets: list[Bucket]
    output: Path | None = None
    format: Literal["safetensors", "pt"] = "safetensors"
    trigger: str | None = None
    crop: Literal["center", "random"] = "center"
    seed: int = 0
    fps: float | None = None
    vae_tiling: bool = False
    audio: bool | None = None
    allow_missing_audio: bool = False
    reference_downscale_factor: int = 1
    reference_temporal_scale_factor: int = 1
    overwrite: bool = False
    shard_index: int = 0
    num_shards: int = 1
    device: str = "cpu"
    progress: bool = True
    write_report: bool = True
    dtype: torch.dtype | None = VIDEO_DTYPE


@dataclass
class PreprocessResult:
    """What a run did. ``timings`` are seconds per phase; ``calls`` counts encoder calls."""

    output: Path
    written: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    report: Path | None = None

    @property
    def clips_per_second(self) -> float:
        return len(self.written) / self.seconds if self.seconds > 0 else 0.0

    @property
    def succeeded(self) -> bool:
        """Something usable exists: samples written now or by an earlier run."""
        return bool(self.written or self.already_done)


class SampleError(ValueError):
    """This sample can't be preprocessed; the message is the reason shown in the report."""


def check_options(options: PreprocessOptions, model: LTXModel) -> None:
    """Reject settings that can't work with these buckets and this model, before any work.

    Raises:
        ValueError: naming the option and what would work.
    """
    spec = model.spec
    if not options.buckets:
        raise ValueError("no resolution buckets; pass --resolution-buckets 'WxHxF;...'")
    if options.format not in ("safetensors", "pt"):
        raise ValueError(f"format {options.format!r}: use 'safetensors' or 'pt'")
    if options.crop not in ("center", "random"):
        raise ValueError(f"crop {options.crop!r}: use 'center' or 'random'")
    if options.fps is not None and not options.fps > 0:
        raise ValueError(f"--fps {options.fps}: must be > 0 (or omitted to keep the source frame rate)")
    if not 0 <= options.shard_index < options.num_shards:
        raise ValueError(f"--shard-index {options.shard_index} must be in [0, --num-shards={options.num_shards})")
    if options.audio and not spec.has_audio:
        raise ValueError(f"audio latents asked for, but {spec.family} {spec.version} has no audio stream; drop --audio")
    k, s = options.reference_downscale_factor, options.reference_temporal_scale_factor
    if k < 1 or s < 1:
        raise ValueError("--reference-downscale-factor and --reference-temporal-scale-factor must be >= 1")
    sc, tc = spec.spatial_compression, spec.temporal_compression
    for bucket in options.buckets:
        check_resolution(bucket.width, bucket.height, sc)
        check_num_frames(bucket.frames, tc)
        if k > 1 and (bucket.width % (sc * k) or bucket.height % (sc * k)):
            raise ValueError(
                f"bucket {bucket}: --reference-downscale-factor {k} needs width and height divisible by {sc * k} "
                f"(references are {bucket.width / k:g}x{bucket.height / k:g}, not multiples of {sc})"
            )
        if s > 1 and (bucket.frames - 1) % (tc * s):
            step = tc * s
            lower, upper = (bucket.frames - 1) // step * step + 1, ((bucket.frames - 1) // step + 1) * step + 1
            raise ValueError(
                f"bucket {bucket}: --reference-temporal-scale-factor {s} needs frames = {step}k+1 so that the "
                f"reference ({(bucket.frames - 1) // s + 1} frames) is {tc}k+1 too; use e.g. {lower} or {upper} frames"
            )


# ----------------------------------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------------------------------


def video_mask_to_latent_grid(mask: torch.Tensor, temporal: int = 8, spatial: int = 32) -> torch.Tensor:
    """Pixel mask ``[F, H, W]`` in [0, 1] (F = temporal*k+1) -> latent-grid mask ``[F', H', W']`` of 0/1 floats.

    Spatial average over each ``spatial x spatial`` patch, then the max over the frames of each latent frame (frame 0
    alone, then groups of ``temporal``), then ``> 0.5``.
    """
    frames = mask.shape[0]
    if (frames - 1) % temporal:
        raise ValueError(f"mask has {frames} frames; expected {temporal}k+1")
    pooled = F.avg_pool2d(mask.float()[:, None], spatial)[:, 0]  # [F, H', W']
    rest = pooled[1:]
    if rest.shape[0]:
        rest = rest.reshape(-1, temporal, *rest.shape[1:]).amax(dim=1)
    return (torch.cat([pooled[:1], rest]) > 0.5).float()


def audio_mask_to_latent_steps(values: torch.Tensor, steps: int) -> torch.Tensor:
    """1-D mask over the clip's duration (any length) -> ``[steps]`` 0/1 floats, nearest resampling then ``> 0.5``."""
    values = values.float().reshape(-1)
    if values.numel() == 0:
        raise ValueError("audio mask is empty")
    index = ((torch.arange(steps, dtype=torch.float64) + 0.5) * values.numel() / steps).long()
    return (values[index.clamp_(max=values.numel() - 1)] > 0.5).float()


def _load_array(path: Path) -> torch.Tensor:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return torch.from_numpy(np.load(path, allow_pickle=False).astype(np.float32))
    if suffix == ".pt":
        data = torch.load(path, map_location="cpu", weights_only=True)
        data = data.get("mask") if isinstance(data, dict) else data
        if not isinstance(data, torch.Tensor):
            raise SampleError(f"{path}: expected a tensor (or a dict with 'mask')")
        return data.float()
    text = path.read_text(encoding="utf-8")
    if suffix == ".json":
        data = json.loads(text)
        data = data.get("mask") if isinstance(data, dict) else data
        return torch.tensor(data, dtype=torch.float32)
    return torch.tensor([float(v) for v in text.replace(",", " ").split()], dtype=torch.float32)


# ----------------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------------


def _crop_seed(seed: int, sample_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()[:8], "little") & (2**63 - 1)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class _Loaded:
    """One sample decoded and prepared for the encoders (CPU tensors)."""

    item: Item
    bucket: Bucket
    fps: float
    frames: torch.Tensor  # uint8 [F, H, W, 3] at the bucket size
    audio: tuple[torch.Tensor, int] | None = None  # stereo [2, S], sample rate
    reference: tuple[torch.Tensor, float] | None = None  # uint8 frames, fps
    reference_audio: tuple[torch.Tensor, int] | None = None
    video_mask: torch.Tensor | None = None  # latent grid [F', H', W']
    audio_mask: torch.Tensor | None = None  # raw values over the clip's duration


class _Run:
    """One preprocessing run over a list of items (state shared by the phases)."""

    def __init__(self, model: LTXModel, options: PreprocessOptions, output: Path, dataset: str | Path | None):
        self.model, self.options, self.output = model, options, output
        self.dataset = str(dataset) if dataset is not None else None
        self.audio_on = model.spec.has_audio if options.audio is None else bool(options.audio)
        self.suffix = ".pt" if options.format == "pt" else ".safetensors"
        self.device = _resolve_device(options.device)
        self.timings: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.warnings: list[str] = []
        self._fingerprints: dict[str, dict] = {}
        self._lock = threading.Lock()

    # ---- helpers ---------------------------------------------------------------------------------------------------
    def load_encoders(self) -> None:
        """Load the VAEs now (a broken model must stop the run, not skip every sample) and move them to the device."""
        vae = self.model.video_vae
        audio_vae = self.model.audio_vae if self.audio_on else None
        if self.device.type == "cpu":
            return
        vae.to(self.device)
        if audio_vae is not None:
            audio_vae.to(device=self.device, dtype=torch.float32)

    def path(self, folder: str, sample_id: str) -> Path:
        return self.output / folder / f"{sample_id}{self.suffix}"

    def timed(self, phase: str, start: float) -> float:
        now = time.perf_counter()
        with self._lock:  # the loader thread times its phases too
            self.timings[phase] += now - start
        return now

    def media_folders(self, item: Item) -> list[str]:
        """Outputs that must exist for the media part of ``item`` to count as done."""
        folders = ["latents"]
        if self.audio_on and not self.options.allow_missing_audio and not is_image_file(item.media):
            folders.append("audio_latents")
        if item.audio is not None and self.audio_on:
            folders.append("audio_latents")
        if item.reference_video is not None:
            folders.append("reference_latents")
        if item.reference_audio is not None and self.audio_on:
            folders.append("reference_audio_latents")
        if item.video_mask is not None:
            folders.append("video_masks")
        if item.audio_mask is not None and self.audio_on:
            folders.append("audio_masks")
        return list(dict.fromkeys(folders))

    def media_done(self, item: Item) -> bool:
        return all(self.path(folder, item.sample_id).is_file() for folder in self.media_folders(item))

    def text_done(self, item: Item) -> bool:
        return self.path("conditions", item.sample_id).is_file()

    def caption(self, item: Item) -> str:
        trigger = (self.options.trigger or "").strip()
        caption = item.caption.strip()
        return f"{trigger} {caption}" if trigger else caption

    def fingerprint(self, folder: str, bucket: Bucket | None) -> dict[str, str] | None:
        if self.suffix == ".pt":
            return None
        from ltx_trainer.data.fingerprint import fingerprint_for

        key = f"{folder}:{bucket}"
        if key not in self._fingerprints:
            extra = {}
            if folder.startswith("reference"):
                extra = {
                    "reference_downscale_factor": self.options.reference_downscale_factor,
                    "reference_temporal_scale_factor": self.options.reference_temporal_scale_factor,
                }
            self._fingerprints[key] = fingerprint_for(
                self.model,
                folder,
                bucket=bucket,
                buckets=";".join(str(b) for b in self.options.buckets),
                fps=self.options.fps,
                trigger=self.options.trigger,
                crop=self.options.crop,
                dataset=self.dataset,
                extra=extra,
            )
        return {FINGERPRINT_KEY: json.dumps(self._fingerprints[key], sort_keys=True)}

    def write(self, folder: str, sample_id: str, data: dict, bucket: Bucket | None) -> None:
        start = time.perf_counter()
        metadata = self.fingerprint(folder, bucket)
        write_sample_file(self.path(folder, sample_id), data, metadata)
        self.timed("write", start)

    # ---- encoders --------------------------------------------------------------------------------------------------
    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[F, H, W, 3]`` -> latents ``[C, F', H', W']`` on the CPU."""
        start = time.perf_counter()
        pixels = frames.to(self.device).permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5 - 1.0
        with torch.no_grad():
            latents = self.model.encode_video(pixels, tiled=self.options.vae_tiling)
        self.calls["video"] += 1
        self.timed("vae", start)
        return latents[0].cpu()

    def video_record(self, latents: torch.Tensor, fps: float) -> dict:
        _, f, h, w = latents.shape
        latents = latents.to(self.options.dtype or latents.dtype).contiguous()
        return {"latents": latents, "num_frames": f, "height": h, "width": w, "fps": fps}

    def encode_audio(self, waveform: torch.Tensor, rate: int, duration: float) -> dict:
        """Stereo ``[2, S]`` -> the ``audio_latents`` record."""
        start = time.perf_counter()
        with torch.no_grad():
            latents = self.model.encode_audio(waveform.unsqueeze(0).to(self.device), rate)[0]
        self.calls["audio"] += 1
        self.timed("audio_vae", start)
        latents = latents.to("cpu", AUDIO_DTYPE).contiguous()
        return {
            "latents": latents,
            "num_time_steps": latents.shape[1],
            "frequency_bins": latents.shape[2],
            "duration": float(duration),
        }

    # ---- one sample: load (decode, resize, masks; no model) then encode --------------------------------------------
    def read_frames(self, path: Path, max_frames: int, fps: float | None) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        image = is_image_file(path)
        frames, source_fps = read_video(path, max_frames=1 if image else max_frames, fps=None if image else fps)
        self.timed("decode", start)
        return frames, (1.0 if image else source_fps)

    def read_audio(self, path: Path, duration: float) -> tuple[torch.Tensor, int]:
        start = time.perf_counter()
        waveform, rate = read_audio(path, channels=2, duration=duration)
        self.timed("audio_decode", start)
        if waveform.shape[1] == 0:
            raise SampleError(f"{path.name}: no audio samples for a {duration:.3f} s clip")
        return waveform, rate

    def fit(self, frames: torch.Tensor, bucket: Bucket, seed: int) -> torch.Tensor:
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(seed) if self.options.crop == "random" else None
        out = resize_and_crop(frames, bucket.width, bucket.height, crop=self.options.crop, generator=generator)
        self.timed("resize", start)
        return out

    def load(self, item: Item) -> _Loaded:
        """Decode and prepare everything of one sample on the CPU (runs one sample ahead, in a thread)."""
        options, spec = self.options, self.model.spec
        image = is_image_file(item.media)
        frames, fps = self.read_frames(item.media, max(b.frames for b in options.buckets), options.fps)
        available, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
        bucket = choose_bucket(options.buckets, width, height, available, image=image)
        if bucket is None:
            needed = min(b.frames for b in options.buckets)
            raise SampleError(
                f"too few frames: {available} decoded{f' at {options.fps:g} fps' if options.fps else ''}, "
                f"the shortest bucket needs {needed}"
            )
        seed = _crop_seed(options.seed, item.sample_id)
        loaded = _Loaded(item, bucket, fps, self.fit(frames[: bucket.frames], bucket, seed))
        del frames
        duration = bucket.frames / fps

        if item.audio is not None and not self.audio_on:
            self.warnings.append(f"{item.source}: 'audio' column ignored (audio latents are off)")
        elif (self.audio_on and not image) or item.audio is not None:
            try:
                loaded.audio = self.read_audio(item.audio or item.media, duration)
            except MediaError as e:
                if item.audio is not None or not options.allow_missing_audio:
                    raise SampleError(
                        f"{e.reason} in {e.path.name if e.path else item.media.name}: audio latents are on; "
                        "pass --allow-missing-audio to keep it video-only, or --no-audio"
                    ) from e
                self.warnings.append(f"{item.source}: no audio stream, kept as a video-only sample")

        if item.reference_video is not None:
            loaded.reference = self.load_reference(item.reference_video, bucket, fps, seed)
        if item.reference_audio is not None:
            if not self.audio_on:
                raise SampleError("reference_audio given but audio latents are off (or the model has no audio)")
            loaded.reference_audio = self.read_audio(item.reference_audio, duration)
        if item.video_mask is not None:
            start = time.perf_counter()
            mask = self.pixel_mask(item.video_mask, bucket, fps, (height, width), seed)
            loaded.video_mask = video_mask_to_latent_grid(mask, spec.temporal_compression, spec.spatial_compression)
            self.timed("masks", start)
        if item.audio_mask is not None:
            if loaded.audio is None:
                raise SampleError("audio_mask given but this sample has no audio latents")
            loaded.audio_mask = _load_array(item.audio_mask)
        return loaded

    def encode(self, loaded: _Loaded) -> dict[str, dict]:
        """The sample's ``{folder: record}`` (everything but the text features)."""
        duration = loaded.bucket.frames / loaded.fps
        records = {"latents": self.video_record(self.encode_video(loaded.frames), loaded.fps)}
        if loaded.audio is not None:
            records["audio_latents"] = self.encode_audio(*loaded.audio, duration)
        if loaded.reference is not None:
            frames, fps = loaded.reference
            records["reference_latents"] = self.video_record(self.encode_video(frames), fps)
        if loaded.reference_audio is not None:
            records["reference_audio_latents"] = self.encode_audio(*loaded.reference_audio, duration)
        if loaded.video_mask is not None:
            records["video_masks"] = {"mask": loaded.video_mask}
        if loaded.audio_mask is not None:
            steps = records["audio_latents"]["num_time_steps"]
            records["audio_masks"] = {"mask": audio_mask_to_latent_steps(loaded.audio_mask, steps)}
        return records

    def load_reference(self, path: Path, bucket: Bucket, fps: float, seed: int) -> tuple[torch.Tensor, float]:
        """IC-LoRA reference frames: same bucket and crop window as the target, then downscaled and subsampled."""
        k, s = self.options.reference_downscale_factor, self.options.reference_temporal_scale_factor
        frames, _ = self.read_frames(path, bucket.frames, fps)
        if frames.shape[0] < bucket.frames:
            raise SampleError(
                f"reference_video {path.name}: {frames.shape[0]} frames, the sample's bucket {bucket} "
                f"needs {bucket.frames}"
            )
        frames = self.fit(frames[: bucket.frames], bucket, seed)
        if k > 1:
            start = time.perf_counter()
            frames = resize_and_crop(frames, bucket.width // k, bucket.height // k)
            self.timed("resize", start)
        return frames[::s].contiguous(), fps / s

    def pixel_mask(self, path: Path, bucket: Bucket, fps: float, size: tuple[int, int], seed: int) -> torch.Tensor:
        """``video_mask`` file -> ``[F, H, W]`` floats in [0, 1], cropped exactly like the target frames."""
        if path.suffix.lower() in (".npy", ".pt"):
            mask = _load_array(path)
        else:
            frames, _ = self.read_frames(path, bucket.frames, fps)
            mask = frames.float().mean(dim=-1) / 255.0
        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim != 3:
            raise SampleError(f"video_mask {path.name}: expected [F, H, W] or [H, W], got {tuple(mask.shape)}")
        if mask.numel() and mask.max() > 1.0:
            mask = mask / 255.0
        if mask.shape[0] == 1:
            mask = mask.expand(bucket.frames, -1, -1)
        elif mask.shape[0] < bucket.frames:
            raise SampleError(f"video_mask {path.name}: {mask.shape[0]} frames, the sample needs {bucket.frames}")
        mask = mask[: bucket.frames]
        if tuple(mask.shape[1:]) != size:  # bring it to the media's size so the crop window is the same
            mask = F.interpolate(mask[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        fitted = self.fit(mask[..., None].expand(-1, -1, -1, 3).contiguous(), bucket, seed)
        return fitted[..., 0].clamp(0.0, 1.0)

    # ---- text ------------------------------------------------------------------------------------------------------
    def encode_text(self, caption: str) -> dict:
        start = time.perf_counter()
        with torch.no_grad():
            features = self.model.encode_text([caption])
        self.calls["text"] += 1
        self.timed("text", start)
        dtype = self.options.dtype or features.video.dtype
        record = {
            "video_prompt_embeds": features.video[0].to("cpu", dtype).contiguous(),
            "prompt_attention_mask": features.mask[0].cpu().contiguous(),
        }
        if features.audio is not None:  # LTX-2.0 returns the same tensor twice: store a copy (no shared storage)
            record["audio_prompt_embeds"] = features.audio[0].to("cpu", dtype).clone().contiguous()
        return record


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            unit = task.fields.get("unit", "clips")
            return Text(f"{speed:.2f} {unit}/s" if speed else f"-- {unit}/s", style="progress.data.speed")

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def default_shard() -> tuple[int, int]:
    """``(process_index, num_processes)`` under ``accelerate launch``/torchrun, else ``(0, 1)``."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    from accelerate import PartialState

    state = PartialState()
    return state.process_index, state.num_processes


def report_path(output: Path, shard_index: int = 0, num_shards: int = 1) -> Path:
    """``preprocess_report.json``, or ``preprocess_report.shard-<i>-of-<n>.json`` for a shard."""
    if num_shards <= 1:
        return output / REPORT_NAME
    return output / f"preprocess_report.shard-{shard_index}-of-{num_shards}.json"


def _write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def preprocess_items(
    model: LTXModel,
    items: list[Item],
    options: PreprocessOptions,
    *,
    output: Path | None = None,
    dataset: str | Path | None = None,
    skipped: list[Skipped] | None = None,
) -> PreprocessResult:
    """Preprocess ``items`` (already validated, e.g. by :func:`load_dataset`) into the cache at ``output``.

    Args:
        model: the loaded model (its VAEs and text encoder load lazily on first use).
        items: the samples; this shard takes ``items[shard_index::num_shards]``.
        options: see :class:`PreprocessOptions`.
        output: cache root (default ``options.output``).
        dataset: the dataset path, recorded in fingerprints and the report.
        skipped: samples already rejected while loading (reported by shard 0).

    Returns:
        What was written, found done, skipped (with reasons), timings per phase and encoder call counts.
    """
    check_options(options, model)
    output = Path(output or options.output or ".precomputed")
    started = time.perf_counter()
    run = _Run(model, options, output, dataset)
    result = PreprocessResult(output=output)
    if options.shard_index == 0:
        result.skipped.extend(skipped or [])
    mine = items[options.shard_index :: options.num_shards]
    todo = [item for item in mine if options.overwrite or not run.media_done(item)]
    todo_ids = {item.sample_id for item in todo}
    media_ok = [item for item in mine if item.sample_id not in todo_ids]
    written: set[str] = set()
    failed: set[str] = set()
    if todo:
        run.load_encoders()

    def skip(item: Item, reason: str) -> None:
        result.skipped.append(Skipped(item.source or str(item.media), reason, item.sample_id))
        failed.add(item.sample_id)

    try:
        with _progress(options.progress) as progress:
            task = progress.add_task("media", total=len(todo))
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="preprocess-load") as loader:
                # decode/resize the next sample while the encoders work on this one
                pending = [loader.submit(run.load, item) for item in todo[:1]]
                for index, item in enumerate(todo):
                    if index + 1 < len(todo):
                        pending.append(loader.submit(run.load, todo[index + 1]))
                    try:
                        loaded = pending.pop(0).result()
                        records = run.encode(loaded)
                    except (SampleError, MediaError) as e:
                        skip(item, str(e))
                    except ModelLoadError:
                        raise
                    except torch.cuda.OutOfMemoryError as e:
                        skip(item, f"out of GPU memory ({e}); try --vae-tiling or a smaller bucket")
                    except Exception as e:  # a damaged file can raise anything from deep inside a decoder
                        skip(item, f"{type(e).__name__}: {e}")
                    else:
                        for folder, record in records.items():
                            run.write(folder, item.sample_id, record, loaded.bucket)
                        written.add(item.sample_id)
                        media_ok.append(item)
                    progress.advance(task)

            captions: dict[str, list[Item]] = defaultdict(list)
            for item in media_ok:
                if options.overwrite or item.sample_id in written or not run.text_done(item):
                    captions[run.caption(item)].append(item)
            text_task = progress.add_task("captions", total=len(captions), unit="captions")
            for caption, group in captions.items():
                try:
                    record = run.encode_text(caption)
                except ModelLoadError:
                    raise
                except Exception as e:
                    for item in group:
                        skip(item, f"text encoder failed: {type(e).__name__}: {e}")
                else:
                    for item in group:
                        run.write("conditions", item.sample_id, record, None)
                        written.add(item.sample_id)
                progress.advance(text_task)
    finally:
        result.written = [i.sample_id for i in mine if i.sample_id in written and i.sample_id not in failed]
        result.already_done = [i.sample_id for i in mine if i.sample_id not in written | failed]
        result.warnings = run.warnings
        result.timings = {k: round(v, 4) for k, v in sorted(run.timings.items())}
        result.calls = dict(run.calls)
        result.seconds = time.perf_counter() - started
        if options.write_report:
            result.report = report_path(output, options.shard_index, options.num_shards)
            _write_json_atomic(result.report, _report(result, options, model, dataset))
    return result


def _report(result: PreprocessResult, options: PreprocessOptions, model: LTXModel, dataset: str | Path | None) -> dict:
    from ltx_trainer.data.fingerprint import model_path

    settings = asdict(options)
    settings["buckets"] = [str(b) for b in options.buckets]
    settings["dtype"] = str(options.dtype).removeprefix("torch.") if options.dtype else None
    settings["output"] = str(result.output)
    return {
        "tool": f"ltx-trainer {__version__}",
        "dataset": str(dataset) if dataset is not None else None,
        "model": {"path": str(model_path(model)), "family": model.spec.family, "version": model.spec.version},
        "settings": settings,
        "counts": {
            "written": len(result.written),
            "already_done": len(result.already_done),
            "skipped": len(result.skipped),
        },
        "seconds": round(result.seconds, 3),
        "clips_per_second": round(result.clips_per_second, 4),
        "timings": result.timings,
        "encoder_calls": result.calls,
        "written": result.written,
        "skipped": [asdict(s) for s in result.skipped],
        "warnings": result.warnings,
    }


def preprocess_dataset(
    dataset: str | Path,
    model: LTXModel,
    options: PreprocessOptions,
    caption_column: str = "caption",
    media_column: str | None = None,
) -> PreprocessResult:
    """Load ``dataset`` (:func:`load_dataset`) and preprocess it; the output defaults to ``<root>/.precomputed``."""
    items, skipped, root = load_dataset(dataset, caption_column, media_column)
    output = Path(options.output) if options.output else root / ".precomputed"
    logger.info("%s: %d samples (%d rows skipped while reading) -> %s", dataset, len(items), len(skipped), output)
    return preprocess_items(model, items, options, output=output, dataset=Path(dataset).absolute(), skipped=skipped)


def print_summary(result: PreprocessResult, console=None, max_rows: int = 50) -> None:
    """Counts, throughput, time by phase, and a table of skipped samples with their reasons (``max_rows`` rows)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.print(
        f"[bold]{len(result.written)}[/bold] written, {len(result.already_done)} already done, "
        f"[bold]{len(result.skipped)}[/bold] skipped in {result.seconds:.1f} s "
        f"({result.clips_per_second:.2f} clips/s) -> {result.output}",
        highlight=False,
    )
    if result.timings:
        console.print("time by phase: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items()))
    if result.skipped:
        table = Table(title="skipped", show_lines=False)
        table.add_column("sample")
        table.add_column("reason", overflow="fold")
        for skip in result.skipped[:max_rows]:
            table.add_row(skip.source, skip.reason)
        console.print(table)
        if len(result.skipped) > max_rows:
            console.print(f"... and {len(result.skipped) - max_rows} more (all of them are in the report)")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if result.report:
        console.print(f"report: {result.report}")


def precompute(
    model: LTXModel,
    items: list[Item],
    out_root: Path,
    bucket: Bucket,
    with_audio: bool = True,
    suffix: str = ".safetensors",
) -> list[str]:
    """Write the cache for ``items`` at one bucket (a small programmatic entry point); returns the sample ids.

    Raises:
        ValueError: a sample could not be preprocessed (unlike the command, this entry point is strict).
    """
    options = PreprocessOptions(
        buckets=[bucket],
        output=Path(out_root),
        format="pt" if suffix == ".pt" else "safetensors",
        audio=bool(with_audio and model.spec.has_audio),
        overwrite=True,
        progress=False,
        write_report=False,
        dtype=None,  # the encoders' dtype, as this entry point always wrote
    )
    result = preprocess_items(model, items, options, dataset=out_root)
    if result.skipped:
        raise ValueError("; ".join(f"{s.source}: {s.reason}" for s in result.skipped))
    return result.written
