"""Check a precomputed cache before training, and move broken samples aside.

A sample is the set of files sharing one relative id across the source folders (``latents/``, ``conditions/``,
``audio_latents/``, ``reference_latents/``, ``video_masks/``, ``audio_masks/``; spec/anchors.md §2.10), exactly as
:class:`~ltx_trainer.data.dataset.PrecomputedDataset` pairs them. Every file is read in full and checked for:

* presence: the sample has a file in every source the training config needs (a video-only sample kept by
  ``preprocess --allow-missing-audio`` has no audio latents by choice: it trains with its audio loss masked);
* each file on its own, with the check the dataset runs when it loads a sample (``data/checks.py``): the keys of
  its kind, float16/bfloat16/float32 tensors, shapes that agree with the stored scalars and with the model, no NaN
  or Inf;
* across files: a video mask's grid equals the video latents' grid, an audio mask's length the audio latents'
  length, the audio ``duration`` agrees with the video duration ``((F' - 1) * T + 1) / fps`` within one video
  latent step, and every sample's text features have the width most of them have;
* fingerprints (with a model): the family, version and encoders that made each source folder are the model's
  (:func:`ltx_trainer.data.fingerprint.check_cache_fingerprint`).

:func:`quarantine` moves every file of a broken sample, across all source folders, to
``<cache root>/quarantine/<source>/<relative path>``: nothing is ever deleted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ltx_trainer import logger
from ltx_trainer.data.cache import AUDIO_MISSING_KEY, CacheError, read_sample_file, read_scalars
from ltx_trainer.data.checks import (
    KNOWN_SOURCES,
    SOURCE_KINDS,
    SampleCheckError,
    check_sample_data,
    guess_kind,
)
from ltx_trainer.data.dataset import CacheIncomplete, index_cache_folder, precomputed_root
from ltx_trainer.errors import UsageError
from ltx_trainer.io import atomic_write_json

if TYPE_CHECKING:
    from ltx_trainer.config import LtxTrainerConfig
    from ltx_trainer.models.base import FamilySpec, LTXModel

QUARANTINE_DIR = "quarantine"
FILE_PROBLEMS = ("unreadable", "keys", "dtype", "shape", "non_finite")
REPORT_NAME = "verify_report.json"
# Folders under a cache root that never hold samples.
_NOT_SOURCES = (QUARANTINE_DIR, "decoded_videos", "decoded_reference_videos")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a sample (or with the whole cache when ``sample`` is None).

    Attributes:
        sample: The sample id (relative path without suffix), or None for a cache-wide problem.
        source: The source folder the problem is in (None when it spans sources or the cache).
        kind: ``missing``, ``unreadable``, ``keys``, ``dtype``, ``shape``, ``non_finite``, ``mismatch`` (sources
            disagree) or
            ``fingerprint`` (made by another model: re-run preprocessing with ``--overwrite``; not quarantined).
        message: What is wrong and, where it helps, what to do.
    """

    sample: str | None
    source: str | None
    kind: str
    message: str

    @property
    def quarantinable(self) -> bool:
        return self.sample is not None and self.kind != "fingerprint"


