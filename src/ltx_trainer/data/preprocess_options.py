"""Settings and results of ``preprocess``: the options, their checks, what a run did, its report and its summary.

:func:`cache_settings` is the part of the options that changes what a cache file holds (buckets, fps, crop, trigger,
reference factors, dtype, audio rule, ...): it goes into every file's fingerprint, so a rerun with other settings
re-does the affected samples instead of calling them done, and ``verify`` can print the exact rebuild command.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch

from ltx_trainer import __version__
from ltx_trainer.data.buckets import Bucket
from ltx_trainer.data.media import check_num_frames, check_resolution
from ltx_trainer.data.preprocess_inputs import Skipped
from ltx_trainer.errors import DataError, UsageError
from ltx_trainer.models.base import LTXModel

REPORT_NAME = "preprocess_report.json"
VIDEO_DTYPE = torch.bfloat16  # official: the video VAE and the text encoder run in bf16, latents are stored so
AUDIO_DTYPE = torch.float32  # official: the audio VAE runs in fp32 "for quality"


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
        text_encoder: the ``--text-encoder`` folder given, recorded so ``verify`` can print a rebuild command.
        text_encoder_bits: 8 or 4 when the text encoder was loaded quantized (``--text-encoder-bits``; the model is
            loaded with it, this records it in the fingerprints so a change re-does the text features).
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
    text_encoder: str | None = None
    text_encoder_bits: int | None = None


# Settings that change what a cache file holds, by cache folder kind (``cache_settings`` keys). A file whose
# fingerprint records other values than the run's is re-done (it is not "already done").
MEDIA_SETTINGS = ("buckets", "fps", "crop", "seed", "latents_dtype", "vae_tiling")
REFERENCE_SETTINGS = (*MEDIA_SETTINGS, "reference_downscale_factor", "reference_temporal_scale_factor")
TEXT_SETTINGS = ("trigger", "text_dtype", "text_encoder_bits")


def _dtype_name(dtype: torch.dtype | None) -> str | None:
    return str(dtype).removeprefix("torch.") if dtype is not None else None


def cache_settings(options: PreprocessOptions, model: LTXModel | None = None) -> dict:
    """The options that change the cache (recorded in every fingerprint and in the report), plus how to rerun.

    ``buckets`` is the ``;``-joined list, ``seed`` is None for centre crops (it changes nothing then).
    """
    audio = options.audio
    if audio is None and model is not None:
        audio = model.spec.has_audio
    return {
        "buckets": ";".join(str(b) for b in options.buckets),
        "fps": options.fps,
        "crop": options.crop,
        "seed": options.seed if options.crop == "random" else None,
        "latents_dtype": _dtype_name(options.dtype),
        "text_dtype": _dtype_name(options.dtype),
        "vae_tiling": bool(options.vae_tiling),
        "trigger": (options.trigger or "").strip(),
        "audio": audio,
        "allow_missing_audio": bool(options.allow_missing_audio),
        "reference_downscale_factor": options.reference_downscale_factor,
        "reference_temporal_scale_factor": options.reference_temporal_scale_factor,
        "format": options.format,
        "text_encoder_path": options.text_encoder,
        "text_encoder_bits": options.text_encoder_bits,
    }


def settings_for_folder(folder: str) -> tuple[str, ...]:
    """The :func:`cache_settings` keys that decide the content of a file in cache folder ``folder``."""
    if folder == "conditions":
        return TEXT_SETTINGS
    if folder.startswith("reference"):
        return REFERENCE_SETTINGS
    return MEDIA_SETTINGS


def changed_settings(recorded: dict, current: dict, keys: tuple[str, ...]) -> list[str]:
    """``["trigger 'A' -> 'B'", ...]`` for the ``keys`` whose recorded value differs from the current one.

    A key the recorded fingerprint lacks (a cache from an older version) is not a change.
    """
    changes = []
    for key in keys:
        if key in recorded and recorded[key] != current.get(key):
            changes.append(f"{key} {recorded[key]!r} -> {current.get(key)!r}")
    return changes


@dataclass
class PreprocessResult:
    """What a run did. ``timings`` are seconds per phase; ``calls`` counts encoder calls.

    ``skipped`` holds every input that produced nothing (``kind`` ``skipped``: a failure or a refusal;
    ``not_media``: a file of another kind in the dataset folder); ``redone`` the samples whose cache files were
    made with other settings and were rebuilt (id -> what changed); ``notes`` what a sample lost on the way (frames
    beyond the bucket, a crop, an upscale), once per file.
    """

    output: Path
    written: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    redone: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
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

    @property
    def failed(self) -> list[Skipped]:
        """Inputs that were samples (or meant to be) but produced nothing."""
        return [s for s in self.skipped if s.kind != "not_media"]

    @property
    def not_media(self) -> list[Skipped]:
        """Files of the dataset folder that are not a kind preprocess reads."""
        return [s for s in self.skipped if s.kind == "not_media"]


class SampleError(DataError):
    """This sample can't be preprocessed; the message is the reason shown in the report."""


