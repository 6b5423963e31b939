"""The LTX frame-count and resolution rules live with the models (they are VAE rules); re-exported for data code."""

from ltx_trainer.models.geometry import check_num_frames, check_resolution, nearest_valid_num_frames, nearest_valid_size

__all__ = ["check_num_frames", "check_resolution", "nearest_valid_num_frames", "nearest_valid_size"]