@dataclass
class VerifyReport:
    """What :func:`verify_cache` found (and :func:`quarantine` moved).

    Attributes:
        root: The cache root (``.precomputed/`` when the data root has one).
        sources: Source folder -> kind, the folders a sample must have.
        samples: Every sample id seen in any source folder.
        problems: Everything found, in sample order.
        quarantined: Sample id -> the files moved (relative to ``root``), filled by :func:`quarantine`.
        model: The model the fingerprints were compared with, if any.
        video_only: Samples without audio latents by choice (``preprocess --allow-missing-audio``): trained with
            their audio loss masked, not missing.
    """

    root: Path
    sources: dict[str, str]
    samples: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    quarantined: dict[str, list[str]] = field(default_factory=dict)
    model: str | None = None
    video_only: list[str] = field(default_factory=list)

    @property
    def bad_samples(self) -> list[str]:
        """Samples with at least one problem that quarantine moves."""
        return sorted({p.sample for p in self.problems if p.quarantinable})

    @property
    def remaining_problems(self) -> list[Problem]:
        """Problems not resolved by a quarantine (all of them before :func:`quarantine` ran)."""
        return [p for p in self.problems if p.sample not in self.quarantined or not p.quarantinable]

    @property
    def ok(self) -> bool:
        """True when nothing is left to fix."""
        return not self.remaining_problems

    @property
    def good_samples(self) -> list[str]:
        bad = {p.sample for p in self.problems if p.sample is not None}
        return [s for s in self.samples if s not in bad]

    @property
    def verdict(self) -> str:
        """One line: ``cache ok: N samples`` or how many problems remain and where."""
        total = len(self.samples)
        video_only = f" ({len(self.video_only)} video-only, audio loss masked)" if self.video_only else ""
        if self.ok:
            moved = f"; {len(self.quarantined)} moved to quarantine" if self.quarantined else ""
            return f"cache ok: {total - len(self.quarantined)} sample(s){video_only}{moved}"
        remaining = self.remaining_problems
        samples = {p.sample for p in remaining if p.sample is not None}
        cache_wide = sum(1 for p in remaining if p.sample is None)
        where = [f"{len(samples)} of {total} sample(s)"] if samples else []
        if cache_wide:
            where.append(f"{cache_wide} cache-wide (every sample is affected)")
        return f"cache NOT ok: {len(remaining)} problem(s) remain in {', '.join(where)}"

    def to_dict(self) -> dict:
        return {
            "root": str(self.root),
            "sources": self.sources,
            "model": self.model,
            "num_samples": len(self.samples),
            "num_good": len(self.good_samples),
            "bad_samples": self.bad_samples,
            "problems": [asdict(p) for p in self.problems],
            "quarantined": self.quarantined,
            "remaining_problems": len(self.remaining_problems),
            "video_only": self.video_only,
            "ok": self.ok,
            "verdict": self.verdict,
        }


# ----------------------------------------------------------------------------------------------------------------------
# Which sources a cache needs
# ----------------------------------------------------------------------------------------------------------------------


def sources_from_config(cfg: LtxTrainerConfig) -> dict[str, str]:
    """Source folder -> kind for the folders the config's training strategy reads (legacy strategies included)."""
    from ltx_trainer.config import MaskCondition, ReferenceCondition

    strategy = cfg.training_strategy.as_flexible()
    sources = {"conditions": "conditions"}
    for label, modality in (("video", strategy.video), ("audio", strategy.audio)):
        if modality is None:
            continue
        sources[modality.latents_dir] = f"{label}_latents"
        for cond in modality.conditions:
            if isinstance(cond, ReferenceCondition):
                sources[cond.latents_dir] = f"{label}_reference"
            elif isinstance(cond, MaskCondition):
                sources[cond.mask_dir] = f"{label}_mask"
    return sources


def sources_from_names(names: Iterable[str]) -> dict[str, str]:
    """``["latents", "my_masks:video_mask"]`` -> folder -> kind; a kind after ``:`` overrides the guess."""
    sources = {}
    for entry in names:
        folder, _, kind = entry.partition(":")
        kind = kind or guess_kind(folder)
        if kind not in SOURCE_KINDS:
            raise UsageError(f"source {entry!r}: unknown kind {kind!r}; use one of {', '.join(SOURCE_KINDS)}")
        sources[folder] = kind
    return sources


def discover_sources(root: Path) -> dict[str, str]:
    """The official source folders present under a cache root (what to check when nothing else says)."""
    return {name: kind for name, kind in KNOWN_SOURCES.items() if (root / name).is_dir()}


def _sample_folders(root: Path) -> list[Path]:
    """Every folder under the cache root that may hold sample files (all but quarantine and decoded outputs)."""
    return [
        p
        for p in sorted(root.iterdir())
        if p.is_dir() and not p.name.startswith(".") and not p.name.startswith(_NOT_SOURCES)
    ]


def check_file(path: Path, kind: str, spec: FamilySpec | None = None) -> dict:
    """Read one cache file and check it on its own (:func:`~ltx_trainer.data.checks.check_sample_data`, the check
    the dataset runs when it loads a sample).

    Raises:
        CacheError: The file can't be read, or a check failed (:class:`SampleCheckError`, with its ``kind``).
    """
    return check_sample_data(read_sample_file(path), kind, spec)


