"""``run_pipeline``: the stages in order, each checked before any runs, each skipped when its own resume finds nothing
left to do, a state file and a report written after every stage, and a failing stage named in its one-line error.

Layout (:class:`~ltx_trainer.pipeline.stages.Layout`): the footage (``RAW_DIR`` or ``pipeline.raw_dir``) is split
into the dataset folder ``data.preprocessed_data_root`` (clips, ``.txt`` captions, ``scenes.html``,
``.precomputed/``); training, the pipeline's report (``pipeline_report.html``), its state (``pipeline.json``) and the
final samples (``final_samples/``) go to ``output_dir``. ``out`` replaces both: ``<out>/dataset`` and ``<out>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ltx_trainer import logger
from ltx_trainer.config import PIPELINE_STAGES, LtxTrainerConfig, PipelineConfig, check_paths, load_config
from ltx_trainer.errors import EXIT_ENVIRONMENT, Interrupted, LtxTrainerError, UsageError
from ltx_trainer.io import DiskFullError
from ltx_trainer.pipeline.report import read_state, write_report, write_state
from ltx_trainer.pipeline.stages import STAGES, Context, Layout, StageResult, preprocess_folders, preprocess_setup

OnStart = Callable[[int, int, str], None]
OnEnd = Callable[[int, int, StageResult], None]


class StageFailed(LtxTrainerError):
    """A stage stopped the pipeline: its own one-line message, the stage's name and how to go on; the exit code is
    the one of the stage's error."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class PipelineResult:
    """Every stage's result (``off`` for those not run), the layout and the report."""

    layout: Layout
    stages: list[StageResult]
    report: Path

    def stage(self, name: str) -> StageResult:
        return next(s for s in self.stages if s.name == name)