def check_options(options: PreprocessOptions, model: LTXModel) -> None:
    """Reject settings that can't work with these buckets and this model, before any work.

    Raises:
        UsageError: naming the option and what would work.
    """
    spec = model.spec
    if not options.buckets:
        raise UsageError("no resolution buckets; pass --resolution-buckets 'WxHxF;...'")
    if options.format not in ("safetensors", "pt"):
        raise UsageError(f"format {options.format!r}: use 'safetensors' or 'pt'")
    if options.crop not in ("center", "random"):
        raise UsageError(f"crop {options.crop!r}: use 'center' or 'random'")
    if options.fps is not None and not options.fps > 0:
        raise UsageError(f"--fps {options.fps}: must be > 0 (or omitted to keep the source frame rate)")
    if not 0 <= options.shard_index < options.num_shards:
        raise UsageError(f"--shard-index {options.shard_index} must be in [0, --num-shards={options.num_shards})")
    if options.audio and not spec.has_audio:
        raise UsageError(f"audio latents asked for, but {spec.family} {spec.version} has no audio stream; drop --audio")
    k, s = options.reference_downscale_factor, options.reference_temporal_scale_factor
    if k < 1 or s < 1:
        raise UsageError("--reference-downscale-factor and --reference-temporal-scale-factor must be >= 1")
    sc, tc = spec.spatial_compression, spec.temporal_compression
    for bucket in options.buckets:
        check_resolution(bucket.width, bucket.height, sc)
        check_num_frames(bucket.frames, tc)
        if k > 1 and (bucket.width % (sc * k) or bucket.height % (sc * k)):
            raise UsageError(
                f"bucket {bucket}: --reference-downscale-factor {k} needs width and height divisible by {sc * k} "
                f"(references are {bucket.width / k:g}x{bucket.height / k:g}, not multiples of {sc})"
            )
        if s > 1 and (bucket.frames - 1) % (tc * s):
            step = tc * s
            lower, upper = (bucket.frames - 1) // step * step + 1, ((bucket.frames - 1) // step + 1) * step + 1
            raise UsageError(
                f"bucket {bucket}: --reference-temporal-scale-factor {s} needs frames = {step}k+1 so that the "
                f"reference ({(bucket.frames - 1) // s + 1} frames) is {tc}k+1 too; use e.g. {lower} or {upper} frames"
            )


def report_path(output: Path, shard_index: int = 0, num_shards: int = 1) -> Path:
    """``preprocess_report.json``, or ``preprocess_report.shard-<i>-of-<n>.json`` for a shard."""
    if num_shards <= 1:
        return output / REPORT_NAME
    return output / f"preprocess_report.shard-{shard_index}-of-{num_shards}.json"


