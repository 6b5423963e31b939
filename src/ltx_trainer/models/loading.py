"""Building a component on the meta device and filling it strictly from a state dict (every family uses this).

Streaming: when the state dict holds references to tensors still on disk (``sources.TensorRef``), the module is
filled one *loading unit* at a time, straight from the memory-mapped safetensors to the target device and dtype.
A unit is a top-level child of the module, except for the blocks of a ``ModuleList`` (``transformer_blocks.7``),
whose children are the units (``transformer_blocks.7.attn1``, ``...ff``): the largest unit of LTX-2.3 22B is one
feed-forward (0.27 GB in bf16), so quantizing each unit as it arrives keeps the host peak near the quantized model.
Parameters a block holds directly (its scale-shift tables) load as a unit of their own, without the hook.

``on_block(name, module)`` runs after each unit is filled (``name`` qualified, e.g. ``transformer_blocks.7.ff``):
the place to quantize or offload a unit before the next one is read. Without a hook, tensors that need no cast stay
on the file's mapping (zero copy, page cache: peak RSS 1.0x the file once touched). With a hook, the unit arrives in
the file's dtypes (a bf16 layer the hook quantizes never becomes a float32 copy first); after the hook, the plain
floating tensors it left are cast to ``dtype``, what is still on the mapping is copied, the file is reopened per
unit (a safetensors mapping stays alive, every page touched so far resident, while one tensor points into it) and
the C heap's freed pages go back to the system (``malloc_trim``: the quantizers' temporaries would add up otherwise).
"""

from collections.abc import Callable
from pathlib import Path

import diffusers
import torch
import transformers
from accelerate import init_empty_weights
from safetensors import safe_open
from torch import nn

from ltx_trainer.models.devices import release_freed_heap
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats.common import StateDict, check_nothing_meta, check_state_dict, load_state_dict_strict
from ltx_trainer.models.sources import TensorRef

# Tiny and local loads finish in milliseconds; the libraries' per-shard progress bars are only noise.
diffusers.utils.logging.disable_progress_bar()
transformers.utils.logging.disable_progress_bar()

BlockHook = Callable[[str, nn.Module], None]


def build_module(
    cls: type[nn.Module],
    config: dict,
    sd: StateDict | dict[str, TensorRef],
    source: str,
    component: str,
    file_key: Callable[[str], str] | None = None,
    frozen: bool = True,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    on_block: BlockHook | None = None,
) -> nn.Module:
    """Instantiate ``cls`` on the meta device from ``config`` and fill it strictly from ``sd``, in eval mode.

    Args:
        sd: tensors, or ``TensorRef`` values to stream from disk unit by unit (see the module docstring).
        file_key: diffusers key -> the key the file would hold it under; missing tensors are then also named that way.
        frozen: ``requires_grad_(False)`` on the result.
        dtype: floating tensors are cast to it as they are read (streaming only; tensors in ``sd`` are kept as given).
        device: where streamed tensors (and the module's buffers) go; None keeps them on the CPU.
        on_block: called per loading unit once it is filled (streaming only).
    """
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    with init_empty_weights():
        module = cls.from_config(config) if hasattr(cls, "from_config") else cls(**config)
    streaming = any(isinstance(v, TensorRef) for v in sd.values())
    try:
        if streaming:
            check_state_dict(module, sd, source, component)
        else:
            load_state_dict_strict(module, sd, source, component)
    except ModelLoadError as e:
        missing = sorted(set(module.state_dict()) - set(sd))
        if file_key is None or not missing:
            raise
        shown = ", ".join(file_key(k) for k in missing[:5])
        raise ModelLoadError(f"{e} In the file the missing tensor(s) are: {shown}.") from e
    if streaming:
        stream_into(module, sd, dtype, device, on_block)
        check_nothing_meta(module, source, component)
    module = module.eval()
    return module.requires_grad_(False) if frozen else module


