"""The five stages of ``run-pipeline``, each one call into the library entry point of its verb, with that verb's resume.

- ``split``: ``data.scenes.split_folder``; skipped when every source was already split with these settings
  (``scenes.json``).
- ``caption``: ``data.captioning.caption_dataset``; skipped when every clip already has a caption (``.txt``).
- ``preprocess``: ``data.preprocess.preprocess_dataset``; skipped when every sample's cache files exist with matching
  fingerprints.
- ``train``: ``training.trainer.Trainer``; skipped when the run already reached ``optimization.steps``.
- ``sample``: ``sampling.runner.SampleRunner``; skipped when the samples on disk were drawn from the same weights
  file with the same settings (``pipeline.json``).

A stage returns a :class:`StageResult`; ``skipped`` means its own resume found nothing left to do. Expected failures
raise :class:`ltx_trainer.errors.LtxTrainerError` subclasses (``run.py`` names the stage around them).
"""

from __future__ import annotations

import gc
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltx_trainer import logger
from ltx_trainer.config import LtxTrainerConfig, PipelineConfig, ValidationConfig, ValidationSample, check_paths
from ltx_trainer.errors import DataError, PartialFailure, UsageError

# Cache folders the preprocess stage writes from a folder of clips (no references or masks: those need a dataset file).
VIDEO_DIR, AUDIO_DIR, TEXT_DIR = "latents", "audio_latents", "conditions"


@dataclass(frozen=True)
class Layout:
    """Where everything goes: the footage, the dataset folder (clips, captions, cache) and the run folder."""

    raw: Path | None
    dataset: Path  # data.preprocessed_data_root: clips, .txt captions, scenes.html, .precomputed/
    run: Path  # output_dir: checkpoints, training report, and the pipeline's report, state and final samples

    @property
    def cache(self) -> Path:
        return self.dataset / ".precomputed"

    @property
    def samples(self) -> Path:
        return self.run / "final_samples"

    @property
    def report(self) -> Path:
        return self.run / "pipeline_report.html"

    @property
    def state(self) -> Path:
        return self.run / "pipeline.json"


@dataclass
class StageResult:
    """What one stage did: ``status`` is ``done``, ``skipped`` (nothing left to do), ``off`` (not in the stages) or
    ``failed``; ``links`` are the reports and files it produced; ``fingerprint`` is kept in the state file."""

    name: str
    status: str
    detail: str = ""
    seconds: float = 0.0
    links: dict[str, Path] = field(default_factory=dict)
    fingerprint: dict[str, Any] | None = None


@dataclass
class Context:
    """What the stages share: the training config (with the layout's paths), the stage options, the layout."""

    cfg: LtxTrainerConfig
    pipeline: PipelineConfig
    layout: Layout
    config_path: Path
    progress: bool = True
    previous: dict[str, Any] = field(default_factory=dict)  # the state file's stages of earlier runs
    weights: Path | None = None  # set by the train stage
    dataset_samples: dict[str, list] | None = None  # what preprocess last saw of the dataset (its fingerprint)
    fingerprints: dict[str, dict] = field(default_factory=dict)  # recorded even when a stage fails

    def __post_init__(self) -> None:
        if self.dataset_samples is None:
            self.dataset_samples = self.previous.get("preprocess", {}).get("fingerprint", {}).get("samples")


# ---- split ----------------------------------------------------------------------------------------------------------


def detector_params(pipeline: PipelineConfig) -> dict[str, Any]:
    """``pipeline.split.params`` with ``threshold`` under the name its detector uses (as ``split-scenes`` does)."""
    from ltx_trainer.data.scenes import with_threshold

    return with_threshold(pipeline.split.detector, pipeline.split.params, pipeline.split.threshold)


