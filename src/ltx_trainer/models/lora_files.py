"""LoRA files: the one module that writes and reads them, and knows their header keys.

Layouts (what ``ltx-trainer convert --to`` writes, what :func:`detect_layout` names):

| layout | keys | alpha |
|---|---|---|
| ``official`` (= ComfyUI) | ``diffusion_model.<official module>.lora_{A,B}.weight`` | folded into B |
| ``ai-toolkit`` | the same keys (its LTX-2 files; header ``software`` names ai-toolkit) | folded (it trains at 1) |
| ``diffusers`` | ``transformer.<diffusers module>.lora_{A,B}.weight`` (``LTX2Pipeline.load_lora_weights``) | folded |
| ``kohya`` / ``musubi`` | ``lora_unet_<official module, . -> _>.lora_{down,up}.weight`` + ``.alpha`` scalar | kept |
| ``peft`` (read only) | ``base_model.model.<diffusers module>.lora_{A,B}.weight`` | folded |

Shapes are ``[r, in]`` (A, down) and ``[out, r]`` (B, up). Where there is no ``.alpha`` key the file is applied as
``B @ A`` unscaled, so **alpha/r is folded into B**: ltx-core's fusion, ComfyUI (without ``.alpha``) and diffusers all
reproduce the trained model. ``.alpha`` keys (kohya/musubi, or any layout that carries them) scale B by alpha / rank
(ComfyUI's rule). Module names: official paths are the transformer's ``model.diffusion_model.*`` paths; diffusers
ones are renamed by the family (``models.lora_names``); kohya/musubi names are mapped back through the table of the
architectures' real module names, never by guessing underscores.

What the trainer writes (``LTXModel.lora_layouts`` chooses): ``official`` at the checkpoint path and, for LTX-Video,
``diffusers`` next to it as ``<stem>_diffusers.safetensors``. Unlike ltx-core, a key that matches no layer (or a half
pair) is an error, never skipped.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open

from ltx_trainer.io import atomic_save_safetensors
from ltx_trainer.models import lora_names
from ltx_trainer.models.base import LTXModel
from ltx_trainer.models.latents import ReferenceScale

COMFY_PREFIX = "diffusion_model."
DIFFUSERS_PREFIX = "transformer."
PEFT_PREFIX = "base_model.model."
# key prefix -> layout; the layouts ``convert`` writes, and the prefix each uses
_PREFIXES = {
    COMFY_PREFIX: "official",
    DIFFUSERS_PREFIX: "diffusers",
    PEFT_PREFIX: "peft",
    lora_names.KOHYA_PREFIX: "kohya",
}
LAYOUTS = ("official", "ai-toolkit", "diffusers", "kohya", "musubi")
ALIASES = {"comfyui": "official", "ours": "official"}
_PREFIX_OF = {
    "official": COMFY_PREFIX,
    "ai-toolkit": COMFY_PREFIX,
    "diffusers": DIFFUSERS_PREFIX,
    "peft": PEFT_PREFIX,
    "kohya": lora_names.KOHYA_PREFIX,
    "musubi": lora_names.KOHYA_PREFIX,
}
LAYOUT_KEY = "ltx_trainer_layout"
RANK_KEY = "ltx_trainer_rank"
ALPHA_KEY = "ltx_trainer_alpha"
FOLDED_KEY = "ltx_trainer_alpha_folded_into_B"
TARGETS_KEY = "ltx_trainer_target_modules"
# IC-LoRA header keys: the official files carry both spatial names.
REFERENCE_DOWNSCALE_KEY = "reference_downscale_factor"
REFERENCE_SPATIAL_KEY = "reference_spatial_scale_factor"
REFERENCE_TEMPORAL_KEY = "reference_temporal_scale_factor"
BASE_FAMILY_KEY = "ltx_trainer_base_family"
BASE_VERSION_KEY = "ltx_trainer_base_version"

_SUFFIXES = {
    ".lora_A.weight": "A",
    ".lora_B.weight": "B",
    ".lora_down.weight": "A",
    ".lora_up.weight": "B",
    ".alpha": "alpha",
}


# ---------------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------------
def export_lora(
    sd: dict[str, torch.Tensor],
    rank: int,
    alpha: float,
    to_official: Callable[[str], str],
    dtype: torch.dtype = torch.bfloat16,
    prefix: str = COMFY_PREFIX,
) -> dict[str, torch.Tensor]:
    """peft-named fp32 weights -> ``<prefix><module>.lora_{A,B}.weight`` with ``alpha / rank`` folded into B.

    The default gives the ComfyUI/official layout (``to_official`` renames diffusers module paths); with
    ``prefix="transformer."`` and an identity rename it gives diffusers' own layout.
    """
    scale = alpha / rank
    out = {}
    for key, value in sd.items():
        module, _, suffix = key.rpartition(".lora_")
        tensor = value * scale if suffix.startswith("B") else value
        out[f"{prefix}{to_official(module)}.lora_{suffix}"] = tensor.to(dtype).contiguous()
    return out


def lora_metadata(rank: int, alpha: float, target_modules: list[str], extra: dict[str, str] | None = None) -> dict:
    """Safetensors header for LoRA files: strings only. ``alpha`` is recorded, but already folded into B."""
    return {
        "format": "pt",
        RANK_KEY: str(rank),
        ALPHA_KEY: str(alpha),
        FOLDED_KEY: "true",
        TARGETS_KEY: json.dumps(list(target_modules)),
        **(extra or {}),
    }


def reference_scale_metadata(scale: ReferenceScale | None) -> dict[str, str]:
    """Header entries of an IC-LoRA with a video reference (empty without one)."""
    if scale is None:
        return {}
    return {
        REFERENCE_DOWNSCALE_KEY: str(scale.spatial),
        REFERENCE_SPATIAL_KEY: str(scale.spatial),
        REFERENCE_TEMPORAL_KEY: str(scale.temporal),
    }


def save_lora(
    model: LTXModel,
    peft_sd: dict[str, torch.Tensor],
    rank: int,
    alpha: float,
    target_modules: list[str],
    path: Path,
    dtype: torch.dtype = torch.bfloat16,
    extra_metadata: dict[str, str] | None = None,
    adapter: str = "lora",
) -> list[Path]:
    """Write a trained LoRA (peft naming, fp32) in every layout the model's family uses; returns the files.
    Another ``adapter`` (dora, lokr, loha) is written by ``models.adapter_files`` (same header, its own layouts)."""
    header = {BASE_FAMILY_KEY: model.spec.family, BASE_VERSION_KEY: model.spec.version, **(extra_metadata or {})}
    metadata = lora_metadata(rank, alpha, target_modules, header)
    if adapter != "lora":
        from ltx_trainer.models.adapter_files import save_adapter

        return save_adapter(model, adapter, peft_sd, rank, alpha, path, dtype, metadata)
    written = []
    for layout in model.lora_layouts:
        if layout == "official":
            tensors = export_lora(peft_sd, rank, alpha, model.official_module_name, dtype)
            target = Path(path)
        else:
            tensors = export_lora(peft_sd, rank, alpha, str, dtype, DIFFUSERS_PREFIX)
            target = diffusers_copy_path(path)
        written.append(atomic_save_safetensors(tensors, target, metadata))
    return written


def diffusers_copy_path(path: Path) -> Path:
    """Where the diffusers-layout copy of the adapter file at ``path`` goes: ``<stem>_diffusers.safetensors``."""
    return Path(path).with_name(Path(path).stem + "_diffusers.safetensors")


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class LoraFile:
    """A LoRA read from disk: diffusers module path -> (A ``[r, in]``, B ``[out, r]`` with alpha folded in).

    ``modules``: the DoRA/LoKr/LoHa modules of such a file (``models.adapter_files.ModuleAdapter`` by module path).
    """

    path: Path
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]
    metadata: dict[str, str]
    modules: dict = field(default_factory=dict)

    def reference_scale(self) -> tuple[int, int] | None:
        """(downscale, temporal scale) of an IC-LoRA's reference, from the file header, or None."""
        return _reference_scale(self.metadata)