def parse_stages(text: str) -> list[str]:
    """``"split,caption"`` -> the stages in pipeline order (``--stages``)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PIPELINE_STAGES]
    if unknown or not names:
        raise UsageError(f"--stages {text!r}: use a comma-separated list of {', '.join(PIPELINE_STAGES)}")
    return [s for s in PIPELINE_STAGES if s in names]


def _with_stages(pipeline: PipelineConfig, stages: Sequence[str]) -> PipelineConfig:
    """The pipeline section with other stages, validated again (e.g. preprocess needs its buckets)."""
    from pydantic import ValidationError

    try:
        return PipelineConfig.model_validate({**pipeline.model_dump(), "stages": list(stages)})
    except ValidationError as e:
        problem = e.errors()[0]["msg"].removeprefix("Value error, ")
        raise UsageError(f"--stages {','.join(stages)}: pipeline.{problem}") from None


def make_layout(cfg: LtxTrainerConfig, raw: Path | None, out: Path | None) -> Layout:
    pipeline = cfg.pipeline
    assert pipeline is not None
    if raw is not None and pipeline.raw_dir is not None and Path(raw).resolve() != Path(pipeline.raw_dir):
        logger.info("footage: %s (the RAW_DIR argument; pipeline.raw_dir %s is not used)", raw, pipeline.raw_dir)
    footage = Path(raw).expanduser().resolve() if raw is not None else None
    if footage is None and pipeline.raw_dir is not None:
        footage = Path(pipeline.raw_dir)
    if out is None:
        return Layout(footage, Path(cfg.data.preprocessed_data_root), Path(cfg.output_dir))
    out = Path(out).expanduser().resolve()
    logger.info(
        "--out %s: dataset in %s, training in %s (instead of data.preprocessed_data_root %s and output_dir %s)",
        out,
        out / "dataset",
        out,
        cfg.data.preprocessed_data_root,
        cfg.output_dir,
    )
    return Layout(footage, out / "dataset", out)


def _check_before_running(ctx: Context) -> None:
    """Everything that can be checked before the first stage runs: footage and folders, split settings, buckets and
    preprocess options against the model, the folders training reads, model paths. One line per problem found first."""
    from ltx_trainer.data.scenes import check_detector_params, parse_length
    from ltx_trainer.pipeline.stages import detector_params

    stages, layout, pipeline = ctx.pipeline.stages, ctx.layout, ctx.pipeline
    if "split" in stages:
        if layout.raw is None:
            raise UsageError("RAW_DIR: the split stage needs the footage folder (the argument or pipeline.raw_dir)")
        if not layout.raw.exists():
            raise UsageError(f"{layout.raw}: no such footage folder or file (RAW_DIR / pipeline.raw_dir)")
        dataset = layout.dataset.resolve()
        if dataset == layout.raw or layout.raw.is_relative_to(dataset):
            raise UsageError(
                f"RAW_DIR {layout.raw} is (inside) the dataset folder {dataset}: caption and preprocess would take the "
                "footage for clips; keep the footage apart from data.preprocessed_data_root"
            )
        try:
            check_detector_params(pipeline.split.detector, detector_params(pipeline))
        except ValueError as e:
            raise UsageError(f"pipeline.split.params: {e}") from None
        for name in ("min_scene_len", "max_scene_len", "skip_start", "skip_end"):
            value = getattr(pipeline.split, name)
            try:
                if value is not None:
                    parse_length(value, 24.0)  # the syntax does not depend on the frame rate
            except ValueError as e:
                raise UsageError(f"pipeline.split.{name}: {e}") from None
    elif {"caption", "preprocess"} & set(stages) and not layout.dataset.is_dir():
        raise UsageError(
            f"data.preprocessed_data_root: {layout.dataset} does not exist; add split to pipeline.stages or point it "
            "at a folder of clips"
        )
    if {"preprocess", "train", "sample"} & set(stages):
        # the data folders are made by the stages before train: only the other paths are checked now
        made_keys = {"data.preprocessed_data_root"}
        if {"split", "caption", "preprocess"} & set(stages):
            made_keys |= {key for _, key in ctx.cfg.training_strategy.data_source_keys().values()}
        problems = [p for p in check_paths(ctx.cfg) if p.split(":", 1)[0] not in made_keys]
        if "train" not in stages:  # sampling reads the model, not the data
            problems = [p for p in problems if p.startswith("model.")]
        if problems:
            raise UsageError(f"{ctx.config_path}: " + "; ".join(problems))
    if "preprocess" in stages:
        model, _ = preprocess_setup(ctx)
        made = preprocess_folders(ctx, model)
        if "train" in stages:
            for folder, (_, key) in ctx.cfg.training_strategy.data_source_keys().items():
                if folder not in made:
                    raise UsageError(
                        f"{key}: {folder!r} is not made by the preprocess stage (it writes {', '.join(sorted(made))} "
                        "from a folder of clips); name one of those, or preprocess that data with `ltx-trainer "
                        "preprocess` and run the train and sample stages only"
                    )


def _failure(stage: str, index: int, total: int, error: BaseException, done: list[str]) -> StageFailed:
    message = " ".join(str(error).split()) if not isinstance(error, KeyboardInterrupt) else "interrupted"
    kept = f" ({', '.join(done)} kept)" if done else ""
    verb = "interrupted" if isinstance(error, KeyboardInterrupt | Interrupted) else "failed"
    return StageFailed(
        f"stage {index}/{total} {stage} {verb}: {message}; rerun the same run-pipeline command to go on from "
        f"{stage}{kept}",
        EXIT_ENVIRONMENT if isinstance(error, DiskFullError) else getattr(error, "exit_code", Interrupted.exit_code),
    )


def run_pipeline(
    config_path: Path,
    raw: Path | None = None,
    out: Path | None = None,
    stages: Sequence[str] | None = None,
    progress: bool = True,
    on_start: OnStart | None = None,
    on_end: OnEnd | None = None,
) -> PipelineResult:
    """Run ``pipeline.stages`` of the config at ``config_path`` (see the module docstring for where things go).

    Args:
        raw: the footage (default ``pipeline.raw_dir``); needed by the split stage.
        out: one folder for everything instead of ``data.preprocessed_data_root`` and ``output_dir``.
        stages: instead of ``pipeline.stages`` (pipeline order whatever the order given).
        progress: each stage's own progress bars.
        on_start, on_end: called as ``on_start(k, n, stage)`` and ``on_end(k, n, result)`` around the k-th of n stages.

    Raises:
        UsageError: no ``pipeline`` section, or a problem found before any stage ran.
        StageFailed: a stage's expected failure (its message and exit code, the stage named).
    """
    config_path = Path(config_path)
    cfg = load_config(config_path)
    if cfg.pipeline is None:
        raise UsageError(
            f"{config_path}: no pipeline section; add one with at least pipeline.preprocess.resolution_buckets "
            "(docs/pipeline.md)"
        )
    pipeline = _with_stages(cfg.pipeline, stages) if stages is not None else cfg.pipeline
    layout = make_layout(cfg, raw, out)
    data = cfg.data.model_copy(update={"preprocessed_data_root": str(layout.dataset)})
    cfg = cfg.model_copy(update={"data": data, "output_dir": str(layout.run), "pipeline": pipeline})
    state = read_state(layout.state)
    ctx = Context(cfg, pipeline, layout, config_path, progress, previous=state.get("stages", {}))
    _check_before_running(ctx)

    results = {name: _not_run(name, ctx.previous.get(name)) for name in PIPELINE_STAGES}
    total = len(pipeline.stages)
    for index, name in enumerate(pipeline.stages, 1):
        if on_start is not None:
            on_start(index, total, name)
        started = time.perf_counter()
        try:
            result = STAGES[name](ctx)
        except (LtxTrainerError, DiskFullError, KeyboardInterrupt) as e:
            failure = _failure(name, index, total, e, [s.name for s in results.values() if s.status != "off"])
            seconds = time.perf_counter() - started
            results[name] = StageResult(name, "failed", str(failure), seconds, fingerprint=ctx.fingerprints.get(name))
            _record(layout, results, state)
            raise failure from e
        result.seconds = time.perf_counter() - started
        results[name] = result
        _record(layout, results, state)
        if on_end is not None:
            on_end(index, total, result)
    return PipelineResult(layout, list(results.values()), layout.report)


def _not_run(name: str, earlier: dict | None) -> StageResult:
    """A stage outside this run's stages, with what an earlier run recorded for it (the report still links it)."""
    if not earlier:
        return StageResult(name, "off", "not in the stages")
    links = {label: Path(p) for label, p in earlier.get("links", {}).items()}
    return StageResult(
        name, "off", f"not in the stages; earlier run: {earlier['status']}: {earlier['detail']}", 0, links
    )


def _record(layout: Layout, results: dict[str, StageResult], state: dict) -> None:
    """The state file (stages of earlier runs kept unless rerun) and the report, after every stage."""
    layout.run.mkdir(parents=True, exist_ok=True)
    write_state(layout.state, layout, results.values(), state)
    write_report(layout, list(results.values()))
