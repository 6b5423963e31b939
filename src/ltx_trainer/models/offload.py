"""Block offload: the frozen weights of N transformer blocks live in host RAM (pinned on CUDA) and visit the training
device just ahead of use, on a side CUDA stream, in forward, in the gradient-checkpoint recompute and in backward.

Why our own hooks (diffusers' group offloading was evaluated first, see docs/architecture.md "Block offload"): its
streamed mode restores every parameter of a group from a snapshot taken when the hooks are attached, so trainable LoRA
weights on an offloaded block would be reset to their initial values at every offload; its unstreamed mode moves the
LoRA weights to the CPU while their gradients stay on the GPU; and it has no backward hooks, so a parameter that
autograd saved by reference (the RMSNorm weights of q/k norms) is on the CPU when the block's backward reads it. Here
only frozen tensors move (``param.data`` swapped for a device copy and back), trainable ones stay on the device, and a
gradient hook on each block's output brings the block in before its backward (prefetching the one before it).

The rule is simple: at any time at most the block being run and the one prefetched for the next are resident; the
rest point at their host copies. Without gradient checkpointing the autograd graph would keep every block's device
copy alive until backward, so training requires checkpointing (the config says so at load).
"""

from collections.abc import Sequence
from contextlib import nullcontext
from functools import partial

import torch
from torch import nn

from ltx_trainer import logger
from ltx_trainer.errors import UsageError

KEY = "acceleration.blocks_to_swap"


def resolve_blocks_to_swap(value: int | str, num_blocks: int) -> int:
    """``12`` or ``"50%"`` -> a block count in ``[0, num_blocks]`` (percentages round to the nearest block).

    Raises:
        UsageError: a negative count or more blocks than the model has (one line naming the key).
    """
    count = round(num_blocks * float(value.strip().rstrip("%")) / 100) if isinstance(value, str) else int(value)
    if count < 0 or count > num_blocks:
        raise UsageError(
            f"{KEY}: {value!r} but the model has {num_blocks} transformer blocks; use 0..{num_blocks} or a percentage"
        )
    return count


def _tensors(output: object) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _tensors(item)]
    return []


