"""One factory from the command line's backend choice to a ready :class:`Captioner` (``--speech`` wired in)."""

from __future__ import annotations

import os
from typing import Literal, get_args

from ltx_trainer import logger
from ltx_trainer.data.captioning.base import Captioner, CaptionStyle
from ltx_trainer.errors import UsageError

Backend = Literal["template", "qwen-vl", "qwen-omni", "whisper", "openai"]
BACKENDS: tuple[str, ...] = get_args(Backend)


def make_captioner(
    backend: Backend | str = "template",
    model: str | os.PathLike[str] | None = None,
    style: CaptionStyle = "dense",
    speech: bool = False,
    whisper_model: str = "large-v3",
    language: str | None = None,
    vad: bool = True,
    num_frames: int = 8,
    max_pixels: int | None = 640 * 360,
    max_new_tokens: int = 512,
    device: str = "auto",
    dtype: str = "auto",
    load_in_8bit: bool = False,
    base_url: str = "http://localhost:8000/v1",
    api_key_env: str = "OPENAI_API_KEY",
    send_audio: bool = False,
    prompt: str | None = None,
) -> Captioner:
    """Build the captioner of ``backend``; with ``speech`` (or the whisper backend) a Whisper model quotes the speech.

    Args:
        backend: ``template`` (no model), ``qwen-vl``, ``qwen-omni`` (in-process, ``model`` is a local folder),
            ``whisper`` (``model``: faster-whisper folder or size name, default ``whisper_model``) or ``openai`` (an
            OpenAI-compatible server at ``base_url``; ``model``: the served name, default the server's first).
        The other arguments are those of the backends (:class:`VLMCaptioner`, :class:`WhisperCaptioner`,
        :class:`OpenAICompatibleCaptioner`, :class:`TemplateCaptioner`).

    Raises:
        UsageError: Unknown backend, or an in-process VLM without ``model``.
        CaptionError: The model, package or server cannot be used.
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown caption backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend in ("qwen-vl", "qwen-omni") and model is None:
        raise UsageError(f"--backend {backend} needs --model <local model folder>")

    from ltx_trainer.data.captioning.whisper import WhisperCaptioner

    whisper = None
    if speech or backend == "whisper":
        whisper_name = str(model) if backend == "whisper" and model is not None else whisper_model
        whisper = WhisperCaptioner(whisper_name, language=language, vad=vad, style=style)
    if backend == "whisper":
        assert whisper is not None
        return whisper
    if backend == "template":
        from ltx_trainer.data.captioning.template import TemplateCaptioner

        return TemplateCaptioner(style=style, speech=whisper)
    if backend == "openai":
        from ltx_trainer.data.captioning.openai_compatible import OpenAICompatibleCaptioner

        return OpenAICompatibleCaptioner(
            base_url=base_url,
            model=str(model) if model is not None else None,
            api_key_env=api_key_env,
            style=style,
            num_frames=num_frames,
            max_pixels=max_pixels,
            send_audio=send_audio,
            max_tokens=max_new_tokens,
            prompt=prompt,
            speech=whisper,
        )
    from ltx_trainer.data.captioning.vlm import VLMCaptioner

    vlm = VLMCaptioner(
        model,  # type: ignore[arg-type]  # checked above
        style=style,
        num_frames=num_frames,
        max_pixels=max_pixels,
        max_new_tokens=max_new_tokens,
        device=device,
        dtype=dtype,
        load_in_8bit=load_in_8bit,
        use_audio=backend == "qwen-omni",
        prompt=prompt,
        speech=whisper,
    )
    if backend == "qwen-omni" and not vlm.hears_audio:
        logger.warning(f"{model} is a {vlm.model_type} model, which cannot hear audio; captioning from the frames only")
    return vlm