def _cross_checks(
    sample: str, infos: dict[str, dict], sources: dict[str, str], spec: FamilySpec | None
) -> list[Problem]:
    """Problems between the files of one sample (each file already passed its own checks)."""
    problems = []
    by_kind = {sources[folder]: (folder, info) for folder, info in infos.items()}
    video = by_kind.get("video_latents")
    audio = by_kind.get("audio_latents")
    temporal = spec.temporal_compression if spec is not None else 8
    if video is not None:
        folder, v = video
        if "video_mask" in by_kind:
            mask_folder, m = by_kind["video_mask"]
            if m["shape"] != v["grid"]:
                problems.append(
                    Problem(
                        sample,
                        mask_folder,
                        "mismatch",
                        f"mask grid {list(m['shape'])} != {folder}/ latent grid {list(v['grid'])} (F', H', W')",
                    )
                )
        if "video_reference" in by_kind:
            ref_folder, r = by_kind["video_reference"]
            if r["channels"] != v["channels"]:
                problems.append(
                    Problem(sample, ref_folder, "mismatch", f"{r['channels']} channels, {folder}/ has {v['channels']}")
                )
    if audio is not None:
        folder, a = audio
        if "audio_mask" in by_kind:
            mask_folder, m = by_kind["audio_mask"]
            if m["shape"] != (a["steps"],):
                problems.append(
                    Problem(
                        sample,
                        mask_folder,
                        "mismatch",
                        f"mask length {m['shape'][0]} != {folder}/ num_time_steps {a['steps']}",
                    )
                )
    if video is not None and audio is not None and audio[1]["duration"] is not None and video[1]["fps"] is not None:
        frames, fps = video[1]["grid"][0], video[1]["fps"]
        video_seconds = ((frames - 1) * temporal + 1) / fps
        step = temporal / fps
        if abs(audio[1]["duration"] - video_seconds) > step + 1e-6:
            problems.append(
                Problem(
                    sample,
                    audio[0],
                    "mismatch",
                    f"audio duration {audio[1]['duration']:.3f} s vs video {video_seconds:.3f} s "
                    f"({(frames - 1) * temporal + 1} frames at {fps:g} fps in {video[0]}/): more than one latent step "
                    f"({step:.3f} s) apart",
                )
            )
    return problems


# ----------------------------------------------------------------------------------------------------------------------
# Fingerprints
# ----------------------------------------------------------------------------------------------------------------------


def fingerprint_problems(root: Path, folders: Iterable[str], model: LTXModel) -> list[tuple[str | None, str]]:
    """(source folder, why) for the folders whose files another model or encoder made (``data.fingerprint``).

    Unreadable files are left out: the per-sample check reports them, and quarantine moves them.
    """
    from ltx_trainer.data.fingerprint import check_cache_fingerprint

    folders = [f for f in folders if (root / f).is_dir()]
    found = []
    for message in check_cache_fingerprint(root, model, folders=folders):
        if ": unreadable cache file (" in message:
            continue
        source = next((f for f in folders if message.startswith(f"{root / f}:")), None)
        found.append((source, message))
    return found


# ----------------------------------------------------------------------------------------------------------------------
# The verifier
# ----------------------------------------------------------------------------------------------------------------------


def verify_cache(
    data_root: str | Path,
    sources: dict[str, str] | None = None,
    model: str | Path | LTXModel | None = None,
    text_encoder: str | Path | None = None,
) -> VerifyReport:
    """Check every sample of a cache.

    Args:
        data_root: The data root (its ``.precomputed/`` is used when present) or the cache folder itself.
        sources: Source folder -> kind (:func:`sources_from_config`, :func:`sources_from_names`); default: the
            official folders present (:func:`discover_sources`).
        model: A model (path or loaded); when given, the cache fingerprints must match its family, version and
            encoder hashes (``data.fingerprint``), and latent layouts its VAEs'. Only the VAEs load, to hash them.
        text_encoder: The text encoder folder, so that ``conditions/`` fingerprints are compared with it too.

    Returns:
        The report; nothing on disk changes.

    Raises:
        CacheIncomplete: The data root doesn't exist or holds no source folder (a ``DataError``).
    """
    root = precomputed_root(data_root)
    if not root.is_dir():
        raise CacheIncomplete(f"{root}: data root not found; pass the folder preprocessing wrote")
    sources = dict(sources) if sources else discover_sources(root)
    if not sources:
        raise CacheIncomplete(
            f"{root}: no source folder ({', '.join(KNOWN_SOURCES)}); pass --source or --config, or run preprocessing"
        )
    if isinstance(model, str | Path):
        from ltx_trainer.models.families import load_model

        model = load_model(model, text_encoder)
    spec = model.spec if model is not None else None
    report = VerifyReport(root=root, sources=sources)
    if model is not None:
        from ltx_trainer.data.fingerprint import model_path

        report.model = str(model_path(model))
    indexes: dict[str, dict[str, Path]] = {}
    for folder in sources:
        path = root / folder
        if not path.is_dir():
            report.problems.append(
                Problem(None, folder, "missing", f"{path}: source folder missing; run preprocessing for it")
            )
        indexes[folder] = index_cache_folder(path) if path.is_dir() else {}
    report.samples = sorted(set().union(*(set(ix) for ix in indexes.values())))
    if model is not None:
        found = fingerprint_problems(root, sources, model)
        report.problems.extend(Problem(None, folder, "fingerprint", message) for folder, message in found)

    widths: dict[str, tuple] = {}
    for sample in report.samples:
        infos: dict[str, dict] = {}
        problems: list[Problem] = []
        for folder, kind in sources.items():
            path = indexes[folder].get(sample)
            if path is None:
                if kind == "audio_latents" and _audio_missing_by_choice(sample, indexes, sources):
                    report.video_only.append(sample)
                elif (root / folder).is_dir():
                    problems.append(Problem(sample, folder, "missing", f"no file in {folder}/"))
                continue
            rel = path.relative_to(root).as_posix()
            try:
                infos[folder] = check_file(path, kind, spec)
            except SampleCheckError as e:
                problems.append(Problem(sample, folder, e.kind, f"{rel}: {e}"))
            except CacheError as e:
                problems.append(Problem(sample, folder, "unreadable", str(e)))
        if not any(p.kind in FILE_PROBLEMS for p in problems):
            problems.extend(_cross_checks(sample, infos, sources, spec))
        report.problems.extend(problems)
        for folder, info in infos.items():
            if sources[folder] == "conditions":
                widths[sample] = info["width"]
    report.problems.extend(_width_outliers(widths, sources))
    return report


