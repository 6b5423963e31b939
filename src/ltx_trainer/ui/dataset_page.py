"""Dataset page: raw footage -> clips (split-scenes) -> captions (caption) -> cache (preprocess, verify).

Each stage is the library call its verb makes (:mod:`ltx_trainer.ui.dataset_ops`), run beside the server with its log
and a progress line (files counted on disk) shown live. Below: the cache's verify verdict and digest, every input a
stage rejected with its reason, and a grid of the clips (playable, with a preview frame) whose captions are edited in
place; leaving a caption box saves it to the dataset (the sidecar .txt, or the row of the captions file).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ltx_trainer.ui import dataset_ops as ops
from ltx_trainer.ui.app import UiContext
from ltx_trainer.ui.tasks import describe_error, watch

GRID_LIMIT = 60  # clips shown in the grid (the first ones, sorted by name)
BACKENDS = ("template", "qwen-vl", "qwen-omni", "whisper", "openai")


@dataclass
class DatasetPage:
    dataset: Any
    model: Any
    text_encoder: Any
    to_train: Any


def _file_url(path: Path) -> str:
    return "/gradio_api/file=" + html.escape(str(path), quote=True)


def _card(clip: ops.Clip) -> str:
    """A playable clip (the preview frame as its poster) or the image itself."""
    if clip.media.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"):
        return f'<img src="{_file_url(clip.media)}" alt="{html.escape(clip.name)}" style="width:100%">'
    poster = f' poster="{_file_url(clip.preview)}"' if clip.preview is not None else ""
    return f'<video src="{_file_url(clip.media)}"{poster} controls muted preload="none"></video>'


def _cache_markdown(status: ops.CacheStatus | None, root: Path | None) -> str:
    if status is None:
        return "Cache: not checked yet (Preprocess checks it when done; Verify checks it any time)."
    settings = ", ".join(
        f"{k} {v}" for k, v in status.settings.items() if k in ("buckets", "trigger", "model", "audio")
    )
    lines = [
        f"**{status.verdict}** (`{root}`)",
        f"fingerprint (digest of every cache file and what produced it): `{(status.digest or '')[:16]}`",
    ]
    if settings:
        lines.append(f"made with: {settings}")
    lines += [f"- {sample} · {source}: {message}" for sample, source, message in status.problems[:20]]
    return "\n\n".join(lines)


def build(ctx: UiContext) -> DatasetPage:
    base = ctx.roots.folders[0]
    gr.Markdown("### 1 · Raw footage → one clip per shot (`split-scenes`)")
    with gr.Row():
        raw = gr.Textbox(label="Raw footage folder", placeholder=str(base / "raw"), elem_id="ds-raw", scale=3)
        clips_dir = gr.Textbox(
            label="Clips folder (written)", placeholder=str(base / "clips"), elem_id="ds-clips", scale=3
        )
        detector = gr.Dropdown(["content", "adaptive", "histogram", "threshold", "hash"], value="content",
                               label="detector", scale=1)  # fmt: skip
        min_len = gr.Textbox("15", label="min scene length (frames, or 2s)", scale=1)
    split_button = gr.Button("Split scenes", elem_id="ds-split")
    gr.Markdown("### 2 · Captions (`caption`)")
    with gr.Row():
        dataset = gr.Textbox(
            label="Dataset: a clips folder (sidecar .txt captions) or its captions.csv/json/jsonl",
            elem_id="ds-dataset",
            scale=4,
        )
        backend = gr.Dropdown(list(BACKENDS), value="template", label="captioner", scale=1)
        captioner_model = gr.Textbox(label="captioner model (folder / name)", scale=2)
    with gr.Row():
        fmt = gr.Dropdown(["txt", "csv", "json", "jsonl"], value="txt", label="format", scale=1)
        trigger = gr.Textbox(label="trigger word (prepended)", scale=1)
        overwrite = gr.Checkbox(label="re-caption files that have a caption", value=False, scale=1)
    caption_button = gr.Button("Caption", elem_id="ds-caption")
    gr.Markdown("### 3 · Cache (`preprocess`, `verify`)")
    with gr.Row():
        model = gr.Textbox(label="Model (single file or diffusers folder)", elem_id="ds-model", scale=3)
        text_encoder = gr.Textbox(label="Text encoder folder (Gemma / T5)", elem_id="ds-text-encoder", scale=3)
        buckets = gr.Textbox("768x448x89", label="resolution buckets W x H x F;…", elem_id="ds-buckets", scale=2)
    with gr.Row():
        preprocess_button = gr.Button("Preprocess", elem_id="ds-preprocess")
        verify_button = gr.Button("Verify cache", elem_id="ds-verify")
        to_train = gr.Button("Use this dataset on the Train page", elem_id="ds-to-train")
    progress = gr.Markdown(elem_id="ds-progress")
    log = gr.Textbox(label="Log", lines=8, max_lines=8, elem_classes="mono", elem_id="ds-log")
    cache = gr.Markdown(_cache_markdown(None, None), elem_id="ds-cache")
    bad = gr.Dataframe(headers=["input", "stage", "reason"], interactive=False, label="Inputs a stage rejected",
                       elem_id="ds-bad", wrap=True)  # fmt: skip
    gr.Markdown("### Clips — edit a caption, then leave the box: it is saved to the dataset")
    shown = gr.State({})  # {"path": the dataset in the grid, "at": when it was last (re)drawn}
    saved = gr.Markdown(elem_id="ds-saved")

    def checked(text: str, what: str) -> Path:
        return ctx.roots.check(text, what)

    def run_stage(
        work: Callable[[], Any], poll: Callable[[], str] | None, finish: Callable[[Any], tuple[str, str, str | None]]
    ) -> Iterator[list[Any]]:
        """Yields [progress, log, cache, bad, shown, dataset] while ``work`` runs; ``finish(result)`` gives
        (progress line, cache markdown or "", dataset to show or None)."""
        for state in watch(work, poll):
            if not state.done:
                yield [f"working: {state.status}", state.log_text, gr.skip(), gr.skip(), gr.skip(), gr.skip()]
                continue
            if state.error is not None:
                yield [state.error, state.log_text, gr.skip(), gr.skip(), gr.skip(), gr.skip()]
                return
            line, cache_md, show = finish(state.result)
            show_path = Path(show) if show else None
            rows = ops.bad_inputs(show_path) if show_path else gr.skip()
            # the grid is drawn again after every stage (captions, previews and clips may have changed)
            shown_now = {"path": show, "at": time.time()} if show else gr.skip()
            yield [f"**done:** {line}", state.log_text, cache_md or gr.skip(), rows, shown_now, show or gr.skip()]

    def refused(e: Exception) -> Iterator[list[Any]]:
        yield [describe_error(e), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()]

    def do_split(raw_text: str, clips_text: str, detector_name: str, min_text: str) -> Iterator[list[Any]]:
        try:
            source, target = checked(raw_text, "Raw footage folder"), checked(clips_text, "Clips folder")
        except ValueError as e:
            yield from refused(e)
            return

        def finish(summary: Any) -> tuple[str, str, str | None]:
            rejected = len(summary.failed) + len(summary.damaged) + len(summary.skipped)
            note = f"; {rejected} input(s) rejected or damaged (listed below)" if rejected else ""
            return f"split {len(summary.results)} video(s) into {len(summary.clips)} clip(s){note}", "", str(target)

        yield from run_stage(
            lambda: ops.split(source, target, detector_name, min_text),
            lambda: f"split-scenes: {ops.count_files(target, ('.mp4',))} clip(s) written so far",
            finish,
        )

    def do_caption(dataset_text: str, backend_name: str, model_text: str, fmt_name: str, trigger_text: str,
                   redo: bool) -> Iterator[list[Any]]:  # fmt: skip
        try:
            target = checked(dataset_text, "Dataset")
            if model_text.strip() and Path(model_text).expanduser().exists():
                checked(model_text, "captioner model")
        except ValueError as e:
            yield from refused(e)
            return
        folder = ops.dataset_root(target)

        def finish(summary: Any) -> tuple[str, str, str | None]:
            show = folder if fmt_name == "txt" else summary.output
            return summary.describe(), "", str(show)

        yield from run_stage(
            lambda: ops.caption(folder, backend_name, model_text.strip() or None, fmt_name, trigger_text, redo),
            (lambda: ops.caption_progress(folder)) if fmt_name == "txt" else None,
            finish,
        )

    def do_preprocess(dataset_text: str, model_text: str, encoder_text: str, bucket_text: str, trigger_text: str):
        try:
            target = checked(dataset_text, "Dataset")
            model_path = checked(model_text, "Model")
            encoder = checked(encoder_text, "Text encoder") if encoder_text.strip() else None
        except ValueError as e:
            yield from refused(e)
            return
        root = ops.dataset_root(target)

        def work() -> tuple[Any, ops.CacheStatus]:
            result = ops.preprocess(target, model_path, encoder, bucket_text, trigger_text)
            return result, ops.verify(root, model_path, encoder)

        def finish(outcome: tuple[Any, ops.CacheStatus]) -> tuple[str, str, str | None]:
            result, status = outcome
            line = (
                f"preprocess: {len(result.written)} written, {len(result.already_done)} already done, "
                f"{len(result.failed)} skipped (listed below) -> {result.output}"
            )
            return line, _cache_markdown(status, result.output), str(target)

        yield from run_stage(work, lambda: ops.preprocess_progress(target), finish)

    def do_verify(dataset_text: str, model_text: str, encoder_text: str) -> Iterator[list[Any]]:
        try:
            root = ops.dataset_root(checked(dataset_text, "Dataset"))
            model_path = checked(model_text, "Model") if model_text.strip() else None
            encoder = checked(encoder_text, "Text encoder") if encoder_text.strip() else None
        except ValueError as e:
            yield from refused(e)
            return

        def finish(status: ops.CacheStatus) -> tuple[str, str, str | None]:
            return status.verdict, _cache_markdown(status, root / ".precomputed"), None

        yield from run_stage(lambda: ops.verify(root, model_path, encoder), None, finish)

    def show(dataset_text: str) -> list[Any]:
        try:
            target = checked(dataset_text, "Dataset")
        except ValueError as e:
            return [describe_error(e), gr.skip(), gr.skip()]
        return ["", {"path": str(target), "at": time.time()}, ops.bad_inputs(target)]

    stage_outputs = [progress, log, cache, bad, shown, dataset]
    split_button.click(do_split, [raw, clips_dir, detector, min_len], stage_outputs)
    caption_button.click(do_caption, [dataset, backend, captioner_model, fmt, trigger, overwrite], stage_outputs)
    preprocess_button.click(do_preprocess, [dataset, model, text_encoder, buckets, trigger], stage_outputs)
    verify_button.click(do_verify, [dataset, model, text_encoder], stage_outputs)
    dataset.submit(show, dataset, [saved, shown, bad])
    raw.change(lambda text: str(Path(text).parent / "clips") if text.strip() else gr.skip(), raw, clips_dir)

    @gr.render(inputs=shown)
    def grid(current: dict) -> None:
        if not current.get("path"):
            gr.Markdown("No dataset shown yet: split some footage, or type a dataset above and press Enter.")
            return
        path = Path(current["path"])
        try:
            found = ops.clips(path)
        except (OSError, ValueError) as e:
            gr.Markdown(describe_error(e))
            return
        more = f" (the first {GRID_LIMIT} shown)" if len(found) > GRID_LIMIT else ""
        gr.Markdown(f"{len(found)} clip(s) in `{path}`{more}")
        for start in range(0, min(len(found), GRID_LIMIT), 4):
            with gr.Row(equal_height=False):
                for index in range(start, min(start + 4, len(found), GRID_LIMIT)):
                    clip = found[index]
                    with gr.Column(min_width=220, elem_classes="clip-card"):
                        gr.HTML(_card(clip))
                        box = gr.Textbox(
                            clip.caption, label=clip.name, lines=3, interactive=True, elem_id=f"caption-{index}"
                        )
                        box.blur(_saver(path, clip.media), box, saved)

    return DatasetPage(dataset, model, text_encoder, to_train)


def _saver(dataset: Path, media: Path) -> Callable[[str], Any]:
    def save(text: str) -> Any:
        try:
            current = {c.media: c.caption for c in ops.clips(dataset)}.get(media)
            if current is not None and " ".join(text.split()) == current:
                return gr.skip()
            written = ops.save_caption(dataset, media, text)
        except (OSError, ValueError) as e:
            return describe_error(e)
        return f"Saved the caption of `{media.name}` to `{written}`."

    return save


def link_to_train(page: DatasetPage, train: Any, tabs: Any) -> None:
    """The dataset's cache, model and text encoder into the Train form."""
    keys = ("model.model_path", "model.text_encoder_path", "data.preprocessed_data_root")
    targets = [train.widgets[train.keys.index(key)] for key in keys]

    def use(dataset_text: str, model_text: str, encoder_text: str) -> list[Any]:
        if not dataset_text.strip():
            return [gr.skip()] * 4
        root = ops.dataset_root(Path(dataset_text).expanduser())
        return [gr.Tabs(selected="train"), model_text or gr.skip(), encoder_text or gr.skip(), str(root)]

    page.to_train.click(use, [page.dataset, page.model, page.text_encoder], [tabs, *targets])
