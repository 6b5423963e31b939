"""Official single-file checkpoints <-> diffusers state dicts, one module per component.

Every component module exposes the same four functions:

- ``diffusers_config(official: dict) -> dict``: the metadata ``config`` section -> diffusers constructor kwargs.
  Every field is derived from the metadata (with ltx-core's defaults for absent keys), never from diffusers' defaults.
- ``official_config(diffusers: dict) -> dict``: the inverse, used when we write single files.
- ``to_diffusers(sd) -> sd``: file keys (with their file prefix, e.g. ``vae.encoder.*``) -> diffusers keys.
- ``to_official(sd) -> sd``: diffusers keys -> file keys (with the prefix).
"""
