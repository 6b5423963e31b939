"""Reading, writing and checking media files (video, audio, images) with PyAV.

Everything here goes through PyAV (FFmpeg libraries bundled in the ``av`` wheel); no ``ffmpeg`` binary is needed.

Conventions:

* Video frames are ``uint8`` tensors shaped ``[F, H, W, 3]`` (RGB, channel-last).
* Audio waveforms are ``float32`` tensors shaped ``[C, S]`` with samples in ``[-1, 1]``.
* Frames are counted in decoder output (presentation) order, never from container timestamps, which can start at 1
  or arrive out of order in AVI files.
* Readers are robust to damaged files: corrupt packets are skipped, truncated files return what decoded, and a file
  that yields nothing raises :class:`MediaError` naming the file and the reason. Problems are logged once per file.
* Writers are atomic: they write through :mod:`ltx_trainer.io` (temporary file, fsync, rename).

Modules: ``container`` (open, probe, robust decoding), ``read`` (frames and audio), ``write`` (H.264 + AAC, images,
wav/flac), ``rules`` (LTX frame/size rules), ``resize`` (resize and crop).
"""

from ltx_trainer.data.media.container import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    MediaError,
    MediaInfo,
    decode_video_frames,
    is_image_file,
    open_input,
    probe,
    quarter_turns,
    video_stream,
)
from ltx_trainer.data.media.read import read_audio, read_video
from ltx_trainer.data.media.resize import resize_and_crop
from ltx_trainer.data.media.rules import (
    check_num_frames,
    check_resolution,
    nearest_valid_num_frames,
    nearest_valid_size,
)
from ltx_trainer.data.media.write import write_audio, write_image, write_video

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MediaError",
    "MediaInfo",
    "check_num_frames",
    "check_resolution",
    "decode_video_frames",
    "is_image_file",
    "nearest_valid_num_frames",
    "nearest_valid_size",
    "open_input",
    "probe",
    "quarter_turns",
    "read_audio",
    "read_video",
    "resize_and_crop",
    "video_stream",
    "write_audio",
    "write_image",
    "write_video",
]
