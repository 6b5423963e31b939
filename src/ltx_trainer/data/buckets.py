"""Resolution buckets: the ``WxHxF`` targets a dataset is cut to, and which one a clip or an image takes.

``--resolution-buckets "768x448x89;512x512x1"``: W and H multiples of 32, F = 8k+1 (F = 1 for still images). A clip
takes, among the buckets with at most as many frames as it has, the nearest aspect ratio (log scale), then the most
frames, then the largest area (the official rule). A still image takes an ``F = 1`` bucket; when none is declared the
image is refused (a bucket nobody asked for is never invented) unless the caller allows video buckets for images.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ltx_trainer.errors import MediaError, UsageError
from ltx_trainer.models.geometry import Geometry


class BucketError(UsageError):
    """A ``--resolution-buckets`` value that isn't ``WxHxF;...`` with valid sizes."""


@dataclass(frozen=True)
class Bucket(Geometry):
    """Target ``width x height x frames`` of a sample: a clip geometry (its ``fps`` is unused: clips keep theirs)."""

    @classmethod
    def parse(cls, text: str) -> Bucket:
        try:
            width, height, frames = (int(v) for v in text.strip().lower().split("x"))
        except ValueError as e:
            raise BucketError(f"resolution bucket {text!r} is not WxHxF (e.g. 768x448x89)") from e
        bucket = cls(width, height, frames)
        try:
            bucket.check()
        except MediaError as e:
            raise BucketError(f"resolution bucket {text!r}: {e}") from e
        return bucket

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.frames}"


def parse_buckets(text: str) -> list[Bucket]:
    """``"768x448x89;512x512x1"`` -> buckets (duplicates dropped, order kept).

    Raises:
        BucketError: empty, or a bucket that isn't ``WxHxF`` with W, H multiples of 32 and F = 8k+1.
    """
    parts = [p for p in text.replace(",", ";").split(";") if p.strip()]
    if not parts:
        raise BucketError("no resolution buckets given; expected 'WxHxF;WxHxF' (e.g. '768x448x89;512x512x1')")
    return list(dict.fromkeys(Bucket.parse(p) for p in parts))


def choose_bucket(
    buckets: Iterable[Bucket], width: int, height: int, frames: int, image: bool = False
) -> Bucket | None:
    """The bucket for media of ``width x height`` with ``frames`` frames available, as the official trainer picks it.

    Among the buckets with at most ``frames`` frames: the nearest aspect ratio (in log scale), then the most frames,
    then the largest area. Still images (``image=True``) take only the declared ``F=1`` buckets.

    Returns:
        The bucket, or None when every bucket needs more frames than there are (for an image: no ``F=1`` bucket).
    """
    buckets = list(buckets)
    candidates = [b for b in buckets if (b.frames == 1 if image else b.frames <= frames)]
    if not candidates or width <= 0 or height <= 0:
        return None
    log_aspect = math.log(width / height)
    return min(
        candidates,
        key=lambda b: (abs(log_aspect - math.log(b.width / b.height)), -b.frames, -(b.width * b.height)),
    )


def crop_note(width: int, height: int, bucket: Bucket) -> str | None:
    """What resizing ``width x height`` media to cover ``bucket`` and centre-cropping it costs, or None when nothing.

    ``"cropped 1080x1920 to 512x512: 44% of the picture lost"`` for a different aspect ratio; ``"upscaled 177x143 to
    ..."`` when the media is smaller than the bucket (it is stretched, never padded).
    """
    scale = max(bucket.width / width, bucket.height / height)
    kept = (bucket.width * bucket.height) / (width * scale * height * scale)
    notes = []
    if kept < 0.995:
        size = f"{bucket.width}x{bucket.height}"
        notes.append(f"cropped {width}x{height} to the {size} bucket: {1 - kept:.0%} of the picture lost")
    if scale > 1.0:
        notes.append(f"upscaled {width}x{height} by {scale:.2f}x to cover {bucket.width}x{bucket.height}")
    return "; ".join(notes) or None
