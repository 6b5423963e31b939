"""IC-LoRA reference videos: transform each source clip (edges, blur, grayscale, downscale, or your own) and pair it.

A transform is a function ``frames -> frames`` on a whole clip: ``uint8`` RGB ``[F, H, W, 3]`` numpy arrays in and
out (a ``[F, H, W]`` single-channel result is widened to RGB). It must keep the frame count; the size may change.
Keyword parameters are set from the command line (``--param low=50`` or ``--param canny.low=50``).

Adding one::

    from ltx_trainer.data.reference import register_transform

    @register_transform("depthish")
    def depthish(frames, strength: float = 1.0):
        ...

then ``--plugin my_module --transform depthish``; or without registering, ``--transform my_module:my_function``
(``path/to/file.py:my_function`` works too).

Outputs keep the source fps, frame count and (unless turned off) audio. The pairing file has the official columns
(``media_path``, ``reference_video``, and ``caption`` when known: from a captions file, the dataset file, or a
``clip.txt`` sidecar), paths relative to the pairing file's folder, so ``ltx-trainer preprocess`` can read it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ltx_trainer import logger
from ltx_trainer.data.manifest import (
    CAPTION_COLUMNS,
    MEDIA_COLUMNS,
    ManifestError,
    column,
    read_manifest,
    write_manifest,
)
from ltx_trainer.data.manifest import (
    MANIFEST_SUFFIXES as METADATA_SUFFIXES,
)
from ltx_trainer.errors import DataError, UsageError

Transform = Callable[..., np.ndarray]


class TransformError(UsageError):
    """A transform, plugin or ``--param`` that can't be used (or a transform that broke its contract)."""


class ReferenceDataError(DataError):
    """Clips or a dataset file that references can't be made from."""


class ReferenceNotFound(ReferenceDataError, FileNotFoundError):
    """A clip, folder or dataset file that doesn't exist."""


TRANSFORMS: dict[str, Transform] = {}

REFERENCE_COLUMN = "reference_video"
DEFAULT_OUT_DIR = "references"


def register_transform(name: str) -> Callable[[Transform], Transform]:
    """Decorator: make ``fn(frames, **params) -> frames`` available as ``--transform name``."""

    def decorate(fn: Transform) -> Transform:
        if name in TRANSFORMS and TRANSFORMS[name] is not fn:
            logger.warning("reference transform %r is redefined by %s.%s", name, fn.__module__, fn.__qualname__)
        TRANSFORMS[name] = fn
        return fn

    return decorate


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


@register_transform("canny")
def canny(frames: np.ndarray, low: int = 100, high: int = 200, aperture: int = 3) -> np.ndarray:
    """Canny edges (OpenCV) of the grayscale frames: white edges on black, 0 or 255."""
    import cv2

    return np.stack([cv2.Canny(_gray(f), low, high, apertureSize=aperture) for f in frames])


@register_transform("blur")
def blur(frames: np.ndarray, sigma: float = 3.0, kernel: int = 0) -> np.ndarray:
    """Gaussian blur; ``kernel`` 0 lets OpenCV size it from ``sigma`` (an odd number sets it)."""
    import cv2

    if kernel and kernel % 2 == 0:
        raise TransformError(f"blur kernel must be odd (or 0 for automatic), got {kernel}")
    return np.stack([cv2.GaussianBlur(f, (kernel, kernel), sigma) for f in frames])


@register_transform("grayscale")
def grayscale(frames: np.ndarray) -> np.ndarray:
    """Luma only (BT.601), kept as three equal channels."""
    return np.stack([_gray(f) for f in frames])


@register_transform("downscale")
def downscale(frames: np.ndarray, factor: float = 2.0) -> np.ndarray:
    """Shrink width and height by ``factor`` (area averaging), e.g. for ``reference_downscale_factor`` training."""
    import cv2

    if factor <= 0:
        raise TransformError(f"downscale factor must be > 0, got {factor}")
    height, width = frames.shape[1:3]
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


# ----------------------------------------------------------------------------------------------------------------------
# Resolving transforms and their parameters
# ----------------------------------------------------------------------------------------------------------------------


def load_plugin(module: str) -> None:
    """Import a module (dotted name or ``.py`` file) so its ``@register_transform`` functions register."""
    _import(module)


def _import(module: str):
    if module.endswith(".py") or Path(module).is_file():
        path = Path(module).expanduser().resolve()
        if not path.is_file():
            raise TransformError(f"{path}: transform module file not found")
        name = f"_ltx_reference_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise TransformError(f"{path}: cannot import as a Python module")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise TransformError(f"cannot import transform module {module!r} ({e})") from e


