"""Captioning through an OpenAI-compatible chat-completions server (typically a local vLLM); standard library only."""

from __future__ import annotations

import base64
import io
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ltx_trainer.data.captioning.base import WHISPER_SAMPLE_RATE, CaptionError, CaptionStyle
from ltx_trainer.data.captioning.inputs import _fit_pixels, _read_mono, _wav_bytes, media_kind, sample_frames
from ltx_trainer.data.captioning.text import add_speech, caption_prompt
from ltx_trainer.data.captioning.whisper import WhisperCaptioner
from ltx_trainer.data.media import MediaError


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
