"""What a training run publishes: the push folder and its model card, built from the run directory alone.

:func:`read_run` gathers the facts from ``<output_dir>`` (the layout ``train`` writes): the resolved config
(``training_config.resolved.yaml``), the newest weights in ``checkpoints/`` (``training/checkpoints.py`` names them),
the last validation round in ``samples/`` (``sampling/validation.py`` names them), ``metrics.jsonl``, and the dataset
(sample count, resolution buckets, trigger word) from the cache fingerprints under ``data.preprocessed_data_root``
when that cache is still on this machine. The base model (family, version) comes from the weights file itself
(``models/releases.py``).

:func:`build_push_folder` writes ``<run dir>/hub/`` (or ``out``)::

    README.md                          model card: Hub YAML front matter + body
    <name>.safetensors                 final weights (official/ComfyUI LoRA keys, or the full single file)
    <name>_diffusers.safetensors       diffusers-layout copy, when the run wrote one (LTX-Video LoRAs)
    loss.png                           loss curve (integrations/report.py draws it)
    samples/step_000100_1.mp4 (+ .webp animated preview; .png / .wav samples as they are)
    checkpoints/<earlier weights>      with include_checkpoints

``<name>`` is the repository name. Weights are hard links where the filesystem allows (a copy otherwise), so a
full checkpoint costs no space twice. The folder carries a marker file (never uploaded); an existing folder without
it is refused instead of being replaced.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ltx_trainer import logger
from ltx_trainer.config import LtxTrainerConfig, parse_config
from ltx_trainer.errors import UsageError
from ltx_trainer.io import atomic_write_text

RESOLVED_CONFIG = "training_config.resolved.yaml"
MARKER = ".ltx-trainer-push"
# the names training/checkpoints.py and sampling/validation.py write (tests/test_hub.py checks them against a run)
_WEIGHTS = re.compile(r"^(lora|model)_weights_step_(\d+)(_diffusers)?\.safetensors$")
_SAMPLE = re.compile(r"^step_(\d+)_(\d+)\.(mp4|png|wav)$")
PREVIEW_MAX_SIDE = 480
PREVIEW_MAX_FRAMES = 121
LORA_TAGS = ["lora", "text-to-video", "ltx-video", "ltx-trainer"]
FULL_TAGS = ["text-to-video", "ltx-video", "ltx-trainer"]


@dataclass
class Sample:
    """One validation sample of the run's last validation round."""

    path: Path
    index: int  # 1-based position in validation.samples
    prompt: str | None


@dataclass
class DatasetFacts:
    """What the cache says about the training data (None / empty when the cache is not on this machine)."""

    samples: int | None = None
    buckets: dict[str, int] = field(default_factory=dict)
    trigger: str = ""


@dataclass
class RunFacts:
    """Everything the card and the folder need, read from a run directory."""

    run_dir: Path
    config: LtxTrainerConfig
    kind: str  # "lora" or "model"
    step: int
    weights: list[Path]  # the final step's files, the official layout first
    checkpoints: list[Path]  # weights files of earlier steps
    base: tuple[str, str] | None  # (family, version)
    samples: list[Sample]
    dataset: DatasetFacts
    metrics: list[dict]

    @property
    def final_loss(self) -> float | None:
        losses = [m["loss"] for m in self.metrics if isinstance(m.get("loss"), float) and math.isfinite(m["loss"])]
        return losses[-1] if losses else None


@dataclass
class PushFolder:
    """A built push folder: where it is and the repository paths of its files (README.md first)."""

    path: Path
    files: list[str]
    card: str


# ---------------------------------------------------------------------------------------------------------------------
# Reading a run
# ---------------------------------------------------------------------------------------------------------------------
def _read_config(path: Path) -> LtxTrainerConfig:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"{path}: unreadable ({e})") from e
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: not a training config")
    # Tracking credentials of the training machine don't matter for a card: don't let W&B's login check refuse it.
    raw["wandb"] = {**(raw.get("wandb") or {}), "enabled": False}
    return parse_config(raw, source=str(path))


