"""Sample page: a model, LoRAs with strengths, a prompt and conditions -> a video with audio.

The render is :func:`ltx_trainer.sampling.runner.sample_file`, the call ``ltx-trainer sample`` makes, so a sample
here equals the CLI's for the same settings. LoRAs are ``PATH[:STRENGTH]`` lines (the CLI's ``--lora``); the ones a
run saved can be added from a list. Conditions: an image (first frame), a video (its audio is generated, or with
prefix frames it is extended) and an audio file (video is generated for it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr

from ltx_trainer.ui import runs
from ltx_trainer.ui.app import UiContext
from ltx_trainer.ui.tasks import describe_error, watch


def conditions(image: Path | None, video: Path | None, prefix_frames: int | None, audio: Path | None) -> list[dict]:
    """``validation.samples[].conditions`` entries for the page's inputs (as ``sample --image/--video/--audio``)."""
    found: list[dict] = []
    if image is not None:
        found.append({"type": "first_frame", "image_or_video": str(image)})
    if video is not None:
        if prefix_frames:
            found.append({"type": "prefix", "video": str(video), "num_frames": int(prefix_frames)})
        else:
            found.append({"type": "video_to_audio", "video": str(video)})
    if audio is not None:
        found.append({"type": "audio_to_video", "audio": str(audio)})
    return found


def lora_files(outputs: Path) -> list[str]:
    """Every LoRA weights file the runs under ``outputs`` saved, newest run first."""
    found = []
    for run_dir in runs.find_runs(outputs):
        found += [str(p) for p in sorted((run_dir / "checkpoints").glob("lora_weights_step_*.safetensors"))[::-1]]
    return found


