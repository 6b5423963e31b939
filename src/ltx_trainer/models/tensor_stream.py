"""Checkpoint tensors planned by name and written one at a time: the machinery under ``ltx-trainer convert``.

A conversion is a plan, ``{output key: Ref | Tensor}``: a :class:`Ref` names a tensor still in a source file (a key
renamed by the ``formats/`` converters stays a reference to its source tensor), a tensor is one built in memory (the
few the converters create). :func:`entries` turns a plan into what ``io.atomic_save_safetensors_streamed`` writes,
reading each source tensor only when its bytes are written, so a 40 GB checkpoint is converted with about one tensor
in memory, never two copies of the model.

Output dtypes (``--dtype``): ``keep`` (as stored), ``bf16``, ``fp32``, ``fp8`` (single files only: the released
pre-quantized layout, ``models.quantization``: e4m3 block linears with fp32 ``weight_scale`` / ``input_scale``, every
other floating tensor bf16). An fp8 source is dequantized (``weight * weight_scale``) wherever its layout is not kept.
A ``transform`` (merging a LoRA) gets a weight in float32 and returns the new float32 weight; a transformed fp8
weight is quantized again with a fresh scale.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from ltx_trainer.models.quantization import FP8, FP8_DTYPES, INPUT_SCALE, WEIGHT_SCALE, quantize_fp8_file_tensors

DTYPES = ("keep", "bf16", "fp32", "fp8")
_TORCH = {"bf16": torch.bfloat16, "fp32": torch.float32}
_SAFETENSORS = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
                "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I64": torch.int64,
                "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                "BOOL": torch.bool}  # fmt: skip
# The reader reopens a file after this many bytes, so the pages already read leave the process (models/loading.py):
# a mapping keeps every page touched resident. Measured on a 2.9 GB file: 1 GiB gave a 1.9 GB peak RSS, 256 MiB 1.3 GB.
_REOPEN_BYTES = 1 << 28
CPU = torch.device("cpu")
Entry = tuple[torch.dtype, tuple[int, ...], Callable[[], torch.Tensor]]


@dataclass(frozen=True)
class Ref:
    """A tensor in a safetensors file, not read yet. ``dtype`` and ``device`` let converters that build tensors
    "like" another one (``torch.zeros(shape, dtype=like.dtype, device=like.device)``) work on references."""

    path: Path
    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device = CPU

    @property
    def nbytes(self) -> int:
        return int(torch.Size(self.shape).numel()) * self.dtype.itemsize


Value = Ref | torch.Tensor


def file_refs(path: Path, prefixes: str | tuple[str, ...] = "") -> dict[str, Ref]:
    """References to every tensor of a safetensors file whose key starts with one of ``prefixes`` (nothing read)."""
    with safe_open(path, "pt") as f:
        out = {}
        for key in f.keys():
            if key.startswith(prefixes):
                s = f.get_slice(key)
                out[key] = Ref(Path(path), key, tuple(s.get_shape()), _SAFETENSORS[s.get_dtype()])
        return out


def folder_refs(folder: Path) -> dict[str, Ref]:
    """References to every tensor of the ``*.safetensors`` shards of a diffusers component folder."""
    out: dict[str, Ref] = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        out.update(file_refs(file))
    return out


class Reader:
    """Reads referenced tensors, keeping each file open until ``_REOPEN_BYTES`` were read from it."""

    def __init__(self) -> None:
        self._open: dict[Path, tuple[object, int]] = {}

    def __call__(self, value: Value) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            return value
        handle, used = self._open.get(value.path, (None, 0))
        if handle is None or used > _REOPEN_BYTES:
            handle, used = safe_open(value.path, "pt"), 0
        self._open[value.path] = (handle, used + value.nbytes)
        return handle.get_tensor(value.key)


def meta_tensors(plan: dict[str, Value]) -> dict[str, torch.Tensor]:
    """Shape-only stand-ins (meta device) for a plan's values, for rules that look at shapes."""
    return {k: torch.empty(shape_of(v), dtype=dtype_of(v), device="meta") for k, v in plan.items()}


def shape_of(value: Value) -> tuple[int, ...]:
    return tuple(value.shape)


def dtype_of(value: Value) -> torch.dtype:
    return value.dtype


def fp8_pairs(plan: dict[str, Value]) -> set[str]:
    """Weight keys of ``plan`` stored in fp8 with a ``weight_scale`` next to them (the pre-quantized layout)."""
    return {
        k
        for k, v in plan.items()
        if k.endswith(".weight") and dtype_of(v) in FP8_DTYPES and k.removesuffix(".weight") + WEIGHT_SCALE in plan
    }


