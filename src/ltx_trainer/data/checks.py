"""What a cache file must hold to be trained on: the one check shared by the dataset and ``verify``.

:func:`check_sample_data` checks one loaded sample file of a source kind (video latents, audio latents, text
features, masks, references): the keys of its kind, floating tensors in float16 / bfloat16 / float32 (an int32 or
float64 file is a broken cache, not something to cast silently), shapes that agree with the stored scalars and with the
model (latent channels, audio layout, text feature width when known), and finite values. A problem raises
:class:`SampleCheckError` (a :class:`~ltx_trainer.data.cache.CacheError`, so a ``DataError``) whose ``kind`` says
which check failed; the message names the file when the caller passes its path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ltx_trainer.data.cache import CacheError

if TYPE_CHECKING:
    from ltx_trainer.models.base import FamilySpec

SOURCE_KINDS: tuple[str, ...] = (
    "video_latents",
    "audio_latents",
    "conditions",
    "video_reference",
    "audio_reference",
    "video_mask",
    "audio_mask",
)
# Official folder names (spec/anchors.md §2.10) and their kinds.
KNOWN_SOURCES: dict[str, str] = {
    "latents": "video_latents",
    "conditions": "conditions",
    "audio_latents": "audio_latents",
    "reference_latents": "video_reference",
    "reference_audio_latents": "audio_reference",
    "video_masks": "video_mask",
    "audio_masks": "audio_mask",
}
CACHE_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def guess_kind(folder: str) -> str:
    """The kind of a source folder from its name: official names first, then words in the name."""
    name = Path(folder).name.lower()
    if name in KNOWN_SOURCES:
        return KNOWN_SOURCES[name]
    audio = "audio" in name
    if "mask" in name:
        return "audio_mask" if audio else "video_mask"
    if "ref" in name:
        return "audio_reference" if audio else "video_reference"
    if "cond" in name or "text" in name or "prompt" in name:
        return "conditions"
    return "audio_latents" if audio else "video_latents"


class SampleCheckError(CacheError):
    """A cache file that training can't use; ``kind`` is ``keys``, ``dtype``, ``shape`` or ``non_finite``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_Bad = SampleCheckError


def _scalar(data: dict, key: str, kind: type = int) -> float | int:
    if key not in data:
        raise _Bad("keys", f"no {key!r} entry")
    try:
        value = kind(data[key].item() if isinstance(data[key], torch.Tensor) else data[key])
    except (TypeError, ValueError, RuntimeError) as e:
        raise _Bad("keys", f"{key!r} is not a number ({data[key]!r})") from e
    if kind is float and not math.isfinite(value):
        raise _Bad("non_finite", f"{key!r} is {value}")
    return value


def _tensor(data: dict, *keys: str) -> tuple[str, torch.Tensor]:
    for key in keys:
        value = data.get(key)
        if isinstance(value, torch.Tensor):
            return key, value
    raise _Bad("keys", f"no tensor {' or '.join(repr(k) for k in keys)}; keys present: {sorted(data)}")


def _check_dtypes(data: dict, keys: tuple[str, ...]) -> None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, torch.Tensor) and value.dtype not in CACHE_FLOAT_DTYPES:
            raise _Bad(
                "dtype",
                f"{key!r} is {str(value.dtype).removeprefix('torch.')}; cache tensors are float16, bfloat16 or float32 "
                "(re-run preprocessing for it)",
            )


def _check_finite(data: dict) -> None:
    for key, value in data.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            nan, inf = int(torch.isnan(value).sum()), int(torch.isinf(value).sum())
            raise _Bad("non_finite", f"{key!r} has {nan} NaN and {inf} Inf values")


def _video_info(data: dict, spec: FamilySpec | None) -> dict:
    """Checks a video (or reference) latents dict; returns its grid, channels and fps."""
    _, latents = _tensor(data, "latents")
    frames, height, width = (_scalar(data, k) for k in ("num_frames", "height", "width"))
    fps = _scalar(data, "fps", float) if "fps" in data else None  # legacy caches: training uses the default fps
    if fps is not None and fps <= 0:
        raise _Bad("shape", f"fps={fps} must be > 0")
    if latents.ndim == 4:
        channels = latents.shape[0]
        if tuple(latents.shape[1:]) != (frames, height, width):
            raise _Bad(
                "shape",
                f"latents {list(latents.shape)} disagree with num_frames={frames}, height={height}, width={width}",
            )
    elif latents.ndim == 2:  # legacy patchified [F'*H'*W', C]
        channels = latents.shape[1]
        if latents.shape[0] != frames * height * width:
            raise _Bad(
                "shape",
                f"patchified latents {list(latents.shape)} hold {latents.shape[0]} tokens, but num_frames x height x "
                f"width = {frames * height * width}",
            )
    else:
        raise _Bad("shape", f"latents {list(latents.shape)} are neither [C, F, H, W] nor patchified [N, C]")
    if spec is not None and channels != spec.latent_channels:
        raise _Bad("shape", f"{channels} latent channels, the model has {spec.latent_channels}")
    return {"grid": (frames, height, width), "channels": channels, "fps": fps}


