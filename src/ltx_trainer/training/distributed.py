"""Scale-out through Accelerate: launching N processes, the world-size-free loss, step metrics over all ranks, and the
world a checkpoint was trained in.

Accelerate (on torch.distributed) does the work: DDP, FSDP2 or DeepSpeed are chosen by the ``accelerate launch``
config (``configs/accelerate/``), not by ltx-trainer. What this module adds is what makes a run's result independent
of the number of processes:

- the loss each rank back-propagates is ``sum(w * loss) * N / G``, with ``w`` the sample weights of its shard (0 for
  padding, see ``BucketBatchSampler``) and ``G`` the number of real samples in the global micro-batch; averaged by
  DDP/FSDP over N ranks this is the mean over the global batch, exactly what 1 process with the whole batch computes,
  also for a short last batch;
- the logged loss (and its per-modality and per-sigma parts) is computed from every rank's samples (gathered), so it
  is the all-reduced mean, identical to the 1-process value up to reduction order;
- a checkpoint records the global batch it was trained with; a resume with another global batch is refused in one
  line (the data order and the noise keys would differ), one with the same global batch works with any world size.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from ltx_trainer import logger
from ltx_trainer.errors import UsageError


def launched() -> bool:
    """Whether this process was started by ``accelerate launch`` or ``torchrun`` (so it must not launch again)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or "LOCAL_RANK" in os.environ


def launch_command(
    config: Path, num_processes: int, accelerate_config: Path | None = None, cpu: bool | None = None
) -> list[str]:
    """The ``accelerate launch`` command line that runs ``ltx-trainer train CONFIG`` in ``num_processes`` processes
    (gloo processes on the CPU when no CUDA device is visible, ``cpu`` None)."""
    if cpu is None:
        cpu = not torch.cuda.is_available()
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config is not None:
        command += ["--config_file", str(accelerate_config)]
    else:
        # --multi_gpu selects torch's elastic launcher, also without a GPU: accelerate 1.15's --cpu would start ONE
        # process (its CPU launcher needs mpirun); the trainer then joins the ranks in a gloo group itself.
        command += ["--num_machines", "1", "--dynamo_backend", "no", "--mixed_precision", "no"]
        command += ["--multi_gpu"] if num_processes > 1 else (["--cpu"] if cpu else [])
    command += ["--num_processes", str(num_processes), "-m", "ltx_trainer.cli", "train", str(config)]
    return command


def launch(config: Path, num_processes: int, accelerate_config: Path | None = None) -> int:
    """Start ``num_processes`` training processes through Accelerate and wait; returns the job's exit code.

    A rank that fails (an exception, a kill) makes torch's elastic agent stop the others: the job ends with a non-zero
    code and the failing rank's error on stderr, never a hang.
    """
    if num_processes < 1:
        raise UsageError(f"--num-processes {num_processes}: must be 1 or more")
    if launched():
        raise UsageError("--num-processes given inside a launched job (accelerate launch / torchrun): drop it")
    if accelerate_config is not None and not Path(accelerate_config).is_file():
        raise UsageError(f"--accelerate-config {accelerate_config}: no such file")
    command = launch_command(Path(config), num_processes, accelerate_config)
    logger.info("launching %d processes: %s", num_processes, " ".join(command))
    return subprocess.run(command, check=False).returncode


def make_accelerator(mixed_precision: str):
    """The run's ``Accelerator``. Processes started by torchrun / ``accelerate launch --multi_gpu`` on a machine
    without CUDA join one gloo group (Accelerate only does so when told ``cpu=True``; otherwise every rank would
    silently train alone). A single process starts from a fresh Accelerate state: its state is process-global, and a
    second run in the same process (a notebook, the bench's tiers) with another precision would otherwise be refused."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if not launched():
        AcceleratorState._reset_state(reset_partial_state=True)
    cpu = launched() and not torch.cuda.is_available()
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        step_scheduler_with_optimizer=False,
        cpu=cpu,
        kwargs_handlers=kwargs_handlers(),
    )
    if cpu and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        fsdp_on_cpu(accelerator, mixed_precision)
    return accelerator


def fsdp_on_cpu(accelerator, mixed_precision: str) -> None:
    """CPU FSDP2, for testing and debugging: turn on the FSDP the launch config asked for in gloo processes.

    torch's ``fully_shard`` runs on a CPU mesh with gloo, but Accelerate 1.15 only selects FSDP for GPU-like process
    groups (``AcceleratorState.__init__``: the FSDP branch is under MULTI_GPU/NPU/XPU/...; MULTI_CPU silently falls
    back to plain data parallel). This sets on Accelerate's state what that branch sets: the plugin Accelerate builds
    from the launch config's ``FSDP_*`` variables, and ``DistributedType.FSDP`` (also on ``PartialState``, as
    ``AcceleratorState.__init__`` does last: every later ``AcceleratorState()`` copies it from there). Accelerate's
    own ``prepare`` (``fsdp2_prepare_model``), clipping and ``get_state_dict`` then do the work, as on GPUs.
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables `accelerate launch` set
    if plugin.fsdp_version != 2:
        raise UsageError(
            f"fsdp_version {plugin.fsdp_version} on the CPU: only FSDP2 runs there (testing, debugging); set "
            "fsdp_config.fsdp_version: 2 in the accelerate config (configs/accelerate/fsdp2.yaml)"
        )
    if mixed_precision != "no":
        plugin.set_mixed_precision(mixed_precision)
    accelerator.state.fsdp_plugin = plugin
    accelerator.state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP  # as AcceleratorState.__init__ ends
    logger.info("FSDP2 on the CPU (gloo): for testing and debugging; GPUs are where it saves memory")