def split(ctx: Context) -> StageResult:
    from ltx_trainer.data.scenes import split_folder

    opts, layout = ctx.pipeline.split, ctx.layout
    assert layout.raw is not None  # checked before any stage runs
    try:
        summary = split_folder(
            layout.raw,
            layout.dataset,
            detector=opts.detector,
            detector_params=detector_params(ctx.pipeline),
            min_scene_len=opts.min_scene_len,
            max_scene_len=opts.max_scene_len,
            max_scenes=opts.max_scenes,
            skip_start=opts.skip_start,
            skip_end=opts.skip_end,
            previews=opts.previews,
            crf=opts.crf,
            preset=opts.preset,
            show_progress=ctx.progress,
        )
    except ValueError as e:  # no input found (settings were checked before the stage)
        raise UsageError(f"{layout.raw}: {e}") from None
    links = {"scenes.html": summary.report}
    videos = len(summary.results)
    if not summary.produced:
        raise PartialFailure(f"no clip from the {videos} video(s) of {layout.raw}; see {summary.report}")
    if summary.failed:
        names = ", ".join(r.path.name for r in summary.failed[:3]) + (", ..." if len(summary.failed) > 3 else "")
        raise PartialFailure(
            f"{len(summary.failed)} of {videos} video(s) failed ({names}); see {summary.report}; fix or remove them "
            f"from {layout.raw}"
        )
    clips = len(summary.clips)
    damaged = f", {len(summary.damaged)} damaged (their clips kept)" if summary.damaged else ""
    others = f", {len(summary.skipped)} other file(s) ignored" if summary.skipped else ""
    if all(r.resumed for r in summary.results):
        return StageResult(
            "split", "skipped", f"already split: {videos} video(s), {clips} clip(s) kept{damaged}", links=links
        )
    resumed = sum(r.resumed for r in summary.results)
    kept = f" ({resumed} kept from an earlier run)" if resumed else ""
    return StageResult("split", "done", f"{videos} video(s){kept} -> {clips} clip(s){damaged}{others}", links=links)


# ---- caption --------------------------------------------------------------------------------------------------------


def captioner_options(pipeline: PipelineConfig) -> dict[str, Any]:
    """``pipeline.caption`` as the keyword arguments of ``make_captioner`` (trigger and clean go to the run)."""
    return pipeline.caption.model_dump(exclude={"trigger", "clean"})


def _stamp(path: Path) -> list[int]:
    """``[size, mtime_ns]``: what tells that a file was rewritten (a re-split clip keeps its name)."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _recaption_changed_clips(ctx: Context, media: list[Path]) -> int:
    """Captions this stage wrote for clips that changed since (split again with other settings, same names): removed,
    so that they are captioned again. A caption edited since it was written is the user's: the stage stops instead."""
    earlier = ctx.previous.get("caption", {}).get("fingerprint", {}).get("clips", {})
    stale = []
    for clip in media:
        record, sidecar = earlier.get(clip.relative_to(ctx.layout.dataset).as_posix()), clip.with_suffix(".txt")
        if record is None or not sidecar.is_file() or record["clip"] == _stamp(clip):
            continue
        if _digest(sidecar.read_text(encoding="utf-8")) != record["caption"]:
            raise DataError(
                f"{clip}: the clip changed since it was captioned, and {sidecar} was edited since; update or delete "
                "that caption, then rerun"
            )
        stale.append(sidecar)
    for sidecar in stale:
        logger.info("%s: its clip changed since it was captioned; captioning it again", sidecar)
        sidecar.unlink()
    return len(stale)


def caption(ctx: Context) -> StageResult:
    from ltx_trainer.data.captioning import caption_dataset, find_media, make_captioner

    opts, dataset = ctx.pipeline.caption, ctx.layout.dataset
    media = find_media(dataset)
    if not media:
        raise DataError(f"{dataset}: no video, image or audio files to caption; run the split stage or add clips")
    settings = {**captioner_options(ctx.pipeline), "trigger": opts.trigger, "clean": opts.clean}
    redone = _recaption_changed_clips(ctx, media)
    captioner = make_captioner(**captioner_options(ctx.pipeline))
    summary = caption_dataset(
        dataset, captioner, fmt="txt", trigger=opts.trigger, style=opts.style, clean=opts.clean, progress=ctx.progress
    )
    links: dict[str, Path] = {"captions (.txt next to the clips)": dataset}
    if summary.failures_file:
        links["caption_failures.json"] = summary.failures_file
    if summary.failed:
        raise PartialFailure(f"{len(summary.failed)} of {summary.total} file(s) failed; see {summary.failures_file}")
    if summary.succeeded == 0 and not summary.empty:
        raise PartialFailure(f"no caption was produced for the {summary.total} file(s) of {dataset}")
    detail = summary.describe() + (f" ({redone} clip(s) changed: captioned again)" if redone else "")
    earlier = ctx.previous.get("caption", {}).get("fingerprint", {}).get("settings")
    if earlier is not None and earlier != settings and summary.skipped:
        changed = ", ".join(k for k in settings if settings[k] != earlier.get(k))
        logger.warning(
            "pipeline.caption changed since the captions were written (%s): the %d existing caption(s) are kept "
            "(captions are never overwritten); delete their .txt files to caption them again",
            changed,
            summary.skipped,
        )
        detail += f"; pipeline.caption changed ({changed}): existing captions kept"
    clips = {
        m.relative_to(dataset).as_posix(): {
            "clip": _stamp(m),
            "caption": _digest(m.with_suffix(".txt").read_text(encoding="utf-8")),
        }
        for m in media
        if m.with_suffix(".txt").is_file()
    }
    fingerprint = {"settings": settings, "clips": clips}
    return StageResult(
        "caption", "done" if summary.captioned else "skipped", detail, links=links, fingerprint=fingerprint
    )


