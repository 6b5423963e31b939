"""Latents back to media: decoding through the model's VAEs and vocoder, and writing mp4 / png / wav.

Used by ``ltx-trainer decode`` (a cached sample or a whole cache, to check it by eye) and by the sampler (generated
samples). Video latents (with the sample's audio latents when present) become an mp4 with sound, single-frame latents
a png, audio latents alone a wav. A whole cache goes to ``<cache root>/decoded_videos/`` (or ``--out``), reference
latents to ``decoded_reference_videos/`` inside that same folder, mirroring the sample ids.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ltx_trainer import logger
from ltx_trainer.data.cache import CACHE_SUFFIXES, CacheError, read_sample_file
from ltx_trainer.data.dataset import index_cache_folder, normalize_video_latents, precomputed_root
from ltx_trainer.data.media import write_audio, write_image, write_video
from ltx_trainer.errors import DataError
from ltx_trainer.models.base import LTXModel
from ltx_trainer.models.devices import device_of, on_device

DECODED_DIR = "decoded_videos"
DECODED_REFERENCE_DIR = "decoded_reference_videos"
OUTPUT_SUFFIXES = (".mp4", ".png", ".wav")


# ---------------------------------------------------------------------------------------------------------------------
# Latents -> frames / waveform -> files
# ---------------------------------------------------------------------------------------------------------------------
def _side_by_side(reference: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``[F, H, W, 3]`` reference left of the output (resized to its height, frames repeated or cut)."""
    count, height = frames.shape[0], frames.shape[1]
    ref = reference[torch.arange(count).clamp(max=reference.shape[0] - 1)]
    if ref.shape[1] != height:
        width = max(2, round(ref.shape[2] * height / ref.shape[1]))
        ref = F.interpolate(ref.permute(0, 3, 1, 2).float(), size=(height, width), mode="bilinear", antialias=True)
        ref = ref.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return torch.cat([ref, frames], dim=2)


@torch.no_grad()
def decode_latents(
    model: LTXModel,
    video_latents: torch.Tensor | None,
    audio_latents: torch.Tensor | None,
    device: torch.device | str | None = None,
    seed: int = 0,
    reference_frames: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None, int | None]:
    """Latents (batch 1) -> (uint8 frames ``[F, H, W, 3]``, waveform ``[2, S]`` float, sample rate).

    The decoders move to ``device`` only while they run. The video decoder's noise (LTX-2 decodes with a little
    noise, as ltx-core) comes from ``seed`` without touching the global random state. ``reference_frames`` (uint8
    ``[F, H, W, 3]``) are shown left of the output.
    """
    frames = waveform = rate = None
    if video_latents is not None:
        decoders = model.codec_modules(video=True, audio=False)  # the VAE (and a diffusion decoder when selected)
        target = torch.device(device) if device is not None else device_of(decoders[-1])
        with on_device(decoders, device), torch.random.fork_rng(devices=[target] if target.type == "cuda" else []):
            torch.manual_seed(seed)
            pixels = model.decode_video(video_latents.to(target))[0]  # [3, F, H, W] in [-1, 1]
        frames = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu()
        if reference_frames is not None:
            frames = _side_by_side(reference_frames, frames)
    if audio_latents is not None:
        with on_device(model.codec_modules(video=False, audio=True), device):
            waveform, rate = model.decode_audio(audio_latents)
        waveform = waveform[0].float().clamp(-1, 1).cpu()
    return frames, waveform, rate


def write_decoded(
    path: Path, frames: torch.Tensor | None, waveform: torch.Tensor | None, rate: int | None, fps: float
) -> Path:
    """mp4 (with audio when given), png for one frame, wav for audio only; the suffix of ``path`` is replaced
    accordingly. Returns the written path."""
    path = Path(path)
    if frames is None:
        path = path.with_suffix(".wav")
        write_audio(path, waveform, rate)
    elif frames.shape[0] == 1:
        path = path.with_suffix(".png")
        write_image(path, frames[0])
    else:
        path = path.with_suffix(".mp4")
        write_video(path, frames, fps, audio=waveform, audio_sample_rate=rate)
    logger.info("written: %s", path)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Cached samples
# ---------------------------------------------------------------------------------------------------------------------
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
    """Decode one cached sample's latents (video and/or audio) to ``out`` (suffix fixed to mp4/png/wav).

    The VAEs must already be on ``device`` (the latents are moved there).

    Raises:
        ValueError: neither file holds anything to decode.
    """
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
            audio = audio.reshape(audio.shape[0], model.spec.audio_latent_channels, -1).transpose(0, 1)
        audio = audio[None].to(device)
    if video is None and audio is None:
        raise ValueError(f"{latents_file or audio_file}: nothing to decode")
    out = out.with_suffix(".mp4") if video is not None else out.with_suffix(".wav")
    frames, waveform, rate = decode_latents(model, video, audio)
    return write_decoded(out, frames, waveform, rate, fps)


