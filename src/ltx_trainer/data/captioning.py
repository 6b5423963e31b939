"""Automatic captioning of video, image and audio datasets.

Backends (all implement :class:`Captioner`, a ``caption(media) -> str`` method):

* :class:`VLMCaptioner`: a vision-language model run in-process with ``transformers``: Qwen2.5-VL, Qwen3-VL (dense
  or MoE), and the audio-visual Qwen2.5-Omni / Qwen3-Omni, which also hear the soundtrack. Frames are sampled with
  PyAV. Loads from a local folder only; optional 8-bit weights through ``bitsandbytes``.
* :class:`WhisperCaptioner`: speech transcription with ``faster-whisper``. Alone it captions the quoted speech; given
  to another backend as ``speech=`` it adds the quoted dialogue to that backend's captions.
* :class:`OpenAICompatibleCaptioner`: any OpenAI-compatible ``/v1/chat/completions`` server, typically a local
  ``vllm serve`` of Qwen3-Omni or Qwen2.5-VL. Frames travel as base64 JPEG data URLs, audio as base64 WAV.
* :class:`TemplateCaptioner`: no model; a caption made of the file's name and metadata (smoke runs, the demo).

Two caption styles: ``"dense"``, the LTX-2 format since 2026-07 (one paragraph: visuals, then sounds, then the spoken
words in double quotes), and ``"sections"``, the older ``[VISUAL]: … [SPEECH]: … [SOUNDS]: … [TEXT]: …`` form.

:func:`caption_dataset` captions every media file of a folder (or list) into sidecar ``.txt`` files or one
CSV / JSON / JSONL file with the dataset columns ``media_path`` (relative to the dataset root) and ``caption``;
:func:`read_captions` reads any of the four back.
"""

from __future__ import annotations

import base64
import csv
import glob
import importlib.util
import inspect
import io
import json
import os
import re
import time
import urllib.error
import urllib.request
import uuid
import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from ltx_trainer import logger
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
    import torch
    from PIL import Image

__all__ = [
    "CAPTION_FORMATS",
    "CAPTION_STYLES",
    "FAILURES_FILE",
    "MEDIA_EXTENSIONS",
    "CaptionError",
    "CaptionFormat",
    "CaptionStyle",
    "CaptionSummary",
    "Captioner",
    "OpenAICompatibleCaptioner",
    "TemplateCaptioner",
    "VLMCaptioner",
    "WhisperCaptioner",
    "add_speech",
    "apply_trigger",
    "caption_dataset",
    "caption_prompt",
    "clean_caption",
    "find_media",
    "format_sections",
    "media_kind",
    "parse_sections",
    "read_captions",
    "sample_frames",
]

CaptionStyle = Literal["dense", "sections"]
CaptionFormat = Literal["txt", "csv", "json", "jsonl"]
MediaKind = Literal["video", "image", "audio"]

CAPTION_STYLES: tuple[str, ...] = ("dense", "sections")
CAPTION_FORMATS: tuple[str, ...] = ("txt", "csv", "json", "jsonl")
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS | AUDIO_EXTENSIONS
SECTIONS: tuple[str, ...] = ("VISUAL", "SPEECH", "SOUNDS", "TEXT")
FAILURES_FILE = "caption_failures.json"
#: Column names of the dataset metadata files (the LTX-2 trainer's convention).
MEDIA_COLUMN = "media_path"
CAPTION_COLUMN = "caption"
# Other column names accepted when reading metadata written by other tools.
_READ_MEDIA_COLUMNS = (MEDIA_COLUMN, "video", "image", "audio", "path", "file_name", "file")
_READ_CAPTION_COLUMNS = (CAPTION_COLUMN, "text", "prompt", "combined_caption_english")
WHISPER_SAMPLE_RATE = 16000


class CaptionError(RuntimeError):
    """A captioner cannot run: a missing model folder, an unsupported option, an unreachable server, ...

    The message says what to do about it.
    """


@runtime_checkable
class Captioner(Protocol):
    """Anything that turns one media file into a caption."""

    def caption(self, media: Path) -> str:
        """Caption ``media`` (a video, image or audio file)."""
        ...


# ----------------------------------------------------------------------------------------------------------------------
# Media helpers
# ----------------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------------
# Styles, prompts and cleanup
# ----------------------------------------------------------------------------------------------------------------------

_SUBJECT = {"video": "video clip", "image": "image", "audio": "audio clip"}


def caption_prompt(
    style: CaptionStyle = "dense", kind: MediaKind = "video", has_audio: bool = True, transcript: str | None = None
) -> str:
    """The instruction given to a VLM for one media file.

    Args:
        style: ``"dense"`` (one paragraph) or ``"sections"`` (``[VISUAL]/[SPEECH]/[SOUNDS]/[TEXT]``).
        kind: What the model is shown.
        has_audio: Whether the model also hears the soundtrack (Omni models, audio-capable servers).
        transcript: Speech already transcribed by Whisper, to be quoted verbatim.
    """
    if style not in CAPTION_STYLES:
        raise ValueError(f"unknown caption style {style!r}; use one of {', '.join(CAPTION_STYLES)}")
    subject = _SUBJECT[kind]
    knows_speech = has_audio or bool(transcript)
    visuals = (
        "the subjects and their appearance, the actions and how they move, the setting, the camera angle and camera "
        "movement, the lighting, colours and visual style, and any visible on-screen text"
    )
    sounds = "music (genre, instruments, tempo, mood), ambient noise and sound effects"
    if knows_speech:
        speech_rule = 'Quote every spoken word exactly in double quotes, saying who speaks, e.g. A man says, "Hello."'
    else:
        speech_rule = "" if kind == "image" else "You cannot hear the audio; describe only what is seen."
    if style == "dense":
        if kind == "audio":
            describe = f"Describe the sounds: {sounds}, and the voices."
        else:
            describe = f"Describe {visuals}" + (f"; then describe the sounds: {sounds}." if has_audio else ".")
        parts = [
            f"Describe this {subject} in one dense paragraph of plain prose, written as a caption for training a "
            "text-to-video model.",
            describe,
            *([speech_rule] if speech_rule else []),
            "Describe only what is seen and heard, in the present tense. Do not start with 'The video shows' or any "
            "preamble, and do not use lists, headings or markdown.",
        ]
    else:
        parts = [
            f"Describe this {subject} for training a text-to-video model, using exactly these four labelled "
            "sections on one line each:",
            "[VISUAL]: none (audio only)" if kind == "audio" else f"[VISUAL]: {visuals}",
            "[SPEECH]: the exact words spoken, in double quotes, with who speaks; 'none' if nobody speaks"
            if knows_speech
            else "[SPEECH]: none (you cannot hear the audio)",
            f"[SOUNDS]: {sounds}; 'none' if silent" if has_audio else "[SOUNDS]: none (you cannot hear the audio)",
            "[TEXT]: any text visible on screen, verbatim; 'none' if there is none",
            "Write nothing before or after the four sections and do not use markdown.",
        ]
    if transcript:
        parts.append(f'A speech recogniser transcribed the dialogue as: "{transcript}". Quote it as spoken.')
    return "\n".join(parts)


