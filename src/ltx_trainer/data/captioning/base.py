"""Caption styles, formats, the :class:`Captioner` protocol and :class:`CaptionError`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from ltx_trainer.data.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ltx_trainer.errors import EnvironmentProblem

CaptionStyle = Literal["dense", "sections"]
CaptionFormat = Literal["txt", "csv", "json", "jsonl"]
MediaKind = Literal["video", "image", "audio"]

CAPTION_STYLES: tuple[str, ...] = ("dense", "sections")
CAPTION_FORMATS: tuple[str, ...] = ("txt", "csv", "json", "jsonl")
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS | AUDIO_EXTENSIONS
SECTIONS: tuple[str, ...] = ("VISUAL", "SPEECH", "SOUNDS", "TEXT")
FAILURES_FILE = "caption_failures.json"
WHISPER_SAMPLE_RATE = 16000


class CaptionError(EnvironmentProblem):
    """A captioner cannot run: a missing model folder or package, an unsupported option, an unreachable server, ...

    The message says what to do about it.
    """


@runtime_checkable
class Captioner(Protocol):
    """Anything that turns one media file into a caption."""

    def caption(self, media: Path) -> str:
        """Caption ``media`` (a video, image or audio file)."""
        ...


class NothingToCaption(Exception):
    """The file holds nothing this captioner describes (no speech for the whisper backend): skipped, not a failure."""
