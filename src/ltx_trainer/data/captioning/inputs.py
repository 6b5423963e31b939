"""Media files to caption: kinds, discovery, sampled frames and mono audio for the models."""

from __future__ import annotations

import io
import os
import re
import wave
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ltx_trainer import logger
from ltx_trainer.data.captioning.base import MediaKind
from ltx_trainer.data.media import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    MediaError,
    probe,
    read_audio,
    read_video,
)

if TYPE_CHECKING:
    from PIL import Image


def media_kind(path: str | os.PathLike[str]) -> MediaKind | None:
    """``"video"``, ``"image"`` or ``"audio"`` from the file extension; ``None`` for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    return None


def find_media(inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], recursive: bool = True) -> list[Path]:
    """Every media file (video, image, audio) in a folder, or the media files of a list of files and folders.

    Hidden files and folders (``.precomputed``, temporary files, ...) are skipped. The result is sorted and has no
    duplicates.

    Raises:
        FileNotFoundError: An input does not exist.
    """
    items = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    found: dict[Path, None] = {}
    for item in items:
        path = Path(item)
        if path.is_dir():
            walker = path.rglob("*") if recursive else path.glob("*")
            for file in walker:
                relative = file.relative_to(path).parts
                if any(part.startswith(".") for part in relative) or not file.is_file():
                    continue
                if media_kind(file) is not None:
                    found[file] = None
        elif path.is_file():
            if media_kind(path) is None:
                logger.warning(f"{path}: not a media file (extension {path.suffix or 'none'}), skipped")
            else:
                found[path] = None
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return sorted(found)


def sample_frames(path: str | os.PathLike[str], num_frames: int = 8) -> tuple[np.ndarray, float]:
    """Decode ``num_frames`` frames spread evenly over a video (one frame for a still image).

    Returns:
        ``(frames, fps)``: ``uint8`` RGB frames ``[N, H, W, 3]`` (fewer than ``num_frames`` when the video is shorter)
        and the rate of the sampled frames (``N / duration``).

    Raises:
        MediaError: The file cannot be decoded or has no video stream.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    path = Path(path)
    if media_kind(path) == "image":
        frames, _ = read_video(path)
        return frames.numpy(), 1.0
    info = probe(path)
    if not info.has_video:
        raise MediaError(path, "no video stream")
    wanted = min(num_frames, info.num_frames) if info.num_frames > 0 else num_frames
    if info.duration > 0 and info.num_frames > 0:
        rate = wanted / info.duration
        frames, _ = read_video(path, max_frames=wanted, fps=rate)
        return frames.numpy(), rate
    # No usable duration in the header: decode everything, then pick evenly spaced frames.
    frames, fps = read_video(path)
    index = np.linspace(0, frames.shape[0] - 1, min(num_frames, frames.shape[0])).round().astype(int)
    duration = frames.shape[0] / fps
    return frames.numpy()[index], len(index) / duration


def _fit_pixels(frame: np.ndarray, max_pixels: int | None) -> Image.Image:
    """A PIL image of ``frame`` ([H, W, 3] uint8), downscaled to at most ``max_pixels`` pixels (aspect kept)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(frame), mode="RGB")
    if max_pixels and image.width * image.height > max_pixels:
        scale = (max_pixels / (image.width * image.height)) ** 0.5
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    return image


def _read_mono(path: Path, sample_rate: int, max_seconds: float | None = None) -> np.ndarray | None:
    """The first audio track as a mono ``float32`` array at ``sample_rate``, or ``None`` when there is no audio."""
    if media_kind(path) == "image":
        return None
    try:
        waveform, _ = read_audio(path, sample_rate=sample_rate, channels=1)
    except MediaError as e:
        if "no audio" in e.reason:
            return None
        raise
    audio = waveform[0].numpy()
    if max_seconds is not None:
        audio = audio[: int(max_seconds * sample_rate)]
    return audio if audio.size else None


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """A 16-bit mono WAV file holding ``audio`` (float in [-1, 1])."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def _title(path: Path) -> str:
    """A readable title from a file name: ``beach_sunset-02.mp4`` -> ``beach sunset 02``."""
    return re.sub(r"\s+", " ", re.sub(r"[_\-.]+", " ", path.stem)).strip()