_SECTION_RE = re.compile(r"\[\s*(VISUAL|SPEECH|SOUNDS|TEXT)\s*\]\s*:?\s*", re.IGNORECASE)


def parse_sections(text: str) -> dict[str, str]:
    """The ``[VISUAL]/[SPEECH]/[SOUNDS]/[TEXT]`` sections of a caption (missing ones are absent from the dict)."""
    pieces = _SECTION_RE.split(text)
    sections: dict[str, str] = {}
    for label, body in zip(pieces[1::2], pieces[2::2], strict=True):
        body = re.sub(r"\s+", " ", body).strip()
        sections[label.upper()] = f"{sections[label.upper()]} {body}".strip() if label.upper() in sections else body
    return sections


def format_sections(sections: dict[str, str]) -> str:
    """``[VISUAL]: … [SPEECH]: … [SOUNDS]: … [TEXT]: …`` in that order; empty or missing sections read ``none``."""
    return " ".join(f"[{label}]: {sections.get(label, '').strip() or 'none'}" for label in SECTIONS)


def _normalise_quotes(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def add_speech(caption: str, transcript: str | None, style: CaptionStyle = "dense") -> str:
    """Add the quoted ``transcript`` to ``caption`` unless the caption already quotes it.

    Dense captions get `` The speaker says: "…"`` appended; sectioned ones get it as their ``[SPEECH]`` section when
    that section is missing or ``none``.
    """
    transcript = (transcript or "").strip().strip('"').strip()
    if not transcript or _normalise_quotes(transcript) in _normalise_quotes(caption):
        return caption
    if style == "sections":
        sections = parse_sections(caption)
        if sections and sections.get("SPEECH", "none").lower().strip(". ") not in ("", "none"):
            return caption
        if not sections:
            sections = {"VISUAL": caption.strip()}
        sections["SPEECH"] = f'"{transcript}"'
        return format_sections(sections)
    caption = caption.rstrip()
    separator = " " if not caption or caption[-1] in ".!?\"'" else ". "
    return f'{caption}{separator}The speaker says: "{transcript}"'.strip()


def apply_trigger(caption: str, trigger: str | None) -> str:
    """Prepend the LoRA trigger word (once) to a caption."""
    if not trigger:
        return caption
    trigger = trigger.strip()
    if caption == trigger or caption.startswith((f"{trigger} ", f"{trigger},")):
        return caption
    return f"{trigger} {caption}".strip()


# Openers that chat models put before the caption itself ("Sure! Here's a description of the video:").
_PREAMBLE_RES = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^(?:sure(?: thing)?|certainly|of course|absolutely|okay|ok|alright)\s*[!.,:]\s*",
        r"^here(?:'s| is| are)\b[^\n:.]{0,100}?(?:description|caption|summary|breakdown)[^\n:.]{0,60}[:.]\s*",
        r"^here(?:'s| is| are)\b[^\n:.]{0,60}:\s*",
        r"^(?:video |dense |final |detailed )?(?:caption|description|summary)\s*:\s*",
    )
]
# "The video shows ..." / "In this video, ..." sentence openers.
_SUBJECT_WORDS = r"(?:video|clip|footage|image|picture|photo|frame|frames|scene|audio|audio clip|recording|sequence)"
_OPENER_RES = [
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"^(?:in|within|throughout) (?:this|the) {_SUBJECT_WORDS}(?: clip)?\s*,?\s*",
        rf"^(?:this|the) {_SUBJECT_WORDS}(?: clip)? (?:shows|depicts|features|captures|presents|displays|showcases|"
        r"portrays|contains|begins with|opens with|starts with)\s*:?\s*",
        rf"^(?:this|the) {_SUBJECT_WORDS} (?:is of|is a (?:video|clip|recording) of)\s+",
        rf"^(?:we see|we can see|you can see|it shows|in the {_SUBJECT_WORDS},? we see)\s+",
    )
]
# Offers after the caption ("Let me know if you need anything else!"), only as a sentence of their own.
_CLOSER_RE = re.compile(
    r"(?<=[.!?\"”])\s*(?:let me know|i hope this|hope this helps|feel free to|is there anything else|"
    r"if you (?:need|want|would like) (?:any|more|anything|further|me|a different))[^\n]*$",
    re.IGNORECASE,
)
_QUOTE_PAIRS = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "`": "`"}


_LABEL_LINE_RE = re.compile(
    r"^(?:(?:video|image|audio|dense|final|detailed)\s+)?(?:caption|description|summary)\s*:?$", re.IGNORECASE
)


def _strip_markdown(text: str) -> str:
    text = re.sub(r"```[a-zA-Z0-9_-]*\n?", "", text)  # code fences
    lines = []
    for line in text.splitlines():
        heading = re.match(r"^\s{0,3}#{1,6}\s+(.*)$", line)
        if heading:
            line = heading.group(1)
            if _LABEL_LINE_RE.match(line.strip(" *_")):
                continue  # "## Description": a title, not caption text
        bullet = re.match(r"^\s*(?:[-*+•]|\d+[.)])\s+(.*)$", line)
        if bullet:  # list items become sentences
            line = bullet.group(1).strip()
            if line and line[-1] not in ".!?:;\"'”":
                line += "."
            line = line[:1].upper() + line[1:]
        lines.append(line)
    text = "\n".join(lines)
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text, flags=re.DOTALL)  # bold
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", text)  # italic
    text = re.sub(r"(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)", r"\1", text)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    return text.replace("**", "")


