"""The no-model captioner: a caption made of the file name and its metadata (smoke runs, the demo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ltx_trainer.data.captioning.base import WHISPER_SAMPLE_RATE, CaptionStyle
from ltx_trainer.data.captioning.inputs import _read_mono, _title, media_kind
from ltx_trainer.data.captioning.text import add_speech, format_sections
from ltx_trainer.data.captioning.whisper import WhisperCaptioner
from ltx_trainer.data.media import MediaError, probe

#: Peak amplitude below which a soundtrack is digital silence (-80 dBFS).
SILENCE_PEAK = 1e-4


class TemplateCaptioner:
    """A caption built from the file's name and metadata, no model: smoke runs and the demo.

    Example: ``A 2.0-second 640x360 video clip, "beach sunset", with sound.`` A soundtrack of digital silence
    (every sample below -80 dBFS) counts as none: ``…, silent.``
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
            sounds = "An audio track." if info.has_audio and not _digital_silence(media) else "none"
        transcript = self.speech.transcribe(media) if self.speech is not None else ""
        if self.style == "sections":
            text = format_sections({"VISUAL": visual, "SOUNDS": sounds, "TEXT": "none"})
        elif kind == "video" and info.has_video:
            text = visual[:-1] + (", silent." if sounds == "none" else ", with sound.")
        else:
            text = visual or sounds
        return add_speech(text, transcript, self.style)


def _digital_silence(media: Path) -> bool:
    """Whether the first audio track of ``media`` is digital silence (no sample above -80 dBFS)."""
    audio = _read_mono(media, WHISPER_SAMPLE_RATE)
    return audio is None or float(np.abs(audio).max()) < SILENCE_PEAK