def _weights_by_step(checkpoint_dir: Path) -> dict[int, list[Path]]:
    found: dict[int, list[Path]] = {}
    if checkpoint_dir.is_dir():
        for p in checkpoint_dir.iterdir():
            if m := _WEIGHTS.match(p.name):
                found.setdefault(int(m.group(2)), []).append(p)
    return {step: sorted(paths, key=lambda p: (p.stem.endswith("_diffusers"), p.name)) for step, paths in found.items()}


def _last_samples(samples_dir: Path, config: LtxTrainerConfig) -> list[Sample]:
    """The samples of the newest validation step, in ``validation.samples`` order."""
    if not samples_dir.is_dir():
        return []
    by_step: dict[int, list[tuple[int, Path]]] = {}
    for p in samples_dir.iterdir():
        if m := _SAMPLE.match(p.name):
            by_step.setdefault(int(m.group(1)), []).append((int(m.group(2)), p))
    if not by_step:
        return []
    prompts = [s.prompt for s in config.validation.samples]
    return [
        Sample(path, index, prompts[index - 1] if 0 < index <= len(prompts) else None)
        for index, path in sorted(by_step[max(by_step)])
    ]


def read_dataset_facts(config: LtxTrainerConfig) -> DatasetFacts:
    """Sample count, buckets and trigger word from the fingerprints of the cache the run trained on, if present."""
    from ltx_trainer.data.cache import read_fingerprint
    from ltx_trainer.data.dataset import index_cache_folder, precomputed_root

    root = precomputed_root(config.data.preprocessed_data_root)
    strategy = config.training_strategy.as_flexible()
    primary = next((m for m in (strategy.video, strategy.audio) if m is not None and m.is_generated), None)
    if primary is None or not (root / primary.latents_dir).is_dir():
        return DatasetFacts()
    files = index_cache_folder(root / primary.latents_dir)
    buckets: Counter[str] = Counter()
    for path in files.values():
        fingerprint = read_fingerprint(path) if path.suffix == ".safetensors" else None
        if fingerprint and fingerprint.get("bucket"):
            buckets[fingerprint["bucket"]] += 1
    triggers = set()
    conditions = root / "conditions"
    for path in list(index_cache_folder(conditions).values()) if conditions.is_dir() else []:
        fingerprint = read_fingerprint(path) if path.suffix == ".safetensors" else None
        if fingerprint is not None:
            triggers.add((fingerprint.get("trigger") or "").strip())
    trigger = next(iter(triggers)) if len(triggers) == 1 else ""
    return DatasetFacts(samples=len(files), buckets=dict(sorted(buckets.items())), trigger=trigger)


def read_run(run_dir: str | Path) -> RunFacts:
    """The facts of a finished (or checkpointed) training run.

    Raises:
        UsageError: not a run directory, or no weights saved yet.
    """
    from ltx_trainer.integrations.report import read_metrics
    from ltx_trainer.models.releases import trained_on

    run_dir = Path(run_dir).expanduser().resolve()
    config_path = run_dir / RESOLVED_CONFIG
    if not config_path.is_file():
        raise UsageError(
            f"{run_dir}: not a training run (no {RESOLVED_CONFIG}); pass the output_dir of an `ltx-trainer train` run"
        )
    config = _read_config(config_path)
    by_step = _weights_by_step(run_dir / "checkpoints")
    if not by_step:
        raise UsageError(f"{run_dir / 'checkpoints'}: no weights saved yet; train until a checkpoint is written")
    step = max(by_step)
    weights = by_step[step]
    kind = _WEIGHTS.match(weights[0].name).group(1)
    earlier = [p for s in sorted(by_step) if s != step for p in by_step[s]]
    metrics_path = run_dir / "metrics.jsonl"
    return RunFacts(
        run_dir=run_dir,
        config=config,
        kind="lora" if kind == "lora" else "model",
        step=step,
        weights=weights,
        checkpoints=earlier,
        base=trained_on(weights[0]),
        samples=_last_samples(run_dir / "samples", config),
        dataset=read_dataset_facts(config),
        metrics=[m for m in read_metrics(metrics_path) if m["step"] <= step] if metrics_path.is_file() else [],
    )