def _unquote(text: str) -> str:
    while len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
        inner = text[1:-1]
        if text[0] in inner or (text[-1] != text[0] and text[-1] in inner):
            break  # "a" and "b" — quotes inside, not one wrapped string
        text = inner.strip()
    return text


def clean_caption(text: str) -> str:
    """Strip what chat models wrap around a caption and normalise whitespace.

    Removes ``<think>…</think>`` reasoning, markdown (headings, bold, bullets, code fences), openers such as
    "Sure! Here's a description of the video:", "The video shows" or "In this video,", closing offers such as
    "Let me know if …", and quotes around the whole caption; then collapses all whitespace to single spaces and
    capitalises the first letter. Section labels (``[VISUAL]:`` …) are kept.
    """
    text = re.sub(r"<think>.*?</think>", " ", text, flags=re.DOTALL | re.IGNORECASE)
    text = re.sub(r"^.*?</think>", " ", text, flags=re.DOTALL | re.IGNORECASE)  # reasoning whose opening tag was cut
    text = _strip_markdown(text)
    text = re.sub(r"\s+", " ", text).strip()
    for _ in range(4):  # openers come stacked: 'Sure! Here is the caption: "The video shows ..."'
        before = text
        text = _unquote(text)
        for pattern in _PREAMBLE_RES:
            text = pattern.sub("", text, count=1).strip()
        text = _unquote(text)
        for pattern in _OPENER_RES:
            text = pattern.sub("", text, count=1).strip()
        if text == before:
            break
    text = _CLOSER_RE.sub("", text).strip()
    text = _unquote(text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    return text


# ----------------------------------------------------------------------------------------------------------------------
# Template captioner
# ----------------------------------------------------------------------------------------------------------------------


class TemplateCaptioner:
    """A caption built from the file's name and metadata, no model: smoke runs and the demo.

    Example: ``A 2.0-second 640x360 video clip, "beach sunset", with sound.``
    """

    def __init__(self, style: CaptionStyle = "dense", speech: WhisperCaptioner | None = None) -> None:
        self.style = style
        self.speech = speech

    def caption(self, media: Path) -> str:
        media = Path(media)
        kind = media_kind(media)
        if kind is None:
            raise MediaError(media, "not a video, image or audio file")
        info = probe(media)
        title = _title(media)
        if kind == "image":
            visual = f'A {info.width}x{info.height} still image, "{title}".'
            sounds = "none"
        elif kind == "audio" or not info.has_video:
            visual = "none" if self.style == "sections" else ""
            sounds = f'A {info.duration:.1f}-second audio clip, "{title}".'
        else:
            visual = f'A {info.duration:.1f}-second {info.width}x{info.height} video clip, "{title}".'
            sounds = "An audio track." if info.has_audio else "none"
        transcript = self.speech.transcribe(media) if self.speech is not None else ""
        if self.style == "sections":
            text = format_sections({"VISUAL": visual, "SOUNDS": sounds, "TEXT": "none"})
        elif kind == "video" and info.has_video:
            text = visual[:-1] + (", with sound." if info.has_audio else ", silent.")
        else:
            text = visual or sounds
        return add_speech(text, transcript, self.style)


# ----------------------------------------------------------------------------------------------------------------------
# Whisper
# ----------------------------------------------------------------------------------------------------------------------


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CaptionError(f"device {device!r} asked for but CUDA is not available; use --device cpu")
    return device


class WhisperCaptioner:
    """Speech transcription with ``faster-whisper`` (CTranslate2).

    As a :class:`Captioner` it returns the quoted speech (``The speaker says: "…"``), or an empty caption when no one
    speaks. Given to another captioner as ``speech=``, :meth:`transcribe` supplies the dialogue of their captions.

    Args:
        model: A faster-whisper model folder (CTranslate2 format, e.g. ``Systran/faster-whisper-large-v3`` downloaded
            with ``hf download``), or a size name (``large-v3``, ``medium``, ``tiny.en``, ...) that faster-whisper
            fetches into its cache on first use.
        language: Spoken language code (``en``, ``de``, ...); ``None`` detects it per file.
        vad: Skip non-speech with Silero VAD (fewer hallucinated words on music and noise).
        device: ``auto``, ``cpu`` or ``cuda``.
        compute_type: CTranslate2 compute type (``default``, ``int8``, ``float16``, ...).
        beam_size: Beam width.
        style: Caption style when used alone.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "large-v3",
        language: str | None = None,
        vad: bool = True,
        device: str = "auto",
        compute_type: str = "default",
        beam_size: int = 5,
        style: CaptionStyle = "dense",
    ) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise CaptionError(f"speech transcription needs faster-whisper: pip install faster-whisper ({e})") from e
        path = Path(model)
        name = str(path) if path.exists() else str(model)
        if path.exists() and not (path / "model.bin").is_file():
            raise CaptionError(
                f"{path}: not a faster-whisper model folder (no model.bin); download one in CTranslate2 format, "
                "e.g. `hf download Systran/faster-whisper-large-v3 --local-dir <folder>`"
            )
        try:
            self.model = WhisperModel(name, device=device, compute_type=compute_type)
        except Exception as e:  # faster-whisper raises hub, CTranslate2 and OS errors alike
            raise CaptionError(
                f"cannot load Whisper model {name!r}: {type(e).__name__}: {e}. Pass a local faster-whisper folder "
                "(e.g. `hf download Systran/faster-whisper-large-v3 --local-dir <folder>`)"
            ) from e
        self.language = language
        self.vad = vad
        self.beam_size = beam_size
        self.style = style

    def transcribe(self, media: Path) -> str:
        """The speech in ``media``'s first audio track, as one line of text (``""`` without audio or speech)."""
        audio = _read_mono(Path(media), WHISPER_SAMPLE_RATE)
        if audio is None or not np.any(audio):
            return ""
        segments, _ = self.model.transcribe(
            audio.astype(np.float32),
            language=self.language,
            vad_filter=self.vad,
            beam_size=self.beam_size,
            condition_on_previous_text=False,
        )
        return re.sub(r"\s+", " ", " ".join(segment.text.strip() for segment in segments)).strip()

    def caption(self, media: Path) -> str:
        transcript = self.transcribe(media)
        if not transcript:
            return ""
        if self.style == "sections":
            return f'[SPEECH]: "{transcript}"'
        return f'The speaker says: "{transcript}"'


# ----------------------------------------------------------------------------------------------------------------------
# Vision-language models through transformers
# ----------------------------------------------------------------------------------------------------------------------

# model_type in config.json -> (transformers class, hears audio)
_VLM_CLASSES: dict[str, tuple[str, bool]] = {
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", False),
    "qwen2_vl": ("Qwen2VLForConditionalGeneration", False),
    "qwen3_vl": ("Qwen3VLForConditionalGeneration", False),
    "qwen3_vl_moe": ("Qwen3VLMoeForConditionalGeneration", False),
    # Omni checkpoints hold a thinker (text out) and a talker (speech out); captioning loads the thinker only.
    "qwen2_5_omni": ("Qwen2_5OmniThinkerForConditionalGeneration", True),
    "qwen3_omni_moe": ("Qwen3OmniMoeThinkerForConditionalGeneration", True),
}
_DTYPES = ("auto", "bfloat16", "float16", "float32")


def _config_value(config: Any, *names: str) -> Any:
    """The first of ``names`` set on ``config`` or its ``thinker_config`` (Omni)."""
    for holder in (config, getattr(config, "thinker_config", None)):
        for name in names:
            value = getattr(holder, name, None) if holder is not None else None
            if value is not None:
                return value
    return None


class VLMCaptioner:
    """Caption with a Qwen vision-language model run in-process through ``transformers``.

    Supported: Qwen2.5-VL, Qwen3-VL (dense and MoE) and the audio-visual Qwen2.5-Omni and Qwen3-Omni (their thinker;
    the speech-output talker is not loaded), which also hear the soundtrack. Any other image-text-to-text model goes
    through ``AutoModelForImageTextToText`` and its processor.

    Videos are sampled to ``num_frames`` evenly spaced frames with PyAV. When the model's full processor loads (it
    needs ``torchvision`` for video), the frames go in as one video with its timing; otherwise they go in as a
    sequence of images through the image processor and tokenizer, which needs no ``torchvision``.

    Args:
        model: Local model folder (``config.json`` + weights + processor files), e.g. from
            ``hf download Qwen/Qwen2.5-VL-7B-Instruct --local-dir models/qwen2.5-vl``.
        style: ``"dense"`` or ``"sections"``.
        num_frames: Frames sampled per video.
        max_pixels: Frames larger than this many pixels are downscaled first (bounds the visual tokens).
        max_new_tokens: Generation limit.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ...
        dtype: ``auto`` (bfloat16 on GPU, float32 on CPU), ``bfloat16``, ``float16`` or ``float32``.
        load_in_8bit: Load the weights in 8 bits with ``bitsandbytes`` (CUDA only); about half the memory of bf16.
        use_audio: Let Omni models hear the soundtrack.
        max_audio_seconds: Audio beyond this is not heard.
        prompt: Replace the built-in instruction (:func:`caption_prompt`).
        speech: A :class:`WhisperCaptioner` whose transcript is given to the model and quoted in the caption.
        do_sample: Sample instead of greedy decoding (with ``temperature``).
        temperature: Sampling temperature.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        style: CaptionStyle = "dense",
        num_frames: int = 8,
        max_pixels: int | None = 640 * 360,
        max_new_tokens: int = 512,
        device: str = "auto",
        dtype: str = "auto",
        load_in_8bit: bool = False,
        use_audio: bool = True,
        max_audio_seconds: float = 30.0,
        prompt: str | None = None,
        speech: WhisperCaptioner | None = None,
        do_sample: bool = False,
        temperature: float = 0.7,
    ) -> None:
        import torch
        import transformers

        path = Path(model)
        if not (path / "config.json").is_file():
            raise CaptionError(
                f"{path}: not a model folder (no config.json). Download the model first, e.g. "
                f"`hf download Qwen/Qwen2.5-VL-7B-Instruct --local-dir {path}`"
            )
        if dtype not in _DTYPES:
            raise CaptionError(f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")
        if style not in CAPTION_STYLES:
            raise CaptionError(f"unknown caption style {style!r}; use one of {', '.join(CAPTION_STYLES)}")
        self.path = path
        self.style: CaptionStyle = style
        self.num_frames = num_frames
        self.max_pixels = max_pixels
        self.max_new_tokens = max_new_tokens
        self.max_audio_seconds = max_audio_seconds
        self.prompt = prompt
        self.speech = speech
        self.generate_kwargs: dict[str, Any] = {"do_sample": do_sample}
        if do_sample:
            self.generate_kwargs["temperature"] = temperature

        self.device = _resolve_device(device)
        on_gpu = self.device.startswith("cuda")
        if dtype == "auto":
            self.dtype = torch.bfloat16 if on_gpu else torch.float32
        else:
            self.dtype = getattr(torch, dtype)

        try:
            self.config = transformers.AutoConfig.from_pretrained(path)
        except (ValueError, KeyError) as e:  # a model type this transformers does not know
            raise CaptionError(
                f"{path / 'config.json'}: transformers {transformers.__version__} cannot read it ({e}); "
                "upgrade transformers"
            ) from e
        self.model_type: str = self.config.model_type
        class_name, self.hears_audio = _VLM_CLASSES.get(self.model_type, ("AutoModelForImageTextToText", False))
        self.use_audio = use_audio and self.hears_audio
        model_class = getattr(transformers, class_name, None)
        if model_class is None:
            raise CaptionError(
                f"{path}: model type {self.model_type!r} needs transformers.{class_name}, which transformers "
                f"{transformers.__version__} does not have; upgrade transformers"
            )
        load_kwargs: dict[str, Any] = {"dtype": self.dtype}
        if load_in_8bit:
            if not on_gpu:
                raise CaptionError("8-bit loading (bitsandbytes) needs a CUDA GPU; drop --8bit to run on the CPU")
            if importlib.util.find_spec("bitsandbytes") is None:
                raise CaptionError(
                    "8-bit loading needs bitsandbytes: pip install 'ltx-trainer[quantization]' (or bitsandbytes)"
                )
            load_kwargs["quantization_config"] = transformers.BitsAndBytesConfig(load_in_8bit=True)
        if on_gpu:
            load_kwargs["device_map"] = {"": self.device}
        self._load_processor(transformers)
        logger.info(f"loading {self.model_type} captioner from {path} ({self.device}, {self.dtype})")
        try:
            self.model = model_class.from_pretrained(path, **load_kwargs).eval()
        except OSError as e:
            raise CaptionError(f"{path}: cannot load the model weights ({e})") from e
        self._forward_params = set(inspect.signature(self.model.forward).parameters)

    # -- processor -----------------------------------------------------------------------------------------------------

    def _load_processor(self, transformers: Any) -> None:
        """Load the full multimodal processor, else the tokenizer + image processor (+ audio feature extractor)."""
        self.processor = None
        try:
            processor = transformers.AutoProcessor.from_pretrained(self.path)
        except Exception as e:  # without torchvision the video processor (and so the processor) cannot be built
            reason = (
                "torchvision is not installed"
                if importlib.util.find_spec("torchvision") is None
                else " ".join(f"{type(e).__name__}: {e}".split())[:300]
            )
            logger.info(
                f"{self.path}: the model's video processor is unavailable ({reason}); sending the sampled frames as "
                "separate images (pip install torchvision for native video input)"
            )
        else:
            if isinstance(processor, transformers.ProcessorMixin):
                self.processor = processor
        self.tokenizer = (
            self.processor.tokenizer
            if self.processor is not None
            else transformers.AutoTokenizer.from_pretrained(self.path)
        )
        self.chat_template = self._find_chat_template()
        if self.processor is not None:
            return
        if self.model_type not in _VLM_CLASSES:
            raise CaptionError(
                f"{self.path}: model type {self.model_type!r} needs its full processor, which did not load; "
                "install torchvision (pip install torchvision) or use a Qwen-VL / Qwen-Omni model"
            )
        self.image_processor = transformers.AutoImageProcessor.from_pretrained(self.path)
        self.feature_extractor = None
        if self.use_audio:
            self.feature_extractor = transformers.AutoFeatureExtractor.from_pretrained(self.path)

    def _find_chat_template(self) -> str | None:
        for source in (self.processor, self.tokenizer):
            template = getattr(source, "chat_template", None)
            if isinstance(template, dict):  # named templates
                template = template.get("default") or next(iter(template.values()), None)
            if isinstance(template, str) and template:
                return template
        jinja = self.path / "chat_template.jinja"
        if jinja.is_file():
            return jinja.read_text(encoding="utf-8")
        as_json = self.path / "chat_template.json"
        if as_json.is_file():
            return json.loads(as_json.read_text(encoding="utf-8")).get("chat_template")
        return None

    def _render(self, messages: list[dict[str, Any]]) -> str:
        if self.chat_template is None:
            raise CaptionError(f"{self.path}: the model has no chat template (chat_template.jinja/json)")
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
        )

    # -- inputs --------------------------------------------------------------------------------------------------------

    def _token(self, *names: str) -> str:
        token_id = _config_value(self.config, *names)
        if token_id is None:
            raise CaptionError(f"{self.path}: config.json has no {names[0]}")
        return self.tokenizer.convert_ids_to_tokens(int(token_id))

    def _audio_token_count(self, feature_lengths: torch.Tensor) -> list[int]:
        """Audio tokens the Omni audio encoder makes of ``feature_lengths`` mel frames."""
        lengths = feature_lengths.long()
        if self.model_type == "qwen3_omni_moe":
            window = int(_config_value(self.config.thinker_config.audio_config, "n_window") or 50) * 2
            rest = lengths % window
            reduced = (rest - 1) // 2 + 1
            counts = ((reduced - 1) // 2 + 1 - 1) // 2 + 1 + (lengths // window) * 13
        else:
            counts = ((lengths - 1) // 2 + 1 - 2) // 2 + 1
        return [int(c) for c in counts]

    def _manual_inputs(self, images: list[Image.Image], audio: np.ndarray | None, prompt: str) -> dict[str, Any]:
        """Model inputs from the tokenizer, image processor and feature extractor (no full processor needed)."""
        import torch

        content: list[dict[str, Any]] = [{"type": "image"} for _ in images]
        if audio is not None:
            content.append({"type": "audio"})
        content.append({"type": "text", "text": prompt})
        text = self._render([{"role": "user", "content": content}])
        inputs: dict[str, Any] = {}
        expansions: list[tuple[str, list[int]]] = []
        if images:
            pixels = self.image_processor(images=images, return_tensors="pt")
            merge = int(getattr(self.image_processor, "merge_size", 1) or 1)
            inputs["pixel_values"] = pixels["pixel_values"]
            inputs["image_grid_thw"] = pixels["image_grid_thw"]
            counts = (pixels["image_grid_thw"].prod(-1) // merge**2).tolist()
            expansions.append((self._token("image_token_id", "image_token_index"), counts))
        if audio is not None:
            features = self.feature_extractor(
                audio,
                sampling_rate=WHISPER_SAMPLE_RATE,
                return_attention_mask=True,
                padding="max_length",
                return_tensors="pt",
            )
            inputs["input_features"] = features["input_features"]
            inputs["feature_attention_mask"] = features["attention_mask"]
            counts = self._audio_token_count(features["attention_mask"].sum(-1))
            expansions.append((self._token("audio_token_id", "audio_token_index"), counts))
        for token, counts in expansions:
            pieces = text.split(token)
            if len(pieces) - 1 != len(counts):
                raise CaptionError(
                    f"{self.path}: the chat template wrote {len(pieces) - 1} {token} placeholders for {len(counts)} "
                    "inputs"
                )
            text = pieces[0] + "".join(token * n + piece for n, piece in zip(counts, pieces[1:], strict=True))
        encoded = self.tokenizer([text], return_tensors="pt")
        inputs.update(encoded)
        if "mm_token_type_ids" in self._forward_params and images:
            image_id = int(_config_value(self.config, "image_token_id", "image_token_index"))
            inputs["mm_token_type_ids"] = (encoded["input_ids"] == image_id).to(torch.int32)
        return inputs

    def _processor_inputs(
        self, images: list[Image.Image], as_video: bool, fps: float, audio: np.ndarray | None, prompt: str
    ) -> dict[str, Any]:
        """Model inputs from the model's own processor: frames as one video with their timing when it takes video."""
        from transformers.video_utils import VideoMetadata

        content: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        if as_video and getattr(self.processor, "video_processor", None) is not None:
            frames = np.stack([np.asarray(image) for image in images])
            if len(frames) % 2:  # Qwen video patches pair frames in time
                frames = frames[:-1] if len(frames) > 1 else np.concatenate([frames, frames])
            content.append({"type": "video"})
            kwargs["videos"] = [frames]
            kwargs["video_metadata"] = [
                VideoMetadata(total_num_frames=len(frames), fps=fps, frames_indices=list(range(len(frames))))
            ]
            kwargs["do_sample_frames"] = False
        elif images:
            content.extend({"type": "image"} for _ in images)
            kwargs["images"] = images
        if audio is not None:
            content.append({"type": "audio"})
            kwargs["audio"] = [audio]
        content.append({"type": "text", "text": prompt})
        text = self.processor.apply_chat_template(
            [{"role": "user", "content": content}],
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=True,
        )
        return dict(self.processor(text=[text], return_tensors="pt", **kwargs))

    # -- captioning ----------------------------------------------------------------------------------------------------

    def caption(self, media: Path) -> str:
        import torch

        media = Path(media)
        kind = media_kind(media)
        if kind is None:
            raise MediaError(media, "not a video, image or audio file")
        audio = None
        if self.use_audio:
            audio = _read_mono(media, WHISPER_SAMPLE_RATE, self.max_audio_seconds)
            if audio is not None and not np.any(audio):
                audio = None  # digital silence: nothing to hear
        if kind == "audio" and audio is None:
            raise CaptionError(
                f"{media}: audio files need an audio-capable model (Qwen2.5-Omni / Qwen3-Omni) or --backend whisper"
            )
        frames, fps = (None, 1.0) if kind == "audio" else sample_frames(media, self.num_frames)
        images = [_fit_pixels(frame, self.max_pixels) for frame in frames] if frames is not None else []
        transcript = self.speech.transcribe(media) if self.speech is not None else ""
        prompt = self.prompt or caption_prompt(
            self.style, kind, has_audio=audio is not None, transcript=transcript or None
        )
        if self.processor is not None:
            inputs = self._processor_inputs(images, kind == "video", fps, audio, prompt)
        else:
            inputs = self._manual_inputs(images, audio, prompt)
        inputs = {
            key: (
                value.to(self.model.device, self.dtype if value.is_floating_point() else None)
                if isinstance(value, torch.Tensor)
                else value
            )
            for key, value in inputs.items()
        }
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, **self.generate_kwargs)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        text = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)[0]
        text = re.sub(r"<think>.*?</think>", " ", text, flags=re.DOTALL).strip()
        return add_speech(text, transcript, self.style)


