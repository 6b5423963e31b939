"""Before and after: the run report with the efficacy comparison, at the end of training and for any checkpoint.

- At the end of training (``validation.interval`` set and ``validation.efficacy_clips`` > 0, one process): the model
  still in memory is compared with itself without the trained weights (a LoRA switched off; for a full fine-tune the
  base transformer is read again from ``model.model_path`` and swapped in for the base samples).
- ``ltx-trainer compare RUN_DIR [--checkpoint N]`` (:func:`compare_run`): any saved checkpoint of a run, finished or
  interrupted, against the base model named in the run's ``training_config.resolved.yaml``: the LoRA file applied as
  hooks, or the full checkpoint's transformer swapped in.

Both measure with ``sampling.efficacy.measure`` on the run's own training clips, write the media and
``efficacy.json`` to ``<run>/efficacy/step_<N>/``, and render the same page (``integrations.report.write_report``):
``report.html`` at the end of training, ``compare_step_<N>.html`` for the verb.
"""

import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from ltx_trainer import logger
from ltx_trainer.config import LtxTrainerConfig, dump_config, load_config
from ltx_trainer.errors import UsageError
from ltx_trainer.models.devices import resolve_device
from ltx_trainer.sampling.efficacy import (
    EFFICACY_FILE,
    Efficacy,
    EfficacySettings,
    full_checkpoint,
    load_targets,
    lora_file,
    measure,
)
from ltx_trainer.training import checkpoints

RESOLVED_CONFIG = "training_config.resolved.yaml"


def settings_of(config: LtxTrainerConfig, clips: int | None = None) -> EfficacySettings:
    """The ``validation.efficacy_*`` settings (``clips`` overrides the number of clips)."""
    v = config.validation
    return EfficacySettings(v.efficacy_clips if clips is None else clips, tuple(v.efficacy_seeds), v.efficacy_steps)


def efficacy_dir(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / "efficacy" / f"step_{step:05d}"


def _relative_media(efficacy: Efficacy, output_dir: Path) -> Efficacy:
    """Media paths relative to the run folder, so that ``efficacy.json`` and the page survive a move."""
    efficacy.media = {
        clip: {k: os.path.relpath(Path(v).resolve(), Path(output_dir).resolve()) for k, v in files.items()}
        for clip, files in efficacy.media.items()
    }
    return efficacy


def validation_samples(output_dir: Path, up_to: int | None = None) -> list[Path]:
    """The validation files of a run (``samples/step_<N>_<k>.*``), up to step ``up_to``."""
    folder = Path(output_dir) / "samples"
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.*")):
        parts = path.stem.split("_")
        if up_to is not None and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) > up_to:
            continue
        found.append(path)
    return found


def summary_of(config: LtxTrainerConfig, family: str, step: int, weights: Path | None, **extra) -> dict:
    opt = config.optimization
    return {
        "model": family,
        "mode": config.model.training_mode,
        "step": step,
        "learning rate": f"{opt.learning_rate:g} ({opt.scheduler_type}, {opt.warmup_steps} warmup steps)",
        "weights": weights,
        **extra,
    }


def write_run_report(
    output_dir: Path,
    config: LtxTrainerConfig,
    summary: dict,
    efficacy: Efficacy | None,
    title: str = "ltx-trainer run",
    up_to: int | None = None,
    name: str = "report.html",
) -> Path:
    """The run's page: ``integrations.report.write_report`` with the validation grid and the comparison."""
    from ltx_trainer.integrations.report import write_report  # matplotlib: only when a report is written

    return write_report(
        output_dir,
        title,
        dump_config(config),
        validation_samples(output_dir, up_to),
        summary,
        efficacy=efficacy.to_dict() if efficacy is not None else None,
        prompts=[s.prompt for s in config.validation.samples],
        name=name,
    )