# ---------------------------------------------------------------------------------------------------------------------
# Media
# ---------------------------------------------------------------------------------------------------------------------
def render_preview(video: Path, out: Path) -> Path:
    """An animated preview of an mp4 (WebP, GIF where Pillow lacks WebP): every frame (evenly thinned past
    ``PREVIEW_MAX_FRAMES``) at the clip's frame rate, the long side at most ``PREVIEW_MAX_SIDE`` pixels."""
    import av
    from PIL import Image, features

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 24)
        frames = [frame.to_image() for frame in container.decode(stream)]
    if not frames:
        raise UsageError(f"{video}: no video frames to preview")
    stride = max(1, math.ceil(len(frames) / PREVIEW_MAX_FRAMES))
    frames = frames[::stride]
    scale = min(1.0, PREVIEW_MAX_SIDE / max(frames[0].size))
    if scale < 1.0:
        size = (max(1, round(frames[0].width * scale)), max(1, round(frames[0].height * scale)))
        frames = [f.resize(size, Image.Resampling.LANCZOS) for f in frames]
    duration = max(20, round(1000 * stride / fps))  # ms per frame
    if not features.check("webp"):
        out = out.with_suffix(".gif")
    fmt = "WEBP" if out.suffix == ".webp" else "GIF"
    extra = {"quality": 80, "method": 4} if fmt == "WEBP" else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], duration=duration, loop=0, **extra)
    return out


