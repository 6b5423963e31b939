"""Precompute what training reads: video latents, audio latents and text features, in the official cache layout.

One sample = one clip + caption -> ``latents/<id>``, ``audio_latents/<id>``, ``conditions/<id>`` under the cache root
(keys and shapes of spec/anchors.md §2.10). Text features are computed once per unique caption.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from ltx_trainer.data.cache import write_sample_file
from ltx_trainer.data.media import check_num_frames, check_resolution, read_audio, read_video, resize_and_crop
from ltx_trainer.models.base import LTXModel


@dataclass(frozen=True)
class Bucket:
    """Target ``width x height x frames`` of a sample."""

    width: int
    height: int
    frames: int

    @classmethod
    def parse(cls, text: str) -> "Bucket":
        try:
            width, height, frames = (int(v) for v in text.lower().split("x"))
        except ValueError as e:
            raise ValueError(f"resolution bucket {text!r} is not WxHxF (e.g. 768x448x89)") from e
        check_resolution(width, height)
        check_num_frames(frames)
        return cls(width, height, frames)


@dataclass(frozen=True)
class Item:
    media: Path
    caption: str
    sample_id: str


def video_latents(model: LTXModel, media: Path, bucket: Bucket) -> tuple[dict, float]:
    """Decode, resize/crop and encode the first ``bucket.frames`` frames; returns the cache dict and the fps."""
    frames, fps = read_video(media, max_frames=bucket.frames)
    if frames.shape[0] < bucket.frames:
        raise ValueError(f"{media}: {frames.shape[0]} frames, the bucket needs {bucket.frames}")
    frames = resize_and_crop(frames, bucket.width, bucket.height)  # [F, H, W, 3] uint8
    pixels = frames.permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5 - 1.0  # [1, 3, F, H, W] in [-1, 1]
    with torch.no_grad():
        latents = model.encode_video(pixels)[0]
    _, f, h, w = latents.shape
    return {"latents": latents.contiguous(), "num_frames": f, "height": h, "width": w, "fps": float(fps)}, fps


def audio_latents(model: LTXModel, media: Path, duration: float) -> dict:
    """The clip's audio (stereo; mono duplicated, surround downmixed), trimmed or padded to ``duration`` seconds."""
    waveform, rate = read_audio(media, channels=2, duration=duration)
    with torch.no_grad():
        latents = model.encode_audio(waveform.unsqueeze(0), rate)[0]
    return {
        "latents": latents.contiguous(),
        "num_time_steps": latents.shape[1],
        "frequency_bins": latents.shape[2],
        "duration": duration,
    }


def precompute(
    model: LTXModel,
    items: list[Item],
    out_root: Path,
    bucket: Bucket,
    with_audio: bool = True,
    suffix: str = ".safetensors",
) -> list[str]:
    """Write the cache for ``items``; returns the sample ids written."""
    features_by_caption: dict[str, dict] = {}
    for caption in dict.fromkeys(item.caption for item in items):
        f = model.encode_text([caption])
        features_by_caption[caption] = {
            "video_prompt_embeds": f.video[0].contiguous(),
            "audio_prompt_embeds": (f.audio if f.audio is not None else f.video)[0].clone(),  # 2.0: same as video
            "prompt_attention_mask": f.mask[0].contiguous(),
        }
    written = []
    for item in items:
        latents, fps = video_latents(model, item.media, bucket)
        write_sample_file(out_root / "latents" / f"{item.sample_id}{suffix}", latents)
        write_sample_file(out_root / "conditions" / f"{item.sample_id}{suffix}", features_by_caption[item.caption])
        if with_audio and model.spec.has_audio:
            audio = audio_latents(model, item.media, bucket.frames / fps)
            write_sample_file(out_root / "audio_latents" / f"{item.sample_id}{suffix}", audio)
        written.append(item.sample_id)
    return written