def build(ctx: UiContext) -> None:
    with gr.Row():
        model = gr.Textbox(label="Model (single file or diffusers folder)", elem_id="sm-model", scale=3)
        text_encoder = gr.Textbox(label="Text encoder folder (Gemma / T5)", elem_id="sm-text-encoder", scale=3)
    with gr.Row():
        loras = gr.Textbox(label="LoRAs, one PATH[:STRENGTH] per line (strength 1.0 when absent)", lines=3,
                           elem_id="sm-loras", scale=4)  # fmt: skip
        with gr.Column(scale=2):
            saved = gr.Dropdown([], label="LoRAs saved by runs", allow_custom_value=True, elem_id="sm-saved-loras")
            with gr.Row():
                refresh = gr.Button("List", size="sm")
                add = gr.Button("Add", size="sm", elem_id="sm-add-lora")
            merge = gr.Checkbox(label="merge into the weights (ltx-core / ComfyUI style)", value=False)
    prompt = gr.Textbox(label="Prompt", lines=2, elem_id="sm-prompt")
    negative = gr.Textbox(label="Negative prompt (empty: the default)", lines=1)
    with gr.Row():
        width = gr.Number(768, label="width", precision=0, elem_id="sm-width")
        height = gr.Number(512, label="height", precision=0, elem_id="sm-height")
        frames = gr.Number(121, label="frames (8k+1)", precision=0, elem_id="sm-frames")
        fps = gr.Number(24, label="fps")
        steps = gr.Number(None, label="steps (empty: the family's)", precision=0, elem_id="sm-steps")
        seed = gr.Number(42, label="seed", precision=0)
        no_audio = gr.Checkbox(label="video only", value=False)
    with gr.Accordion("Conditions", open=False), gr.Row():
        image = gr.Textbox(label="Image: the first frame")
        video = gr.Textbox(label="Video: generate its audio, or extend it")
        prefix = gr.Number(None, label="keep the video's first N frames (8k+1)", precision=0)
        audio = gr.Textbox(label="Audio: generate the video for it")
    output = gr.Textbox(label="Output file (.mp4; .png for 1 frame; .wav for audio only)", elem_id="sm-output",
                        placeholder=str(ctx.outputs / "samples" / "sample.mp4"))  # fmt: skip
    render = gr.Button("Render", variant="primary", elem_id="sm-render")
    status = gr.Markdown(elem_id="sm-status")
    result = gr.Video(label="Result", elem_id="sm-result", interactive=False, height=360)
    log = gr.Textbox(label="Log", lines=6, max_lines=6, elem_classes="mono")

    def optional_path(text: str, what: str) -> Path | None:
        return ctx.roots.check(text, what) if text and text.strip() else None

    def do_render(*args: Any) -> Iterator[list[Any]]:
        (model_text, encoder_text, lora_text, merged, prompt_text, negative_text, w, h, f, rate, step_count, seed_n,
         video_only, image_text, video_text, prefix_n, audio_text, output_text) = args  # fmt: skip
        from ltx_trainer.models.lora_files import parse_lora_arg

        try:
            model_path = ctx.roots.check(model_text, "Model")
            encoder = optional_path(encoder_text, "Text encoder")
            lines = [line.strip() for line in (lora_text or "").splitlines() if line.strip()]
            for line in lines:
                ctx.roots.check(parse_lora_arg(line)[0], "LoRA")
            image_path = optional_path(image_text, "Image")
            video_path = optional_path(video_text, "Video")
            audio_path = optional_path(audio_text, "Audio")
            default = ctx.outputs / "samples" / f"sample-{time.strftime('%Y%m%d-%H%M%S')}.mp4"
            out = ctx.roots.check(output_text.strip() or default, "Output file")
            if out.exists():
                raise ValueError(f"Output file: {out} exists; choose another name (nothing is overwritten)")
            if not prompt_text.strip():
                raise ValueError("Prompt: empty; describe what to generate")
        except ValueError as e:
            yield [describe_error(e), gr.skip(), gr.skip()]
            return
        phase = {"text": "loading the model"}

        @contextmanager
        def status(text: str):
            phase["text"] = text
            yield

        def progress(total: int):
            def step(i: int, n: int) -> None:
                phase["text"] = f"denoising {i}/{n}"

            return step

        def work() -> Any:
            from ltx_trainer.sampling.runner import sample_file

            out.parent.mkdir(parents=True, exist_ok=True)
            overrides = {"steps": int(step_count)} if step_count else {}
            return sample_file(
                model_path, prompt_text.strip(), out, conditions(image_path, video_path, prefix_n, audio_path),
                encoder, lines, bool(merged), negative_text.strip() or None, int(w), int(h), int(f), float(rate),
                int(seed_n), overrides, bool(video_only), None, status, progress,
            )  # fmt: skip

        started = time.perf_counter()
        for state in watch(work, lambda: phase["text"]):
            if not state.done:
                yield [f"working: {state.status}", gr.skip(), state.log_text]
            elif state.error is not None:
                yield [state.error, gr.skip(), state.log_text]
            else:
                done = state.result
                spec, fam = done.spec, done.family
                size = f"{spec.width}x{spec.height}x{spec.frames}"
                line = (
                    f"**done:** wrote `{done.path}` ({fam.family} {fam.version}, {size}, {spec.steps} steps, "
                    f"{time.perf_counter() - started:.1f} s)"
                )
                yield [line, str(done.path), state.log_text]

    def list_loras() -> Any:
        return gr.update(choices=lora_files(ctx.outputs))

    def add_lora(current: str, chosen: str | None) -> Any:
        if not chosen:
            return gr.skip()
        return "\n".join([*(line for line in (current or "").splitlines() if line.strip()), f"{chosen}:1.0"])

    inputs = [model, text_encoder, loras, merge, prompt, negative, width, height, frames, fps, steps, seed, no_audio,
              image, video, prefix, audio, output]  # fmt: skip
    render.click(do_render, inputs, [status, result, log])
    refresh.click(list_loras, None, saved)
    add.click(add_lora, [loras, saved], loras)