# ---- preprocess -----------------------------------------------------------------------------------------------------


def preprocess_setup(ctx: Context) -> tuple[Any, Any]:
    """The model (components load lazily) and the ``PreprocessOptions`` of ``pipeline.preprocess``, checked.

    Raises:
        UsageError: a bucket or option that can't work with this model, naming ``pipeline.preprocess``.
    """
    import torch

    from ltx_trainer.data.preprocess import PreprocessOptions, parse_buckets
    from ltx_trainer.data.preprocess_options import check_options
    from ltx_trainer.models.devices import resolve_device, weights_dtype
    from ltx_trainer.models.families import load_model

    opts, model_cfg = ctx.pipeline.preprocess, ctx.cfg.model
    assert opts.resolution_buckets is not None  # the schema requires it when the stage runs
    try:
        buckets = parse_buckets(opts.resolution_buckets)
    except UsageError as e:
        raise UsageError(f"pipeline.preprocess.resolution_buckets: {e}") from None
    device = resolve_device(opts.device)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}.get(opts.compute_dtype) or weights_dtype(device)
    model = load_model(model_cfg.model_path, model_cfg.text_encoder_path, dtype=dtype)
    options = PreprocessOptions(
        buckets=buckets,
        output=ctx.layout.cache,
        crop=opts.crop,
        seed=opts.seed,
        fps=opts.fps,
        vae_tiling=opts.vae_tiling,
        audio=opts.audio,
        allow_missing_audio=opts.allow_missing_audio,
        device=str(device),
        progress=ctx.progress,
        dtype=torch.bfloat16 if opts.latents_dtype == "bf16" else torch.float32,
        text_encoder=str(model_cfg.text_encoder_path) if model_cfg.text_encoder_path is not None else None,
    )
    try:
        check_options(options, model)
    except UsageError as e:
        raise UsageError(f"pipeline.preprocess: {e}") from None
    return model, options


def preprocess_folders(ctx: Context, model: Any) -> set[str]:
    """The cache folders the preprocess stage writes."""
    audio = ctx.pipeline.preprocess.audio
    return {VIDEO_DIR, TEXT_DIR} | ({AUDIO_DIR} if (model.spec.has_audio if audio is None else audio) else set())


def _drop_stale_samples(ctx: Context) -> dict[str, list]:
    """Cache files of samples whose clip or caption changed (or went away) since this stage made them are removed, so
    that preprocess makes them again (its own fingerprints record settings and encoders, not the inputs). Cache files
    of samples with no clip that this stage never made are not the pipeline's: it stops instead.

    Returns:
        ``{sample id: [size, mtime_ns, caption digest]}`` of the dataset now (recorded in the state file).
    """
    from ltx_trainer.data.cache import CACHE_SUFFIXES
    from ltx_trainer.data.preprocess_inputs import load_dataset

    items, _, _ = load_dataset(ctx.layout.dataset)
    now = {item.sample_id: [*_stamp(item.media), _digest(item.caption)] for item in items}
    earlier = ctx.previous.get("preprocess", {}).get("fingerprint", {}).get("samples", {})
    cache = ctx.layout.cache
    files: dict[str, list[Path]] = {}
    for folder in (VIDEO_DIR, AUDIO_DIR, TEXT_DIR):
        for path in sorted((cache / folder).rglob("*")) if (cache / folder).is_dir() else []:
            if path.suffix in CACHE_SUFFIXES and not path.name.startswith("."):
                sample_id = path.relative_to(cache / folder).with_suffix("").as_posix()
                files.setdefault(sample_id, []).append(path)
    foreign = sorted(sid for sid in files if sid not in now and sid not in earlier)
    if foreign:
        raise DataError(
            f"{cache}: {len(foreign)} cached sample(s) have no clip in {ctx.layout.dataset} ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}) and were not made by this pipeline; training would use them: "
            "delete them (or the whole .precomputed folder) and rerun"
        )
    stale = sorted(sid for sid in files if sid in earlier and now.get(sid) != earlier[sid])
    for sample_id in stale:
        why = "its clip or caption changed" if sample_id in now else "its clip is gone"
        logger.info("%s: %s since it was preprocessed; removing its cache files", sample_id, why)
        for path in files[sample_id]:
            path.unlink()
    return now


