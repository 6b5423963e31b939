"""The module names LoRA files address, per family: official <-> diffusers paths and the kohya/musubi flattening.

A LoRA names a linear layer of the transformer. Three naming schemes are in use:

- official (ltx-core, ComfyUI, ai-toolkit, musubi-tuner): the module path of ``model.diffusion_model.*`` without that
  prefix, e.g. ``transformer_blocks.3.attn1.to_q``;
- diffusers: ``LTX2VideoTransformer3DModel`` / ``LTXVideoTransformer3DModel`` paths (``proj_in`` for ``patchify_proj``,
  ``time_embed`` for ``adaln_single``; ``formats/*_transformer.py`` hold the renames);
- kohya / musubi-tuner: ``lora_unet_`` + the official path with every ``.`` replaced by ``_``
  (``lora_unet_transformer_blocks_3_attn1_to_q``).

The flattening loses the dots, so it is undone by lookup, never by guessing underscores: :func:`linear_modules` lists
every linear layer each released architecture has (built on the meta device from the family's own diffusers class,
with the official renames applied), and :func:`unflatten` maps a flattened name back through that table; no two
official paths flatten to the same name (checked when the table is built). Module names also tell the family apart
(:func:`infer_family`): LTX-2 has an audio stream, LTX-2.3 adds gated attention and prompt modulation.
"""

import re
from collections.abc import Iterable
from functools import cache

from ltx_trainer.models.formats import ltx2_transformer
from ltx_trainer.models.formats import ltxv as ltxv_fmt

KOHYA_PREFIX = "lora_unet_"
BLOCK = re.compile(r"^transformer_blocks\.(\d+)\.")
_FLAT_BLOCK = re.compile(r"^transformer_blocks_(\d+)_(.+)$")
# (family, version) of each architecture whose names are tabled; 2.0 and 2.3 differ (gates, prompt modulation).
VARIANTS = (("ltx2", "2.0"), ("ltx2", "2.3"), ("ltxv", "0.9"))


def to_diffusers(family: str, official: str) -> str:
    """An official module path -> the family's diffusers path."""
    rename = ltx2_transformer.module_to_diffusers if family == "ltx2" else ltxv_fmt.module_to_diffusers
    return rename(official)


def to_official(family: str, diffusers: str) -> str:
    """A diffusers module path of ``family`` -> the official path."""
    rename = ltx2_transformer.module_to_official if family == "ltx2" else ltxv_fmt.module_to_official
    return rename(diffusers)


def template(official: str) -> str:
    """``transformer_blocks.7.attn1.to_q`` -> ``transformer_blocks.*.attn1.to_q`` (other paths unchanged)."""
    return BLOCK.sub("transformer_blocks.*.", official)


def _meta_transformer(family: str, version: str):
    from accelerate import init_empty_weights

    with init_empty_weights():
        if family == "ltx2":
            from diffusers import LTX2VideoTransformer3DModel

            official = {"num_layers": 1, "caption_channels": 3840}
            if version == "2.3":
                official.update(
                    apply_gated_attention=True, cross_attention_adaln=True, caption_proj_before_connector=True
                )
            return LTX2VideoTransformer3DModel(**ltx2_transformer.diffusers_config(official))
        from diffusers import LTXVideoTransformer3DModel

        official = {**ltxv_fmt.KNOWN_TRANSFORMER_CONFIGS["2b"], "num_layers": 1}
        return LTXVideoTransformer3DModel(**ltxv_fmt.transformer_diffusers_config(official))


@cache
def linear_modules() -> dict[tuple[str, str], frozenset[str]]:
    """(family, version) -> official path templates (block index ``*``) of every linear layer of that architecture."""
    from torch import nn

    out = {}
    for family, version in VARIANTS:
        transformer = _meta_transformer(family, version)
        names = (to_official(family, n) for n, m in transformer.named_modules() if isinstance(m, nn.Linear))
        out[(family, version)] = frozenset(template(n) for n in names)
    return out


@cache
def _flat_tables() -> tuple[dict[str, str], dict[str, str]]:
    """(flattened top-level path -> path, flattened in-block path -> in-block path) over every tabled architecture."""
    top: dict[str, str] = {}
    block: dict[str, str] = {}
    for names in linear_modules().values():
        for name in names:
            table, local = (block, name.removeprefix("transformer_blocks.*.")) if "*" in name else (top, name)
            flat = local.replace(".", "_")
            if table.setdefault(flat, local) != local:
                raise AssertionError(f"two LoRA targets flatten to {flat!r}: {table[flat]!r} and {local!r}")
    return top, block


def unflatten(flat: str) -> str | None:
    """A kohya/musubi module name (``lora_unet_`` prefix optional) -> the official path, or None when no linear layer
    of any LTX architecture has that name."""
    flat = flat.removeprefix(KOHYA_PREFIX)
    top, block = _flat_tables()
    match = _FLAT_BLOCK.match(flat)
    if match and match.group(2) in block:
        return f"transformer_blocks.{match.group(1)}.{block[match.group(2)]}"
    return top.get(flat)


def flatten(official: str) -> str:
    """An official path -> the kohya/musubi module name (``lora_unet_`` + dots as underscores)."""
    return KOHYA_PREFIX + official.replace(".", "_")


def architectures_with(official_modules: Iterable[str]) -> list[tuple[str, str]]:
    """The tabled (family, version)s that have every one of ``official_modules`` as a linear layer."""
    wanted = {template(m) for m in official_modules}
    return [variant for variant, names in linear_modules().items() if wanted <= names]


def infer_family(official_modules: Iterable[str]) -> tuple[str | None, str | None]:
    """(family, version) the module names alone decide; None where they fit several (e.g. a LoRA on the attention
    of the video blocks fits LTX-2, LTX-2.3 and LTX-Video alike)."""
    fits = architectures_with(official_modules)
    families = {f for f, _ in fits}
    family = families.pop() if len(families) == 1 else None
    versions = {v for f, v in fits if f == family}
    version = versions.pop() if family == "ltx2" and len(versions) == 1 else None
    return family, version


def diffusers_names_to_official(modules: Iterable[str], family: str | None) -> dict[str, str]:
    """Diffusers module paths -> official ones. Without a known family, the families whose tables have every
    renamed path are tried; their renames agree on the paths they share (``proj_in``, ``time_embed``), checked.

    Raises:
        ValueError: the paths fit no LTX architecture, naming the first ones.
    """
    modules = list(modules)
    families = [family] if family else sorted({f for f, _ in VARIANTS})
    results = {}
    for candidate in families:
        renamed = {m: to_official(candidate, m) for m in modules}
        if architectures_with(renamed.values()) or family:
            results[candidate] = renamed
    if not results:
        unknown = [m for m in modules if not architectures_with([to_official("ltx2", m)])]
        raise ValueError(f"module(s) that are no linear layer of an LTX transformer: {unknown[:3]}")
    first, *others = results.values()
    if any(other != first for other in others):
        raise ValueError("the module names fit LTX-2 and LTX-Video with different official names; give the family")
    return first
