"""``ltx-trainer preprocess``: media + captions -> the cache training reads (latents, audio, text, masks, references).

cli.py registers it with ``app.command()(preprocess)``. Heavy imports (torch, the models) happen inside.
"""

from pathlib import Path
from typing import Annotated

import typer


def preprocess(
    dataset: Annotated[
        Path,
        typer.Argument(
            help="A folder of clips/images with sidecar .txt captions, or a CSV/JSON/JSONL file with the columns "
            "media_path (or video), caption and optionally audio, reference_video, reference_audio, video_mask, "
            "audio_mask; paths are relative to the file."
        ),
    ],
    model: Annotated[Path, typer.Option(help="Model: an official single-file checkpoint or a diffusers folder.")],
    resolution_buckets: Annotated[
        str,
        typer.Option(
            help="'WxHxF;WxHxF;...' (W, H multiples of 32, F = 8k+1; F=1 for images). Each clip takes the bucket with "
            "the nearest aspect ratio, then the most frames it has, then the largest area."
        ),
    ],
    text_encoder: Annotated[
        Path | None,
        typer.Option(help="Text encoder folder (Gemma for LTX-2, T5 for LTXV); not needed for a diffusers folder."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Cache folder (default: .precomputed/ next to the dataset).")
    ] = None,
    format: Annotated[
        str, typer.Option(help="safetensors (fingerprinted, the default) or pt (the official ltx-trainer layout).")
    ] = "safetensors",
    caption_column: Annotated[
        str | None, typer.Option(help="Caption column of the metadata file (default: caption, text or prompt).")
    ] = None,
    media_column: Annotated[
        str | None,
        typer.Option(help="Media column of the metadata file (default: media_path, video, image, path or file)."),
    ] = None,
    trigger: Annotated[
        str | None, typer.Option("--trigger", "--lora-trigger", help="Token prepended to every caption.")
    ] = None,
    crop: Annotated[str, typer.Option(help="center or random (seeded per clip by --seed).")] = "center",
    seed: Annotated[int, typer.Option(help="Seed of the random crops.")] = 0,
    fps: Annotated[
        float | None, typer.Option(help="Resample frames to this frame rate (default: keep the source rate).")
    ] = None,
    vae_tiling: Annotated[bool, typer.Option(help="Encode in spatial tiles (less memory at high resolution).")] = False,
    audio: Annotated[
        bool | None,
        typer.Option(
            "--audio/--no-audio", help="Audio latents (default: on for models with audio, i.e. the LTX-2 family)."
        ),
    ] = None,
    allow_missing_audio: Annotated[
        bool, typer.Option(help="Keep clips without an audio track as video-only samples instead of skipping them.")
    ] = False,
    reference_downscale_factor: Annotated[
        int, typer.Option(help="IC-LoRA references at 1/k of the bucket's width and height.")
    ] = 1,
    reference_temporal_scale_factor: Annotated[
        int, typer.Option(help="IC-LoRA references keep frame 0, then every S-th frame (fps stored as fps/S).")
    ] = 1,
    overwrite: Annotated[bool, typer.Option(help="Recompute samples whose outputs already exist.")] = False,
    shard_index: Annotated[
        int | None, typer.Option(help="This process's shard (default: the accelerate/torchrun rank, else 0).")
    ] = None,
    num_shards: Annotated[
        int | None, typer.Option(help="Number of shards (default: the accelerate/torchrun world size, else 1).")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit with code 1 when any sample was skipped.")] = False,
    device: Annotated[str, typer.Option(help="Where the VAEs run: auto, cpu, cuda, cuda:1, ...")] = "auto",
    latents_dtype: Annotated[
        str, typer.Option(help="bf16 (as the official cache) or fp32: dtype of video latents and text features.")
    ] = "bf16",
    compute_dtype: Annotated[
        str,
        typer.Option(
            help="auto (bf16 where the device computes it natively: CUDA, CPUs with AVX512-BF16/AMX; else fp32), "
            "bf16 or fp32: dtype the video VAE and text encoder run in (the audio VAE always runs in fp32)."
        ),
    ] = "auto",
    text_encoder_bits: Annotated[
        int | None,
        typer.Option(help="Load the text encoder in 8 bit (bitsandbytes on CUDA, torchao on CPU) or 4 (NF4, CUDA)."),
    ] = None,
) -> None:
    """Precompute video latents, audio latents, text features, masks and IC-LoRA references for training.

    Bad samples (corrupt or truncated files, no video, no audio when it is needed, too few frames, bad captions,
    duplicates) are skipped and listed with their reason in preprocess_report.json in the output folder. Reruns
    skip finished samples; --num-shards splits the work between processes.
    """
    import torch
    from rich.console import Console

    from ltx_trainer.data.preprocess import (
        PreprocessOptions,
        default_shard,
        parse_buckets,
        preprocess_dataset,
        print_summary,
    )
    from ltx_trainer.errors import PartialFailure, UsageError
    from ltx_trainer.models.devices import resolve_device, weights_dtype
    from ltx_trainer.models.families import load_model

    console = Console(soft_wrap=True)
    buckets = parse_buckets(resolution_buckets)
    if format not in ("safetensors", "pt"):
        raise UsageError(f"--format {format!r}: use safetensors or pt")
    if crop not in ("center", "random"):
        raise UsageError(f"--crop {crop!r}: use center or random")
    if latents_dtype not in ("bf16", "fp32"):
        raise UsageError(f"--latents-dtype {latents_dtype!r}: use bf16 or fp32")
    if compute_dtype not in ("auto", "bf16", "fp32"):
        raise UsageError(f"--compute-dtype {compute_dtype!r}: use auto, bf16 or fp32")
    if text_encoder_bits not in (None, 8, 4):
        raise UsageError(f"--text-encoder-bits {text_encoder_bits}: use 8 or 4")
    if (shard_index is None) != (num_shards is None):
        raise UsageError("--shard-index and --num-shards go together")
    if shard_index is None or num_shards is None:
        shard_index, num_shards = default_shard()

    resolved = resolve_device(device)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}.get(compute_dtype) or weights_dtype(resolved)
    loaded = load_model(model, text_encoder, dtype=dtype, text_encoder_bits=text_encoder_bits)
    options = PreprocessOptions(
        buckets=buckets,
        output=output,
        format=format,
        trigger=trigger,
        crop=crop,
        seed=seed,
        fps=fps,
        vae_tiling=vae_tiling,
        audio=audio,
        allow_missing_audio=allow_missing_audio,
        reference_downscale_factor=reference_downscale_factor,
        reference_temporal_scale_factor=reference_temporal_scale_factor,
        overwrite=overwrite,
        shard_index=shard_index,
        num_shards=num_shards,
        device=str(resolved),
        progress=console.is_terminal,
        dtype=torch.bfloat16 if latents_dtype == "bf16" else torch.float32,
        text_encoder=str(text_encoder) if text_encoder is not None else None,
        text_encoder_bits=text_encoder_bits,
    )
    result = preprocess_dataset(dataset, loaded, options, caption_column, media_column)
    if num_shards > 1 and result.report is not None:  # the last shard to complete merges the reports
        from ltx_trainer.data.shards import mark_complete, merge_shard_reports

        mark_complete(result.report)
        merge_shard_reports(result.output, num_shards)
    print_summary(result, console)
    if not result.succeeded:
        raise PartialFailure(f"nothing was preprocessed: no sample was written or found done (see {result.report})")
    if strict and result.failed:
        raise PartialFailure(f"--strict: {len(result.failed)} sample(s) skipped (see {result.report})")