def preprocess(ctx: Context) -> StageResult:
    from ltx_trainer.data.preprocess import preprocess_dataset

    model, options = preprocess_setup(ctx)
    samples = ctx.dataset_samples = _drop_stale_samples(ctx)
    ctx.fingerprints["preprocess"] = {"samples": samples}
    result = preprocess_dataset(ctx.layout.dataset, model, options)
    del model
    _free_memory()
    links = {"preprocess_report.json": result.report} if result.report else {}
    if not result.succeeded:
        raise PartialFailure(f"nothing was preprocessed: no sample was written or found done (see {result.report})")
    if ctx.pipeline.preprocess.strict and result.failed:
        raise PartialFailure(
            f"pipeline.preprocess.strict: {len(result.failed)} sample(s) skipped (see {result.report}); fix or remove "
            "them, or set strict: false"
        )
    redone = f" ({len(result.redone)} re-done: settings changed)" if result.redone else ""
    detail = (
        f"{len(result.written)} written{redone}, {len(result.already_done)} already done, "
        f"{len(result.failed)} skipped; {result.calls.get('video', 0)} clip(s) and {result.calls.get('text', 0)} "
        "caption(s) encoded"
    )
    status = "done" if result.written else "skipped"
    return StageResult("preprocess", status, detail, links=links, fingerprint={"samples": samples})


# ---- train ----------------------------------------------------------------------------------------------------------


def _refuse_changed_dataset(ctx: Context) -> None:
    """A run folder with checkpoints trained on another dataset (clips or captions changed and preprocessed again):
    resuming or calling it finished would mix two datasets. Its checkpoints are not the pipeline's to delete."""
    from ltx_trainer.training import checkpoints

    now = ctx.dataset_samples
    trained = ctx.previous.get("train", {}).get("fingerprint", {}).get("samples")
    folder = ctx.layout.run / "checkpoints"
    if now is None or trained is None or now == trained or not checkpoints.saved_steps(folder):
        return
    changed = sorted(k for k in now.keys() | trained.keys() if now.get(k) != trained.get(k))
    raise DataError(
        f"{folder}: trained on another version of the dataset ({len(changed)} sample(s) added, changed or gone since, "
        f"e.g. {changed[0]}); train into a new output_dir (or --out), or move that folder away, and rerun"
    )


def train(ctx: Context) -> StageResult:
    from ltx_trainer.training.trainer import Trainer

    problems = check_paths(ctx.cfg)
    if problems:
        raise UsageError(f"{ctx.config_path}: " + "; ".join(problems))
    _refuse_changed_dataset(ctx)
    ctx.fingerprints["train"] = {"samples": ctx.dataset_samples}
    trainer = Trainer(ctx.cfg, config_source=ctx.config_path)
    trainer.setup()
    result = trainer.train()
    del trainer
    _free_memory()
    if result.weights is None or not result.weights.is_file():
        raise DataError(f"{ctx.layout.run / 'checkpoints'}: the finished run's weights file is missing; retrain")
    ctx.weights = result.weights
    links = {"report.html": ctx.layout.run / "report.html", "weights": result.weights}
    fingerprint = ctx.fingerprints["train"]
    if result.finished_before:
        detail = f"already finished: {result.weights.name}"
        return StageResult("train", "skipped", detail, links=links, fingerprint=fingerprint)
    detail = f"{result.steps} steps in {result.seconds:.0f} s -> {result.weights.name}"
    return StageResult("train", "done", detail, links=links, fingerprint=fingerprint)


# ---- sample ---------------------------------------------------------------------------------------------------------


def final_weights(ctx: Context) -> Path:
    """The trained weights: the train stage's, else the newest in ``<output_dir>/checkpoints``."""
    from ltx_trainer.training import checkpoints

    if ctx.weights is not None:
        return ctx.weights
    folder = ctx.layout.run / "checkpoints"
    kind = "lora" if ctx.cfg.model.training_mode == "lora" else "model"
    steps = checkpoints.saved_steps(folder)
    found = [p for step in reversed(steps) if (p := checkpoints.weights_path(folder, kind, step)).is_file()]
    if not found:
        raise UsageError(f"{folder}: no trained {kind} weights to sample from; add train to pipeline.stages")
    return found[0]


