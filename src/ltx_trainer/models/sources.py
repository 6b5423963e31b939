"""Read tensors from the two on-disk layouts users have: official single files and diffusers folders; write the
official single file (``write_single_file``: every model, tiny or real, writes through it)."""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ltx_trainer.io import atomic_save_safetensors
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats.common import StateDict


@dataclass(frozen=True)
class TensorRef:
    """A tensor still on disk: where it is and its shape. ``models.loading`` reads it when its block is loaded."""

    path: Path
    key: str
    shape: tuple[int, ...]


class SingleFile:
    """An official single-file checkpoint: tensors plus ``__metadata__`` (``config`` JSON, ``model_version``)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with safe_open(self.path, "pt") as f:
                self.metadata = f.metadata() or {}
                self.keys = list(f.keys())
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelLoadError(
                f"{self.path}: not a readable safetensors file ({e}). It may be truncated or corrupt: "
                "re-download it and compare its size with the source."
            ) from e
        try:
            self.config = json.loads(self.metadata.get("config", "{}"))
        except json.JSONDecodeError as e:
            raise ModelLoadError(f"{self.path}: the metadata 'config' is not valid JSON ({e})") from e

    def read(
        self, prefixes: str | Iterable[str], dtype: torch.dtype | None = None, keep: tuple[torch.dtype, ...] = ()
    ) -> StateDict:
        """All tensors whose key starts with one of ``prefixes`` (keys kept whole), floats cast to ``dtype`` except
        those stored in a ``keep`` dtype (fp8 weights of a pre-quantized checkpoint) and scalars."""
        prefixes = (prefixes,) if isinstance(prefixes, str) else tuple(prefixes)
        out = {}
        try:
            with safe_open(self.path, "pt") as f:
                for key in self.keys:
                    if key.startswith(prefixes):
                        t = f.get_tensor(key)
                        cast = dtype is not None and t.is_floating_point() and t.dtype not in keep
                        out[key] = t.to(dtype) if cast and not (keep and t.ndim == 0) else t
        except (SafetensorError, OSError) as e:
            raise ModelLoadError(f"{self.path}: reading tensors failed ({e}); the file is probably truncated") from e
        return out

    def refs(self, prefixes: str | Iterable[str]) -> dict[str, TensorRef]:
        """Like :meth:`read`, but nothing is read: references to stream from (keys kept whole)."""
        prefixes = (prefixes,) if isinstance(prefixes, str) else tuple(prefixes)
        try:
            with safe_open(self.path, "pt") as f:
                return {
                    k: TensorRef(self.path, k, tuple(f.get_slice(k).get_shape()))
                    for k in self.keys
                    if k.startswith(prefixes)
                }
        except (SafetensorError, OSError) as e:
            raise ModelLoadError(f"{self.path}: reading tensors failed ({e}); the file is probably truncated") from e

    def has(self, prefix: str) -> bool:
        return any(k.startswith(prefix) for k in self.keys)


def read_safetensors_dir(folder: Path, dtype: torch.dtype | None = None) -> StateDict:
    """Every ``*.safetensors`` shard in a diffusers component folder, merged."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"{folder}: no *.safetensors weights in this component folder")
    sd: StateDict = {}
    for file in files:
        sd.update(SingleFile(file).read(""))
    if dtype is not None:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    return sd


def safetensors_dir_refs(folder: Path) -> dict[str, TensorRef]:
    """References to every tensor of the ``*.safetensors`` shards of a diffusers component folder (nothing read)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"{folder}: no *.safetensors weights in this component folder")
    refs: dict[str, TensorRef] = {}
    for file in files:
        refs.update(SingleFile(file).refs(""))
    return refs


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise ModelLoadError(f"{path}: missing") from e
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{path}: invalid JSON ({e})") from e


def write_single_file(sd: StateDict, path: Path, metadata: dict[str, str], dtype: torch.dtype) -> Path:
    """Write an official single file (atomic): floating tensors cast to ``dtype``, the others as they are, and
    ``metadata`` as its ``__metadata__`` (``config`` JSON, ``model_version``, ...)."""
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
    return atomic_save_safetensors(tensors, Path(path), metadata)