def get_transform(spec: str) -> Transform:
    """A registered name (``canny``) or an import path (``package.module:function``, ``file.py:function``)."""
    if spec in TRANSFORMS:
        return TRANSFORMS[spec]
    module, sep, attr = spec.rpartition(":")
    if not sep or not module:
        raise TransformError(
            f"unknown reference transform {spec!r}; registered: {', '.join(sorted(TRANSFORMS))} "
            "(or give module:function)"
        )
    fn = getattr(_import(module), attr, None)
    if not callable(fn):
        raise TransformError(f"{spec}: {module} has no function {attr!r}")
    return fn


def parse_value(text: str) -> object:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True, anything else stays a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _accepts(fn: Transform, key: str) -> bool:
    params = inspect.signature(fn).parameters
    return key in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@dataclass
class Step:
    """One transform of the chain and its keyword parameters."""

    name: str
    fn: Transform
    params: dict[str, object] = field(default_factory=dict)


def build_chain(transforms: Sequence[str], params: Sequence[str] = ()) -> list[Step]:
    """Transforms (applied in order) with ``key=value`` / ``name.key=value`` parameters routed to them.

    Raises:
        ValueError: Unknown transform, malformed parameter, or a parameter no transform takes.
    """
    if not transforms:
        raise TransformError("no reference transform given; registered: " + ", ".join(sorted(TRANSFORMS)))
    steps = [Step(name, get_transform(name)) for name in transforms]
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TransformError(f"parameter {item!r} is not key=value (e.g. low=50 or canny.low=50)")
        target, dot, key = key.rpartition(".")  # "canny.low", "pkg.mod:fn.low" or just "low"
        chosen = [s for s in steps if (not dot or s.name == target) and _accepts(s.fn, key)]
        if not chosen:
            raise TransformError(f"parameter {item!r}: no transform among {list(transforms)} takes {key!r}")
        for step in chosen:
            step.params[key] = parse_value(value)
    return steps


