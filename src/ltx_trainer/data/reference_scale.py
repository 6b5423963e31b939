"""The scale factors of a cached IC-LoRA video reference relative to its target, read once from the data root.

``k`` (spatial) and ``S`` (temporal) are read from one (target, reference) pair under the data root (never the
working directory); the training strategy receives the resulting ``ReferenceScale``, checks every batch against it
and writes it into the LoRA header. See ``models/latents.py`` for what the factors mean for positions.
"""

from pathlib import Path

from ltx_trainer import logger
from ltx_trainer.config import FlexibleStrategyConfig, ReferenceCondition
from ltx_trainer.data.cache import read_sample_file
from ltx_trainer.data.dataset import index_cache_folder, normalize_video_latents, precomputed_root
from ltx_trainer.models.latents import LatentGrid, ReferenceScale


def _video_grid(path: Path) -> tuple[LatentGrid, float | None]:
    data = normalize_video_latents(read_sample_file(path))
    latents = data["latents"]
    if latents.ndim != 4:
        raise ValueError(f"{path}: expected video latents [C, F', H', W'], found shape {list(latents.shape)}")
    fps = float(data["fps"]) if "fps" in data else None
    return LatentGrid(*latents.shape[1:]), fps


def infer_reference_scale(data_root: str | Path, target_dir: str, reference_dir: str, key: str) -> ReferenceScale:
    """Read one (target, reference) pair under the data root and return its scale factors.

    Args:
        data_root: ``data.preprocessed_data_root`` (its ``.precomputed/`` subfolder is used when present).
        target_dir, reference_dir: folders under it.
        key: the config key that names ``reference_dir`` (for messages).

    Raises:
        FileNotFoundError: a folder is missing, or no sample id is in both.
        ValueError: the factors are not whole numbers, differ between height and width, or the stored fps
            disagrees with them; the message names both files.
    """
    root = precomputed_root(data_root)
    folders = {target_dir: "training_strategy.video.latents_dir", reference_dir: key}
    for folder, folder_key in folders.items():
        if not (root / folder).is_dir():
            raise FileNotFoundError(
                f"{folder_key}: folder {folder!r} not found under {root}; preprocess that data or fix the folder name"
            )
    targets, references = index_cache_folder(root / target_dir), index_cache_folder(root / reference_dir)
    shared = sorted(targets.keys() & references.keys())
    if not shared:
        raise FileNotFoundError(
            f"{key}: no sample is in both {root / target_dir} and {root / reference_dir}; references must have the "
            "same relative names as their targets"
        )
    target_file, reference_file = targets[shared[0]], references[shared[0]]
    target, target_fps = _video_grid(target_file)
    reference, reference_fps = _video_grid(reference_file)
    pair = (
        f"{reference_file} (F'xH'xW' {reference.frames}x{reference.height}x{reference.width}) for {target_file} "
        f"({target.frames}x{target.height}x{target.width})"
    )
    k_h, k_w = target.height / reference.height, target.width / reference.width
    if k_h != k_w or k_h < 1 or k_h != int(k_h):
        raise ValueError(
            f"{key}: reference {pair}: the spatial scale must be one whole number on both axes, got {k_h:g} (height) "
            f"and {k_w:g} (width); re-run preprocessing with an integer reference downscale factor"
        )
    if reference.frames == 1:
        temporal = 1  # a one-frame reference sits at time 0, whatever the target length
    else:
        s = (target.frames - 1) / (reference.frames - 1)
        if s < 1 or s != int(s):
            raise ValueError(
                f"{key}: reference {pair}: the temporal scale (F'_t - 1) / (F'_r - 1) = {s:g} is not a whole number; "
                "re-run preprocessing with an integer reference temporal scale factor"
            )
        temporal = int(s)
    scale = ReferenceScale(int(k_h), temporal)
    if target_fps is not None and reference_fps is not None and reference.frames > 1:
        scale.check_fps(target_fps, reference_fps, f"{key}: reference {pair}")
    logger.info("reference scale from %s: spatial %d, temporal %d", reference_file, scale.spatial, scale.temporal)
    return scale


def read_reference_scale(config: FlexibleStrategyConfig, data_root: str | Path) -> ReferenceScale | None:
    """The scale of the strategy's generated-video reference under ``data_root``, or None without one."""
    video = config.video
    if video is None or not video.is_generated:
        return None
    references = [(i, c) for i, c in enumerate(video.conditions) if isinstance(c, ReferenceCondition)]
    if not references:
        return None
    index, reference = references[0]
    key = f"training_strategy.video.conditions[{index}].latents_dir"
    return infer_reference_scale(data_root, video.latents_dir, reference.latents_dir, key)
