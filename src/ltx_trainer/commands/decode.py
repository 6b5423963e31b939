"""``ltx-trainer decode``: cached latents back to media for eyeballing.

Video latents (with the sample's audio latents when present) become an mp4 with sound, single-frame latents a png,
audio latents alone a wav. One file, or a whole cache into ``<cache root>/decoded_videos/`` (and reference latents
into ``decoded_reference_videos/``), mirroring the sample ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ltx_trainer.models.base import LTXModel

DECODED_DIR = "decoded_videos"
DECODED_REFERENCE_DIR = "decoded_reference_videos"


def _find_file(folder: Path, sample: str) -> Path | None:
    from ltx_trainer.data.cache import CACHE_SUFFIXES

    for suffix in CACHE_SUFFIXES:
        path = folder / f"{sample}{suffix}"
        if path.is_file():
            return path
    return None


def _is_audio(data: dict) -> bool:
    return "num_time_steps" in data or ("latents" in data and data["latents"].ndim == 3)


def decode_sample(
    model: LTXModel,
    latents_file: Path | None,
    audio_file: Path | None,
    out: Path,
    with_audio: bool = True,
    device: str = "cpu",
) -> Path:
    """Decode one sample's latents (video and/or audio) to ``out`` (suffix fixed to mp4/png/wav); returns the path.

    The VAEs must already be on ``device`` (the latents are moved there).
    """
    from ltx_trainer.data.cache import read_sample_file
    from ltx_trainer.data.dataset import normalize_video_latents
    from ltx_trainer.sampling.sampler import Sample, save_sample

    video, fps = None, 24.0
    audio = None
    if latents_file is not None:
        data = read_sample_file(latents_file)
        if _is_audio(data):
            audio_file, with_audio = latents_file, True
        else:
            data = normalize_video_latents(data)
            video, fps = data["latents"][None].to(device), float(data.get("fps", 24.0))
    if with_audio and audio_file is not None:
        audio = read_sample_file(audio_file)["latents"]
        if audio.ndim == 2:  # patchified [T, C*F]
            spec = model.spec
            audio = audio.reshape(audio.shape[0], spec.audio_latent_channels, -1).transpose(0, 1)
        audio = audio[None].to(device)
    if video is None and audio is None:
        raise ValueError(f"{latents_file or audio_file}: nothing to decode")
    out = out.with_suffix(".mp4") if video is not None else out.with_suffix(".wav")
    return save_sample(model, Sample(video_latents=video, audio_latents=audio), out, fps)


def _cache_root_of(file: Path, folders: tuple[str, ...]) -> tuple[Path, str] | None:
    """(cache root, sample id) when ``file`` lies inside one of ``folders`` of a cache."""
    for parent in file.parents:
        if parent.name in folders:
            return parent.parent, file.relative_to(parent).with_suffix("").as_posix()
    return None


def _move_to(model: LTXModel, device: str, audio: bool) -> None:
    import torch

    if device == "cpu":
        return
    for name in ("video_vae", "vae", *(("audio_vae", "vocoder") if audio else ())):
        if hasattr(type(model), name):
            getattr(model, name).to(torch.device(device))


def decode(
    path: Annotated[Path, typer.Argument(help="A latents file, or a data root / cache folder to decode entirely.")],
    model: Annotated[Path, typer.Option(help="Model whose VAEs decode the latents (single file or diffusers folder).")],
    out: Annotated[
        Path | None,
        typer.Option(help="Output file (one latents file) or folder (a cache); default <cache root>/decoded_videos."),
    ] = None,
    latents_dir: Annotated[str, typer.Option(help="Video latents folder of the cache.")] = "latents",
    audio_latents_dir: Annotated[str, typer.Option(help="Audio latents folder of the cache.")] = "audio_latents",
    reference_dir: Annotated[str, typer.Option(help="Reference latents folder of the cache.")] = "reference_latents",
    audio: Annotated[bool, typer.Option(help="Mux the sample's audio latents into the mp4.")] = True,
    references: Annotated[bool, typer.Option(help="Also decode reference latents (a cache).")] = True,
    skip_existing: Annotated[bool, typer.Option(help="Keep outputs that already exist (resume).")] = False,
    limit: Annotated[int | None, typer.Option(help="Decode at most this many samples per folder.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ... (auto: cuda when available).")] = "auto",
) -> None:
    """Decode cached latents (and audio latents) to mp4 with audio, to check a cache by eye."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ltx_trainer.data.cache import CacheError
    from ltx_trainer.data.dataset import index_cache_folder, precomputed_root
    from ltx_trainer.models.errors import ModelLoadError
    from ltx_trainer.models.families import load_model

    console = Console(soft_wrap=True)

    def fail(message: str) -> None:
        console.print(f"[red]error:[/red] {message}", highlight=False)
        raise typer.Exit(code=2)

    if not path.exists():
        fail(f"{path}: no such latents file or cache folder")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        ltx = load_model(model)
    except ModelLoadError as e:
        fail(str(e))
    _move_to(ltx, device, audio)

    # jobs: (video-or-audio latents file, audio latents file, output path without suffix)
    jobs: list[tuple[Path | None, Path | None, Path]] = []
    if path.is_file():
        found = _cache_root_of(path, (latents_dir, reference_dir, audio_latents_dir))
        audio_file = None
        if found is not None:
            root, sample = found
            is_reference = path.is_relative_to(root / reference_dir)
            if audio and not is_reference:
                audio_file = _find_file(root / audio_latents_dir, sample)
            default = root / (DECODED_REFERENCE_DIR if is_reference else DECODED_DIR) / sample
        else:
            default = path.with_suffix("")
        jobs.append((path, audio_file, out.with_suffix("") if out is not None else default))
    else:
        root = precomputed_root(path)
        out_dir = out or root / DECODED_DIR
        video_index = index_cache_folder(root / latents_dir) if (root / latents_dir).is_dir() else {}
        audio_index = index_cache_folder(root / audio_latents_dir) if (root / audio_latents_dir).is_dir() else {}
        samples = sorted(set(video_index) | (set(audio_index) if audio else set()))
        if not samples:
            fail(f"{root}: no latents in {latents_dir}/ or {audio_latents_dir}/")
        for sample in samples[:limit]:
            jobs.append((video_index.get(sample), audio_index.get(sample) if audio else None, out_dir / sample))
        if references and (root / reference_dir).is_dir():
            ref_dir = (out.parent / DECODED_REFERENCE_DIR) if out is not None else root / DECODED_REFERENCE_DIR
            for sample, file in sorted(index_cache_folder(root / reference_dir).items())[:limit]:
                jobs.append((file, None, ref_dir / sample))

    written, failed = [], []
    columns = (TextColumn("decoding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("decode", total=len(jobs))
        for latents_file, audio_file, target in jobs:
            name = target.name
            existing = [target.with_name(f"{name}{s}") for s in (".mp4", ".png", ".wav")]
            if skip_existing and any(p.exists() for p in existing):
                progress.advance(task)
                continue
            try:
                written.append(
                    decode_sample(ltx, latents_file, audio_file, target.with_name(f"{name}.mp4"), audio, device)
                )
            except (CacheError, ValueError, KeyError, RuntimeError) as e:  # one bad sample must not stop the rest
                failed.append(f"{latents_file or audio_file}: {e}")
            progress.advance(task)
    for line in failed:
        console.print(f"[red]failed[/red] {line}", highlight=False)
    if len(written) == 1 and len(jobs) == 1:
        console.print(f"wrote {written[0]}", highlight=False)
    else:
        where = sorted({str(p.parent) for p in written})
        console.print(f"wrote {len(written)} file(s) under {', '.join(where) or '-'}", highlight=False)
    if failed:
        raise typer.Exit(code=1)
