"""Reading (and writing) precomputed samples: the official ``.pt`` dicts and our safetensors files, same keys.

Official layout (spec/anchors.md §2.10): ``<root>/.precomputed/<source dir>/<relative media path>.pt``. Our cache
stores the same keys in ``.safetensors``; scalars (``num_frames``, ``fps``, ...) go in the header metadata as JSON,
next to the fingerprint that says which model and settings produced the file.

Per source folder (``clips/a.mp4`` -> ``latents/clips/a.safetensors`` or ``.pt``)::

    latents/                  latents [128, F', H', W'] bf16, num_frames, height, width, fps (+ audio_missing)
    conditions/               video_prompt_embeds [L, Dv] bf16, audio_prompt_embeds [L, Da] bf16 (LTX-2),
                              prompt_attention_mask [L]
    audio_latents/            latents [8, T, 16] fp32, num_time_steps, frequency_bins, duration
    reference_latents/        like latents/, at H'/k, W'/k, temporally subsampled by S (fps = source fps / S)
    reference_audio_latents/  like audio_latents/
    video_masks/              mask [F', H', W'] float {0, 1} (1 = conditioning: kept clean, no loss)
    audio_masks/              mask [T] float {0, 1}
"""

import json
from pathlib import Path

import torch
from safetensors import safe_open

from ltx_trainer.errors import DataError
from ltx_trainer.io import atomic_save_safetensors, atomic_torch_save

CACHE_SUFFIXES = (".safetensors", ".pt")
SCALARS_KEY = "scalars"
FINGERPRINT_KEY = "fingerprint"  # JSON: what produced the file (model, encoder hash, bucket, fps, trigger, tool)
# Scalar of a video latents file whose sample has no audio (kept by ``preprocess --allow-missing-audio``): the
# dataset gives it silent audio latents with the audio loss masked out, and ``verify`` doesn't call it missing.
AUDIO_MISSING_KEY = "audio_missing"


class CacheError(DataError):
    """A cache file can't be read or holds tensors training can't use; the message names the file."""


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
    """Atomically write a sample: tensors as safetensors tensors (or a ``.pt`` dict), scalars as header JSON.

    Safetensors files are byte-reproducible (sorted header, ``io.atomic_save_safetensors``).
    """
    path = Path(path)
    if path.suffix == ".pt":
        return atomic_torch_save(data, path)
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    scalars = {k: v for k, v in data.items() if not isinstance(v, torch.Tensor)}
    meta = {**(metadata or {}), SCALARS_KEY: json.dumps(scalars, sort_keys=True)}
    return atomic_save_safetensors(tensors, path, meta)


def read_scalars(path: Path) -> dict:
    """The scalars of a cache file; cheap for safetensors (header only), a full load for ``.pt``."""
    path = Path(path)
    if path.suffix == ".pt":
        return {k: v for k, v in read_sample_file(path).items() if not isinstance(v, torch.Tensor)}
    try:
        return json.loads(read_metadata(path).get(SCALARS_KEY, "{}"))
    except Exception as e:
        raise CacheError(f"{path}: unreadable cache file header ({e}); re-run preprocessing for it") from e


def read_fingerprint(path: Path) -> dict | None:
    """The fingerprint in a safetensors cache file's header, or None (official ``.pt`` caches carry none)."""
    raw = read_metadata(path).get(FINGERPRINT_KEY)
    return json.loads(raw) if raw else None
