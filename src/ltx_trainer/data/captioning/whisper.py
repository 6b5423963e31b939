"""Speech transcription with faster-whisper: alone it captions the quoted speech, or it feeds other backends."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from ltx_trainer import logger
from ltx_trainer.data.captioning.base import WHISPER_SAMPLE_RATE, CaptionError, CaptionStyle, NothingToCaption
from ltx_trainer.data.captioning.inputs import _read_mono


def _resolve_device(device: str) -> str:
    """models.devices' rule (``auto`` -> cuda when available), and a CUDA device asked for must exist."""
    import torch

    from ltx_trainer.models.devices import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise CaptionError(f"device {device!r} asked for but CUDA is not available; use --device cpu")
    return str(resolved)


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
        no_speech_threshold: Segments Whisper gives a higher no-speech probability are dropped, whatever their text
            (a hum, a sigh or music transcribed as "Mm-hmm." is not speech). A file left without segments has no
            speech: as a captioner it raises :class:`NothingToCaption` (skipped, not a failure).
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
        no_speech_threshold: float = 0.6,
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
        import ctranslate2

        log_level = ctranslate2.get_log_level()
        # CTranslate2 notes on every CPU load that it runs a float16 model (every released faster-whisper one) in
        # float32: expected there, and nothing a user can act on; its errors still show
        ctranslate2.set_log_level(logging.ERROR)
        try:
            self.model = WhisperModel(name, device=device, compute_type=compute_type)
        except Exception as e:  # faster-whisper raises hub, CTranslate2 and OS errors alike
            raise CaptionError(
                f"cannot load Whisper model {name!r}: {type(e).__name__}: {e}. Pass a local faster-whisper folder "
                "(e.g. `hf download Systran/faster-whisper-large-v3 --local-dir <folder>`)"
            ) from e
        finally:
            ctranslate2.set_log_level(log_level)
        self.language = language
        self.vad = vad
        self.beam_size = beam_size
        self.no_speech_threshold = no_speech_threshold
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
        spoken = []
        for segment in segments:
            # Whisper's own rule keeps a segment whose text is likely enough even when the model thinks nobody
            # speaks, which is how a hum or a sigh becomes "Mm-hmm.": here the no-speech verdict wins.
            if segment.no_speech_prob > self.no_speech_threshold:
                logger.debug(
                    f"{media}: dropped {segment.text.strip()!r} (no-speech probability {segment.no_speech_prob:.2f})"
                )
                continue
            spoken.append(segment.text.strip())
        return re.sub(r"\s+", " ", " ".join(spoken)).strip()

    def caption(self, media: Path) -> str:
        transcript = self.transcribe(media)
        if not transcript:
            raise NothingToCaption("no speech")
        if self.style == "sections":
            return f'[SPEECH]: "{transcript}"'
        return f'The speaker says: "{transcript}"'
