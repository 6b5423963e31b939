"""Synthetic media generators for tests, written with PyAV only (no ffmpeg binary).

Plain importable functions (not pytest fixtures): call them with a ``tmp_path`` file name. Everything is
deterministic for a given ``seed`` and small enough to be fast.

* :func:`make_clip`: a video with a moving bright square on a striped background whose colour scheme changes
  completely at every hard cut, plus a sine-tone audio track (one frequency per channel, changing at cuts).
  The exact source content is available from :func:`clip_frames` and :func:`clip_audio` for comparisons.
* :func:`make_image`, :func:`make_wav`, :func:`make_audio_only`, :func:`make_video_without_audio`.
* :func:`make_truncated`, :func:`make_corrupt`, :func:`make_damaged`: broken files.
"""

from __future__ import annotations

import colorsys
import io
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

__all__ = [
    "clip_audio",
    "clip_frame",
    "clip_frames",
    "hum_waveform",
    "invoke_command",
    "make_audio_only",
    "make_clip",
    "make_corrupt",
    "make_damaged",
    "make_hum",
    "make_image",
    "make_truncated",
    "make_video_without_audio",
    "make_wav",
    "scene_frequencies",
    "scene_index",
]

_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}

# suffix -> (video codec, video options, audio codec, fixed audio rate or None)
_VIDEO_CODECS: dict[str, tuple[str, dict[str, str], str, int | None]] = {
    ".mp4": ("libx264", {"crf": "18", "preset": "ultrafast"}, "aac", None),
    ".m4v": ("libx264", {"crf": "18", "preset": "ultrafast"}, "aac", None),
    ".mov": ("libx264", {"crf": "18", "preset": "ultrafast"}, "aac", None),
    ".mkv": ("libx264", {"crf": "18", "preset": "ultrafast"}, "aac", None),
    # MPEG-4 part 2 with B-frames in AVI: packed bitstream, timestamps that do not follow output order. PCM audio,
    # because MP3's encoder delay is not signalled in AVI and would shift the samples.
    ".avi": ("mpeg4", {"qscale": "3", "bf": "2"}, "pcm_s16le", None),
    ".webm": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0"}, "libopus", 48000),
}


def scene_index(frame_index: int, cuts: Sequence[int]) -> int:
    """Index of the scene that ``frame_index`` belongs to (scene ``k`` starts at ``sorted(cuts)[k - 1]``)."""
    return sum(1 for cut in cuts if cut <= frame_index)


