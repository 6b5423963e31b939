"""Which model and settings produced a cache file, and whether a model may train on it (stale-cache guard).

Every safetensors cache file written by ``ltx-trainer preprocess`` carries a JSON fingerprint in its header
(``cache.FINGERPRINT_KEY``)::

    {"schema": 1, "kind": "latents", "family": "ltx2", "version": "2.3", "model": "/models/ltx-2.3.safetensors",
     "encoders": {"video_vae": "sha256:1f0c..."}, "bucket": "768x448x89", "fps": null, "trigger": "",
     "crop": "center", "dataset": "/data/clips", "tool": "ltx-trainer 0.1.0"}

``encoders`` names the weights that made the file's tensors, per cache folder:

* ``latents/``, ``reference_latents/``: ``video_vae``;
* ``audio_latents/``, ``reference_audio_latents/``: ``audio_vae``;
* ``conditions/``: ``text_encoder`` (Gemma / T5 files) and, for LTX-2, ``feature_extractor`` (the projection that
  turns the stacked Gemma layers into the cached features; the connectors after it run at training time);
* masks: none (they depend on the latent grid only).

How the hashes are made (cheap, and the same for a single-file checkpoint and its diffusers folder):

* A module (VAE, feature extractor) is hashed from its state dict: for every tensor in key order, its name, its shape
  and up to 4096 evenly strided values rounded to bfloat16 go into a sha256. Rounding to bfloat16 makes the hash
  independent of the dtype the model was loaded in; the keys are diffusers' (both layouts load into the same
  diffusers modules). It costs one pass over a few thousand values per tensor, milliseconds for a real VAE.
* The text encoder is hashed from its ``*.safetensors`` files, without loading it: per tensor, a sha256 of its shape
  and of 4 evenly spaced chunks of 1024 values rounded to bfloat16 (read by seeking, from the offsets in the file
  header); the per-tensor digests are sorted and hashed together. So the hash doesn't depend on tensor names, on
  how the weights are sharded or on the float dtype they were saved in (a re-saved copy hashes the same), and a
  24 GB Gemma folder is hashed in about a second. Tokenizer files are not hashed (re-saving rewrites them).

Hashes are printed as ``sha256:`` plus the first 16 hex digits.

:func:`check_cache_fingerprint` compares every fingerprinted file under a cache root with a loaded model and returns
the problems (family/version/encoder mismatches), each saying how to rebuild. Official ``.pt`` caches (and old
safetensors caches) carry no fingerprint: they are accepted, with one warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from ltx_trainer import __version__, logger
from ltx_trainer.data.cache import CACHE_SUFFIXES, read_fingerprint

SCHEMA = 1
TOOL = f"ltx-trainer {__version__}"
_SAMPLE_VALUES = 4096  # values per tensor in a module hash
_CHUNKS, _CHUNK_VALUES = 4, 1024  # chunks per tensor (and values per chunk) in a file hash
_ITEMSIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2}

# which encoders made the tensors of each cache folder
ENCODERS_BY_FOLDER: dict[str, tuple[str, ...]] = {
    "latents": ("video_vae",),
    "reference_latents": ("video_vae",),
    "audio_latents": ("audio_vae",),
    "reference_audio_latents": ("audio_vae",),
    "conditions": ("text_encoder", "feature_extractor"),
}
_LABELS = {
    "video_vae": "video VAE",
    "audio_vae": "audio VAE",
    "text_encoder": "text encoder",
    "feature_extractor": "text feature extractor",
}

_HASHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {component: hash or None}


# ----------------------------------------------------------------------------------------------------------------------
# Hashing
# ----------------------------------------------------------------------------------------------------------------------


def tensors_hash(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, shapes and a strided bfloat16 sample of each tensor (see the module docstring)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach()
        h.update(f"{name}:{tuple(t.shape)}\n".encode())
        flat = t.reshape(-1)
        if flat.numel() == 0:
            continue
        step = max(1, flat.numel() // _SAMPLE_VALUES)
        sample = flat[::step][:_SAMPLE_VALUES].cpu()
        sample = sample.to(torch.bfloat16).view(torch.int16) if sample.is_floating_point() else sample.long()
        h.update(sample.numpy().tobytes())
    return f"sha256:{h.hexdigest()[:16]}"


def module_hash(module: torch.nn.Module) -> str:
    """:func:`tensors_hash` of a module's state dict."""
    return tensors_hash(module.state_dict())