def loading_unit(module: nn.Module, key: str) -> tuple[str, bool]:
    """(unit name, whether it is a whole module) of state-dict ``key`` in ``module`` (see the module docstring)."""
    parts = key.split(".")
    head = module._modules.get(parts[0])
    if isinstance(head, nn.ModuleList) and len(parts) > 3:
        block = head._modules.get(parts[1])
        if block is not None and parts[2] in block._modules:
            return ".".join(parts[:3]), True
        return ".".join(parts[:2]), False  # a parameter the block holds directly
    if head is not None and not isinstance(head, nn.ModuleList):
        return parts[0], True
    return ".".join(parts[:-1]), False  # the root's (or a list's) own tensors


def stream_into(
    module: nn.Module,
    sd: dict[str, TensorRef | torch.Tensor],
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    on_block: BlockHook | None = None,
) -> None:
    """Fill ``module`` (on the meta device) from ``sd`` one loading unit at a time, in state-dict order."""
    units: dict[tuple[str, bool], list[str]] = {}
    for key in module.state_dict():
        units.setdefault(loading_unit(module, key), []).append(key)
    for (name, whole), keys in units.items():
        hooked = on_block is not None
        tensors = _read_unit({k: sd[k] for k in keys}, None if hooked else dtype, device, own_mapping=hooked)
        target = module.get_submodule(name) if name else module
        prefix = f"{name}." if name else ""
        target.load_state_dict({k.removeprefix(prefix): v for k, v in tensors.items()}, strict=False, assign=True)
        del tensors
        if hooked:
            if whole:
                on_block(name, target)
            _finish_unit(target, dtype)  # what the hook kept must not pin the file's pages read so far
            release_freed_heap()
    if device is not None:  # non-persistent buffers (not in the file) were built on the CPU
        for name, buffer in list(module.named_buffers()):
            if buffer.device != torch.device(device):
                owner, _, leaf = name.rpartition(".")
                module.get_submodule(owner)._buffers[leaf] = buffer.to(device)


def _cast(t: torch.Tensor, dtype: torch.dtype | None, device: torch.device | str | None) -> torch.Tensor:
    return t.to(device=device, dtype=dtype if dtype is not None and t.is_floating_point() else t.dtype)


def _read_unit(
    sd: dict[str, TensorRef | torch.Tensor],
    dtype: torch.dtype | None,
    device: torch.device | str | None,
    own_mapping: bool = False,
) -> dict[str, torch.Tensor]:
    """The unit's tensors. The file is reopened per unit: the pages read so far are unmapped once no tensor points
    into the old mapping. ``own_mapping``: each tensor gets a mapping of its own, so the pages of a weight leave the
    process as soon as a hook replaced it (a quantized linear), not when its whole unit is done."""
    out = {k: _cast(v, dtype, device) for k, v in sd.items() if isinstance(v, torch.Tensor)}
    by_file: dict[Path, list[str]] = {}
    for k, v in sd.items():
        if isinstance(v, TensorRef):
            by_file.setdefault(v.path, []).append(k)
    for path, keys in by_file.items():
        for group in [[k] for k in keys] if own_mapping else [keys]:
            with safe_open(path, "pt") as f:
                for k in group:
                    out[k] = _cast(f.get_tensor(sd[k].key), dtype, device)
    return out


def _finish_unit(module: nn.Module, dtype: torch.dtype | None) -> None:
    """After the hook: the plain tensors of ``module`` in a full-precision dtype other than ``dtype`` are cast to it,
    those still on a file mapping are copied (quantized or fp8 ones were replaced, and stay as they are)."""
    for owner in module.modules():
        for store in (owner._parameters, owner._buffers):
            for name, t in store.items():
                if t is None or type(t.data) is not torch.Tensor:
                    continue
                if dtype is not None and t.dtype in _FULL_PRECISION and t.dtype != dtype:
                    data = t.data.to(dtype)
                elif t.device.type == "cpu" and _is_file_backed(t):
                    data = t.data.clone()
                else:
                    continue
                store[name] = nn.Parameter(data, t.requires_grad) if isinstance(t, nn.Parameter) else data


_FULL_PRECISION = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _is_file_backed(t: torch.Tensor) -> bool:
    # safetensors' zero-copy tensors sit on a storage whose allocator is not the CPU heap's; their storage is not
    # resizable, which the CPU allocator's always are
    return not t.untyped_storage().resizable()
