"""``ltx-trainer sample``: generate a video (with audio on LTX-2) from a model, LoRAs, a prompt and conditions.

The same sampler as validation during training, so a LoRA's sample here equals its validation sample (same prompt,
size, steps, guidance and seed). LoRAs stay separate layers by default (exactly the training numerics); ``--merge``
folds them into the weights instead (as ltx-core/ComfyUI do). Registered by cli.py with ``app.command()(sample)``.
"""

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ltx_trainer.data.media import AUDIO_EXTENSIONS

console = Console(soft_wrap=True)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code=1)


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
    reference_downscale: int = 1,
    reference_temporal_scale: int = 1,
    side_by_side: bool = False,
) -> list[dict]:
    """Command-line options -> ``validation.samples[].conditions`` entries (validated by ``ValidationSample``).

    ``--video`` alone is video-to-audio; with ``--prefix-frames``/``--suffix-frames``/``--crop``/``--mask`` it is
    extension, outpainting or inpainting. ``--audio`` alone is audio-to-video; with ``--audio-prefix``/
    ``--audio-suffix``/``--audio-mask`` it is audio extension or inpainting.
    """
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
        Path, typer.Option("--model", "-m", help="Single-file checkpoint (.safetensors) or diffusers folder.")
    ],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="What to generate.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output file; the suffix becomes .mp4, .png (1 frame) or .wav.")
    ] = Path("sample.mp4"),
    text_encoder: Annotated[
        Path | None, typer.Option(help="Gemma (LTX-2) or T5 (LTX-Video) folder; a diffusers folder has its own.")
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
    device: Annotated[str | None, typer.Option(help="cuda, cuda:1, cpu (default: cuda when available).")] = None,
) -> None:
    """Generate a sample (video with audio on LTX-2; png for one frame) from a model, LoRAs, a prompt and conditions."""
    from pydantic import ValidationError

    from ltx_trainer.config import DEFAULT_NEGATIVE_PROMPT, ValidationSample
    from ltx_trainer.models.errors import ModelLoadError
    from ltx_trainer.models.families import load_model
    from ltx_trainer.sampling.conditions import Geometry, encode_conditions
    from ltx_trainer.sampling.lora import apply_loras, parse_lora_arg, read_lora
    from ltx_trainer.sampling.sampler import SampleSpec, check_geometry, generate, save_sample

    started = time.perf_counter()
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.bfloat16 if target.type == "cuda" else torch.float32
    try:
        loaded = load_model(model, text_encoder, dtype=dtype)
        fam = loaded.spec
        loras = [(read_lora(path, fam.family), strength) for path, strength in map(parse_lora_arg, lora or [])]
        header = next((scale for f, _ in loras if (scale := f.reference_scale()) is not None), (1, 1))
        reference_downscale = reference_downscale if reference_downscale is not None else header[0]
        reference_temporal_scale = reference_temporal_scale if reference_temporal_scale is not None else header[1]
        conditions = build_conditions(
            image, video, prefix_frames, suffix_frames, crop, mask, audio, audio_prefix, audio_suffix, audio_mask,
            reference, reference_downscale, reference_temporal_scale, side_by_side,
        )  # fmt: skip
        request = ValidationSample(prompt=prompt, conditions=conditions)
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
        spec = SampleSpec.family_defaults(
            fam, width=width, height=height, frames=frames, fps=fps, seed=seed, **overrides
        )
        if no_audio or not fam.has_audio:
            spec = replace(spec, generate_audio=False)
        check_geometry(spec, fam, "--width/--height/--frames")
        with console.status("encoding the prompts"):
            features = loaded.encode_text([prompt])
            negative = loaded.encode_text([negative_prompt if negative_prompt is not None else DEFAULT_NEGATIVE_PROMPT])
            loaded.unload_text_encoder()
        loaded.transformer.to(target)
        loaded.connectors_to(target)
        apply_loras(loaded.transformer, loras, merge=merge)
        with console.status("encoding the conditions"):
            encoded = encode_conditions(
                loaded, request.conditions, Geometry(width, height, frames, fps), target if conditions else None
            )
        columns = (
            TextColumn("[bold]sample"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("denoise", total=spec.steps)
            result = generate(
                loaded, features, negative, spec, encoded, lambda i, _n: progress.update(task, completed=i)
            )
        with console.status("decoding"):
            path = save_sample(loaded, result, output, fps, target, seed)
    except ValidationError as e:
        _fail("; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()))
    except (ValueError, ModelLoadError, FileNotFoundError) as e:
        _fail(str(e))
    console.print(
        f"[green]wrote[/green] {path} ({fam.family} {fam.version}, {spec.width}x{spec.height}x{spec.frames}, "
        f"{spec.steps} steps, {time.perf_counter() - started:.1f} s)"
    )