def _reference_scale(metadata: dict[str, str]) -> tuple[int, int] | None:
    spatial = metadata.get(REFERENCE_DOWNSCALE_KEY) or metadata.get(REFERENCE_SPATIAL_KEY)
    temporal = metadata.get(REFERENCE_TEMPORAL_KEY)
    if spatial is None and temporal is None:
        return None
    return int(float(spatial or 1)), int(float(temporal or 1))


def parse_lora_arg(text: str) -> tuple[Path, float]:
    """``PATH[:STRENGTH]`` -> (path, strength); strength defaults to 1.0 (``C:\\x.safetensors`` stays a path)."""
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            return Path(head), float(tail)
        except ValueError:
            pass
    return Path(text), 1.0


@dataclass
class _Parsed:
    """A LoRA file's tensors by (key prefix, module name as written) and kind (``A``, ``B``, ``alpha``)."""

    path: Path
    parts: dict[tuple[str, str], dict[str, torch.Tensor]]
    metadata: dict[str, str]


def _parse(path: Path) -> _Parsed:
    """Read every tensor of a LoRA file, grouped by module.

    Raises:
        ValueError: missing file, keys in no layout, half pairs, no LoRA weights; the message names the file.
    """
    if not path.is_file():
        raise ValueError(f"{path}: LoRA file not found")
    parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    unknown = []
    with safe_open(path, "pt") as f:
        metadata = dict(f.metadata() or {})
        for key in f.keys():
            suffix = next((s for s in _SUFFIXES if key.endswith(s)), None)
            prefix = next((p for p in _PREFIXES if key.startswith(p)), None)
            if suffix is None or prefix is None:
                unknown.append(key)
                continue
            module = key.removesuffix(suffix).removeprefix(prefix)
            parts.setdefault((prefix, module), {})[_SUFFIXES[suffix]] = f.get_tensor(key)
    half = [m for (_, m), p in parts.items() if "A" not in p or "B" not in p]
    if unknown or half:
        problems = [f"keys not in a LoRA layout: {unknown[:3]}"] if unknown else []
        problems += [f"modules without both lora_A and lora_B: {half[:3]}"] if half else []
        raise ValueError(
            f"{path}: {'; '.join(problems)}. Expected diffusion_model.<module>.lora_A/B.weight (ComfyUI/official), "
            "transformer.<module>.lora_A/B.weight (diffusers) or lora_unet_<module>.lora_down/up.weight (kohya/musubi)."
        )
    if not parts:
        raise ValueError(f"{path}: no LoRA weights in this file")
    return _Parsed(path, parts, metadata)


