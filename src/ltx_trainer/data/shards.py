"""``preprocess`` under N processes: each shard writes its own report; the last one to finish merges them.

Shard ``i`` of ``n`` (``accelerate launch``/torchrun rank, or ``--shard-index/--num-shards``) writes
``preprocess_report.shard-<i>-of-<n>.json`` and, once it finished without an error, marks it ``"complete"``. Whichever
shard completes last finds every report complete and writes the one ``preprocess_report.json``: the union of the
shards' outcomes plus an index of the cache (every file with its size and recorded fingerprint, and one digest over
them, so two caches can be compared by their digest). No collective is needed: a crashed shard is simply run again
alone (``--shard-index i --num-shards n``); it skips what it had finished, and merges when it completes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ltx_trainer import logger
from ltx_trainer.data.cache import CACHE_SUFFIXES, read_fingerprint
from ltx_trainer.data.preprocess_options import REPORT_NAME, report_path
from ltx_trainer.io import atomic_write_json

_LISTS = ("written", "already_done", "skipped", "not_media", "warnings")
_DICTS = ("redone", "notes")


def mark_complete(report: Path) -> None:
    """Record that the shard behind ``report`` finished without an error."""
    data = json.loads(report.read_text())
    atomic_write_json(report, {**data, "complete": True})


def cache_index(output: Path) -> dict:
    """Every cache file (relative path -> bytes and the fingerprint it records) and a digest over them all."""
    files = {}
    for path in sorted(output.rglob("*")):
        if path.suffix not in CACHE_SUFFIXES or not path.is_file() or path.name.startswith("."):
            continue
        try:
            recorded = read_fingerprint(path)
        except Exception:  # an official .pt file records none
            recorded = None
        fingerprint = hashlib.sha256(json.dumps(recorded, sort_keys=True).encode()).hexdigest() if recorded else None
        files[path.relative_to(output).as_posix()] = {"bytes": path.stat().st_size, "fingerprint": fingerprint}
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"files": files, "digest": digest}


def merge_shard_reports(output: Path, num_shards: int) -> Path | None:
    """Write ``preprocess_report.json`` from the shards' reports once all are complete; None while some are not."""
    paths = [report_path(output, i, num_shards) for i in range(num_shards)]
    reports = [json.loads(p.read_text()) if p.is_file() else None for p in paths]
    waiting = [p.name for p, r in zip(paths, reports, strict=True) if not (r and r.get("complete"))]
    if waiting:
        logger.info("preprocess: %d shard(s) not complete yet (%s); the last one merges", len(waiting), waiting[0])
        return None
    settings = {json.dumps(r["cache_settings"], sort_keys=True) for r in reports}
    if len(settings) > 1:
        logger.warning("preprocess: the %d shard reports record different cache settings; merged anyway", num_shards)
    merged = {k: v for k, v in reports[0].items() if k != "complete"}
    for key in _LISTS:
        merged[key] = [x for r in reports for x in r.get(key, [])]
    for key in _DICTS:
        merged[key] = {k: v for r in reports for k, v in r.get(key, {}).items()}
    merged["counts"] = {k: sum(r["counts"].get(k, 0) for r in reports) for k in reports[0]["counts"]}
    merged["seconds"] = max(r["seconds"] for r in reports)
    merged["shards"] = [p.name for p in paths]
    merged["settings"] = {**merged["settings"], "shard_index": 0, "num_shards": num_shards}
    merged["index"] = cache_index(output)
    path = output / REPORT_NAME
    atomic_write_json(path, merged)
    logger.info(
        "preprocess: merged %d shard reports into %s (cache digest %s)", num_shards, path, merged["index"]["digest"]
    )
    return path
