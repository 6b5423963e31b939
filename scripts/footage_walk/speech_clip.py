"""Mux a speech WAV onto the first 5.6 s of a camera clip (320x240 H.264, 25 fps, AAC stereo).

Usage: speech_clip.py WAV VIDEO OUT
"""

import sys
import wave
from fractions import Fraction

import av
import numpy as np

SECONDS, FPS = 5.6, 25


def main(wav_path: str, video_path: str, out_path: str) -> None:
    with wave.open(wav_path) as w:
        rate = w.getframerate()
        speech = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    out = av.open(out_path, "w")
    video = out.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt, video.time_base = 320, 240, "yuv420p", Fraction(1, FPS)
    audio = out.add_stream("aac", rate=48000)
    audio.layout = "stereo"
    with av.open(video_path) as source:
        for n, frame in enumerate(source.decode(video=0)):
            if n >= int(SECONDS * FPS):
                break
            frame = frame.reformat(width=320, height=240, format="yuv420p")
            frame.pts, frame.time_base = n, Fraction(1, FPS)
            out.mux(video.encode(frame))
    out.mux(video.encode())
    samples = np.zeros(int(rate * SECONDS), np.float32)
    samples[: min(len(speech), len(samples))] = speech[: len(samples)]
    mono = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
    mono.sample_rate, mono.pts, mono.time_base = rate, 0, Fraction(1, rate)
    for frame in av.AudioResampler(format="fltp", layout="stereo", rate=48000).resample(mono):
        out.mux(audio.encode(frame))
    out.mux(audio.encode())
    out.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