def _official_name(prefix: str, module: str) -> str | None:
    """The official module path of an official-layout or kohya name (None: a kohya name no LTX layer has)."""
    return lora_names.unflatten(module) if prefix == lora_names.KOHYA_PREFIX else module


def _unknown_kohya(parsed: _Parsed, names: list[str]) -> ValueError:
    return ValueError(
        f"{parsed.path}: {len(names)} kohya/musubi module name(s) match no linear layer of an LTX transformer "
        f"(e.g. {names[0]}); the LoRA is for another model"
    )


def read_lora(path: str | Path, to_diffusers: Callable[[str], str]) -> LoraFile:
    """Read a LoRA file in any layout; ``to_diffusers`` is the model's ``diffusers_module_name`` (official ->
    diffusers paths).

    Raises:
        ValueError: unknown keys or half pairs, naming the file and the first offending keys.
    """
    from ltx_trainer.models import adapter_files  # it builds on this module

    if adapter_files.holds_adapters(Path(path)):
        return adapter_files.read_adapter(Path(path), to_diffusers)
    parsed = _parse(Path(path))
    pairs = {}
    unknown = []
    for (prefix, module), p in parsed.parts.items():
        if prefix in (COMFY_PREFIX, lora_names.KOHYA_PREFIX):
            official = _official_name(prefix, module)
            if official is None:
                unknown.append(module)
                continue
            module = to_diffusers(official)
        a, b = p["A"], p["B"]
        if "alpha" in p:
            b = b * (float(p["alpha"]) / a.shape[0])
        pairs[module] = (a, b)
    if unknown:
        raise _unknown_kohya(parsed, unknown)
    return LoraFile(parsed.path, pairs, parsed.metadata)


# ---------------------------------------------------------------------------------------------------------------------
# Layouts: detection, reading with alpha kept apart, writing any layout (``ltx-trainer convert``)
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class LoraModule:
    """One adapted linear layer: A ``[r, in]``, B ``[out, r]``; ``alpha`` None means B is applied as stored."""

    a: torch.Tensor
    b: torch.Tensor
    alpha: float | None = None

    @property
    def rank(self) -> int:
        return int(self.a.shape[0])

    @property
    def scale(self) -> float:
        return 1.0 if self.alpha is None else self.alpha / self.rank

    def delta(self) -> torch.Tensor:
        """``scale * B @ A`` in float32, ``[out, in]``."""
        return self.scale * (self.b.float() @ self.a.float())