class BlockOffloader:
    """Keeps the last ``count`` of ``blocks`` in host memory and brings each to ``device`` just ahead of use.

    Args:
        transformer: the module whose forward runs ``blocks`` in order (its forward pre-hook marks a new pass).
        blocks: the repeated transformer blocks in execution order.
        count: how many (the last ones) are offloaded.
        device: the training device; with ``cpu`` the moves still happen (copies), which the tests count.

    Attributes:
        onloads / offloads: block moves so far (each moves every frozen tensor of the block).
    """

    def __init__(self, transformer: nn.Module, blocks: Sequence[nn.Module], count: int, device: torch.device | str):
        self.transformer = transformer
        self.blocks = list(blocks)
        self.device = torch.device(device)
        self.swapped = set(range(len(self.blocks) - count, len(self.blocks)))
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.host: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.resident: dict[int, object] = {}  # block -> copy event not yet waited for (None once waited)
        self.onloads = self.offloads = 0
        self.backward = False  # between a block's first output gradient and the next forward
        self.handles: list = []

    # ---- placement -------------------------------------------------------------------------------------------------
    def attach(self) -> "BlockOffloader":
        """Move the offloaded blocks' frozen tensors to host memory, everything else to the device; add the hooks."""
        moved: set[int] = set()
        for i in sorted(self.swapped):
            pairs = []
            block = self.blocks[i]
            frozen = [p for p in block.parameters() if not p.requires_grad] + list(block.buffers())
            for tensor in frozen:
                host = tensor.data.to("cpu")
                if self.cuda:
                    host = host.pin_memory()
                tensor.data = host
                pairs.append((tensor, host))
                moved.add(id(tensor))
            self.host[i] = pairs
        for tensor in [*self.transformer.parameters(), *self.transformer.buffers()]:
            if id(tensor) not in moved and tensor.device != self.device:
                tensor.data = tensor.data.to(self.device)
        self.handles.append(self.transformer.register_forward_pre_hook(self._new_pass))
        for i, block in enumerate(self.blocks):
            self.handles.append(block.register_forward_pre_hook(partial(self._before_block, i)))
            self.handles.append(block.register_forward_hook(partial(self._after_block, i)))
        host_bytes = sum(h.numel() * h.element_size() for pairs in self.host.values() for _, h in pairs)
        logger.info(
            "%s: %d of %d transformer blocks kept in host memory (%.2f GiB%s), brought to %s ahead of use",
            KEY,
            len(self.swapped),
            len(self.blocks),
            host_bytes / 2**30,
            ", pinned" if self.cuda else "",
            self.device,
        )
        return self

    def detach(self) -> None:
        """Remove the hooks and bring every block back to the device."""
        for handle in self.handles:
            handle.remove()
        self.handles = []
        for i in sorted(self.swapped):
            self._ensure(i)
        self.swapped = set()

    # ---- moves -----------------------------------------------------------------------------------------------------
    def _onload(self, index: int) -> None:
        if index not in self.swapped or index in self.resident:
            return
        with torch.cuda.stream(self.stream) if self.cuda else nullcontext():
            for tensor, host in self.host[index]:
                tensor.data = host.to(self.device, non_blocking=self.cuda, copy=True)
            event = None
            if self.cuda:
                event = torch.cuda.Event()
                event.record(self.stream)
        self.resident[index] = event if self.cuda else None
        self.onloads += 1

    def _offload(self, index: int) -> None:
        for tensor, host in self.host[index]:
            tensor.data = host  # frozen: the host copy is still exact; the device copy is freed
        del self.resident[index]
        self.offloads += 1

    def _ensure(self, index: int) -> None:
        """``index`` resident and ready on the compute stream."""
        if index not in self.swapped:
            return
        self._onload(index)
        event = self.resident[index]
        if event is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(event)
            for tensor, _ in self.host[index]:
                tensor.data.record_stream(stream)  # freed only once the compute stream is done with it
            self.resident[index] = None

    def _keep_only(self, keep: set[int]) -> None:
        for index in [i for i in self.resident if i not in keep]:
            self._offload(index)

    # ---- hooks -----------------------------------------------------------------------------------------------------
    def _new_pass(self, module: nn.Module, args: tuple) -> None:
        self.backward = False

    def _before_block(self, index: int, module: nn.Module, args: tuple) -> None:
        if self.backward:  # gradient-checkpoint recompute: the gradient hook already brought the block in
            self._ensure(index)
            return
        self._keep_only({index, index + 1})
        self._ensure(index)
        self._onload(index + 1)  # prefetch, overlapping this block's compute

    def _after_block(self, index: int, module: nn.Module, args: tuple, output: object) -> None:
        if self.backward or not torch.is_grad_enabled():
            return
        for tensor in _tensors(output):
            if tensor.requires_grad:
                tensor.register_hook(partial(self._before_block_backward, index))

    def _before_block_backward(self, index: int, grad: torch.Tensor) -> None:
        self.backward = True
        self._keep_only({index, index - 1})
        self._ensure(index)
        self._onload(index - 1)  # prefetch the next block of the backward pass


def enable_block_offload(
    transformer: nn.Module, blocks: Sequence[nn.Module], value: int | str, device: torch.device | str
) -> BlockOffloader | None:
    """Offload ``value`` blocks (a count or a percentage) of ``transformer``; None when that is 0.

    Only frozen tensors move: trainable (LoRA) weights and their gradients stay on ``device``.
    """
    count = resolve_blocks_to_swap(value, len(blocks))
    if count == 0:
        return None
    return BlockOffloader(transformer, blocks, count, device).attach()
