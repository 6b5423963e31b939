"""``ltx-trainer sample``: generate a video (with audio on LTX-2) from a model, LoRAs, a prompt and conditions.

The same sampler as validation during training, so a LoRA's sample here equals its validation sample (same prompt,
size, steps, guidance and seed). LoRAs stay separate layers by default (exactly the training numerics); ``--merge``
folds them into the weights instead (as ltx-core/ComfyUI do). Registered by cli.py with ``app.command()(sample)``.
"""

import time
from pathlib import Path
from typing import Annotated

import typer


def _region(text: str) -> tuple[int, int, int, int]:
    try:
        y1, x1, y2, x2 = (int(v) for v in text.split(","))
    except ValueError as e:
        raise ValueError(f"--crop {text!r}: expected Y1,X1,Y2,X2 in pixels, e.g. 0,0,256,384") from e
    return y1, x1, y2, x2


def build_conditions(
    image: Path | None = None,
    video: Path | None = None,
    prefix_frames: int | None = None,
    suffix_frames: int | None = None,
    crop: str | None = None,
    mask: Path | None = None,
    audio: Path | None = None,
    audio_prefix: float | None = None,
    audio_suffix: float | None = None,
    audio_mask: Path | None = None,
    reference: Path | None = None,
    reference_downscale: int | None = None,
    reference_temporal_scale: int | None = None,
    side_by_side: bool = False,
) -> list[dict]:
    """Command-line options -> ``validation.samples[].conditions`` entries (validated by ``ValidationSample``).

    ``--video`` alone is video-to-audio; with ``--prefix-frames``/``--suffix-frames``/``--crop``/``--mask`` it is
    extension, outpainting or inpainting. ``--audio`` alone is audio-to-video; with ``--audio-prefix``/
    ``--audio-suffix``/``--audio-mask`` it is audio extension or inpainting. Reference factors left None are taken
    from the IC-LoRA's header (else 1).
    """
    from ltx_trainer.data.media import AUDIO_EXTENSIONS

    conditions: list[dict] = []
    if image is not None:
        conditions.append({"type": "first_frame", "image_or_video": str(image)})
    video_modes = [x is not None for x in (prefix_frames, suffix_frames, crop, mask)]
    if any(video_modes) and video is None:
        raise ValueError("--prefix-frames/--suffix-frames/--crop/--mask need --video (the clip they take frames from)")
    if video is not None:
        v = str(video)
        if prefix_frames is not None:
            conditions.append({"type": "prefix", "video": v, "num_frames": prefix_frames})
        if suffix_frames is not None:
            conditions.append({"type": "suffix", "video": v, "num_frames": suffix_frames})
        if crop is not None:
            conditions.append({"type": "spatial_crop", "video": v, "spatial_region": _region(crop)})
        if mask is not None:
            conditions.append({"type": "mask", "video": v, "mask": str(mask)})
        if not any(video_modes):
            conditions.append({"type": "video_to_audio", "video": v})
    audio_modes = [x is not None for x in (audio_prefix, audio_suffix, audio_mask)]
    if any(audio_modes) and audio is None:
        raise ValueError("--audio-prefix/--audio-suffix/--audio-mask need --audio (the clip they take sound from)")
    if audio is not None:
        a = str(audio)
        if audio_prefix is not None:
            conditions.append({"type": "prefix", "audio": a, "duration": audio_prefix})
        if audio_suffix is not None:
            conditions.append({"type": "suffix", "audio": a, "duration": audio_suffix})
        if audio_mask is not None:
            conditions.append({"type": "mask", "audio": a, "mask": str(audio_mask)})
        if not any(audio_modes):
            conditions.append({"type": "audio_to_video", "audio": a})
    if reference is not None:
        key = "audio" if reference.suffix.lower() in AUDIO_EXTENSIONS else "video"
        conditions.append(
            {
                "type": "reference",
                key: str(reference),
                "downscale_factor": reference_downscale,
                "temporal_scale_factor": reference_temporal_scale,
                "include_in_output": side_by_side,
            }
        )
    return conditions