@dataclass
class LoraTensors:
    """A LoRA in any layout, by official module path, with alpha kept as stored (``load_lora_tensors``).

    Attributes:
        layout: the layout detected (``LAYOUTS``, or ``peft``).
        family / version: the base model, from the header when it says, else from the module names (None where they
            fit several); ``family_source`` says which (``"header"``, ``"module names"`` or None).
    """

    path: Path
    layout: str
    modules: dict[str, LoraModule]
    metadata: dict[str, str]
    family: str | None = None
    version: str | None = None
    family_source: str | None = None

    def ranks(self) -> list[int]:
        return sorted({m.rank for m in self.modules.values()})

    def alphas(self) -> list[float]:
        """The alphas stored per module (kohya/musubi), else the one the header records (folded into B)."""
        stored = sorted({m.alpha for m in self.modules.values() if m.alpha is not None})
        if stored:
            return stored
        recorded = self.metadata.get(ALPHA_KEY) or self.metadata.get("ss_network_alpha")
        try:
            return [float(recorded)] if recorded is not None else []
        except ValueError:
            return []

    def reference_scale(self) -> tuple[int, int] | None:
        return _reference_scale(self.metadata)


def detect_layout(keys: list[str], metadata: dict[str, str]) -> str | None:
    """The layout of a LoRA file from its keys (``ltx_trainer_layout`` or ai-toolkit's ``software`` header telling
    apart layouts with the same keys); None when the keys are no LoRA."""
    prefixes = {p for k in keys for p in _PREFIXES if k.startswith(p) and k.endswith(tuple(_SUFFIXES))}
    return _label(prefixes.pop(), metadata) if len(prefixes) == 1 else None


def _label(prefix: str, metadata: dict[str, str]) -> str:
    layout = _PREFIXES[prefix]
    declared = metadata.get(LAYOUT_KEY)
    if declared in LAYOUTS and _PREFIX_OF[declared] == _PREFIX_OF[layout]:
        return declared
    if layout == "official" and "ai-toolkit" in metadata.get("software", ""):
        return "ai-toolkit"
    if layout == "kohya" and "ltx2" in metadata.get("ss_network_module", ""):
        return "musubi"  # musubi-tuner's LTX-2 network module (networks.lora_ltx2)
    return layout


def load_lora_tensors(path: str | Path) -> LoraTensors:
    """Read a LoRA in any layout into official module paths, keeping ``.alpha`` apart from B.

    Raises:
        ValueError: not a LoRA, keys in no layout, half pairs, module names no LTX transformer has.
    """
    parsed = _parse(Path(path))
    prefixes = {prefix for prefix, _ in parsed.parts}
    if len(prefixes) > 1:
        raise ValueError(f"{parsed.path}: keys in several LoRA layouts at once ({', '.join(sorted(prefixes))})")
    prefix = prefixes.pop()
    family = parsed.metadata.get(BASE_FAMILY_KEY)
    version = parsed.metadata.get(BASE_VERSION_KEY)
    names = [m for _, m in parsed.parts]
    if prefix in (DIFFUSERS_PREFIX, PEFT_PREFIX):
        try:
            official = lora_names.diffusers_names_to_official(names, family)
        except ValueError as e:
            raise ValueError(f"{parsed.path}: {e}") from e
    else:
        official = {m: _official_name(prefix, m) for m in names}
        unknown = [m for m, o in official.items() if o is None]
        if unknown:
            raise _unknown_kohya(parsed, unknown)
    modules = {}
    for (_, name), p in parsed.parts.items():
        alpha = float(p["alpha"]) if "alpha" in p else None
        modules[official[name]] = LoraModule(p["A"], p["B"], alpha)
    source = "header" if family else None
    if not family:
        family, version = lora_names.infer_family(modules)
        source = "module names" if family else None
    return LoraTensors(parsed.path, _label(prefix, parsed.metadata), modules, parsed.metadata, family, version, source)


