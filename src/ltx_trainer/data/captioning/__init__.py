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

from ltx_trainer.data.captioning.base import (
    CAPTION_FORMATS,
    CAPTION_STYLES,
    FAILURES_FILE,
    MEDIA_EXTENSIONS,
    WHISPER_SAMPLE_RATE,
    Captioner,
    CaptionError,
    CaptionFormat,
    CaptionStyle,
    MediaKind,
    NothingToCaption,
)
from ltx_trainer.data.captioning.dataset import CaptionSummary, caption_dataset
from ltx_trainer.data.captioning.dataset_io import CAPTION_COLUMN, MEDIA_COLUMN, read_captions
from ltx_trainer.data.captioning.factory import BACKENDS, make_captioner
from ltx_trainer.data.captioning.inputs import find_media, media_kind, sample_frames
from ltx_trainer.data.captioning.openai_compatible import OpenAICompatibleCaptioner
from ltx_trainer.data.captioning.template import TemplateCaptioner
from ltx_trainer.data.captioning.text import (
    add_speech,
    apply_trigger,
    caption_prompt,
    clean_caption,
    format_sections,
    parse_sections,
)
from ltx_trainer.data.captioning.vlm import VLMCaptioner
from ltx_trainer.data.captioning.whisper import WhisperCaptioner

__all__ = [
    "BACKENDS",
    "CAPTION_COLUMN",
    "CAPTION_FORMATS",
    "CAPTION_STYLES",
    "FAILURES_FILE",
    "MEDIA_COLUMN",
    "MEDIA_EXTENSIONS",
    "WHISPER_SAMPLE_RATE",
    "CaptionError",
    "CaptionFormat",
    "CaptionStyle",
    "CaptionSummary",
    "Captioner",
    "MediaKind",
    "NothingToCaption",
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
    "make_captioner",
    "media_kind",
    "parse_sections",
    "read_captions",
    "sample_frames",
]
