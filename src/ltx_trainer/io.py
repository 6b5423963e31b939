"""Atomic, reproducible file writes: the one place every layer writes through.

Every file the tool produces (cache samples, checkpoints, LoRAs, manifests, reports, clips) is written to a hidden
temporary file in the destination directory, flushed and fsynced, then renamed over the target, so a kill at any
moment leaves either the old file or the new one, never a torn one. Temporary names share one pattern
(``.<name>.tmp.<pid>.<token>``) so :func:`clean_stale_temps` can remove what a killed process left behind without
touching a live writer's file. Files are created ``0644`` (subject to the umask) and safetensors headers are written
with sorted keys so two identical runs produce identical bytes.

A full disk becomes :class:`DiskFullError` naming the device, the path and the size needed; the partial file is
removed and the previous file, if any, stays in place.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

FILE_MODE = 0o644
TEMP_PATTERN = re.compile(r"^\..+\.tmp\.(\d+)\.[0-9a-f]{8}(\.[A-Za-z0-9]+)?$")
SAFETENSORS_TEMP = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")  # Rust tempfile's NamedTempFile (safetensors 0.8 save_file)


class DiskFullError(OSError):
    """No space left while writing a file; the message names the device, the path and roughly what was needed."""


def temp_path(path: Path) -> Path:
    """A hidden temporary path next to ``path`` that keeps its suffix (muxers pick the format from it)."""
    return path.with_name(f".{path.name}.tmp.{os.getpid()}.{uuid.uuid4().hex[:8]}{path.suffix}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened for fsync
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _device_of(path: Path) -> str:
    """The mount point holding ``path`` (for the disk-full message)."""
    probe = path.resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    while not os.path.ismount(probe) and probe != probe.parent:
        probe = probe.parent
    return str(probe)


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # torch's zip writer raises RuntimeError("... file write failed") without an errno
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("no space left" in text or "file write failed" in text)


@contextlib.contextmanager
def atomic_path(path: Path, size_hint: int | None = None) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` through; on success fsync, chmod 0644 and rename it into place.

    On any failure the temporary file is removed and ``path`` is left as it was. ``size_hint`` (bytes) is only used
    in the disk-full message.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        tmp.chmod(FILE_MODE & ~_umask())
        tmp.replace(path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if _is_disk_full(exc):
            need = f" (needs ~{size_hint / 2**20:.0f} MB)" if size_hint else ""
            raise DiskFullError(
                errno.ENOSPC, f"no space left on {_device_of(path.parent)} while writing {path}{need}"
            ) from exc
        raise


@contextlib.contextmanager
def atomic_directory(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder to build ``path`` in; on success it is renamed into place (an existing ``path`` is
    replaced only with ``overwrite``, and removed after the new one is in place). On failure the temporary folder is
    removed and ``path`` is left as it was.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    import shutil

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(errno.EEXIST, "exists", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}.{uuid.uuid4().hex[:8]}")
            path.rename(old)
        tmp.rename(path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_disk_full(exc):
            where = _device_of(path.parent)
            raise DiskFullError(errno.ENOSPC, f"no space left on {where} while writing {path}") from exc
        raise


def atomic_write(path: Path, write: Callable[[Path], Any], size_hint: int | None = None) -> Path:
    """Write ``path`` atomically by calling ``write(tmp_path)``."""
    with atomic_path(path, size_hint) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), len(data))


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any, indent: int | None = 2) -> Path:
    """JSON with sorted keys; non-finite floats are refused (they are not JSON)."""
    return atomic_write_text(path, json.dumps(data, indent=indent, sort_keys=True, allow_nan=False) + "\n")


def _tensor_bytes(tensors: dict[str, Any]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


def atomic_save_safetensors(tensors: dict[str, Any], path: Path, metadata: dict[str, str] | None = None) -> Path:
    """A safetensors file with tensors and metadata in sorted key order (byte-reproducible)."""
    from safetensors.torch import save_file

    ordered = {k: tensors[k].contiguous() for k in sorted(tensors)}

    def write(tmp: Path) -> None:
        save_file(ordered, str(tmp), metadata=metadata or None)
        _sort_safetensors_header(tmp)

    return atomic_write(path, write, _tensor_bytes(ordered))


def _sort_safetensors_header(path: Path) -> None:
    """Rewrite a safetensors header in place with sorted keys.

    The Rust writer serialises the metadata from a hash map, so two identical saves can differ in header order. The
    sorted compact JSON has exactly the original length, so tensor offsets are untouched.
    """
    with open(path, "r+b") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        if len(text) > size:  # cannot happen for the writer's own compact JSON; keep the file as written
            return
        f.seek(8)
        f.write(text + b" " * (size - len(text)))


# safetensors' on-disk dtype names, and the order its writer lays tensors out in (highest first, then by name).
_SAFETENSORS_DTYPES = (
    ("bool", "BOOL"),
    ("uint8", "U8"),
    ("int8", "I8"),
    ("float8_e5m2", "F8_E5M2"),
    ("float8_e4m3fn", "F8_E4M3"),
    ("int16", "I16"),
    ("float16", "F16"),
    ("bfloat16", "BF16"),
    ("int32", "I32"),
    ("float32", "F32"),
    ("float64", "F64"),
    ("int64", "I64"),
)


def atomic_save_safetensors_streamed(
    entries: dict[str, tuple[Any, tuple[int, ...], Callable[[], Any]]],
    path: Path,
    metadata: dict[str, str] | None = None,
) -> Path:
    """A safetensors file written one tensor at a time: ``entries`` maps each key to ``(torch dtype, shape, load)``
    and ``load()`` is called once, when that tensor's bytes are written, so at most one tensor is in memory.

    The bytes equal :func:`atomic_save_safetensors`'s for the same tensors and metadata (the safetensors writer's
    layout: data ordered by dtype, highest first, then by name; header JSON with sorted keys, space-padded to a
    multiple of 8). Used for checkpoints too large to hold twice (``ltx-trainer convert``).

    Raises:
        ValueError: a ``load()`` returned another dtype or shape than its entry declared.
    """
    import torch

    names = {getattr(torch, name): (rank, code) for rank, (name, code) in enumerate(_SAFETENSORS_DTYPES)}
    order = sorted(entries, key=lambda k: (-names[entries[k][0]][0], k))
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for key in order:
        dtype, shape, _ = entries[key]
        size = math.prod(shape) * dtype.itemsize
        header[key] = {"data_offsets": [offset, offset + size], "dtype": names[dtype][1], "shape": list(shape)}
        offset += size
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(len(text).to_bytes(8, "little") + text)
            for key in order:
                dtype, shape, load = entries[key]
                tensor = load()
                if tensor.dtype != dtype or tuple(tensor.shape) != tuple(shape):
                    raise ValueError(
                        f"{path}: tensor {key} is {tensor.dtype} {tuple(tensor.shape)}, declared {dtype} {tuple(shape)}"
                    )
                f.write(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
                del tensor

    return atomic_write(path, write, offset)


def read_json_lines(path: Path) -> list[dict]:
    """The JSON-object lines of a log such as ``metrics.jsonl``; unparseable ones (a line torn by a kill) skipped."""
    if not Path(path).is_file():
        return []
    out = []
    for line in Path(path).read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                out.append(record)
    return out


def atomic_torch_save(obj: object, path: Path, size_hint: int | None = None) -> Path:
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp), size_hint)


def clean_stale_temps(directory: Path, recursive: bool = True, locked: bool = False) -> list[Path]:
    """Remove temporary files left by processes that no longer run; returns what was removed.

    Temps of a live process (this one included) are kept: they belong to a writer that is still working.
    ``locked``: the caller holds the directory's run lock, so no other process writes there; then the temps of
    safetensors' own writer (``.tmpXXXXXX``, which it renames onto our temp path: it names no process) go too.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    candidates = directory.rglob(".*tmp*") if recursive else directory.glob(".*tmp*")
    for candidate in candidates:
        if not candidate.is_file():
            continue
        match = TEMP_PATTERN.match(candidate.name)
        if match is None and not (locked and SAFETENSORS_TEMP.match(candidate.name)):
            continue
        if match is not None and _pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            candidate.unlink()
            removed.append(candidate)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