# ----------------------------------------------------------------------------------------------------------------------
# OpenAI-compatible server (vLLM)
# ----------------------------------------------------------------------------------------------------------------------


class OpenAICompatibleCaptioner:
    """Caption through an OpenAI-compatible chat-completions server, typically a local vLLM.

    Start one with e.g. ``vllm serve Qwen/Qwen3-Omni-30B-A3B-Thinking --port 8000`` (or a Qwen2.5-VL model). Frames
    are sent as base64 JPEG ``image_url`` data URLs and, with ``send_audio``, the soundtrack as a base64 WAV
    ``input_audio`` part (the server's model must accept audio). Only the standard library is used.

    Args:
        base_url: The server's API root, e.g. ``http://localhost:8000/v1``.
        model: The served model name; ``None`` takes the first one the server lists at ``/models``.
        api_key_env: Environment variable holding the API key (sent as a bearer token when set).
        style: ``"dense"`` or ``"sections"``.
        num_frames: Frames sampled per video.
        max_pixels: Frames larger than this many pixels are downscaled before sending.
        send_audio: Send the audio track too.
        max_audio_seconds: Audio beyond this is not sent.
        max_tokens: Generation limit.
        temperature: Sampling temperature.
        timeout: Seconds to wait for one answer.
        prompt: Replace the built-in instruction.
        speech: A :class:`WhisperCaptioner` whose transcript is given to the model and quoted in the caption.
    """

    def __init__(
        self,
        base_url: str = "http://localhost:8000/v1",
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        style: CaptionStyle = "dense",
        num_frames: int = 8,
        max_pixels: int | None = 640 * 360,
        send_audio: bool = False,
        max_audio_seconds: float = 30.0,
        max_tokens: int = 512,
        temperature: float = 0.0,
        timeout: float = 300.0,
        prompt: str | None = None,
        speech: WhisperCaptioner | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = os.environ.get(api_key_env) or None
        self.style: CaptionStyle = style
        self.num_frames = num_frames
        self.max_pixels = max_pixels
        self.send_audio = send_audio
        self.max_audio_seconds = max_audio_seconds
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timeout = timeout
        self.prompt = prompt
        self.speech = speech
        self.model = model or self._first_model()

    def _request(self, method: str, route: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.base_url}/{route.lstrip('/')}"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:500]
            raise CaptionError(f"{url}: HTTP {e.code} {e.reason}: {detail}") from e
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise CaptionError(
                f"{url}: cannot reach the server ({reason}); is it running? e.g. `vllm serve <model> --port 8000`"
            ) from e
        try:
            return json.loads(payload)
        except json.JSONDecodeError as e:
            raise CaptionError(f"{url}: the server answered with something that is not JSON: {payload[:200]!r}") from e

    def _first_model(self) -> str:
        models = self._request("GET", "models").get("data") or []
        if not models:
            raise CaptionError(f"{self.base_url}/models lists no model; pass the model name")
        return str(models[0]["id"])

    def _content(self, media: Path) -> tuple[list[dict[str, Any]], str]:
        kind = media_kind(media)
        if kind is None:
            raise MediaError(media, "not a video, image or audio file")
        parts: list[dict[str, Any]] = []
        if kind != "audio":
            frames, _ = sample_frames(media, self.num_frames)
            for frame in frames:
                buffer = io.BytesIO()
                _fit_pixels(frame, self.max_pixels).save(buffer, format="JPEG", quality=90)
                url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
                parts.append({"type": "image_url", "image_url": {"url": url}})
        audio = None
        if self.send_audio:
            audio = _read_mono(media, WHISPER_SAMPLE_RATE, self.max_audio_seconds)
            if audio is not None:
                encoded = base64.b64encode(_wav_bytes(audio, WHISPER_SAMPLE_RATE)).decode("ascii")
                parts.append({"type": "input_audio", "input_audio": {"data": encoded, "format": "wav"}})
        if not parts:
            raise CaptionError(f"{media}: an audio file needs --send-audio and a server model that hears audio")
        transcript = self.speech.transcribe(media) if self.speech is not None else ""
        prompt = self.prompt or caption_prompt(
            self.style, kind, has_audio=audio is not None, transcript=transcript or None
        )
        return [{"type": "text", "text": prompt}, *parts], transcript

    def caption(self, media: Path) -> str:
        media = Path(media)
        content, transcript = self._content(media)
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        answer = self._request("POST", "chat/completions", body)
        try:
            message = answer["choices"][0]["message"]
        except (KeyError, IndexError, TypeError) as e:
            raise CaptionError(
                f"{self.base_url}/chat/completions: no choices in the answer: {str(answer)[:300]}"
            ) from e
        text = message.get("content") or ""
        if isinstance(text, list):  # content parts
            text = " ".join(part.get("text", "") for part in text if isinstance(part, dict))
        return add_speech(str(text).strip(), transcript, self.style)


# ----------------------------------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class CaptionSummary:
    """What :func:`caption_dataset` did.

    Attributes:
        root: The dataset root that ``media_path`` values are relative to.
        total: Media files found.
        captioned: Files captioned in this run.
        skipped: Files that already had a caption (resume).
        failed: Files that failed, with the reason.
        output: The metadata file written (``None`` for sidecar ``.txt`` files).
        failures_file: ``caption_failures.json`` when something failed.
        seconds: Wall time.
    """

    root: Path
    total: int = 0
    captioned: int = 0
    skipped: int = 0
    failed: dict[Path, str] = field(default_factory=dict)
    output: Path | None = None
    failures_file: Path | None = None
    seconds: float = 0.0

    @property
    def succeeded(self) -> int:
        """Files that have a caption after the run (new or kept)."""
        return self.captioned + self.skipped


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


def _sidecar(media: Path, root: Path, txt_dir: Path | None) -> Path:
    """Where the ``.txt`` caption of ``media`` goes: next to it, or mirrored under ``txt_dir``."""
    if txt_dir is None:
        return media.with_suffix(".txt")
    return (txt_dir / _relative(media, root)).with_suffix(".txt")


def _render_records(records: dict[str, str], fmt: CaptionFormat) -> str:
    rows = [{MEDIA_COLUMN: key, CAPTION_COLUMN: records[key]} for key in sorted(records)]
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[MEDIA_COLUMN, CAPTION_COLUMN], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _pick(row: dict[str, Any], columns: Sequence[str], path: Path, what: str) -> Any:
    for column in columns:
        if row.get(column) not in (None, ""):
            return row[column]
    raise ValueError(f"{path}: a row has no {what} column ({', '.join(columns)}): {str(row)[:200]}")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{number}: not valid JSON ({e.msg})") from e
        return rows
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from e
        if isinstance(data, dict):  # {"media_path": "caption", ...}
            return [{MEDIA_COLUMN: k, CAPTION_COLUMN: v} for k, v in data.items()]
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a list of {{media_path, caption}} objects")
        return data
    raise ValueError(f"{path}: unknown caption file type {suffix!r}; use .txt, .csv, .json or .jsonl")


def read_captions(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> dict[Path, str]:
    """Read captions back from any of the formats :func:`caption_dataset` writes.

    Args:
        path: A ``.csv`` / ``.json`` / ``.jsonl`` metadata file, a folder of media with sidecar ``.txt`` captions,
            or one sidecar ``.txt``.
        root: What relative ``media_path`` values are relative to (default: the metadata file's folder).

    Returns:
        ``{absolute media path: caption}``.
    """
    path = Path(path)
    if path.is_dir():
        return {
            media.resolve(): text
            for media in find_media(path)
            if (sidecar := media.with_suffix(".txt")).is_file()
            and (text := sidecar.read_text(encoding="utf-8").strip())
        }
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such caption file or folder")
    if path.suffix.lower() == ".txt":
        siblings = [p for p in path.parent.glob(f"{glob.escape(path.stem)}.*") if media_kind(p) is not None]
        if not siblings:
            raise ValueError(f"{path}: no media file with the same name next to this caption")
        return {siblings[0].resolve(): path.read_text(encoding="utf-8").strip()}
    base = Path(root) if root is not None else path.parent
    captions: dict[Path, str] = {}
    for row in _read_rows(path):
        media = Path(str(_pick(row, _READ_MEDIA_COLUMNS, path, "media")))
        caption = _pick(row, _READ_CAPTION_COLUMNS, path, "caption")
        captions[(media if media.is_absolute() else base / media).resolve()] = str(caption)
    return captions


def _existing_captions(media: list[Path], root: Path, txt_dir: Path | None, output: Path | None) -> dict[Path, str]:
    """Captions already present for ``media``: sidecars, the output file, and ``captions.*`` files in the root."""
    found: dict[Path, str] = {}
    wanted = {m.resolve() for m in media}
    candidates = [root / f"captions.{fmt}" for fmt in ("csv", "json", "jsonl")]
    if output is not None:
        candidates.insert(0, output)
    for candidate in dict.fromkeys(candidates):
        if candidate.is_file():
            try:
                rows = read_captions(candidate)
            except (ValueError, OSError) as e:
                logger.warning(f"{candidate}: cannot read existing captions for resume ({e})")
                continue
            for key, text in rows.items():
                if key in wanted and text.strip():
                    found.setdefault(key, text.strip())
    for item in media:
        for sidecar in dict.fromkeys([_sidecar(item, root, txt_dir), item.with_suffix(".txt")]):
            if item.resolve() not in found and sidecar.is_file():
                text = sidecar.read_text(encoding="utf-8").strip()
                if text:
                    found[item.resolve()] = text
    return found


def _dataset_root(inputs: Sequence[Path], media: list[Path]) -> Path:
    if len(inputs) == 1 and inputs[0].is_dir():
        return inputs[0]
    parents = [str(m.resolve().parent) for m in media] or [str(Path.cwd())]
    return Path(os.path.commonpath(parents))


def _finish_caption(text: str, style: CaptionStyle | None, clean: bool, trigger: str | None) -> str:
    if clean:
        text = clean_caption(text)
    if style == "sections" and (sections := parse_sections(text)):
        text = format_sections(sections)
    return apply_trigger(text, trigger) if text else ""


def caption_dataset(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    captioner: Captioner,
    output: str | os.PathLike[str] | None = None,
    fmt: CaptionFormat = "txt",
    resume: bool = True,
    trigger: str | None = None,
    style: CaptionStyle | None = None,
    clean: bool = True,
    root: str | os.PathLike[str] | None = None,
    progress: bool = True,
    save_every: int = 25,
) -> CaptionSummary:
    """Caption every media file of a dataset.

    Args:
        inputs: A dataset folder (searched recursively), or a list of media files and folders.
        captioner: The backend.
        output: For ``txt``: a folder to mirror the sidecar captions into (default: next to each media file). For
            ``csv``/``json``/``jsonl``: the metadata file (default: ``<root>/captions.<fmt>``).
        fmt: ``txt`` (one sidecar per file), ``csv``, ``json`` or ``jsonl`` (columns ``media_path``, ``caption``;
            ``media_path`` is relative to the metadata file's folder, the dataset root by default).
        resume: Skip files that already have a caption, in any format (sidecar ``.txt``, the output file,
            ``captions.csv/json/jsonl`` in the root); their captions are carried into the output.
        trigger: LoRA trigger word prepended to new captions.
        style: The caption style (default: the captioner's ``style``); ``sections`` captions are normalised to
            ``[VISUAL]: … [SPEECH]: … [SOUNDS]: … [TEXT]: …``.
        clean: Run :func:`clean_caption` on each caption.
        root: The dataset root that ``media_path`` values are relative to (default: the input folder, or the common
            folder of the input files).
        progress: Show a progress bar.
        save_every: Rewrite the CSV/JSON file after this many new captions (JSONL is appended line by line).

    Returns:
        A :class:`CaptionSummary`. Files that fail are logged, listed in ``<root>/caption_failures.json`` and skipped.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    start = time.perf_counter()
    if fmt not in CAPTION_FORMATS:
        raise ValueError(f"unknown caption format {fmt!r}; use one of {', '.join(CAPTION_FORMATS)}")
    items = [Path(inputs)] if isinstance(inputs, str | os.PathLike) else [Path(i) for i in inputs]
    media = find_media(items)
    dataset_root = Path(root) if root is not None else _dataset_root(items, media)
    style = style or getattr(captioner, "style", None)
    txt_dir = Path(output) if fmt == "txt" and output is not None else None
    output_file = None
    if fmt != "txt":
        output_file = Path(output) if output is not None else dataset_root / f"captions.{fmt}"
        if output_file.is_dir():
            output_file = output_file / f"captions.{fmt}"
    # media_path values are relative to the metadata file's folder, which is the dataset root unless -o says otherwise
    base = output_file.parent if output_file is not None else dataset_root
    summary = CaptionSummary(root=dataset_root, total=len(media), output=output_file)

    existing = _existing_captions(media, dataset_root, txt_dir, output_file) if resume else {}
    records: dict[str, str] = {}  # relative media path -> caption, for the structured formats
    todo: list[Path] = []
    for item in media:
        if item.resolve() in existing:
            records[_relative(item, base)] = existing[item.resolve()]
            summary.skipped += 1
        else:
            todo.append(item)
    if summary.skipped:
        logger.info(f"resume: {summary.skipped} of {len(media)} files already captioned")

    def save() -> None:
        if output_file is not None:
            _atomic_write_text(output_file, _render_records(records, fmt))

    jsonl = None
    if fmt == "jsonl":
        save()  # start from the carried-over captions, then append
        jsonl = open(output_file, "a", encoding="utf-8")  # noqa: SIM115 - closed in the finally below
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    unsaved = 0
    try:
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task("captioning", total=len(todo))
            for item in todo:
                relative = _relative(item, base)
                bar.update(task, description=f"captioning {item.name}")
                try:
                    text = _finish_caption(captioner.caption(item), style, clean, trigger)
                    if not text:
                        raise CaptionError("the captioner returned an empty caption")
                except Exception as e:  # one bad file must not stop a dataset run
                    reason = f"{type(e).__name__}: {e}"
                    summary.failed[item] = reason
                    logger.warning(f"{item}: caption failed, skipped ({reason})")
                    bar.advance(task)
                    continue
                summary.captioned += 1
                records[relative] = text
                if fmt == "txt":
                    _atomic_write_text(_sidecar(item, dataset_root, txt_dir), text + "\n")
                elif jsonl is not None:
                    jsonl.write(json.dumps({MEDIA_COLUMN: relative, CAPTION_COLUMN: text}, ensure_ascii=False) + "\n")
                    jsonl.flush()
                else:
                    unsaved += 1
                    if unsaved >= save_every:
                        save()
                        unsaved = 0
                bar.advance(task)
    finally:
        if jsonl is not None:
            jsonl.close()
        save()  # final, sorted, atomic
        failures = dataset_root / FAILURES_FILE
        if summary.failed:
            rows = [
                {MEDIA_COLUMN: _relative(path, dataset_root), "error": reason}
                for path, reason in summary.failed.items()
            ]
            _atomic_write_text(failures, json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
            summary.failures_file = failures
            logger.warning(f"{len(summary.failed)} file(s) failed; see {failures}")
        elif failures.is_file():
            failures.unlink()  # stale list from an earlier run
    summary.seconds = time.perf_counter() - start
    return summary