def build_report(
    result: PreprocessResult, options: PreprocessOptions, model: LTXModel, dataset: str | Path | None
) -> dict:
    """``preprocess_report.json``: the settings the cache holds now, and what happened to every input."""
    from ltx_trainer.data.fingerprint import model_path

    settings = asdict(options)
    settings["buckets"] = [str(b) for b in options.buckets]
    settings["dtype"] = _dtype_name(options.dtype)
    settings["output"] = str(result.output)
    return {
        "tool": f"ltx-trainer {__version__}",
        "dataset": str(dataset) if dataset is not None else None,
        "model": {"path": str(model_path(model)), "family": model.spec.family, "version": model.spec.version},
        "settings": settings,
        "cache_settings": cache_settings(options, model),
        "counts": {
            "written": len(result.written),
            "already_done": len(result.already_done),
            "redone": len(result.redone),
            "skipped": len(result.failed),
            "not_media": len(result.not_media),
        },
        "seconds": round(result.seconds, 3),
        "clips_per_second": round(result.clips_per_second, 4),
        "timings": result.timings,
        "encoder_calls": result.calls,
        "written": result.written,
        "already_done": result.already_done,
        "redone": result.redone,
        "skipped": [asdict(s) for s in result.failed],
        "not_media": [asdict(s) for s in result.not_media],
        "notes": result.notes,
        "warnings": result.warnings,
    }


def print_summary(result: PreprocessResult, console=None, max_rows: int = 50) -> None:
    """Counts, throughput, time by phase, then every input that was skipped, re-done or changed on the way."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    redone = f" ({len(result.redone)} re-done: settings changed)" if result.redone else ""
    other = f", {len(result.not_media)} other file(s) ignored" if result.not_media else ""
    console.print(
        f"[bold]{len(result.written)}[/bold] written{redone}, {len(result.already_done)} already done, "
        f"[bold]{len(result.failed)}[/bold] skipped{other} in {result.seconds:.1f} s "
        f"({result.clips_per_second:.2f} clips/s) -> {result.output}",
        highlight=False,
    )
    if result.timings:
        console.print("time by phase: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items()))
    rows = [(s.source, s.reason) for s in result.failed]
    rows += [(sample, f"re-done: {why}") for sample, why in result.redone.items()]
    rows += [(sample, note) for sample, notes in result.notes.items() for note in notes]
    rows += [(s.source, s.reason) for s in result.not_media]
    if rows:
        table = Table(title="inputs skipped, re-done or changed", show_lines=False)
        table.add_column("input")
        table.add_column("what happened", overflow="fold")
        for source, reason in rows[:max_rows]:
            table.add_row(source, reason)
        console.print(table)
        if len(rows) > max_rows:
            console.print(f"... and {len(rows) - max_rows} more (all of them are in the report)")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if result.report:
        console.print(f"report: {result.report}")


def progress_bar(enabled: bool):
    """The rich progress bar of a run (clips/s or captions/s); disabled when not on a terminal."""
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
    """``(process_index, num_processes)`` under ``accelerate launch``/torchrun, else ``(0, 1)``.

    Read from the launchers' ``RANK``/``WORLD_SIZE`` (no process group is needed: shards never talk to each other).
    Accelerate's ``PartialState`` would report ``(0, 1)`` on every process of a CPU-only machine.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    return int(os.environ.get("RANK", "0")), world


def check_pt_settings(output: Path, settings: dict) -> None:
    """An official-format (``.pt``) cache has no fingerprints: refuse to add to it with other settings.

    Raises:
        UsageError: the report of the earlier run records other cache settings; names them and ``--overwrite``.
    """
    path = output / REPORT_NAME
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get("cache_settings") or {}
    except (OSError, ValueError):
        return
    keys = tuple(dict.fromkeys((*REFERENCE_SETTINGS, *TEXT_SETTINGS)))
    changes = changed_settings(recorded, settings, keys)
    if changes:
        raise UsageError(
            f"{output}: this .pt cache was made with other settings ({'; '.join(changes)}) and .pt files carry no "
            "fingerprint to tell which samples they affect; pass --overwrite to rebuild it, or use another --output"
        )
