"""Reading (and writing) precomputed samples: the official ``.pt`` dicts and our safetensors files, same keys.

Official layout (spec/anchors.md §2.10): ``<root>/.precomputed/<source dir>/<relative media path>.pt``. Our cache
stores the same keys in ``.safetensors``; scalars (``num_frames``, ``fps``, ...) go in the header metadata as JSON,
next to the fingerprint that says which model and settings produced the file.
"""

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

CACHE_SUFFIXES = (".safetensors", ".pt")
SCALARS_KEY = "scalars"
FINGERPRINT_KEY = "fingerprint"  # JSON: what produced the file (model, encoder hash, bucket, fps, trigger, tool)


class CacheError(ValueError):
    """A cache file can't be read; the message names the file."""


def read_sample_file(path: Path) -> dict:
    """One cache file -> dict of tensors and scalars. ``.pt`` files are loaded with ``weights_only=True``."""
    try:
        if path.suffix == ".pt":
            data = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(data, dict):
                raise CacheError(f"{path}: expected a dict of tensors, found {type(data).__name__}")
            return data
        with safe_open(path, "pt") as f:
            data = {k: f.get_tensor(k) for k in f.keys()}
            meta = f.metadata() or {}
        data.update(json.loads(meta.get(SCALARS_KEY, "{}")))
        return data
    except CacheError:
        raise
    except Exception as e:  # torch and safetensors raise many types for a damaged file
        raise CacheError(f"{path}: unreadable cache file ({e}); re-run preprocessing for it") from e


def read_metadata(path: Path) -> dict[str, str]:
    """Header metadata of a safetensors cache file (fingerprint, scalars); ``{}`` for ``.pt``."""
    if path.suffix != ".safetensors":
        return {}
    with safe_open(path, "pt") as f:
        return dict(f.metadata() or {})


def write_sample_file(path: Path, data: dict, metadata: dict[str, str] | None = None) -> Path:
    """Atomically write a sample: tensors as safetensors tensors (or a ``.pt`` dict), scalars as header JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    if path.suffix == ".pt":
        torch.save(data, tmp)
    else:
        tensors = {k: v.contiguous() for k, v in data.items() if isinstance(v, torch.Tensor)}
        scalars = {k: v for k, v in data.items() if not isinstance(v, torch.Tensor)}
        save_file(tensors, str(tmp), metadata={**(metadata or {}), SCALARS_KEY: json.dumps(scalars)})
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def read_fingerprint(path: Path) -> dict | None:
    """The fingerprint in a safetensors cache file's header, or None (official ``.pt`` caches carry none)."""
    raw = read_metadata(path).get(FINGERPRINT_KEY)
    return json.loads(raw) if raw else None