def _palette(scene: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background colours A/B and the square's colour for a scene; hue jumps by ~137 degrees per scene."""
    hue = (0.11 * seed + 0.381966 * scene) % 1.0
    dark = colorsys.hsv_to_rgb(hue, 0.9, 0.35)
    mid = colorsys.hsv_to_rgb((hue + 0.05) % 1.0, 0.7, 0.65)
    square = colorsys.hsv_to_rgb((hue + 0.5) % 1.0, 0.35, 1.0)
    return (np.array(dark) * 255, np.array(mid) * 255, np.array(square) * 255)


def clip_frame(index: int, width: int, height: int, cuts: Sequence[int] = (), seed: int = 0) -> np.ndarray:
    """Frame ``index`` of :func:`make_clip`'s video, before encoding.

    Returns:
        ``uint8`` RGB ``[height, width, 3]``.
    """
    scene = scene_index(index, cuts)
    colour_a, colour_b, colour_square = _palette(scene, seed)
    yy, xx = np.mgrid[0:height, 0:width]
    direction = 1 if scene % 2 == 0 else -1  # stripe orientation flips at each cut too
    stripes = (((xx + direction * yy + index) // 6) % 2).astype(np.float32)[..., None]
    shade = (0.75 + 0.25 * yy / max(height - 1, 1)).astype(np.float32)[..., None]  # vertical gradient
    image = (colour_a * (1 - stripes) + colour_b * stripes) * shade
    side = max(4, min(width, height) // 4)
    span = max(width - side, 1)
    left = (index * 3 + 7 * seed) % span
    top = int((height - side) / 2 * (1 + 0.5 * np.sin(index / 4)))
    image[top : top + side, left : left + side] = colour_square
    return np.clip(image, 0, 255).round().astype(np.uint8)


def clip_frames(num_frames: int, width: int, height: int, cuts: Sequence[int] = (), seed: int = 0) -> np.ndarray:
    """All frames of :func:`make_clip`'s video, before encoding: ``uint8`` ``[num_frames, height, width, 3]``."""
    return np.stack([clip_frame(i, width, height, cuts, seed) for i in range(num_frames)])


def scene_frequencies(scene: int, channels: int, seed: int = 0) -> list[float]:
    """Sine frequency (Hz) of each channel during ``scene``: distinct per channel, changing at every cut.

    All frequencies stay below 3 kHz so that they survive resampling to 16 kHz.
    """
    step = 2 ** (((5 * scene + 3 * seed) % 12) / 12)
    return [float(round(220.0 * step * (1 + 0.5 * c), 3)) for c in range(channels)]


def clip_audio(
    num_samples: int,
    sample_rate: int,
    channels: int = 2,
    cut_times: Sequence[float] = (),
    seed: int = 0,
    amplitude: float = 0.5,
) -> np.ndarray:
    """Audio of :func:`make_clip` (or :func:`make_wav` without cuts): ``float32`` ``[channels, num_samples]``.

    Channel ``c`` plays a sine of ``scene_frequencies(scene, channels)[c]``; the scene changes at ``cut_times``
    (seconds).
    """
    t = np.arange(num_samples) / sample_rate
    scenes = np.searchsorted(np.asarray(sorted(cut_times), dtype=np.float64), t, side="right")
    out = np.zeros((channels, num_samples), dtype=np.float64)
    for scene in np.unique(scenes):
        mask = scenes == scene
        for c, frequency in enumerate(scene_frequencies(int(scene), channels, seed)):
            out[c, mask] = amplitude * np.sin(2 * np.pi * frequency * t[mask])
    return out.astype(np.float32)


def _audio_frames(waveform: np.ndarray, sample_rate: int, layout: str, block: int):
    """Yield ``av.AudioFrame`` blocks (packed flt) of a ``[C, S]`` waveform with pts in samples."""
    for begin in range(0, waveform.shape[1], block):
        # Packed "flt": PyAV's planar from_ndarray fails for 8 channels.
        block_data = np.ascontiguousarray(waveform[:, begin : begin + block].T).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(block_data, format="flt", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = begin
        frame.time_base = Fraction(1, sample_rate)
        yield frame


def make_clip(
    path: str | os.PathLike[str],
    num_frames: int,
    width: int,
    height: int,
    fps: int | float = 24,
    cuts: Sequence[int] = (),
    audio: bool = True,
    sample_rate: int = 44100,
    channels: int = 2,
    seed: int = 0,
    rotation: int = 0,
) -> Path:
    """Write a synthetic video clip (mp4/mov/m4v/mkv: H.264 + AAC, avi: MPEG-4 with B-frames + PCM, webm: VP9 + Opus).

    Args:
        path: Output file; the suffix picks the container and codecs.
        num_frames: Number of frames.
        width: Frame width (even).
        height: Frame height (even).
        fps: Frame rate.
        cuts: Frame indices where a hard cut happens (a new scene starts): colours, stripe direction and audio
            frequencies all change there.
        audio: Add an audio track of ``round(num_frames / fps * sample_rate)`` samples.
        sample_rate: Audio sample rate (webm always uses 48000, Opus' rate).
        channels: Audio channels (1-8).
        seed: Changes colours, square position and frequencies.
        rotation: Display rotation in degrees counter-clockwise (stored as a display matrix, like phone videos);
            an upright reader returns ``np.rot90(frame, rotation // 90)``.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    video_codec, video_options, audio_codec, fixed_rate = _VIDEO_CODECS[path.suffix.lower()]
    rate = Fraction(fps).limit_denominator(1001)
    frames = clip_frames(num_frames, width, height, cuts, seed)
    with av.open(str(path), mode="w") as container:
        video_stream = container.add_stream(video_codec, rate=rate, options=dict(video_options))
        video_stream.width, video_stream.height, video_stream.pix_fmt = width, height, "yuv420p"
        if rotation:
            video_stream.set_display_rotation(rotation)
        audio_stream = None
        waveform = np.zeros((channels, 0), dtype=np.float32)
        if audio:
            sample_rate = fixed_rate or sample_rate
            num_samples = round(num_frames / float(rate) * sample_rate)
            cut_times = [cut / float(rate) for cut in cuts]
            waveform = clip_audio(num_samples, sample_rate, channels, cut_times, seed)
            audio_stream = container.add_stream(audio_codec, rate=sample_rate, layout=_LAYOUTS[channels])
        # Both streams exist now; only from here on packets are muxed.
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(video_stream.encode(frame))
        container.mux(video_stream.encode(None))
        if audio_stream is not None:
            for frame in _audio_frames(waveform, sample_rate, _LAYOUTS[channels], block=4096):
                container.mux(audio_stream.encode(frame))
            container.mux(audio_stream.encode(None))
    return path


def make_video_without_audio(
    path: str | os.PathLike[str],
    num_frames: int = 9,
    width: int = 64,
    height: int = 48,
    fps: int | float = 24,
    cuts: Sequence[int] = (),
    seed: int = 0,
) -> Path:
    """A :func:`make_clip` video with no audio stream."""
    return make_clip(path, num_frames, width, height, fps=fps, cuts=cuts, audio=False, seed=seed)


def make_image(path: str | os.PathLike[str], w: int, h: int, seed: int = 0) -> Path:
    """Write a still image (png/jpg/... from the suffix) showing :func:`clip_frame` 0; returns the path.

    The exact pixels are ``clip_frame(0, w, h, seed=seed)``.
    """
    path = Path(path)
    Image.fromarray(clip_frame(0, w, h, seed=seed), mode="RGB").save(path)
    return path


def make_wav(
    path: str | os.PathLike[str],
    seconds: float = 1.0,
    sample_rate: int = 16000,
    channels: int = 2,
    seed: int = 0,
) -> Path:
    """Write a 16-bit PCM wav of per-channel sines (:func:`clip_audio` without cuts); returns the path.

    Channel layouts are FFmpeg's defaults: 1 mono, 2 stereo, 6 = 5.1 (FL FR FC LFE BL BR), 8 = 7.1.
    """
    return make_audio_only(path, seconds, sample_rate, channels, seed)


def make_audio_only(
    path: str | os.PathLike[str],
    seconds: float = 1.0,
    sample_rate: int = 44100,
    channels: int = 2,
    seed: int = 0,
    cover_art: bool = False,
) -> Path:
    """Write an audio-only file of per-channel sines; the suffix picks the codec.

    ``.wav`` pcm_s16le, ``.flac`` flac, ``.mp3`` libmp3lame, ``.aac`` AAC in ADTS, ``.m4a`` AAC in mp4,
    ``.ogg``/``.opus`` Opus (at 48 kHz whatever ``sample_rate`` says).

    With ``cover_art`` (mp3 only) a 32x32 JPEG is attached as an ``attached_pic`` video stream, as music files
    often have: readers must not take it for a video.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    codec, fmt = {
        ".wav": ("pcm_s16le", None),
        ".flac": ("flac", None),
        ".mp3": ("libmp3lame", None),
        ".aac": ("aac", "adts"),
        ".m4a": ("aac", "ipod"),
        ".ogg": ("libopus", "ogg"),
        ".opus": ("libopus", "ogg"),
    }[suffix]
    if codec == "libopus":
        sample_rate = 48000
    layout = _LAYOUTS[channels]
    waveform = clip_audio(round(seconds * sample_rate), sample_rate, channels, seed=seed)
    if cover_art and suffix != ".mp3":
        raise ValueError("cover_art is only supported for .mp3")
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        if cover_art:
            cover = container.add_stream("mjpeg")
            cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
            cover.disposition = av.stream.Disposition.attached_pic
            jpeg = io.BytesIO()
            Image.fromarray(clip_frame(0, 32, 32, seed=seed), mode="RGB").save(jpeg, format="JPEG")
            packet = av.Packet(jpeg.getvalue())
            packet.stream, packet.pts, packet.dts = cover, 0, 0
            container.mux(packet)
        for frame in _audio_frames(waveform, sample_rate, layout, block=4096):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_truncated(src: str | os.PathLike[str], dst: str | os.PathLike[str], keep_fraction: float = 0.5) -> Path:
    """Copy the first ``keep_fraction`` of the bytes of ``src`` to ``dst`` (a download cut short)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * keep_fraction)])
    return dst


def make_corrupt(dst: str | os.PathLike[str], size: int = 4096, seed: int = 0) -> Path:
    """Write ``size`` random bytes (give it a media name such as ``broken.mp4``)."""
    dst = Path(dst)
    dst.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return dst


def make_damaged(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    start_fraction: float = 0.4,
    length_fraction: float = 0.1,
    seed: int = 0,
    zeros: bool = False,
) -> Path:
    """Copy ``src`` with a run of its bytes (from ``start_fraction``, ``length_fraction`` long) randomised (or zeroed:
    a disk or transfer error the H.264 decoder conceals without reporting a bad packet).

    The container structure before and after the run survives, so readers meet corrupt packets mid-file.
    """
    data = bytearray(Path(src).read_bytes())
    begin = int(len(data) * start_fraction)
    end = begin + max(1, int(len(data) * length_fraction))
    rng = np.random.default_rng(seed)
    noise = bytes(end - begin) if zeros else rng.integers(0, 256, end - begin, dtype=np.uint8).tobytes()
    data[begin:end] = noise[: len(data) - begin]
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst


class CommandResult:
    """What a command run by :func:`invoke_command` did: its exit code and everything it printed (error included)."""

    def __init__(self, exit_code: int, output: str, exception: BaseException | None) -> None:
        self.exit_code = exit_code
        self.output = output
        self.exception = exception


def invoke_command(command, *args: str, columns: int = 200) -> CommandResult:
    """Run one ``commands/`` verb through typer's CLI parser, as ``ltx-trainer <verb> ARGS`` would.

    An expected failure (:class:`ltx_trainer.errors.LtxTrainerError`) becomes its ``exit_code`` with its message
    appended to the output, as the CLI's single error handler prints it.
    """
    import typer
    from typer.testing import CliRunner

    from ltx_trainer.errors import LtxTrainerError

    app = typer.Typer()
    app.command()(command)
    result = CliRunner().invoke(app, list(args), env={**os.environ, "COLUMNS": str(columns)})
    if isinstance(result.exception, LtxTrainerError):
        return CommandResult(
            result.exception.exit_code, f"{result.output}error: {result.exception}\n", result.exception
        )
    return CommandResult(result.exit_code, result.output, result.exception)


def hum_waveform(seconds: float = 3.0, sample_rate: int = 16000) -> np.ndarray:
    """A closed-mouth hum (no words): a 150 Hz glottal pulse train with vibrato through two formant resonators.

    Whisper hears such a hum as "Mm-hmm." although it gives it a high no-speech probability: the non-speech case
    speech transcription must not turn into a quote. Mono ``float32`` ``[1, S]``, peak 0.5.
    """
    n = round(seconds * sample_rate)
    f0 = 150.0 * (1 + 0.1 * np.sin(2 * np.pi * 3 * np.arange(n) / sample_rate))
    signal = np.zeros(n)
    position = 0.0
    while position < n:
        signal[int(position)] = 1.0
        position += sample_rate / f0[int(position)]
    for frequency, bandwidth in ((300.0, 60.0), (900.0, 100.0)):  # two-pole resonators
        r = np.exp(-np.pi * bandwidth / sample_rate)
        a1, a2 = -2 * r * np.cos(2 * np.pi * frequency / sample_rate), r * r
        out = np.zeros(n)
        y1 = y2 = 0.0
        for i, x in enumerate(signal):
            y = (1 - r) * x - a1 * y1 - a2 * y2
            out[i], y2, y1 = y, y1, y
        signal = out
    return (0.5 * signal / np.abs(signal).max()).astype(np.float32)[None]


def make_hum(path: str | os.PathLike[str], seconds: float = 3.0, sample_rate: int = 16000) -> Path:
    """Write :func:`hum_waveform` as a 16-bit mono wav; returns the path."""
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=sample_rate, layout="mono")
        for frame in _audio_frames(hum_waveform(seconds, sample_rate), sample_rate, "mono", block=4096):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
