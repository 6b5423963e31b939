"""``ltx-trainer caption``: caption every video, image and audio file of a dataset.

Registered by ``cli.py`` with ``app.command()(caption)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

# The same names as ltx_trainer.data.captioning.factory.BACKENDS (not imported: --help stays light).
Backend = Literal["template", "qwen-vl", "qwen-omni", "whisper", "openai"]


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
    fmt: Annotated[
        Literal["txt", "csv", "json", "jsonl"] | None,
        typer.Option("--format", help="Output format (default: from the --output suffix, else txt sidecars)."),
    ] = None,
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
    """Caption a dataset: sidecar .txt files or one CSV/JSON/JSONL with media_path and caption columns.

    Exits 1 when a file failed (listed in caption_failures.json) or nothing has a caption afterwards.
    """
    from rich.console import Console

    from ltx_trainer.data.captioning import caption_dataset, find_media, make_captioner
    from ltx_trainer.errors import PartialFailure, UsageError

    if not inputs.exists():
        raise UsageError(f"{inputs}: no such file or folder")
    if not find_media(inputs):
        raise UsageError(f"{inputs}: no video, image or audio files found")
    captioner = make_captioner(
        backend,
        model=model,
        style=style,
        speech=speech,
        whisper_model=whisper_model,
        language=language,
        vad=vad,
        num_frames=num_frames,
        max_pixels=max_pixels,
        max_new_tokens=max_new_tokens,
        device=device,
        dtype=dtype,
        load_in_8bit=load_in_8bit,
        base_url=base_url,
        api_key_env=api_key_env,
        send_audio=send_audio,
        prompt=prompt,
    )
    fmt = _output_format(output, fmt)
    summary = caption_dataset(
        inputs, captioner, output=output, fmt=fmt, resume=resume, trigger=trigger, style=style, clean=clean
    )

    console = Console(soft_wrap=True)
    where = summary.output or "sidecar .txt files"
    console.print(summary.describe() + f" -> {where}", highlight=False)
    if summary.failed:
        console.print(f"[yellow]failures listed in[/yellow] {summary.failures_file}", highlight=False)
        raise PartialFailure(f"{len(summary.failed)} of {summary.total} file(s) failed; see {summary.failures_file}")
    if summary.succeeded == 0 and not summary.empty:
        raise PartialFailure(f"no caption was produced for the {summary.total} file(s) of {inputs}")


def _output_format(output: Path | None, fmt: str | None) -> str:
    """``--format``, or when absent the metadata format named by ``--output``'s suffix (``-o x.jsonl`` is a file)."""
    from ltx_trainer.errors import UsageError

    suffix = output.suffix.lower().lstrip(".") if output is not None else ""
    named = suffix if suffix in ("csv", "json", "jsonl") else None
    if fmt is None:
        return named or "txt"
    if named and named != fmt:
        raise UsageError(f"--output {output} names a .{named} file but --format is {fmt}; drop one of them")
    return fmt