@dataclass(frozen=True)
class DecodeJob:
    """One output: a video-or-audio latents file, the sample's audio latents file, the output path (no suffix)."""

    latents_file: Path | None
    audio_file: Path | None
    target: Path

    def existing(self) -> list[Path]:
        return [p for s in OUTPUT_SUFFIXES if (p := self.target.with_name(f"{self.target.name}{s}")).exists()]


def _find_file(folder: Path, sample: str) -> Path | None:
    for suffix in CACHE_SUFFIXES:
        path = folder / f"{sample}{suffix}"
        if path.is_file():
            return path
    return None


def _cache_root_of(file: Path, folders: tuple[str, ...]) -> tuple[Path, str] | None:
    """(cache root, sample id) when ``file`` lies inside one of ``folders`` of a cache."""
    for parent in file.parents:
        if parent.name in folders:
            return parent.parent, file.relative_to(parent).with_suffix("").as_posix()
    return None


def plan_decode(
    path: Path,
    out: Path | None = None,
    latents_dir: str = "latents",
    audio_latents_dir: str = "audio_latents",
    reference_dir: str = "reference_latents",
    with_audio: bool = True,
    references: bool = True,
    limit: int | None = None,
) -> list[DecodeJob]:
    """What to decode for ``path`` (one latents file, or a data root / cache folder) and where to write it.

    One file goes to ``out`` (or next to its cache as ``decoded_videos/<id>``, else beside itself). A cache goes to
    ``out`` (default ``<cache root>/decoded_videos``), its references to ``decoded_reference_videos/`` inside ``out``
    (default ``<cache root>/decoded_reference_videos``).

    Raises:
        DataError: ``path`` does not exist, or the cache holds no latents.
    """
    if not path.exists():
        raise DataError(f"{path}: no such latents file or cache folder")
    if path.is_file():
        found = _cache_root_of(path, (latents_dir, reference_dir, audio_latents_dir))
        audio_file = None
        if found is not None:
            root, sample = found
            is_reference = path.is_relative_to(root / reference_dir)
            if with_audio and not is_reference:
                audio_file = _find_file(root / audio_latents_dir, sample)
            default = root / (DECODED_REFERENCE_DIR if is_reference else DECODED_DIR) / sample
        else:
            default = path.with_suffix("")
        return [DecodeJob(path, audio_file, out.with_suffix("") if out is not None else default)]
    root = precomputed_root(path)
    out_dir = out or root / DECODED_DIR
    video_index = index_cache_folder(root / latents_dir) if (root / latents_dir).is_dir() else {}
    audio_index = index_cache_folder(root / audio_latents_dir) if (root / audio_latents_dir).is_dir() else {}
    samples = sorted(set(video_index) | (set(audio_index) if with_audio else set()))
    if not samples:
        raise DataError(f"{root}: no latents in {latents_dir}/ or {audio_latents_dir}/")
    jobs = [
        DecodeJob(video_index.get(s), audio_index.get(s) if with_audio else None, out_dir / s) for s in samples[:limit]
    ]
    if references and (root / reference_dir).is_dir():
        ref_dir = out / DECODED_REFERENCE_DIR if out is not None else root / DECODED_REFERENCE_DIR
        for sample, file in sorted(index_cache_folder(root / reference_dir).items())[:limit]:
            jobs.append(DecodeJob(file, None, ref_dir / sample))
    return jobs


def run_decode(
    model: LTXModel,
    jobs: list[DecodeJob],
    with_audio: bool = True,
    device: str = "cpu",
    skip_existing: bool = False,
    advance: Callable[[], None] | None = None,
) -> tuple[list[Path], list[str]]:
    """Decode every job (its codecs moved to ``device`` first); one bad sample does not stop the rest.

    Returns:
        (written files, ``"<file>: <why>"`` for each failed job).
    """
    if device != "cpu":
        for module in model.codec_modules(video=model.has_video_vae, audio=with_audio and model.spec.has_audio):
            module.to(torch.device(device))
    written, failed = [], []
    for job in jobs:
        if not (skip_existing and job.existing()):
            try:
                out = job.target.with_name(f"{job.target.name}.mp4")
                written.append(decode_sample(model, job.latents_file, job.audio_file, out, with_audio, device))
            except (CacheError, ValueError, KeyError, RuntimeError) as e:
                failed.append(f"{job.latents_file or job.audio_file}: {e}")
        if advance is not None:
            advance()
    return written, failed
