"""``ltx-trainer caption``: caption every video, image and audio file of a dataset.

Registered by ``cli.py`` with ``app.command()(caption)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, NoReturn, get_args

import typer

Backend = Literal["template", "qwen-vl", "qwen-omni", "whisper", "openai"]
BACKENDS: tuple[str, ...] = get_args(Backend)


def caption(
    inputs: Annotated[Path, typer.Argument(help="Dataset folder (searched recursively) or one media file.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="csv/json/jsonl: the metadata file (default <dataset>/captions.<format>). "
            "txt: a folder to mirror the sidecar captions into (default: next to each file).",
        ),
    ] = None,
    backend: Annotated[
        Backend,
        typer.Option(
            help="template: file metadata, no model. qwen-vl: Qwen2.5-VL / Qwen3-VL in-process. qwen-omni: "
            "Qwen2.5-Omni / Qwen3-Omni in-process (hears the audio). whisper: quoted speech only. openai: an "
            "OpenAI-compatible server such as `vllm serve`.",
        ),
    ] = "template",
    model: Annotated[
        Path | None,
        typer.Option(
            help="qwen-vl/qwen-omni: local model folder. whisper: faster-whisper folder or size name "
            "(default large-v3). openai: served model name (default: the server's first model).",
        ),
    ] = None,
    fmt: Annotated[Literal["txt", "csv", "json", "jsonl"], typer.Option("--format", help="Output format.")] = "txt",
    style: Annotated[
        Literal["dense", "sections"],
        typer.Option(
            help="dense: one paragraph (visuals, sounds, quoted speech), the LTX-2 format. "
            "sections: [VISUAL]: … [SPEECH]: … [SOUNDS]: … [TEXT]: ….",
        ),
    ] = "dense",
    trigger: Annotated[str | None, typer.Option(help="LoRA trigger word prepended to every new caption.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--overwrite", help="Skip files that already have a caption (any format).")
    ] = True,
    clean: Annotated[
        bool, typer.Option("--clean/--no-clean", help="Strip LLM boilerplate ('The video shows', markdown, ...).")
    ] = True,
    speech: Annotated[
        bool, typer.Option("--speech", help="Transcribe speech with Whisper and quote it in the captions.")
    ] = False,
    whisper_model: Annotated[
        str, typer.Option(help="Whisper model (faster-whisper folder or size name) for --speech.")
    ] = "large-v3",
    language: Annotated[str | None, typer.Option(help="Spoken language for Whisper (default: detect).")] = None,
    vad: Annotated[bool, typer.Option("--vad/--no-vad", help="Whisper voice-activity filter.")] = True,
    num_frames: Annotated[int, typer.Option(min=1, help="Frames sampled per video.")] = 8,
    max_pixels: Annotated[int, typer.Option(min=1, help="Frames are downscaled to at most this many pixels.")] = (
        640 * 360
    ),
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Caption length limit in tokens.")] = 512,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, ...")] = "auto",
    dtype: Annotated[
        Literal["auto", "bfloat16", "float16", "float32"], typer.Option(help="Model weights dtype.")
    ] = "auto",
    load_in_8bit: Annotated[
        bool, typer.Option("--8bit", help="Load the VLM in 8 bits with bitsandbytes (CUDA only).")
    ] = False,
    base_url: Annotated[str, typer.Option(help="openai: API root of the server.")] = "http://localhost:8000/v1",
    api_key_env: Annotated[str, typer.Option(help="openai: environment variable holding the API key.")] = (
        "OPENAI_API_KEY"
    ),
    send_audio: Annotated[
        bool, typer.Option("--send-audio", help="openai: send the audio track too (the served model must hear).")
    ] = False,
    prompt: Annotated[str | None, typer.Option(help="Replace the built-in captioning instruction.")] = None,
) -> None:
    """Caption a dataset: sidecar .txt files or one CSV/JSON/JSONL with media_path and caption columns."""
    from rich.console import Console

    from ltx_trainer.data.captioning import (
        Captioner,
        CaptionError,
        OpenAICompatibleCaptioner,
        TemplateCaptioner,
        VLMCaptioner,
        WhisperCaptioner,
        caption_dataset,
        find_media,
    )

    console = Console(soft_wrap=True)

    def fail(message: str) -> NoReturn:
        console.print(f"[red]error:[/red] {message}", highlight=False)
        raise typer.Exit(code=1)

    if backend not in BACKENDS:
        fail(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if not inputs.exists():
        fail(f"{inputs}: no such file or folder")
    if not find_media(inputs):
        fail(f"{inputs}: no video, image or audio files found")
    if backend in ("qwen-vl", "qwen-omni") and model is None:
        fail(f"--backend {backend} needs --model <local model folder>")

    try:
        whisper = None
        if speech or backend == "whisper":
            whisper_name = str(model) if backend == "whisper" and model is not None else whisper_model
            whisper = WhisperCaptioner(whisper_name, language=language, vad=vad, style=style)
        captioner: Captioner
        if backend == "template":
            captioner = TemplateCaptioner(style=style, speech=whisper)
        elif backend == "whisper":
            captioner = whisper
        elif backend == "openai":
            captioner = OpenAICompatibleCaptioner(
                base_url=base_url,
                model=str(model) if model is not None else None,
                api_key_env=api_key_env,
                style=style,
                num_frames=num_frames,
                max_pixels=max_pixels,
                send_audio=send_audio,
                max_tokens=max_new_tokens,
                prompt=prompt,
                speech=whisper,
            )
        else:
            vlm = VLMCaptioner(
                model,
                style=style,
                num_frames=num_frames,
                max_pixels=max_pixels,
                max_new_tokens=max_new_tokens,
                device=device,
                dtype=dtype,
                load_in_8bit=load_in_8bit,
                use_audio=backend == "qwen-omni",
                prompt=prompt,
                speech=whisper,
            )
            if backend == "qwen-omni" and not vlm.hears_audio:
                console.print(
                    f"[yellow]warning:[/yellow] {model} is a {vlm.model_type} model, which cannot hear audio; "
                    "captioning from the frames only",
                    highlight=False,
                )
            captioner = vlm
        summary = caption_dataset(
            inputs,
            captioner,
            output=output,
            fmt=fmt,
            resume=resume,
            trigger=trigger,
            style=style,
            clean=clean,
        )
    except CaptionError as e:
        fail(str(e))

    where = summary.output or "sidecar .txt files"
    console.print(
        f"[green]captioned[/green] {summary.captioned}, kept {summary.skipped}, failed {len(summary.failed)} "
        f"of {summary.total} files in {summary.seconds:.1f}s -> {where}",
        highlight=False,
    )
    if summary.failed:
        console.print(f"[yellow]failures listed in[/yellow] {summary.failures_file}", highlight=False)
    if summary.succeeded == 0:
        raise typer.Exit(code=1)