def kwargs_handlers() -> list:
    """Accelerate settings for the wrapped model: DDP tolerates parameters without a gradient in a step (LoRA on
    audio layers while a step trains video only, a frozen modality), at the cost of one extra graph walk per step."""
    from accelerate.utils import DistributedDataParallelKwargs

    return [DistributedDataParallelKwargs(find_unused_parameters=True)]


def prepared_trainable(optimizer) -> list[torch.nn.Parameter]:
    """The trainable parameters after ``accelerator.prepare``: FSDP2 replaces each by a sharded one (DTensor) and
    points the optimizer at it, so clipping must take them from the optimizer, not from before the wrap."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def world_loss(loss: torch.Tensor, weights: torch.Tensor, global_count: int, num_processes: int) -> torch.Tensor:
    """This rank's share of the global mean loss (see the module docstring); ``loss`` and ``weights`` are ``[b]``."""
    return (loss * weights.to(loss.dtype)).sum() * (num_processes / max(global_count, 1))


def gather_step(
    accelerator,
    losses: list[torch.Tensor],
    weights: list[torch.Tensor],
    parts: dict[str, list[torch.Tensor]],
    sigmas: list[torch.Tensor],
) -> dict[str, torch.Tensor]:
    """A step's per-sample values over every micro-batch and every rank (rank order), on every rank.

    Returns ``loss``, ``weight``, ``loss_<modality>`` and, when every micro-batch had one, ``sigma``: ``[N * n]``.
    """
    out = {"loss": torch.cat(losses).float(), "weight": torch.cat(weights).float()}
    out.update({f"loss_{name}": torch.cat(values).float() for name, values in parts.items()})
    if sigmas and len(sigmas) == len(losses):
        out["sigma"] = torch.cat(sigmas).float()
    if accelerator.num_processes == 1:
        return out
    return {name: accelerator.gather(t.contiguous()) for name, t in out.items()}


def real_ids(accelerator, ids: list[list[str]], real: torch.Tensor) -> list[str]:
    """The ids of every rank's real (not padding) samples of a step, in the order of :func:`gather_step`'s tensors."""
    flat = [i for batch_ids in ids for i in batch_ids]
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        flat = list(gather_object(flat))
    return [i for i, keep in zip(flat, real.tolist(), strict=True) if keep]


def world_record(num_processes: int, batch_size: int) -> dict:
    """What a training state records about the processes that wrote it."""
    return {"num_processes": num_processes, "batch_size": batch_size, "global_batch": num_processes * batch_size}


def check_world(path: Path, saved: dict | None, num_processes: int, batch_size: int) -> bool:
    """Refuse (one line) a resume whose global batch differs from the checkpoint's.

    Returns True when the per-rank batch size changed with the world size but the global batch did not (a change of
    ``optimization.batch_size`` the resume may then take).
    """
    saved = saved or world_record(1, batch_size)
    now = world_record(num_processes, batch_size)
    if saved["global_batch"] != now["global_batch"]:
        raise UsageError(
            f"{path}: trained with {saved['num_processes']} process(es) x batch {saved['batch_size']} "
            f"(global batch {saved['global_batch']}), now {num_processes} x {batch_size} = {now['global_batch']}: "
            "resume with the same global batch (e.g. ltx-trainer train CONFIG --num-processes "
            f"{saved['num_processes']}), or start a new output_dir"
        )
    if saved["num_processes"] != num_processes:
        logger.info(
            "resuming a %d-process checkpoint with %d process(es): same global batch %d, same data order and noise",
            saved["num_processes"],
            num_processes,
            now["global_batch"],
        )
    return saved["batch_size"] != batch_size