def _is_scale(key: str) -> bool:
    return key.endswith((WEIGHT_SCALE, INPUT_SCALE))


def entries(
    plan: dict[str, Value],
    dtype: str,
    reader: Reader,
    single_file: bool,
    fp8_keys: Iterable[str] = (),
    transforms: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
) -> dict[str, Entry]:
    """What to write for ``plan`` in output ``dtype`` (see the module docstring): ``{key: (dtype, shape, load)}``.

    Args:
        single_file: the output is an official single file (the only place fp8 layouts are kept or written).
        fp8_keys: with ``dtype="fp8"``, the weights to store in e4m3 (``models.quantization``'s rule).
        transforms: weight key -> float32 weight -> new float32 weight (applied before the output dtype).

    Raises:
        ValueError: fp8 asked for a diffusers folder.
    """
    if dtype not in DTYPES:
        raise ValueError(f"output dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype == "fp8" and not single_file:
        raise ValueError("fp8 is written only as an official single file (diffusers folders have no fp8 layout)")
    transforms = transforms or {}
    pairs = fp8_pairs(plan)
    fp8_keys = set(fp8_keys) if dtype == "fp8" else set()
    out: dict[str, Entry] = {}
    for key, value in plan.items():
        if _is_scale(key):
            continue  # written with their weight below (or dropped with a dequantized one)
        stored, is_pair, transform = dtype_of(value), key in pairs, transforms.get(key)
        fp8_out = single_file and (key in fp8_keys or (dtype == "keep" and is_pair))
        if fp8_out and is_pair and transform is None:  # the stored fp8 layout, copied
            for name in (key, key.removesuffix(".weight") + WEIGHT_SCALE, key.removesuffix(".weight") + INPUT_SCALE):
                if name in plan:
                    out[name] = (dtype_of(plan[name]), shape_of(plan[name]), _loader(reader, plan[name]))
        elif fp8_out:
            out.update(_quantized(key, plan, reader, transform, is_pair))
        else:
            out[key] = _cast_entry(key, plan, reader, _target_dtype(stored, dtype, is_pair), transform, is_pair)
    return out


def _target_dtype(stored: torch.dtype, dtype: str, dequantized: bool) -> torch.dtype:
    if not stored.is_floating_point:
        return stored
    if dtype in _TORCH:
        return _TORCH[dtype]
    if dtype == "fp8" or dequantized:
        return torch.bfloat16  # the released fp8 files keep everything else in bf16
    return stored


def _loader(reader: Reader, value: Value) -> Callable[[], torch.Tensor]:
    return lambda: reader(value)


def _full_weight(key: str, plan: dict[str, Value], reader: Reader, dequantize: bool) -> torch.Tensor:
    """The weight in float32 (an fp8 one times its scale)."""
    weight = reader(plan[key]).float()
    if dequantize:
        weight = weight * reader(plan[key.removesuffix(".weight") + WEIGHT_SCALE]).float()
    return weight


def _cast_entry(
    key: str,
    plan: dict[str, Value],
    reader: Reader,
    target: torch.dtype,
    transform: Callable[[torch.Tensor], torch.Tensor] | None,
    dequantize: bool,
) -> Entry:
    value = plan[key]

    def load() -> torch.Tensor:
        if not dequantize and transform is None:
            tensor = reader(value)
            return tensor if tensor.dtype == target else tensor.to(target)
        weight = _full_weight(key, plan, reader, dequantize)
        return (transform(weight) if transform is not None else weight).to(target)

    return target, shape_of(value), load


def _quantized(
    key: str,
    plan: dict[str, Value],
    reader: Reader,
    transform: Callable[[torch.Tensor], torch.Tensor] | None,
    dequantize: bool,
) -> dict[str, Entry]:
    """The three fp8 entries of one weight. Each is computed on its own when written (the scales come first in the
    file), so no quantized weight waits in memory for its turn."""
    weight = key.removesuffix(".weight")

    def layout() -> dict[str, torch.Tensor]:
        full = _full_weight(key, plan, reader, dequantize)
        return quantize_fp8_file_tensors({key: transform(full) if transform is not None else full}, [key])

    return {
        key: (FP8, shape_of(plan[key]), lambda: layout()[key]),
        weight + WEIGHT_SCALE: (torch.float32, (), lambda: layout()[weight + WEIGHT_SCALE]),
        weight + INPUT_SCALE: (torch.float32, (), lambda: torch.ones(())),  # what quantize_fp8_file_tensors writes
    }
