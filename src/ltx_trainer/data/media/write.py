"""Writing video (H.264 + AAC), images and audio with PyAV; every file goes through :mod:`ltx_trainer.io`."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from ltx_trainer import logger
from ltx_trainer.data.media.container import _frame_to_planar, _layout_for, _round_half_up
from ltx_trainer.io import atomic_path


def add_h264_stream(
    container: av.container.OutputContainer, rate: Fraction, width: int, height: int, crf: int, preset: str
) -> av.video.stream.VideoStream:
    """An H.264 (libx264, yuv420p) stream whose bytes depend only on the frames and the settings.

    Two x264 settings are pinned for that: macroblock-tree rate control is off (with it, the first encode in a
    process gave different bytes from run to run) and x264 runs one thread (its output otherwise depends on the
    machine's core count). A clip's bytes feed the cache fingerprints and, through them, the demo's LoRA.
    """
    options = {"crf": str(crf), "preset": preset, "threads": "1", "x264-params": "mbtree=0"}
    stream = container.add_stream("libx264", rate=rate, options=options)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    return stream


def _frames_to_uint8(frames: torch.Tensor | np.ndarray, ndim: int) -> np.ndarray:
    """``uint8`` numpy array from a uint8 tensor/array or a float one in ``[0, 1]``."""
    tensor = torch.as_tensor(frames).detach().cpu()
    if tensor.ndim != ndim or tensor.shape[-1] != 3:
        expected = "[F, H, W, 3]" if ndim == 4 else "[H, W, 3]"
        raise ValueError(f"expected RGB frames shaped {expected}, got {tuple(tensor.shape)}")
    if tensor.is_floating_point():
        tensor = (tensor.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    elif tensor.dtype != torch.uint8:
        raise ValueError(f"expected uint8 or float frames, got {tensor.dtype}")
    return np.ascontiguousarray(tensor.numpy())


def _audio_to_numpy(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    """``float32`` ``[C, S]`` array clamped to ``[-1, 1]``."""
    array = torch.as_tensor(audio).detach().cpu()
    if array.ndim == 1:
        array = array.unsqueeze(0)
    if array.ndim != 2:
        raise ValueError(f"expected an audio waveform shaped [C, S], got {tuple(array.shape)}")
    if array.shape[0] > array.shape[1]:
        logger.warning(f"audio shaped {tuple(array.shape)} has more channels than samples; expected [C, S]")
    if not array.is_floating_point():
        raise ValueError(f"expected a float waveform in [-1, 1], got {array.dtype}")
    bad = int((~torch.isfinite(array)).sum())
    if bad:  # the AAC encoder refuses them with a bare EINVAL
        raise ValueError(f"the audio waveform has {bad} non-finite samples (NaN/inf) of {array.numel()}")
    return np.ascontiguousarray(array.float().clamp(-1.0, 1.0).numpy())


def _audio_frame(waveform: np.ndarray, layout: str, sample_rate: int, pts: int | None = None) -> av.AudioFrame:
    """An ``av.AudioFrame`` from a ``float32`` ``[C, n]`` array (packed ``flt``: PyAV's planar path breaks at 8 ch)."""
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(waveform.T, dtype=np.float32).reshape(1, -1), format="flt", layout=layout
    )
    frame.sample_rate = sample_rate
    if pts is not None:
        frame.pts = pts
        frame.time_base = Fraction(1, sample_rate)
    return frame


def _to_stereo(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Duplicate mono, keep stereo, downmix surround with FFmpeg's matrix. Returns ``[2, S]``."""
    channels = waveform.shape[0]
    if channels == 2:
        return waveform
    if channels == 1:
        return np.repeat(waveform, 2, axis=0)
    frame = _audio_frame(waveform, _layout_for(channels), sample_rate)
    resampler = av.AudioResampler(format="flt", layout="stereo", rate=sample_rate)
    outs = [_frame_to_planar(f) for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.ascontiguousarray(np.concatenate(outs, axis=1)[:, : waveform.shape[1]])


def _fps_fraction(fps: float | Fraction) -> Fraction:
    if isinstance(fps, Fraction):
        return fps
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def write_video(
    path: str | os.PathLike[str],
    frames: torch.Tensor | np.ndarray,
    fps: float | Fraction,
    audio: torch.Tensor | np.ndarray | None = None,
    audio_sample_rate: int | None = None,
    crf: int = 18,
    preset: str = "medium",
) -> None:
    """Encode frames (and optionally audio) as H.264 (libx264, yuv420p) + AAC stereo, written atomically.

    Frames with an odd width or height are padded by one replicated row/column (yuv420p needs even sizes).

    Args:
        path: Output file, normally ``.mp4`` (``.mov``/``.mkv`` work too). Parent directories are created.
        frames: ``uint8`` frames ``[F, H, W, 3]``, or floats in ``[0, 1]`` of the same shape.
        fps: Frame rate (``23.976`` becomes ``2997/125``; pass a ``Fraction`` such as ``Fraction(24000, 1001)`` for
            an exact NTSC rate).
        audio: Optional ``float`` waveform ``[C, S]`` in ``[-1, 1]``; mono is duplicated, surround downmixed.
        audio_sample_rate: Sample rate of ``audio``; required with it.
        crf: x264 constant rate factor (0 lossless, 18 visually lossless, 23 default).
        preset: x264 preset (``ultrafast`` ... ``veryslow``).

    Raises:
        ValueError: Bad shapes, dtypes or arguments.
    """
    path = Path(path)
    array = _frames_to_uint8(frames, ndim=4)
    num_frames, height, width, _ = array.shape
    if num_frames == 0:
        raise ValueError("cannot write a video with zero frames")
    if height % 2 or width % 2:
        logger.warning(
            f"{path}: {width}x{height} is odd-sized, padding to {width + width % 2}x{height + height % 2} for yuv420p"
        )
        array = np.pad(array, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        num_frames, height, width, _ = array.shape
    rate = _fps_fraction(fps)
    waveform: np.ndarray | None = None
    if audio is not None:
        if audio_sample_rate is None or audio_sample_rate <= 0:
            raise ValueError("audio_sample_rate is required (and > 0) when audio is given")
        waveform = _to_stereo(_audio_to_numpy(audio), audio_sample_rate)

    container_options = {"movflags": "+faststart"} if path.suffix.lower() in {".mp4", ".mov", ".m4v"} else {}
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", container_options=container_options) as container:
        # Every stream must exist before the first packet is muxed (the header is written then).
        video_stream = add_h264_stream(container, rate, width, height, crf, preset)
        audio_stream = None
        if waveform is not None:
            audio_stream = container.add_stream("aac", rate=audio_sample_rate, layout="stereo")
        audio_written = 0
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(array[index], format="rgb24")
            frame.pts = index
            container.mux(video_stream.encode(frame))
            if audio_stream is not None and waveform is not None:
                # Interleave: encode the audio that belongs up to the end of this video frame.
                end = min(waveform.shape[1], _round_half_up((index + 1) / rate * audio_sample_rate))
                if index == num_frames - 1:
                    end = waveform.shape[1]
                if end > audio_written:
                    chunk = _audio_frame(waveform[:, audio_written:end], "stereo", audio_sample_rate, audio_written)
                    container.mux(audio_stream.encode(chunk))
                    audio_written = end
        container.mux(video_stream.encode(None))
        if audio_stream is not None:
            container.mux(audio_stream.encode(None))


def write_image(path: str | os.PathLike[str], frame: torch.Tensor | np.ndarray, quality: int = 95) -> None:
    """Write one RGB frame as an image (png, jpg, webp, ... from the suffix), atomically.

    Args:
        path: Output file; the format follows its suffix.
        frame: ``uint8`` ``[H, W, 3]`` (or float in ``[0, 1]``); a single-frame video ``[1, H, W, 3]`` also works.
        quality: JPEG/WebP quality.

    Raises:
        ValueError: Bad shape/dtype or unknown image suffix.
    """
    path = Path(path)
    if isinstance(frame, torch.Tensor | np.ndarray) and frame.ndim == 4 and frame.shape[0] == 1:
        frame = frame[0]
    array = _frames_to_uint8(frame, ndim=3)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: unknown image suffix {path.suffix!r}")
    options = {"quality": quality} if image_format in {"JPEG", "WEBP"} else {}
    with atomic_path(path) as tmp:
        Image.fromarray(array, mode="RGB").save(tmp, format=image_format, **options)


def write_audio(path: str | os.PathLike[str], waveform: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """Write a waveform as 16-bit PCM wav (or flac for a ``.flac`` path) with PyAV, atomically.

    Args:
        path: Output ``.wav`` (pcm_s16le) or ``.flac`` file.
        waveform: ``float`` waveform ``[C, S]`` in ``[-1, 1]`` (values outside are clipped); ``[S]`` is mono.
        sample_rate: Samples per second.

    Raises:
        ValueError: Bad shape/dtype/suffix.
    """
    path = Path(path)
    codec = {".wav": "pcm_s16le", ".flac": "flac"}.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"{path}: write_audio writes .wav or .flac, got {path.suffix!r}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    array = _audio_to_numpy(waveform)
    layout = _layout_for(array.shape[0])
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        if codec == "flac":
            stream.format = "s16"
        block = sample_rate  # one second per frame
        for begin in range(0, array.shape[1], block):
            frame = _audio_frame(array[:, begin : begin + block], layout, sample_rate, begin)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