def positions(micro: int, global_batch: int, rank: int, batch_size: int, count: int) -> Sequence[int]:
    """Global positions, within the optimizer step, of this rank's ``count`` samples of micro-batch ``micro``."""
    return [micro * global_batch + rank * batch_size + j for j in range(count)]


def sharded(accelerator) -> bool:
    """Whether the model's weights are split between the ranks (FSDP, DeepSpeed ZeRO-3)."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        return True
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return accelerator.state.deepspeed_plugin.zero_stage == 3
    return False


def gathered_weights(accelerator, model: torch.nn.Module, adapter: str | None) -> dict[str, torch.Tensor] | None:
    """A sharded model's full weights, gathered by Accelerate (every rank must call this; FSDP2: full state dict
    streamed tensor by tensor into host memory, ``cpu_offload``); None when nothing is sharded (read the module).

    With ``adapter`` (a LoRA run) only the adapter's tensors, in peft naming (``<module>.lora_A.weight``).
    """
    if not sharded(accelerator):
        return None
    from ltx_trainer.training.adapters import is_adapter_key

    state = accelerator.get_state_dict(model)
    if adapter is not None:
        state = {_peft_name(k, adapter): v.float() for k, v in state.items() if is_adapter_key(k)}
    return state


def gathered_optimizer(accelerator, model: torch.nn.Module, optimizer, full: bool) -> dict | None:
    """Under FSDP2 (and ``full``), the whole optimizer state, gathered into host memory and keyed by parameter name
    (every rank must call this; the main process gets it); None otherwise (``optimizer.state_dict()`` is whole).

    Keyed by name, not by shard, it is the same for any number of processes: a resume scatters it again
    (:func:`load_trained`). For a full fine-tune this is 12 bytes per parameter in the main process's host memory."""
    if not (full and accelerator.is_fsdp2):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, _inner(optimizer), options=options)


def load_trained(accelerator, model: torch.nn.Module, state: dict, adapter: str | None, optimizer) -> None:
    """Put a training state's weights and optimizer state into the prepared ``model`` and ``optimizer``.

    Under FSDP2 every rank scatters the full weights and optimizer state to its shards (``set_model_state_dict`` /
    ``set_optimizer_state_dict`` of torch.distributed.checkpoint); an optimizer state saved without FSDP2 (indexed by
    position) is first named. Otherwise the weights load as saved, and an FSDP2 state's named optimizer state is
    loaded by name: checkpoints move between DDP, FSDP2 and any number of processes.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    from ltx_trainer.training.adapters import is_adapter_key, load_lora_state_dict

    weights, moments = state["trainable"], state["optimizer"]
    if accelerator.is_fsdp2:
        if adapter is not None:  # peft naming (gathered_weights) -> the module's own keys
            names = {_peft_name(k, adapter): k for k in model.state_dict() if is_adapter_key(k)}
            weights = {names[k]: v for k, v in weights.items()}
        options = StateDictOptions(full_state_dict=True, strict=adapter is None)
        set_model_state_dict(model, weights, options=options)
    elif adapter is not None:
        load_lora_state_dict(model, weights)
    else:
        model.load_state_dict(weights)
    if moments is None:
        return
    by_name = all(isinstance(k, str) for k in moments["state"])
    if accelerator.is_fsdp2:
        options = StateDictOptions(full_state_dict=True)
        named = moments if by_name else _named_optimizer_state(model, optimizer, moments)
        set_optimizer_state_dict(model, _inner(optimizer), named, options=options)
    elif by_name:
        set_optimizer_state_dict(model, _inner(optimizer), moments)
    else:
        optimizer.load_state_dict(moments)


def _named_optimizer_state(model: torch.nn.Module, optimizer, moments: dict) -> dict:
    """``optimizer.state_dict()`` (parameters by position) keyed by parameter name instead, as FSDP2 loads it."""
    names = {id(p): n for n, p in model.named_parameters()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    groups = [{**g, "params": [order[i] for i in g["params"]]} for g in moments["param_groups"]]
    return {"state": {order[i]: v for i, v in moments["state"].items()}, "param_groups": groups}


def _inner(optimizer):
    """The torch optimizer inside Accelerate's wrapper (torch.distributed.checkpoint wants its own type)."""
    return getattr(optimizer, "optimizer", optimizer)


def _peft_name(key: str, adapter: str) -> str:
    """A module state-dict key in ``get_peft_model_state_dict``'s naming, without the adapter name
    (``lora_A.default.weight`` -> ``lora_A.weight``, ``lokr_w1.default`` -> ``lokr_w1``, DoRA's
    ``lora_magnitude_vector.default.weight`` -> ``lora_magnitude_vector``)."""
    key = key.replace(f".{adapter}.", ".").removesuffix(f".{adapter}")
    return key.removesuffix(".weight") if key.endswith("lora_magnitude_vector.weight") else key
