"""Scene detection and splitting: find the shots of a video with PySceneDetect, cut them out with PyAV.

Detection feeds PySceneDetect's detectors (content, adaptive, threshold, histogram, hash) with frames that PyAV decodes
here, counted in decoder output order, so that the frame numbers of the scenes are the same ones that
:func:`split_video` and :func:`ltx_trainer.data.media.read_video` see. No ``ffmpeg`` binary is needed: clips are
re-encoded (H.264 + AAC) with PyAV, frame-exact, with the audio of the scene.

Conventions:

* A :class:`Scene` covers frames ``start_frame <= i < end_frame`` (``end_frame`` is exclusive) and the seconds
  ``start_frame / fps`` to ``end_frame / fps``.
* A video without any cut is one scene.
* Lengths (``min_scene_len``, ``max_scene_len``, ``skip_start``, ``skip_end``) are frames when given as an ``int`` or a
  string of digits (``48``, ``"48"``), seconds when given as a ``float`` or as ``"2s"``/``"2.5"``, or a timecode
  ``"HH:MM:SS[.mmm]"``/``"MM:SS[.mmm]"`` (see :func:`parse_length`).
* Scenes longer than ``max_scene_len`` are cut into pieces of exactly ``max_scene_len`` (so that as many clips as
  possible have the full training length) plus a remainder; scenes and pieces shorter than ``min_scene_len`` are
  **dropped**, never merged into a neighbour (a merged clip would hold two shots).

Outputs of :func:`split_folder`; the clips lie flat and the previews in a hidden folder, so that ``out_dir`` can go
straight to ``caption``/``preprocess`` (which skip hidden folders) without the previews passing for training images::

    out_dir/<stem>-Scene-001.mp4 ...            one clip per scene, with audio
    out_dir/.previews/<stem>-Scene-001-01.jpg   first, middle and last frame of each scene
    out_dir/scenes.html                         report: thumbnails, timecodes, durations, errors
    out_dir/scenes.json                         the same, machine readable
"""

from ltx_trainer.data.scenes.detection import (
    DEFAULT_MIN_SCENE_LEN,
    DETECTORS,
    Detection,
    DetectorName,
    check_detector_params,
    detect_scenes,
    detect_video,
    with_threshold,
)
from ltx_trainer.data.scenes.export import PREVIEW_DIR, save_previews, split_video
from ltx_trainer.data.scenes.folder import collect_inputs, scan_inputs, split_folder
from ltx_trainer.data.scenes.report import InputResult, SplitSummary, write_report
from ltx_trainer.data.scenes.timecodes import (
    Length,
    Scene,
    TimecodeFormat,
    format_timecode,
    parse_length,
    scene_file_name,
)

__all__ = [
    "DEFAULT_MIN_SCENE_LEN",
    "DETECTORS",
    "PREVIEW_DIR",
    "Detection",
    "DetectorName",
    "InputResult",
    "Length",
    "Scene",
    "SplitSummary",
    "TimecodeFormat",
    "check_detector_params",
    "collect_inputs",
    "detect_scenes",
    "detect_video",
    "format_timecode",
    "parse_length",
    "save_previews",
    "scan_inputs",
    "scene_file_name",
    "split_folder",
    "split_video",
    "with_threshold",
    "write_report",
]