def layout_tensors(
    lora: LoraTensors, layout: str, fold_alpha: bool = False, dtype: torch.dtype | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``lora`` in ``layout`` (``LAYOUTS``): the tensors and the header.

    Alpha: layouts without ``.alpha`` get alpha / rank folded into B (float32 math, stored in B's dtype). kohya and
    musubi keep each module's stored alpha with B as stored; from a folded file whose header records (rank, alpha)
    B is unfolded again (divided by alpha / rank), so a kohya -> official -> kohya round trip gives back the original
    tensors (exactly when alpha / rank is a power of two, else to the stored dtype's rounding). ``fold_alpha`` writes
    kohya/musubi with alpha folded and ``.alpha`` = rank instead. ``dtype`` casts the weights (default: as stored).

    Raises:
        ValueError: an unknown layout; a diffusers layout for a LoRA whose family is unknown and whose names differ
            between the families.
    """
    layout = ALIASES.get(layout, layout)
    if layout not in LAYOUTS:
        raise ValueError(f"LoRA layout {layout!r} is not one of {', '.join([*LAYOUTS, *ALIASES])}")
    recorded = _recorded_folding(lora)
    tensors: dict[str, torch.Tensor] = {}
    for official, m in lora.modules.items():
        a, b, alpha = m.a, m.b, m.alpha
        with_alpha = layout in ("kohya", "musubi")
        if not with_alpha or fold_alpha:
            b, alpha = _scaled(b, m.scale), (float(m.rank) if with_alpha else None)
        elif alpha is None and recorded is not None and recorded[0] == m.rank:
            b, alpha = _scaled(b, m.rank / recorded[1]), recorded[1]
        elif alpha is None:
            alpha = float(m.rank)
        if dtype is not None:
            a, b = a.to(dtype), b.to(dtype)
        if layout == "diffusers":
            name = DIFFUSERS_PREFIX + lora_names.to_diffusers(lora.family or _shared_family(lora), official)
        elif with_alpha:
            name = lora_names.flatten(official)
            tensors[f"{name}.alpha"] = torch.tensor(alpha, dtype=a.dtype)
        else:
            name = COMFY_PREFIX + official
        down, up = (".lora_down.weight", ".lora_up.weight") if with_alpha else (".lora_A.weight", ".lora_B.weight")
        tensors[name + down], tensors[name + up] = a.contiguous(), b.contiguous()
    return tensors, _layout_metadata(lora, layout, fold_alpha, recorded)


def save_lora_layout(
    lora: LoraTensors, layout: str, path: Path, fold_alpha: bool = False, dtype: torch.dtype | None = None
) -> Path:
    """Write ``lora`` in ``layout`` (see :func:`layout_tensors`), atomically."""
    tensors, metadata = layout_tensors(lora, layout, fold_alpha, dtype)
    return atomic_save_safetensors(tensors, Path(path), metadata)


def _scaled(b: torch.Tensor, scale: float) -> torch.Tensor:
    return b if scale == 1.0 else (b.float() * scale).to(b.dtype)


def _recorded_folding(lora: LoraTensors) -> tuple[int, float] | None:
    """(rank, alpha) the header says were folded into B, when every module has that rank and stores no alpha."""
    if lora.metadata.get(FOLDED_KEY) != "true" or any(m.alpha is not None for m in lora.modules.values()):
        return None
    try:
        rank, alpha = int(lora.metadata[RANK_KEY]), float(lora.metadata[ALPHA_KEY])
    except (KeyError, ValueError):
        return None
    return (rank, alpha) if alpha > 0 and lora.ranks() == [rank] else None


def _shared_family(lora: LoraTensors) -> str:
    """A family whose diffusers names the LoRA's modules have (the families name shared layers alike)."""
    fits = lora_names.architectures_with(lora.modules)
    if not fits:
        raise ValueError(f"{lora.path}: its modules are in no LTX transformer; cannot name them in diffusers' layout")
    return fits[0][0]


def _layout_metadata(lora: LoraTensors, layout: str, fold_alpha: bool, recorded: tuple[int, float] | None) -> dict:
    """The input header with the layout's own keys rewritten: layout, rank, alpha, folding, targets, base model."""
    drop = {LAYOUT_KEY, RANK_KEY, ALPHA_KEY, FOLDED_KEY, "ss_network_dim", "ss_network_alpha"}
    out = {k: v for k, v in lora.metadata.items() if k not in drop}
    out.update({"format": "pt", LAYOUT_KEY: layout})
    ranks, alphas = lora.ranks(), lora.alphas()
    kept = layout in ("kohya", "musubi") and not fold_alpha
    if len(ranks) == 1:
        out[RANK_KEY] = str(ranks[0])
    if len(alphas) == 1:
        out[ALPHA_KEY] = str(alphas[0])
    elif recorded is None and all(m.alpha is None for m in lora.modules.values()) and len(ranks) == 1:
        out[ALPHA_KEY] = str(float(ranks[0]))  # nothing recorded: the file is applied unscaled, alpha = rank
    out[FOLDED_KEY] = "false" if kept else "true"
    if kept and RANK_KEY in out and ALPHA_KEY in out:
        out["ss_network_dim"], out["ss_network_alpha"] = out[RANK_KEY], out[ALPHA_KEY]
    if TARGETS_KEY not in out:
        out[TARGETS_KEY] = json.dumps(sorted({_kind(m) for m in lora.modules}))
    if BASE_FAMILY_KEY not in out and lora.family and lora.version:
        out[BASE_FAMILY_KEY], out[BASE_VERSION_KEY] = lora.family, lora.version
    return out


def _kind(official: str) -> str:
    """The kind of layer a module is: its path without the block (``attn1.to_q``, ``ff.net.2``, ``proj_out``)."""
    return lora_names.BLOCK.sub("", official)