def _place(src: Path, dst: Path) -> None:
    """Hard link (no second copy of a large checkpoint), or copy where links don't work (another filesystem)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# ---------------------------------------------------------------------------------------------------------------------
# The card
# ---------------------------------------------------------------------------------------------------------------------
def _strategy_summary(config: LtxTrainerConfig) -> str:
    strategy = config.training_strategy.as_flexible()
    parts = []
    for label, modality in (("video", strategy.video), ("audio", strategy.audio)):
        if modality is None:
            continue
        role = "generated" if modality.is_generated else "given"
        conditions = ", ".join(f"{c.type} (p={c.probability:g})" for c in modality.conditions)
        parts.append(f"{label} {role}" + (f", conditioned on {conditions}" if conditions else ""))
    return f"`{config.training_strategy.name}`: " + "; ".join(parts)


def _training_rows(facts: RunFacts, base_name: str) -> list[tuple[str, str]]:
    cfg = facts.config
    opt = cfg.optimization
    rows = [("Base model", base_name), ("Training", "LoRA" if facts.kind == "lora" else "full fine-tune")]
    if facts.kind == "lora" and cfg.lora is not None:
        rows += [
            ("LoRA rank / alpha", f"{cfg.lora.rank} / {cfg.lora.alpha} (alpha/rank folded into the weights)"),
            ("LoRA targets", ", ".join(f"`{t}`" for t in cfg.lora.target_modules)),
        ]
    rows += [
        ("Strategy", _strategy_summary(cfg)),
        ("Steps", f"{facts.step} of {opt.steps}"),
        ("Learning rate", f"{opt.learning_rate:g} ({opt.scheduler_type}, {opt.warmup_steps} warmup steps)"),
        ("Batch size", f"{opt.batch_size} x {opt.gradient_accumulation_steps} accumulation"),
        ("Optimizer", opt.optimizer_type),
        ("Mixed precision", str(cfg.acceleration.mixed_precision_mode)),
        ("Saved precision", cfg.checkpoints.precision),
    ]
    data = facts.dataset
    if data.buckets:
        rows.append(("Resolution buckets (WxHxF)", ", ".join(f"{b} ({n})" for b, n in data.buckets.items())))
    rows.append(("Dataset", f"{data.samples} clips" if data.samples is not None else "not recorded (cache not found)"))
    if facts.final_loss is not None:
        rows.append(("Final loss", f"{facts.final_loss:.4f}"))
    rows.append(("Seed", str(cfg.seed)))
    return rows


def _usage(facts: RunFacts, repo_id: str, files: dict[str, str], base, prompt: str) -> str:
    """How to use the weights: ComfyUI, ltx-pipelines (LTX-2 family), diffusers, ltx-trainer."""
    main = files["weights"]
    lora = facts.kind == "lora"
    out = ["## How to use it", "", "### ComfyUI", ""]
    if lora:
        out.append(
            f"Put `{main}` in `ComfyUI/models/loras/` and add a **LoraLoaderModelOnly** node after the checkpoint "
            "loader of the base model (strength 1.0)."
        )
    else:
        out.append(f"Put `{main}` in `ComfyUI/models/checkpoints/` and load it in place of the base checkpoint.")
    quoted = json.dumps(prompt)
    if base is not None and base.ltx_pipelines:
        weights_flags = f"--checkpoint-path BASE.safetensors --lora {main} 1.0" if lora else f"--checkpoint-path {main}"
        out += [
            "",
            "### ltx-pipelines (official)",
            "",
            "```bash",
            "pip install ltx-pipelines",
            f"hf download {repo_id} {main} --local-dir .",
            f"python -m ltx_pipelines.ti2vid_one_stage {weights_flags} --gemma-root GEMMA_DIR \\",
            f"    --prompt {quoted} --output-path sample.mp4",
            "```",
            "",
            f"`BASE.safetensors` is the {base.name} checkpoint from "
            f"[{base.repo_id}](https://huggingface.co/{base.repo_id}), `GEMMA_DIR` its Gemma text encoder folder."
            if lora
            else f"`GEMMA_DIR` is the Gemma text encoder folder of {base.name}.",
        ]
    if lora and base is not None:
        source = json.dumps(base.diffusers_repo or f"path/to/{base.name}-diffusers")
        diffusers_file = files.get("diffusers", main)
        out += [
            "",
            "### diffusers",
            "",
            "```python",
            "import torch",
            f"from diffusers import {base.diffusers_pipeline}",
            "",
            f"pipe = {base.diffusers_pipeline}.from_pretrained({source}, torch_dtype=torch.bfloat16)",
            f'pipe.load_lora_weights("{repo_id}", weight_name="{diffusers_file}")',
            "pipe.enable_model_cpu_offload()",
            f"output = pipe(prompt={quoted}, num_inference_steps=30)",
            "```",
        ]
        if base.diffusers_repo is None:
            out.append(f"\n`path/to/{base.name}-diffusers` is a diffusers-layout folder of the base model.")
    base_flag = "--model BASE.safetensors --lora " + main if lora else f"--model {main}"
    out += [
        "",
        "### ltx-trainer",
        "",
        "```bash",
        f"ltx-trainer sample {base_flag} --text-encoder TEXT_ENCODER_DIR --prompt {quoted} --output sample.mp4",
        "```",
    ]
    return "\n".join(out)


def model_card(facts: RunFacts, repo_id: str, files: dict[str, str], media: list[dict]) -> str:
    """The README.md text: Hub front matter (``ModelCardData``) and the body.

    ``files``: ``weights`` (and ``diffusers``, ``loss``) -> repository paths; ``media``: per sample ``prompt``,
    ``video`` / ``image`` / ``audio`` and ``preview`` repository paths.
    """
    from huggingface_hub import ModelCard, ModelCardData

    from ltx_trainer.models.releases import released_base

    base = released_base(*facts.base) if facts.base is not None else None
    trigger = facts.dataset.trigger
    lora = facts.kind == "lora"
    widget = [
        {"text": m["prompt"] or "", "output": {"url": m.get("video") or m.get("image")}}
        for m in media
        if m.get("video") or m.get("image")
    ]
    data = ModelCardData(
        base_model=base.repo_id if base is not None else None,
        base_model_relation="adapter" if lora else "finetune",
        library_name="diffusers",
        license="other",
        license_name=base.license_name if base is not None else None,
        license_link=base.license_link if base is not None else None,
        pipeline_tag="text-to-video",
        tags=list(LORA_TAGS if lora else FULL_TAGS),
        instance_prompt=trigger or None,
        widget=widget or None,
    )
    name = repo_id.split("/")[-1]
    base_name = f"[{base.name}](https://huggingface.co/{base.repo_id})" if base is not None else "unknown"
    if facts.base is not None and base is None:
        base_name = f"{facts.base[0]} {facts.base[1]}"
    what = "A LoRA" if lora else "A full fine-tune"
    body = [f"# {name}", "", f"{what} for {base_name}, trained with ltx-trainer.", ""]
    if trigger:
        body += ["## Trigger word", "", f"Start prompts with `{trigger}` (every training caption began with it).", ""]
    else:
        body += ["## Trigger word", "", "None: the captions were used as written.", ""]
    if media:
        body += ["## Samples", "", f"Validation samples at step {facts.step}:", ""]
        for m in media:
            prompt = (m["prompt"] or "").replace("\n", " ")
            if m.get("preview"):
                body.append(f"![{prompt}]({m['preview']})")
            elif m.get("image"):
                body.append(f"![{prompt}]({m['image']})")
            links = [f"[{kind}]({m[kind]})" for kind in ("video", "audio") if m.get(kind)]
            body += [f"*{prompt}*" + (f" ({', '.join(links)})" if links else ""), ""]
    body += ["## Training", "", "| | |", "|---|---|"]
    body += [f"| {k} | {v} |" for k, v in _training_rows(facts, base_name)]
    if files.get("loss"):
        body += ["", f"![loss curve]({files['loss']})"]
    sample_prompt = next((m["prompt"] for m in media if m.get("prompt")), None) or (trigger or "a video")
    body += ["", _usage(facts, repo_id, files, base, sample_prompt), "", "## Files", ""]
    body += [f"- `{files['weights']}`: " + ("the LoRA, official/ComfyUI keys" if lora else "the checkpoint")]
    if files.get("diffusers"):
        body.append(f"- `{files['diffusers']}`: the same LoRA with diffusers keys")
    if files.get("checkpoints"):
        body.append("- `checkpoints/`: earlier checkpoints of the run")
    body += ["", "## License", "", base.license_note if base is not None else "The base model's licence applies.", ""]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)))


# ---------------------------------------------------------------------------------------------------------------------
# The folder
# ---------------------------------------------------------------------------------------------------------------------
def _fresh_folder(out: Path) -> None:
    if out.exists():
        if not (out / MARKER).is_file():
            raise UsageError(f"{out}: exists and was not made by `ltx-trainer push`; move it away or use another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by ltx-trainer push; rebuilt on every push\n")


def build_push_folder(
    facts: RunFacts, repo_id: str, out: str | Path | None = None, include_checkpoints: bool = False
) -> PushFolder:
    """Write the push folder of a run (see the module docstring); returns it with its file list."""
    from ltx_trainer.integrations.report import plot_losses

    out = Path(out) if out is not None else facts.run_dir / "hub"
    _fresh_folder(out)
    name = repo_id.split("/")[-1]
    files: dict[str, str] = {}
    for weights in facts.weights:
        rel = f"{name}_diffusers.safetensors" if weights.stem.endswith("_diffusers") else f"{name}.safetensors"
        _place(weights, out / rel)
        files["diffusers" if rel.endswith("_diffusers.safetensors") else "weights"] = rel
    if include_checkpoints and facts.checkpoints:
        for path in facts.checkpoints:
            _place(path, out / "checkpoints" / path.name)
        files["checkpoints"] = "checkpoints/"
    if facts.metrics:
        plot_losses(facts.metrics, out / "loss.png")
        files["loss"] = "loss.png"
    media = []
    for sample in facts.samples:
        rel = f"samples/{sample.path.name}"
        _place(sample.path, out / rel)
        entry = {"prompt": sample.prompt}
        kind = {".mp4": "video", ".png": "image", ".wav": "audio"}[sample.path.suffix]
        entry[kind] = rel
        if kind == "video":
            import av

            try:
                preview = render_preview(sample.path, out / "samples" / f"{sample.path.stem}.webp")
                entry["preview"] = f"samples/{preview.name}"
            except (av.FFmpegError, OSError, UsageError) as e:  # an unreadable sample costs its preview, not the push
                logger.warning("%s: no animated preview (%s)", sample.path, e)
        media.append(entry)
    card = model_card(facts, repo_id, files, media)
    atomic_write_text(out / "README.md", card)
    listed = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != MARKER)
    listed.remove("README.md")
    return PushFolder(out, ["README.md", *listed], card)