def _audio_info(data: dict, spec: FamilySpec | None) -> dict:
    """Checks an audio (or audio reference) latents dict; returns its length and duration."""
    _, latents = _tensor(data, "latents")
    steps = _scalar(data, "num_time_steps")
    if latents.ndim == 3:
        if latents.shape[1] != steps:
            raise _Bad("shape", f"audio latents {list(latents.shape)} disagree with num_time_steps={steps}")
        if "frequency_bins" in data and latents.shape[2] != (bins := _scalar(data, "frequency_bins")):
            raise _Bad("shape", f"audio latents {list(latents.shape)} disagree with frequency_bins={bins}")
        model_layout = (spec.audio_latent_channels, spec.audio_mel_bins) if spec is not None else None
        if model_layout is not None and (latents.shape[0], latents.shape[2]) != model_layout:
            raise _Bad(
                "shape",
                f"audio latents {list(latents.shape)}, the model's are [{spec.audio_latent_channels}, T, "
                f"{spec.audio_mel_bins}]",
            )
    elif latents.ndim == 2:  # patchified [T, C*B]
        if latents.shape[0] != steps:
            raise _Bad("shape", f"patchified audio latents {list(latents.shape)} disagree with num_time_steps={steps}")
    else:
        raise _Bad("shape", f"audio latents {list(latents.shape)} are neither [C, T, F] nor patchified [T, C*F]")
    duration = _scalar(data, "duration", float) if "duration" in data else None
    rate = spec.audio_latents_per_second if spec is not None else 25.0
    if duration is not None:
        if duration <= 0:
            raise _Bad("shape", f"duration={duration} must be > 0")
        if abs(steps / rate - duration) > 1.0 / rate + 1e-6:
            raise _Bad(
                "shape",
                f"num_time_steps={steps} is {steps / rate:.3f} s at {rate:g} latents/s, but duration={duration:.3f} s",
            )
    return {"steps": steps, "duration": duration}


def _conditions_info(data: dict, text_width: int | None = None) -> dict:
    _, video = _tensor(data, "video_prompt_embeds", "prompt_embeds")
    _, mask = _tensor(data, "prompt_attention_mask")
    if video.ndim != 2 or mask.ndim != 1 or video.shape[0] != mask.shape[0]:
        raise _Bad(
            "shape", f"prompt embeds {list(video.shape)} and attention mask {list(mask.shape)} should be [L, D] and [L]"
        )
    audio = data.get("audio_prompt_embeds")
    if isinstance(audio, torch.Tensor) and (audio.ndim != 2 or audio.shape[0] != mask.shape[0]):
        raise _Bad("shape", f"audio_prompt_embeds {list(audio.shape)} should be [{mask.shape[0]}, D]")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise _Bad("shape", "prompt_attention_mask holds values other than 0 and 1")
    if text_width is not None and video.shape[1] != text_width:
        raise _Bad("shape", f"text features {video.shape[1]} wide, the model's are {text_width}")
    width = (video.shape[1], audio.shape[1] if isinstance(audio, torch.Tensor) else None)
    return {"length": mask.shape[0], "width": width}


def _mask_info(data: dict, ndim: int) -> dict:
    _, mask = _tensor(data, "mask")
    if mask.ndim != ndim:
        want = "[F', H', W']" if ndim == 3 else "[T]"
        raise _Bad("shape", f"mask {list(mask.shape)} should be {want}")
    if mask.is_floating_point() and bool(((mask < 0) | (mask > 1)).any()):
        raise _Bad("shape", "mask values outside [0, 1]")
    return {"shape": tuple(mask.shape)}


def text_feature_width(spec: FamilySpec | None) -> int | None:
    """The width of cached text features a model takes, when its spec says (``FamilySpec.text_feature_width``)."""
    return getattr(spec, "text_feature_width", None)


def check_sample_data(data: dict, kind: str, spec: FamilySpec | None = None, path: Path | None = None) -> dict:
    """Check one loaded cache file of source ``kind`` on its own; returns what the cross-source checks need.

    Args:
        data: the file's tensors and scalars (``cache.read_sample_file``).
        kind: one of :data:`SOURCE_KINDS`.
        spec: the model's spec; without it, shapes are only checked against the file's own scalars.
        path: the file, named in the message.

    Raises:
        SampleCheckError: a problem (its ``kind`` says which), naming ``path``.
    """
    try:
        if kind in ("video_latents", "video_reference"):
            _check_dtypes(data, ("latents",))
            info = _video_info(data, spec)
        elif kind in ("audio_latents", "audio_reference"):
            _check_dtypes(data, ("latents",))
            info = _audio_info(data, spec)
        elif kind == "conditions":
            _check_dtypes(data, ("video_prompt_embeds", "audio_prompt_embeds", "prompt_embeds"))
            info = _conditions_info(data, text_feature_width(spec))
        elif kind in ("video_mask", "audio_mask"):
            info = _mask_info(data, 3 if kind == "video_mask" else 1)
        else:
            raise ValueError(f"unknown source kind {kind!r}; use one of {', '.join(SOURCE_KINDS)}")
        _check_finite(data)
    except SampleCheckError as e:
        if path is None:
            raise
        raise SampleCheckError(e.kind, f"{path}: {e}") from None
    return info