# ---------------------------------------------------------------------------------------------------------------------
# At the end of training
# ---------------------------------------------------------------------------------------------------------------------
def end_of_training(trainer, weights: Path | None) -> Efficacy | None:
    """Compare the trained model in memory with its base (see the module docstring); None when off.

    Args:
        trainer: the ``Trainer`` that just finished (main process).
        weights: the final weights file (named in the report).
    """
    cfg = trainer.config
    settings = settings_of(cfg)
    if cfg.validation.interval is None or settings.clips == 0:
        return None
    if trainer.accelerator.num_processes > 1:
        logger.info(
            "before/after comparison: run `ltx-trainer compare %s` (not drawn under several processes)", cfg.output_dir
        )
        return None
    from ltx_trainer.training.adapters import adapters_off

    model, accelerator = trainer.model, trainer.accelerator
    targets = load_targets(
        cfg.data.preprocessed_data_root, cfg.training_strategy.as_flexible(), model.spec, settings.clips
    )
    wrapped = model.transformer
    transformer = accelerator.unwrap_model(wrapped)
    was_training = transformer.training
    model.transformer = transformer.eval()
    if cfg.model.training_mode == "lora":

        def base():
            return adapters_off(transformer)
    else:

        def base():
            return full_checkpoint(model, Path(cfg.model.model_path))

    label = weights.name if weights is not None else f"step {trainer.step} (in memory)"
    try:
        with accelerator.autocast():
            efficacy = measure(
                model,
                targets,
                settings,
                tuned=nullcontext,
                base=base,
                label=label,
                out_dir=efficacy_dir(trainer.output_dir, trainer.step),
                device=trainer.device,
            )
    finally:
        model.transformer = wrapped
        transformer.train(was_training)
    _relative_media(efficacy, trainer.output_dir).save(efficacy_dir(trainer.output_dir, trainer.step) / EFFICACY_FILE)
    return efficacy


# ---------------------------------------------------------------------------------------------------------------------
# Any checkpoint, after training
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class CompareResult:
    report: Path
    efficacy: Efficacy
    weights: Path
    step: int


def find_checkpoint(run_dir: Path, step: int | None) -> tuple[int, Path]:
    """(step, weights file) of the run's checkpoint ``step`` (the latest when None).

    Raises:
        UsageError: no checkpoint, or not that one (the saved steps are named).
    """
    folder = Path(run_dir) / "checkpoints"
    steps = checkpoints.saved_steps(folder)
    if not steps:
        raise UsageError(
            f"{folder}: no checkpoint saved yet; a run writes one every checkpoints.interval steps and at its end"
        )
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise UsageError(f"--checkpoint {step}: {folder} has steps {', '.join(map(str, steps))}")
    for kind in ("lora", "model"):
        path = checkpoints.weights_path(folder, kind, step)
        if path.is_file():
            return step, path
    raise UsageError(f"{folder}: no weights file for step {step}")  # saved_steps saw one: removed meanwhile


def compare_run(
    run_dir: Path,
    step: int | None = None,
    clips: int | None = None,
    device: str | None = None,
) -> CompareResult:
    """The before/after comparison of checkpoint ``step`` (default: the latest) of the run in ``run_dir``.

    Args:
        run_dir: a training ``output_dir`` (finished or interrupted: any saved checkpoint).
        clips: how many training clips (default: the run's ``validation.efficacy_clips``, at least 1).
        device: where to sample (``auto``: CUDA when available).

    Raises:
        UsageError: not a run folder, no such checkpoint.
    """
    from ltx_trainer.models.families import load_model

    run_dir = Path(run_dir)
    config_file = run_dir / RESOLVED_CONFIG
    if not config_file.is_file():
        raise UsageError(f"{run_dir}: no {RESOLVED_CONFIG}; name a training output_dir (train writes it there)")
    config = load_config(config_file)
    step, weights = find_checkpoint(run_dir, step)
    settings = settings_of(config, clips if clips is not None else max(1, config.validation.efficacy_clips))
    target = resolve_device(device)
    dtype = torch.bfloat16 if target.type == "cuda" else torch.float32
    model = load_model(config.model.model_path, None, dtype)
    targets = load_targets(
        config.data.preprocessed_data_root, config.training_strategy.as_flexible(), model.spec, settings.clips
    )
    model.transformer.to(target)
    model.connectors_to(target)
    if weights.name.startswith("lora"):

        def tuned():
            return lora_file(model, weights)
    else:

        def tuned():
            return full_checkpoint(model, weights)

    out_dir = efficacy_dir(run_dir, step)
    efficacy = measure(model, targets, settings, tuned, label=weights.name, out_dir=out_dir, device=target)
    _relative_media(efficacy, run_dir).save(out_dir / EFFICACY_FILE)
    spec = model.spec
    summary = summary_of(config, f"{spec.family} {spec.version}", step, weights.name)
    report = write_run_report(
        run_dir,
        config,
        summary,
        efficacy,
        title=f"ltx-trainer compare: step {step}",
        up_to=step,
        name=f"compare_step_{step:05d}.html",
    )
    return CompareResult(report, efficacy, weights, step)