def _bf16_bits(raw: bytes, dtype: str) -> bytes:
    """Raw little-endian tensor bytes -> the bytes of the values rounded to bfloat16 (other dtypes: as stored)."""
    if dtype == "BF16":
        return raw
    numpy_dtype = {"F64": np.float64, "F32": np.float32, "F16": np.float16}.get(dtype)
    if numpy_dtype is None:
        return raw
    values = torch.from_numpy(np.frombuffer(raw, dtype=numpy_dtype).astype(np.float32))
    return values.to(torch.bfloat16).view(torch.int16).numpy().tobytes()


def _safetensors_digests(path: Path) -> list[bytes]:
    """One digest per tensor of a safetensors file: its shape and a few chunks of its values in bfloat16."""
    digests = []
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
        base = 8 + header_len
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            itemsize = _ITEMSIZE.get(dtype, 1)
            count = (end - begin) // itemsize
            chunk = min(count, _CHUNK_VALUES)
            starts = sorted({i * (count - chunk) // max(1, _CHUNKS - 1) for i in range(_CHUNKS)}) if count else []
            h = hashlib.sha256(f"{tuple(shape)}\n".encode())
            for start in starts:
                f.seek(base + begin + start * itemsize)
                h.update(_bf16_bits(f.read(chunk * itemsize), dtype))
            digests.append(h.digest())
    return digests


def files_hash(folders: Iterable[Path]) -> str | None:
    """Content hash of the safetensors weights under ``folders`` (or of those files themselves; see the module
    docstring); None if there are none.

    Independent of tensor names, file sharding and the float dtype the weights were saved in.
    """
    digests: list[bytes] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():  # a packed text-encoder file (LTX-2.5)
            digests.extend(_safetensors_digests(folder))
            continue
        for path in sorted(folder.rglob("*.safetensors")):
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
                digests.extend(_safetensors_digests(path))
    if not digests:
        return None
    return f"sha256:{hashlib.sha256(b''.join(sorted(digests))).hexdigest()[:16]}"


# ----------------------------------------------------------------------------------------------------------------------
# What a model is made of
# ----------------------------------------------------------------------------------------------------------------------


def model_path(model: object) -> Path | None:
    """The checkpoint file or diffusers folder a model was loaded from."""
    source = getattr(model, "source", None)
    if source is None:
        return None
    return Path(getattr(source, "path", source))


def text_encoder_dirs(model: object) -> list[Path]:
    """Folders holding the text encoder (and tokenizer) the model would use; ``[]`` when it has none."""
    explicit = getattr(model, "text_encoder_path", None)
    if explicit is not None:
        return [Path(explicit)] if Path(explicit).exists() else []
    root = model_path(model)
    if root is not None and root.is_dir() and (root / "text_encoder").is_dir():
        return [d for d in (root / "text_encoder", root / "tokenizer") if d.is_dir()]
    return []


def text_encoder_name(model: object) -> str | None:
    """``"<model_type> at <folder>"`` of the text encoder, for the fingerprint; None when the model has none."""
    dirs = text_encoder_dirs(model)
    if not dirs:
        return None
    model_type = "unknown"
    with contextlib.suppress(OSError, json.JSONDecodeError):
        model_type = json.loads((dirs[0] / "config.json").read_text()).get("model_type", model_type)
    return f"{model_type} at {dirs[0]}"


def _compute_hash(model: object, component: str) -> str | None:
    spec = model.spec
    if component == "video_vae":
        return module_hash(model.video_vae)
    if component == "audio_vae":
        return module_hash(model.audio_vae) if spec.has_audio else None
    if component == "text_encoder":
        return files_hash(text_encoder_dirs(model))
    if component == "feature_extractor":
        state = model.feature_extractor_state()
        return None if state is None else tensors_hash(state)
    return None


def encoder_hash(model: object, component: str) -> str | None:
    """Hash of one encoder of ``model`` (``video_vae``, ``audio_vae``, ``text_encoder``, ``feature_extractor``).

    None when the model lacks it or it can't be read (e.g. no text encoder folder given). Loads the component if it
    isn't loaded yet (VAEs: seconds for the real models). Cached per model object.
    """
    if component not in _LABELS:
        raise ValueError(f"unknown encoder component {component!r}; expected one of {sorted(_LABELS)}")
    try:
        cache = _HASHES.setdefault(model, {})
    except TypeError:  # not weak-referenceable: no caching
        cache = {}
    if component not in cache:
        try:
            cache[component] = _compute_hash(model, component)
        except Exception as e:  # a missing optional component must not stop training or preprocessing
            logger.debug("fingerprint: can't hash the %s of %s (%s)", component, model_path(model), e)
            cache[component] = None
    return cache[component]


def forget_hashes(model: object) -> None:
    """Drop cached hashes of ``model`` (after its encoder weights were changed in place)."""
    _HASHES.pop(model, None)


def fingerprint_for(
    model: object,
    kind: str = "latents",
    *,
    bucket: object | None = None,
    buckets: str | None = None,
    fps: float | None = None,
    trigger: str | None = None,
    crop: str | None = None,
    dataset: str | Path | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict:
    """The fingerprint recorded in a cache file of folder ``kind`` made by ``model`` with these settings.

    Args:
        model: the loaded model (``models.families.load_model``).
        kind: the cache folder (``latents``, ``conditions``, ``audio_latents``, ...); it selects the encoders hashed.
        bucket: the sample's resolution bucket (``WxHxF``).
        buckets: every bucket of the run (``--resolution-buckets``), for the rebuild command.
        fps: the target fps when frames were resampled (None: the source fps was kept).
        trigger: the trigger token prepended to captions.
        crop: ``center`` or ``random``.
        dataset: the dataset folder or metadata file (named in the rebuild command).
        extra: more settings to record (e.g. reference scale factors).
    """
    path = model_path(model)
    fingerprint = {
        "schema": SCHEMA,
        "kind": kind,
        "family": model.spec.family,
        "version": model.spec.version,
        "model": str(path) if path is not None else None,
        "encoders": {c: h for c in ENCODERS_BY_FOLDER.get(kind, ()) if (h := encoder_hash(model, c)) is not None},
        "bucket": str(bucket) if bucket is not None else None,
        "buckets": buckets,
        "fps": fps,
        "trigger": trigger or "",
        "crop": crop,
        "dataset": str(dataset) if dataset is not None else None,
        "tool": TOOL,
    }
    if kind == "conditions":
        fingerprint["text_encoder"] = text_encoder_name(model)
    if extra:
        fingerprint.update(extra)
    return fingerprint


# ----------------------------------------------------------------------------------------------------------------------
# Checking a cache against a model
# ----------------------------------------------------------------------------------------------------------------------


def _cache_files(folder: Path) -> Iterable[Path]:
    for path in sorted(folder.rglob("*")):
        if path.suffix in CACHE_SUFFIXES and path.is_file() and not path.name.startswith("."):
            yield path


def _mismatches(fingerprint: dict, model: object) -> list[str]:
    family, version = fingerprint.get("family"), fingerprint.get("version")
    spec = model.spec
    if (family, version) != (spec.family, spec.version):
        return [f"were made with {family} {version}, but the model is {spec.family} {spec.version}"]
    reasons = []
    for component, recorded in sorted((fingerprint.get("encoders") or {}).items()):
        if component not in _LABELS:
            continue
        current = encoder_hash(model, component)
        if current is not None and current != recorded:
            reasons.append(f"were encoded by a different {_LABELS[component]} ({recorded}, the model's is {current})")
    return reasons


def report_settings(root: Path) -> dict:
    """The settings the ``preprocess_report.json`` under a cache root records (``{}`` when there is none)."""
    try:
        report = json.loads((Path(root) / "preprocess_report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    settings = dict(report.get("cache_settings") or {})
    if report.get("dataset"):
        settings["dataset"] = report["dataset"]
    if (report.get("model") or {}).get("path"):
        settings["model"] = report["model"]["path"]
    return settings


def rebuild_command(settings: Mapping, model: object | None = None, output: str | Path | None = None) -> str:
    """The ``ltx-trainer preprocess`` command line that rebuilds a cache made with ``settings``, runnable as is.

    ``settings`` are fingerprint or report values (``preprocess_options.cache_settings`` keys, ``dataset``, ``model``);
    ``model`` (the model to rebuild for) overrides the recorded model and text encoder; ``output`` is the cache root.
    """
    import shlex

    def q(value: object) -> str:
        return shlex.quote(str(value))

    path = model_path(model) if model is not None else settings.get("model")
    text_encoder = getattr(model, "text_encoder_path", None) or settings.get("text_encoder_path")
    parts = ["ltx-trainer preprocess", q(settings.get("dataset") or "<dataset>"), f"--model {q(path or '<model>')}"]
    if text_encoder:
        parts.append(f"--text-encoder {q(text_encoder)}")
    parts.append(f"--resolution-buckets {q(settings.get('buckets') or '<WxHxF;...>')}")
    if output is not None:
        parts.append(f"--output {q(output)}")
    if settings.get("trigger"):
        parts.append(f"--trigger {q(settings['trigger'])}")
    if settings.get("fps"):
        parts.append(f"--fps {settings['fps']:g}")
    if settings.get("crop") == "random":
        parts.append("--crop random")
        if settings.get("seed"):
            parts.append(f"--seed {settings['seed']}")
    if settings.get("vae_tiling"):
        parts.append("--vae-tiling")
    if settings.get("text_encoder_bits"):
        parts.append(f"--text-encoder-bits {settings['text_encoder_bits']}")
    if settings.get("latents_dtype") == "float32":
        parts.append("--latents-dtype fp32")
    if settings.get("audio") is False:
        parts.append("--no-audio")
    if settings.get("allow_missing_audio"):
        parts.append("--allow-missing-audio")
    for key in ("reference_downscale_factor", "reference_temporal_scale_factor"):
        if (settings.get(key) or 1) > 1:
            parts.append(f"--{key.replace('_', '-')} {settings[key]}")
    if settings.get("format") == "pt":
        parts.append("--format pt")
    return " ".join([*parts, "--overwrite"])


def _rebuild_hint(model: object, settings: dict, output: Path | None = None) -> str:
    return f"Rebuild the cache for this model: {rebuild_command(settings, model, output)}"


def check_cache_fingerprint(data_root: str | Path, model: object, folders: Iterable[str] | None = None) -> list[str]:
    """Problems that make the cache under ``data_root`` unfit for ``model``; ``[]`` when it fits.

    Every fingerprinted file's family/version must match the model, and every encoder hash it records must match
    the model's (encoders the model can't provide, such as a text encoder that wasn't given, are not compared).
    Files without a fingerprint (official ``.pt`` caches) are accepted with one warning.

    Args:
        data_root: ``data.preprocessed_data_root`` (its ``.precomputed/`` subfolder is used when present).
        model: the loaded model training will use.
        folders: cache folders to check (default: every folder under the root).

    Returns:
        One line per group of mismatched files, naming the folder, an example file, what differs and the
        ``ltx-trainer preprocess ... --overwrite`` command that rebuilds it.
    """
    from ltx_trainer.data.dataset import precomputed_root

    root = precomputed_root(data_root)
    names = list(folders) if folders is not None else sorted(p.name for p in root.iterdir() if p.is_dir())
    problems: list[str] = []
    unfingerprinted: dict[str, int] = {}
    groups: dict[tuple, dict] = {}
    settings: dict = report_settings(root)  # the run settings of the cache, for the rebuild hint
    for name in names:
        folder = root / name
        if not folder.is_dir() or name.startswith("."):
            continue
        for path in _cache_files(folder):
            try:
                fingerprint = read_fingerprint(path) if path.suffix == ".safetensors" else None
            except Exception as e:  # damaged header
                problems.append(f"{path}: unreadable cache file ({e}); re-run ltx-trainer preprocess with --overwrite")
                continue
            if fingerprint is None:
                unfingerprinted[name] = unfingerprinted.get(name, 0) + 1
                continue
            for key, value in fingerprint.items():
                if value is not None and settings.get(key) is None:
                    settings[key] = value
            key = (
                name,
                fingerprint.get("family"),
                fingerprint.get("version"),
                json.dumps(fingerprint.get("encoders") or {}, sort_keys=True),
            )
            group = groups.setdefault(key, {"count": 0, "example": path, "fp": fingerprint})
            group["count"] += 1
    for (name, *_), group in groups.items():
        reasons = _mismatches(group["fp"], model)
        if reasons:
            problems.append(
                f"{root / name}: {group['count']} file(s) (e.g. {group['example'].name}) {'; '.join(reasons)}. "
                + _rebuild_hint(model, settings, root)
            )
    if unfingerprinted:
        counts = ", ".join(f"{name}/ {n}" for name, n in sorted(unfingerprinted.items()))
        logger.warning(
            "%s: %d cache file(s) carry no model fingerprint (%s): official .pt caches or older ones. They are used "
            "as they are; if they were made with another model version, rebuild them with "
            "`ltx-trainer preprocess ... --overwrite`.",
            root,
            sum(unfingerprinted.values()),
            counts,
        )
    return problems