def _audio_missing_by_choice(sample: str, indexes: dict[str, dict[str, Path]], sources: dict[str, str]) -> bool:
    """The sample's video latents say it has no audio (``preprocess --allow-missing-audio``): not a missing file."""
    for folder, kind in sources.items():
        if kind == "video_latents" and (path := indexes[folder].get(sample)) is not None:
            try:
                return bool(read_scalars(path).get(AUDIO_MISSING_KEY))
            except CacheError:
                return False
    return False


def _width_outliers(widths: dict[str, tuple], sources: dict[str, str]) -> list[Problem]:
    """Text features of another width than most of the cache's (a model without a known width still catches them)."""
    if len(set(widths.values())) <= 1:
        return []
    common, count = Counter(widths.values()).most_common(1)[0]
    folder = next(f for f, k in sources.items() if k == "conditions")
    return [
        Problem(
            sample,
            folder,
            "shape",
            f"text features {width[0]} wide (audio {width[1]}), while {count} other sample(s) have {common[0]} "
            f"(audio {common[1]}): made by another text encoder; re-run preprocessing for it",
        )
        for sample, width in sorted(widths.items())
        if width != common
    ]


def _free_destination(path: Path) -> Path:
    """``path``, or ``name.1.ext``, ``name.2.ext``, ... when something is already there (never overwrite)."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    return candidate


def quarantine(report: VerifyReport) -> dict[str, list[str]]:
    """Move every file of each bad sample, in every source folder of the cache, to ``quarantine/<source>/``.

    Files of the sample in folders the check didn't need move too, so no half sample is left behind. Nothing is
    deleted; a name already taken in the quarantine gets a ``.1``, ``.2``, ... before its suffix.

    Returns:
        Sample id -> moved files (relative to the cache root, where they were); also stored in the report.
    """
    bad = set(report.bad_samples) - set(report.quarantined)
    if not bad:
        return {}
    moved: dict[str, list[str]] = {}
    for folder in _sample_folders(report.root):
        index = index_cache_folder(folder)
        while targets := [(s, p) for s, p in index.items() if s in bad]:  # again for a .pt + .safetensors twin
            for sample, path in targets:
                rel = path.relative_to(report.root)
                dest = _free_destination(report.root / QUARANTINE_DIR / rel)
                dest.parent.mkdir(parents=True, exist_ok=True)
                path.replace(dest)
                moved.setdefault(sample, []).append(rel.as_posix())
            index = index_cache_folder(folder)
    for sample in sorted(bad):  # a sample found only in missing folders has no file to move, still handled
        report.quarantined[sample] = sorted(moved.get(sample, []))
    logger.info(
        "moved %d sample(s), %d file(s) to %s",
        len(bad),
        sum(len(v) for v in moved.values()),
        report.root / QUARANTINE_DIR,
    )
    return {s: report.quarantined[s] for s in sorted(bad)}


def write_report(report: VerifyReport, path: Path | None = None) -> Path:
    """Write the report as JSON (default ``<cache root>/verify_report.json``), atomically."""
    path = Path(path) if path is not None else report.root / REPORT_NAME
    return atomic_write_json(path, report.to_dict())