def sample_config(ctx: Context) -> ValidationConfig:
    """The ``validation`` section with the final samples: ``pipeline.sample.prompts``, else ``validation.samples``,
    else the caption of the first clip."""
    from ltx_trainer.data.captioning import find_media

    val = ctx.cfg.validation
    if ctx.pipeline.sample.prompts:
        samples = [ValidationSample(prompt=p) for p in ctx.pipeline.sample.prompts]
    elif val.samples:
        samples = list(val.samples)
    else:
        media = find_media(ctx.layout.dataset) if ctx.layout.dataset.is_dir() else []
        caption = media[0].with_suffix(".txt") if media else None
        if caption is None or not caption.is_file():
            raise UsageError(
                "pipeline.sample.prompts: no prompt for the final samples; list some (or validation.samples)"
            )
        samples = [ValidationSample(prompt=caption.read_text(encoding="utf-8").strip())]
    return val.model_copy(update={"samples": samples})


def sample(ctx: Context) -> StageResult:
    weights = final_weights(ctx)
    val = sample_config(ctx)
    model_cfg = ctx.cfg.model
    fingerprint = {
        "weights": [str(weights), *_stamp(weights)],
        "model_path": str(model_cfg.model_path),
        "text_encoder_path": str(model_cfg.text_encoder_path),
        "validation": val.model_dump(mode="json", exclude={"interval", "skip_initial_validation"}),
    }
    earlier = ctx.previous.get("sample", {})
    files = [Path(p) for p in earlier.get("links", {}).values()]
    if earlier.get("fingerprint") == fingerprint and files and all(p.is_file() for p in files):
        links = {p.name: p for p in files}
        return StageResult(
            "sample", "skipped", f"{len(files)} sample(s) of {weights.name} kept", links=links, fingerprint=fingerprint
        )
    files = draw_samples(ctx, weights, val)
    links = {p.name: p for p in files}
    detail = f"{len(files)} sample(s) from {weights.name}"
    return StageResult("sample", "done", detail, links=links, fingerprint=fingerprint)


def draw_samples(ctx: Context, weights: Path, val: ValidationConfig) -> list[Path]:
    """Draw ``val.samples`` with ``weights`` (a LoRA on ``model.model_path``, or a full checkpoint) into
    ``final_samples/sample_<k>``: the sampler of ``ltx-trainer sample`` and of validation."""
    import torch
    from pydantic import ValidationError
    from rich.progress import Progress

    from ltx_trainer.data.progress import progress_columns
    from ltx_trainer.models.devices import resolve_device
    from ltx_trainer.models.families import load_model
    from ltx_trainer.sampling.lora import apply_loras, read_lora
    from ltx_trainer.sampling.runner import SampleRunner
    from ltx_trainer.sampling.validation import sample_spec

    target = resolve_device(None)
    dtype = torch.bfloat16 if target.type == "cuda" else torch.float32
    lora = ctx.cfg.model.training_mode == "lora"
    model = load_model(ctx.cfg.model.model_path if lora else weights, ctx.cfg.model.text_encoder_path, dtype=dtype)
    try:
        specs = [sample_spec(val, i, model) for i in range(len(val.samples))]
        runner = SampleRunner(model, target)
        prepared = runner.prepare(
            [(s.prompt, s.conditions, spec) for s, spec in zip(val.samples, specs, strict=True)],
            val.negative_prompt,
            labels=[f"samples[{i}].conditions" for i in range(len(val.samples))],
            needed_by="the final samples",
        )
    except ValidationError as e:
        raise UsageError("; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())) from None
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(f"the final samples: {e}") from None
    model.transformer.to(target)
    model.connectors_to(target)
    if lora:
        apply_loras(model.transformer, [(read_lora(weights, model.diffusers_module_name), 1.0)])
    ctx.layout.samples.mkdir(parents=True, exist_ok=True)
    written = []
    with Progress(*progress_columns("{task.description}", unit="steps"), disable=not ctx.progress) as bar:
        for item in prepared:
            task = bar.add_task(f"sample {item.index}/{len(prepared)}", total=item.spec.steps)

            def step(i: int, _: int, task: Any = task) -> None:
                bar.update(task, completed=i)

            written.append(runner.draw(item, ctx.layout.samples / f"sample_{item.index}", step))
    logger.info("final samples: %s", " ".join(str(p) for p in written))
    del model, runner
    _free_memory()
    return written


def _free_memory() -> None:
    """Give a stage's model memory back before the next stage loads its own."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


STAGES = {"split": split, "caption": caption, "preprocess": preprocess, "train": train, "sample": sample}

__all__ = ["STAGES", "Context", "Layout", "StageResult"]