def sample(
    model: Annotated[
        Path,
        typer.Option(
            "--model", "-m", help="Single-file checkpoint (.safetensors), diffusers folder, or LTX-2.5 release folder."
        ),
    ],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="What to generate.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output file; the suffix becomes .mp4, .png (1 frame) or .wav.")
    ] = Path("sample.mp4"),
    text_encoder: Annotated[
        Path | None,
        typer.Option(
            help="Gemma (LTX-2) or T5 (LTX-Video) folder, or LTX-2.5's packed file; diffusers folders and LTX-2.5 "
            "releases have their own."
        ),
    ] = None,
    lora: Annotated[
        list[str] | None, typer.Option("--lora", help="LoRA file as PATH[:STRENGTH] (default 1.0); repeat for more.")
    ] = None,
    merge: Annotated[
        bool, typer.Option(help="Merge LoRAs into the weights (ltx-core style) instead of keeping them as layers.")
    ] = False,
    negative_prompt: Annotated[str | None, typer.Option(help="Negative prompt for CFG (default: ours).")] = None,
    width: Annotated[int, typer.Option(help="Width in pixels (multiple of 32).")] = 768,
    height: Annotated[int, typer.Option(help="Height in pixels (multiple of 32).")] = 512,
    frames: Annotated[int, typer.Option(help="Frames, 8k+1 (1 = an image).")] = 121,
    fps: Annotated[float, typer.Option(help="Frames per second.")] = 24.0,
    steps: Annotated[int | None, typer.Option(help="Denoising steps (default: the family's).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    video_cfg: Annotated[float | None, typer.Option(help="Video CFG scale (default: the family's).")] = None,
    audio_cfg: Annotated[float | None, typer.Option(help="Audio CFG scale (LTX-2).")] = None,
    video_stg: Annotated[float | None, typer.Option(help="Video STG scale (0 = off).")] = None,
    audio_stg: Annotated[float | None, typer.Option(help="Audio STG scale (0 = off).")] = None,
    stg_block: Annotated[
        list[int] | None, typer.Option(help="Block perturbed by STG; repeat for more (past the depth = last block).")
    ] = None,
    video_modality: Annotated[float | None, typer.Option(help="Video modality-isolation guidance (LTX-2).")] = None,
    audio_modality: Annotated[float | None, typer.Option(help="Audio modality-isolation guidance (LTX-2).")] = None,
    rescale: Annotated[float | None, typer.Option(help="Guidance rescale in [0, 1] (0 = off).")] = None,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Video only (LTX-2).")] = False,
    image: Annotated[Path | None, typer.Option(help="First frame: an image (or a video's first frame).")] = None,
    video: Annotated[
        Path | None, typer.Option(help="Input video: alone = generate its audio; or with a mode option below.")
    ] = None,
    prefix_frames: Annotated[
        int | None, typer.Option(help="Keep the video's first N frames (8k+1) and continue it.")
    ] = None,
    suffix_frames: Annotated[int | None, typer.Option(help="Keep the video's last N frames (8k) at the end.")] = None,
    crop: Annotated[str | None, typer.Option(help="Outpaint around Y1,X1,Y2,X2 (pixels) of the video.")] = None,
    mask: Annotated[
        Path | None, typer.Option(help="Inpaint the video where this mask (image/video/tensor) is 0.")
    ] = None,
    audio: Annotated[
        Path | None, typer.Option(help="Input audio: alone = generate video for it; or with an audio mode.")
    ] = None,
    audio_prefix: Annotated[float | None, typer.Option(help="Keep the audio's first S seconds.")] = None,
    audio_suffix: Annotated[float | None, typer.Option(help="Keep the audio's last S seconds at the end.")] = None,
    audio_mask: Annotated[Path | None, typer.Option(help="Inpaint the audio where this tensor mask [T] is 0.")] = None,
    reference: Annotated[
        Path | None, typer.Option(help="IC-LoRA reference video (or audio file) placed beside the target.")
    ] = None,
    reference_downscale: Annotated[
        int | None, typer.Option(help="Reference at 1/N of the output size (default: the IC-LoRA's header, else 1).")
    ] = None,
    reference_temporal_scale: Annotated[
        int | None, typer.Option(help="Reference keeps every N-th frame (default: the IC-LoRA's header, else 1).")
    ] = None,
    side_by_side: Annotated[bool, typer.Option(help="Show the reference left of the output.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    device: Annotated[str | None, typer.Option(help="cuda, cuda:1, cpu (default: cuda when available).")] = None,
    video_decoder: Annotated[
        str, typer.Option(help="conv (the VAE decoder) or diffusion (LTX-2.5's diffusion decoder).")
    ] = "conv",
) -> None:
    """Generate a sample (video with audio on LTX-2; png for one frame) from a model, LoRAs, a prompt and conditions."""
    from pydantic import ValidationError
    from rich.console import Console
    from rich.progress import Progress

    from ltx_trainer.data.progress import progress_columns
    from ltx_trainer.errors import LtxTrainerError, UsageError
    from ltx_trainer.sampling.runner import sample_file

    if output.exists() and not overwrite:
        raise UsageError(f"{output} exists; choose another --output or pass --overwrite")
    console = Console(soft_wrap=True)
    started = time.perf_counter()
    columns = progress_columns("[bold]sample", unit="steps")
    overrides = {
        k: v
        for k, v in {
            "steps": steps,
            "video_cfg": video_cfg,
            "audio_cfg": audio_cfg,
            "video_stg": video_stg,
            "audio_stg": audio_stg,
            "stg_blocks": tuple(stg_block) if stg_block else None,
            "video_modality": video_modality,
            "audio_modality": audio_modality,
            "rescale": rescale,
        }.items()
        if v is not None
    }
    bar = Progress(*columns, console=console)

    def denoising(total: int):  # the bar runs only while denoising (statuses show the other phases)
        task = bar.add_task("denoise", total=total)
        bar.start()

        def step(i: int, n: int) -> None:
            bar.update(task, completed=i)
            if i == n:
                bar.stop()

        return step

    try:
        conditions = build_conditions(
            image, video, prefix_frames, suffix_frames, crop, mask, audio, audio_prefix, audio_suffix, audio_mask,
            reference, reference_downscale, reference_temporal_scale, side_by_side,
        )  # fmt: skip
        result = sample_file(
            model, prompt, output, conditions, text_encoder, lora or [], merge, negative_prompt,
            width, height, frames, fps, seed, overrides, no_audio, device, console.status, denoising, video_decoder,
        )  # fmt: skip
    except ValidationError as e:
        message = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise UsageError(message) from e
    except LtxTrainerError:
        raise
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from e
    finally:
        bar.stop()
    fam, spec = result.family, result.spec
    console.print(
        f"[green]wrote[/green] {result.path} ({fam.family} {fam.version}, {spec.width}x{spec.height}x{spec.frames}, "
        f"{spec.steps} steps, {time.perf_counter() - started:.1f} s)"
    )
