"""LTX frame-count and resolution rules (``8k+1`` frames, multiples of 32 pixels)."""

from __future__ import annotations

from ltx_trainer.data.media.container import MediaError


def nearest_valid_num_frames(num_frames: int, temporal_factor: int = 8) -> tuple[int, int]:
    """The nearest frame counts of the form ``temporal_factor * k + 1`` below and above ``num_frames``.

    Args:
        num_frames: Any frame count.
        temporal_factor: The VAE's temporal compression (8 for LTX).

    Returns:
        ``(lower, upper)``, equal to ``(num_frames, num_frames)`` when it is already valid; ``lower`` is at least 1.
    """
    if temporal_factor < 1:
        raise ValueError(f"temporal_factor must be >= 1, got {temporal_factor}")
    if num_frames <= 1:
        return 1, 1
    lower = (num_frames - 1) // temporal_factor * temporal_factor + 1
    upper = lower if lower == num_frames else lower + temporal_factor
    return lower, upper


def nearest_valid_size(size: int, spatial_factor: int = 32) -> tuple[int, int]:
    """The nearest multiples of ``spatial_factor`` below and above ``size``.

    Args:
        size: A width or height in pixels.
        spatial_factor: The required divisor (32 for LTX).

    Returns:
        ``(lower, upper)``, equal to ``(size, size)`` when it is already valid; ``lower`` is at least
        ``spatial_factor``.
    """
    if spatial_factor < 1:
        raise ValueError(f"spatial_factor must be >= 1, got {spatial_factor}")
    if size <= spatial_factor:
        return spatial_factor, spatial_factor
    lower = size // spatial_factor * spatial_factor
    upper = lower if lower == size else lower + spatial_factor
    return lower, upper


def check_num_frames(num_frames: int, temporal_factor: int = 8) -> None:
    """Check that ``num_frames`` is ``temporal_factor * k + 1`` (1, 9, 17, 25, 33, ... for LTX).

    Raises:
        MediaError: It is not, e.g. ``"num_frames=30 is not 8k+1; nearest valid: 25 or 33"``.
    """
    if num_frames < 1:
        raise MediaError(None, f"num_frames={num_frames} must be >= 1")
    if (num_frames - 1) % temporal_factor:
        lower, upper = nearest_valid_num_frames(num_frames, temporal_factor)
        raise MediaError(
            None, f"num_frames={num_frames} is not {temporal_factor}k+1; nearest valid: {lower} or {upper}"
        )


def check_resolution(width: int, height: int, spatial_factor: int = 32) -> None:
    """Check that width and height are positive multiples of ``spatial_factor`` (32 for LTX).

    Raises:
        MediaError: One is not, e.g. ``"width=500 is not a multiple of 32; nearest valid: 480 or 512"`` (both
            problems are named, separated by ``"; "``, when both sizes are wrong).
    """
    problems = []
    for name, value in (("width", width), ("height", height)):
        if value < 1:
            problems.append(f"{name}={value} must be >= 1")
        elif value % spatial_factor:
            lower, upper = nearest_valid_size(value, spatial_factor)
            valid = f"{lower}" if lower == upper else f"{lower} or {upper}"
            problems.append(f"{name}={value} is not a multiple of {spatial_factor}; nearest valid: {valid}")
    if problems:
        raise MediaError(None, "; ".join(problems))
