"""``model.load_checkpoint``: start a run from trained weights instead of a fresh LoRA (or the base transformer).

The official schema's key: a ``.safetensors`` file, or a directory whose latest ``*step_*.safetensors`` is used.

- LoRA mode: a LoRA file in any layout ``models.lora_files`` reads (ours/ComfyUI, diffusers, ``lora_down``/``up`` with
  ``.alpha``). Its products ``B @ A`` become the adapters' starting point: ``lora_B`` is stored divided by the run's
  ``alpha / rank`` so that the run's scaling reproduces them. The file's rank must equal ``lora.rank``; a module the
  config does not adapt is an error, a module the file lacks starts fresh (said once).
- Full mode: a complete checkpoint of the same model (``model_weights_step_*.safetensors`` of an earlier run, or any
  file ``load_model`` reads). Its transformer replaces the base's before the base's is ever loaded, so only one copy is
  in memory.

Only the weights are taken: the step count, optimizer and schedule start fresh. Resuming an interrupted run is a
different thing and needs no key: the trainer resumes from its own ``output_dir``, which then takes precedence.
"""

import re
from pathlib import Path

from torch import nn

from ltx_trainer import logger
from ltx_trainer.config import LoraConfig
from ltx_trainer.errors import UsageError
from ltx_trainer.models.base import LTXModel
from ltx_trainer.models.families import load_model
from ltx_trainer.models.lora_files import BASE_FAMILY_KEY, BASE_VERSION_KEY, read_lora
from ltx_trainer.training import adapters

KEY = "model.load_checkpoint"
_STEP = re.compile(r"step_(\d+)\.safetensors$")


def resolve(value: str | Path, training_mode: str) -> Path:
    """The weights file ``model.load_checkpoint`` names: the file itself, or a directory's highest-step file of the
    run's kind (``lora_weights_step_*`` / ``model_weights_step_*``, else any ``*step_*``)."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    found = [(int(m.group(1)), p) for p in path.rglob("*step_*.safetensors") if (m := _STEP.search(p.name))]
    kind = "lora_weights_step_" if training_mode == "lora" else "model_weights_step_"
    found = [f for f in found if f[1].name.startswith(kind)] or found
    if not found:
        raise UsageError(f"{KEY}: no *step_*.safetensors under {path}; name a weights file or a checkpoints folder")
    return max(found)[1]


def load_lora(transformer: nn.Module, model: LTXModel, path: Path, lora: LoraConfig) -> None:
    """Set the injected adapters of ``transformer`` to the LoRA in ``path`` (see the module docstring)."""
    try:
        found = read_lora(path, model.diffusers_module_name)
    except ValueError as e:
        raise UsageError(f"{KEY}: {e}") from e
    if found.modules:
        raise UsageError(
            f"{KEY}: {path} holds DoRA/LoKr/LoHa weights ({len(found.modules)} module(s)); a run starts from plain "
            "LoRA files only"
        )
    family = found.metadata.get(BASE_FAMILY_KEY)
    version = found.metadata.get(BASE_VERSION_KEY)
    if family and (family, version) != (model.spec.family, model.spec.version):
        raise UsageError(
            f"{KEY}: {path} was trained on {family} {version}, model.model_path is {model.spec.family} "
            f"{model.spec.version}"
        )
    current = adapters.lora_state_dict(transformer)
    adapted = {k.removesuffix(".lora_A.weight") for k in current if k.endswith(".lora_A.weight")}
    extra = sorted(set(found.pairs) - adapted)
    if extra:
        raise UsageError(
            f"{KEY}: {path} has LoRA weights for {len(extra)} module(s) lora.target_modules does not adapt "
            f"(e.g. {extra[0]}); add them to lora.target_modules"
        )
    ranks = {a.shape[0] for a, _ in found.pairs.values()}
    if ranks != {lora.rank}:
        raise UsageError(f"{KEY}: {path} has rank {sorted(ranks)}, the config lora.rank: {lora.rank}; make them equal")
    scale = lora.alpha / lora.rank
    sd = {}
    for module, (a, b) in found.pairs.items():
        sd[f"{module}.lora_A.weight"] = a.float()
        sd[f"{module}.lora_B.weight"] = b.float() / scale
    for key, value in sd.items():
        if value.shape != current[key].shape:
            raise UsageError(f"{KEY}: {path}: {key} is {list(value.shape)}, the model needs {list(current[key].shape)}")
    adapters.load_lora_state_dict(transformer, {**current, **sd})
    fresh = len(adapted) - len(found.pairs)
    logger.info(
        "%s: LoRA starts from %s (%d module(s)%s)",
        KEY,
        path,
        len(found.pairs),
        f"; {fresh} not in the file start fresh" if fresh else "",
    )


def use_transformer_of(model: LTXModel, path: Path) -> None:
    """Full mode: ``model``'s transformer becomes the one in the checkpoint at ``path`` (same family, version and
    size), loaded with the model's dtype and streaming settings. Call before ``model.transformer`` is first used."""
    warm = load_model(path, None, model.dtype)
    if warm.spec != model.spec:
        raise UsageError(
            f"{KEY}: {path} is {warm.spec.family} {warm.spec.version} ({warm.spec.num_layers} blocks), "
            f"model.model_path is {model.spec.family} {model.spec.version} ({model.spec.num_layers} blocks)"
        )
    warm.load_device, warm.on_block = model.load_device, model.on_block
    model.transformer = warm.transformer
    logger.info("%s: the transformer starts from %s", KEY, path)