def _as_rgb(out: object, step: Step, num_frames: int) -> np.ndarray:
    array = np.asarray(out)
    if array.ndim == 3:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise TransformError(
            f"transform {step.name!r} returned shape {array.shape}; expected [F, H, W, 3] or [F, H, W]"
        )
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.shape[0] != num_frames:
        raise TransformError(
            f"transform {step.name!r} returned {array.shape[0]} frames for {num_frames}; keep the count"
        )
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and float(array.max()) <= 1.0:
            array = array * 255.0
        array = np.clip(np.round(array), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def apply_chain(frames: np.ndarray, steps: Sequence[Step]) -> np.ndarray:
    """Run every step on ``[F, H, W, 3]`` uint8 frames; each result is checked and widened to RGB uint8."""
    for step in steps:
        frames = _as_rgb(step.fn(frames, **step.params), step, frames.shape[0])
    return frames


# ----------------------------------------------------------------------------------------------------------------------
# Metadata files
# ----------------------------------------------------------------------------------------------------------------------


def read_rows(path: Path) -> list[dict]:
    """Rows of a dataset file (``data/manifest.py``); a row that can't be parsed stops the job, naming it."""
    manifest = read_manifest(path)
    if manifest.bad:
        label, reason = manifest.bad[0]
        raise ManifestError(f"{path}: {label}: {reason}")
    return [row for _, row in manifest.rows]


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def _relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when inside it, else absolute (posix separators)."""
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _mirror(path: Path, base: Path) -> Path:
    """Where a clip's outputs go under an output folder: its path relative to ``base``, or mirrored when outside."""
    try:
        return path.resolve().relative_to(base.resolve())
    except ValueError:
        return Path(*path.resolve().parts[1:])


# ----------------------------------------------------------------------------------------------------------------------
# The job
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class Pair:
    """One clip and its reference video (absolute paths) plus the metadata row they came from."""

    media: Path
    reference: Path
    row: dict = field(default_factory=dict)


def collect_clips(source: Path) -> tuple[Path, list[tuple[Path, dict]]]:
    """(base folder, [(clip, its row's other columns)]) from a clip, a folder of clips (recursive) or a dataset file."""
    from ltx_trainer.data.media import VIDEO_EXTENSIONS

    source = Path(source).expanduser()
    if not source.exists():
        raise ReferenceNotFound(f"{source}: no such clip, folder or metadata file")
    if source.is_dir():
        clips = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        clips = [p for p in clips if not p.name.startswith(".")]
        return source, [(p, {}) for p in clips]
    if source.suffix.lower() in METADATA_SUFFIXES:
        base, items = source.parent, []
        for n, row in enumerate(read_rows(source), 1):
            name = column(row, MEDIA_COLUMNS)
            if name is None:
                raise ManifestError(f"{source}: row {n} has no media column ({' / '.join(MEDIA_COLUMNS)})")
            rest = {k: v for k, v in row.items() if k != name}
            items.append((_resolve(base, str(row[name]).strip()), rest))
        return base, items
    return source.parent, [(source, {})]


def load_captions(path: Path) -> dict[Path, str]:
    """Resolved media path -> caption from a CSV/JSON/JSONL captions file (paths relative to the file's folder)."""
    captions = {}
    for n, row in enumerate(read_rows(path), 1):
        media, text = column(row, MEDIA_COLUMNS), column(row, CAPTION_COLUMNS)
        if media is None or text is None:
            names = "/".join(CAPTION_COLUMNS)
            raise ManifestError(f"{path}: row {n} needs a media column and a caption column ({names})")
        captions[_resolve(path.parent, str(row[media]))] = str(row[text])
    return captions


def make_reference(media: Path, reference: Path, steps: Sequence[Step], with_audio: bool = True, crf: int = 18) -> Path:
    """Transform one clip into ``reference``: same fps and frame count, the clip's audio unless ``with_audio=False``."""
    from ltx_trainer.data.media import MediaError, probe, read_audio, read_video, write_video

    frames, fps = read_video(media)
    out = apply_chain(frames.numpy(), steps)
    waveform = rate = None
    if with_audio and probe(media).has_audio:
        try:
            waveform, rate = read_audio(media, channels=None)
        except MediaError as e:
            logger.warning("%s: audio not copied to the reference (%s)", media, e.reason)
    write_video(reference, out, fps, audio=waveform, audio_sample_rate=rate, crf=crf)
    return reference


def compute_references(
    source: Path,
    transforms: Sequence[str],
    params: Sequence[str] = (),
    out_dir: Path | None = None,
    pairs_file: Path | None = None,
    captions: Path | None = None,
    with_audio: bool = True,
    overwrite: bool = False,
    on_progress: Callable[[Path], None] | None = None,
) -> tuple[list[Pair], Path]:
    """Reference videos for every clip of ``source``, and the pairing file.

    Args:
        source: A clip, a folder of clips, or a CSV/JSON/JSONL dataset file (its columns are carried over).
        transforms: Transform names / import paths, applied in order.
        params: ``key=value`` or ``transform.key=value`` parameters.
        out_dir: Where reference videos go (default ``<base>/references``), mirroring the clips' relative paths.
        pairs_file: The pairing file (``.csv``, ``.jsonl``, ``.json``); default ``<base>/<name>_reference.<ext>``
            for a dataset file, ``<base>/references.csv`` otherwise.
        captions: A CSV/JSON/JSONL file with media path + caption columns; its captions are carried over (else the
            dataset file's ``caption`` column, else a ``clip.txt`` sidecar next to ``clip.mp4``).
        with_audio: Copy the clip's audio into the reference.
        overwrite: Recompute references that exist (default: keep them).
        on_progress: Called after each clip (progress bars).

    Returns:
        The pairs and the pairing file's path.
    """
    steps = build_chain(transforms, params)
    base, clips = collect_clips(source)
    out_dir = Path(out_dir) if out_dir is not None else base / DEFAULT_OUT_DIR
    if Path(source).is_dir():  # earlier references are not clips
        skip = [out_dir.resolve(), (base / DEFAULT_OUT_DIR).resolve()]
        clips = [(m, r) for m, r in clips if not any(m.resolve().is_relative_to(d) for d in skip)]
    if not clips:
        raise ReferenceDataError(f"{source}: no video clips found")
    if pairs_file is None:
        src = Path(source)
        is_dataset = src.is_file() and src.suffix.lower() in METADATA_SUFFIXES
        pairs_file = base / (f"{src.stem}_reference{src.suffix}" if is_dataset else "references.csv")
    caption_map = load_captions(Path(captions)) if captions is not None else {}
    pairs = []
    for media, row in clips:
        if not media.is_file():
            raise ReferenceNotFound(f"{media}: clip listed in {source} not found")
        reference = (out_dir / _mirror(media, base)).with_suffix(".mp4")
        if reference.resolve() == media.resolve():
            raise ReferenceDataError(f"{media}: the reference would overwrite its source; pick another out_dir")
        if overwrite or not reference.exists():
            make_reference(media, reference, steps, with_audio)
        pairs.append(Pair(media, reference, row))
        if on_progress is not None:
            on_progress(media)

    rows = []
    folder = Path(pairs_file).parent
    for pair in pairs:
        row = {k: v for k, v in pair.row.items() if k != REFERENCE_COLUMN}
        out = {"media_path": _relative(pair.media, folder), REFERENCE_COLUMN: _relative(pair.reference, folder), **row}
        caption = caption_map.get(pair.media.resolve())
        sidecar = pair.media.with_suffix(".txt")
        if caption is None and "caption" not in out and sidecar.is_file():  # preprocess's sidecar captions
            caption = sidecar.read_text(encoding="utf-8").strip()
        if caption is not None:
            out["caption"] = caption
        rows.append(out)
    return pairs, write_manifest(Path(pairs_file), rows)
