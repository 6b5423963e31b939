"""LTX-Video 0.9.x: official single-file keys and metadata <-> diffusers ``LTXVideoTransformer3DModel`` and
``AutoencoderKLLTXVideo``, one module per component (``ltxv_transformer``, ``ltxv_vae``); this module gathers
their public names.

The official file (ltx_video / ComfyUI layout) holds ``model.diffusion_model.*`` (transformer) and ``vae.*`` (the
``CausalVideoAutoencoder``) tensors, and ``__metadata__["config"]`` = ``{"transformer": {...}, "vae": {...}}`` in the
original ltx_video naming.

- Transformer: a bijective rename of four module names (``patchify_proj``, ``adaln_single``, ``q_norm``, ``k_norm``).
- VAE: the original describes the encoder and decoder as block lists (``res_x``, ``res_x_y``, ``compress_*``);
  diffusers groups those blocks into down/up blocks. The grouping (the *layout*) is derived from the metadata config
  when there is one, otherwise from the block kinds visible in the keys, never from diffusers' 2048-channel heuristic
  (which picks the wrong key map for small or modified 0.9.5+ VAEs). The same layout drives both directions.

Released layouts: 0.9.0 (``LTXVideoDownBlock3D``, no timestep conditioning), 0.9.1 (timestep-conditioned decoder with
noise injection), 0.9.5+ (``LTXVideo095DownBlock3D`` space-to-depth encoder; 0.9.5, 0.9.6, 0.9.7, 0.9.8). Only
``per_channel_statistics.{mean,std}-of-means`` survive a conversion (as ``latents_mean``/``latents_std``); the other
statistics (``channel``, ``mean-of-stds``, ...) are unused by every loader and are dropped.
"""

from ltx_trainer.models.formats.ltxv_transformer import (
    KNOWN_TRANSFORMER_CONFIGS,
    TRANSFORMER_PREFIX,
    module_to_diffusers,
    module_to_official,
    transformer_diffusers_config,
    transformer_official_config,
    transformer_settings,
    transformer_to_diffusers,
    transformer_to_official,
)
from ltx_trainer.models.formats.ltxv_vae import (
    KNOWN_VAE_CONFIGS,
    VAE_PREFIX,
    VaeLayout,
    vae_diffusers_config,
    vae_layout_from_diffusers_config,
    vae_layout_from_diffusers_keys,
    vae_layout_from_official_config,
    vae_layout_from_official_keys,
    vae_official_config,
    vae_to_diffusers,
    vae_to_official,
    vae_version_from_official,
)

__all__ = [
    "KNOWN_TRANSFORMER_CONFIGS",
    "KNOWN_VAE_CONFIGS",
    "TRANSFORMER_PREFIX",
    "VAE_PREFIX",
    "VaeLayout",
    "module_to_diffusers",
    "module_to_official",
    "transformer_diffusers_config",
    "transformer_official_config",
    "transformer_settings",
    "transformer_to_diffusers",
    "transformer_to_official",
    "vae_diffusers_config",
    "vae_layout_from_diffusers_config",
    "vae_layout_from_diffusers_keys",
    "vae_layout_from_official_config",
    "vae_layout_from_official_keys",
    "vae_official_config",
    "vae_to_diffusers",
    "vae_to_official",
    "vae_version_from_official",
]
