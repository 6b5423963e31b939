"""DoRA, LoKr and LoHa files: written in the key layout ComfyUI's LoRA loader reads, read back for sampling.

``models.lora_files`` stays the one entry point: ``save_lora(..., adapter=...)`` and ``read_lora`` hand these kinds to
this module. peft (``training/adapters.py``) trains them; its weights are written here without changing their meaning.

ComfyUI's rules, as read in comfyanonymous/ComfyUI (``comfy/lora.py::load_lora`` at 00728eb and its successors;
``comfy/weight_adapter/lokr.py`` at 179c2d3, ``loha.py`` at 17adbb5, ``lora.py`` at 6fd406f,
``base.py::weight_decompose`` at 9c0cf36). ``<x>`` is ``diffusion_model.<official module path>`` (the prefix ComfyUI
maps onto LTX models' weights, as for plain LoRA):

- every module may carry ``<x>.alpha`` (a scalar tensor) and ``<x>.dora_scale``;
- LoKr: ``<x>.lokr_w1`` or ``<x>.lokr_w1_a`` + ``<x>.lokr_w1_b``, and ``<x>.lokr_w2`` or ``<x>.lokr_w2_a`` +
  ``<x>.lokr_w2_b`` (``lokr_t2`` only for convolutions). Delta ``kron(w1, w2)`` times ``alpha / dim``, where ``dim`` is
  the rank (``*_b.shape[0]``) of the factor that is split (w2's when both are), and times 1.0 when neither is split or
  there is no alpha;
- LoHa: ``<x>.hada_w1_a``, ``hada_w1_b``, ``hada_w2_a``, ``hada_w2_b`` (``hada_t1/t2`` only for convolutions). Delta
  ``(w1_a @ w1_b) * (w2_a @ w2_b)`` times ``alpha / hada_w1_b.shape[0]`` (1.0 without alpha);
- DoRA: a LoRA (``<x>.lora_B.weight`` up, ``<x>.lora_A.weight`` down, scale ``alpha / lora_A.shape[0]``) plus
  ``<x>.dora_scale``: ``W' = (W + dW) * dora_scale / norm``. A ``dora_scale`` of shape ``[out, 1]`` selects the output
  axis; there ComfyUI takes the row norms of the *base* weight ``W`` (plus the dtype's eps), not of ``W + dW``.

What we write (always fp32 ``alpha``; tensors in the checkpoint precision):

- LoKr: peft's factors unchanged with ``alpha = lora.alpha`` (peft scales by ``alpha / r`` and ``r`` is the split
  factor's rank, so ComfyUI computes the same); a module where peft split neither factor (small layers, or a rank of
  at least half the Kronecker block) gets ``alpha / r`` folded into ``lokr_w1`` and ``alpha = r``, since ComfyUI
  applies no alpha there.
- LoHa: peft's four factors and ``alpha = lora.alpha`` (peft and ComfyUI both scale by ``alpha / r``).
- DoRA: ``lora_A``/``lora_B`` unscaled, ``alpha = lora.alpha`` and ``dora_scale`` = peft's magnitude as ``[out, 1]``.
  peft (and the DoRA paper, LyCORIS, diffusers) divide by the row norms of ``W + dW``; ComfyUI's output-axis branch
  divides by those of ``W``, so ComfyUI's DoRA output differs from training by ``|W + dW| / |W|`` per output row (small
  while ``dW`` is small relative to ``W``). ``<stem>_diffusers.safetensors`` carries the same DoRA in peft's own layout
  (``transformer.<module>.lora_A/B.weight`` with ``alpha / r`` folded into B, ``lora_magnitude_vector``), which
  diffusers' ``load_lora_weights`` loads as DoRA. diffusers has no LoKr/LoHa loader, so those get no diffusers file.

ltx-core / ltx-pipelines apply plain LoRA only (the oracle's ``lora_check.py`` checks plain LoRA files).

Reading (``read_adapter``): the layouts above, diffusers' DoRA layout, and plain LoRA modules mixed in; ComfyUI's
scale rules are applied as stated. Convolution-only parts (``lokr_t2``, ``hada_t1/t2``) and input-axis ``dora_scale``
(``[1, in]``) are refused, as is any key that matches no layout.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from ltx_trainer.io import atomic_save_safetensors
from ltx_trainer.models.base import LTXModel
from ltx_trainer.models.lora_files import (
    COMFY_PREFIX,
    DIFFUSERS_PREFIX,
    FOLDED_KEY,
    LoraFile,
    diffusers_copy_path,
)

ADAPTER_KIND_KEY = "ltx_trainer_adapter"
KINDS = ("dora", "lokr", "loha")

LOKR_PARTS = ("lokr_w1", "lokr_w2", "lokr_w1_a", "lokr_w1_b", "lokr_w2_a", "lokr_w2_b")
LOHA_PARTS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")
# The keys ComfyUI's loader consumes for each kind (module docstring), as written by ``save_adapter``.
COMFY_KEY_PATTERNS = {
    kind: re.compile(rf"^{re.escape(COMFY_PREFIX)}(?P<module>[\w.]+?)\.(?P<part>{'|'.join(parts)})$")
    for kind, parts in {
        "lokr": (*LOKR_PARTS, "alpha"),
        "loha": (*LOHA_PARTS, "alpha"),
        "dora": (r"lora_A\.weight", r"lora_B\.weight", "alpha", "dora_scale"),
    }.items()
}

# key suffix -> role, longest first so that ``.lokr_w1_a`` is not read as ``.lokr_w1``
_ROLES = {
    **{f".{p}": p for p in (*LOKR_PARTS, "lokr_t2", *LOHA_PARTS, "hada_t1", "hada_t2")},
    ".lora_A.weight": "A",
    ".lora_down.weight": "A",
    ".lora_B.weight": "B",
    ".lora_up.weight": "B",
    ".alpha": "alpha",
    ".dora_scale": "dora_scale",
    ".lora_magnitude_vector.weight": "magnitude",
    ".lora_magnitude_vector": "magnitude",
}
_SUFFIXES = sorted(_ROLES, key=len, reverse=True)
_MARKERS = (".lokr_", ".hada_", ".dora_scale", ".lora_magnitude_vector")


@dataclass
class ModuleAdapter:
    """One module's LoKr, LoHa or DoRA weights read from a file, with ComfyUI's scale already decided.

    ``tensors``: LoKr/LoHa by their key names (``lokr_w1`` ...); DoRA: ``A`` ``[r, in]``, ``B`` ``[out, r]``,
    ``magnitude`` ``[out]``. ``scale`` multiplies the delta (LoKr/LoHa) or ``B @ A`` (DoRA).
    """

    kind: str
    tensors: dict[str, torch.Tensor]
    scale: float

    def delta_weight(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
        """LoKr / LoHa: the update of the weight, ``[out, in]``, computed as peft computes it (its own helpers)."""
        t = {k: v.to(device, dtype) for k, v in self.tensors.items()}
        if self.kind == "lokr":
            from peft.tuners.lokr.layer import make_kron

            w1 = t["lokr_w1"] if "lokr_w1" in t else t["lokr_w1_a"] @ t["lokr_w1_b"]
            w2 = t["lokr_w2"] if "lokr_w2" in t else t["lokr_w2_a"] @ t["lokr_w2_b"]
            return make_kron(w1, w2, self.scale)
        if self.kind == "loha":
            from peft.tuners.loha.layer import make_weight

            return make_weight(t["hada_w1_a"], t["hada_w1_b"], t["hada_w2_a"], t["hada_w2_b"], torch.tensor(self.scale))
        raise ValueError(f"{self.kind} has no standalone delta weight (DoRA depends on the base weight)")


# ---------------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------------
def _by_module(peft_sd: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """peft naming (``<module>.lokr_w1``, ``<module>.lora_A.weight``, ``<module>.lora_magnitude_vector``) -> parts."""
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in peft_sd.items():
        suffix = next((s for s in _SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            raise ValueError(f"{key}: not a LoKr, LoHa or DoRA weight of peft")
        modules.setdefault(key.removesuffix(suffix), {})[_ROLES[suffix]] = value
    return modules


def _scalar(value: float) -> torch.Tensor:
    return torch.tensor(float(value), dtype=torch.float32)


def export_adapter(
    kind: str,
    peft_sd: dict[str, torch.Tensor],
    rank: int,
    alpha: float,
    to_official: Callable[[str], str],
    dtype: torch.dtype = torch.bfloat16,
) -> dict[str, torch.Tensor]:
    """peft-named fp32 weights of ``kind`` -> ComfyUI's ``diffusion_model.<official module>.<part>`` keys (module
    docstring); ``to_official`` renames diffusers module paths."""
    out = {}
    for module, parts in _by_module(peft_sd).items():
        x = f"{COMFY_PREFIX}{to_official(module)}"
        written = {}
        module_alpha = float(alpha)
        if kind == "lokr":
            written = {p: parts[p] for p in LOKR_PARTS if p in parts}
            if "lokr_w1" in written and "lokr_w2" in written:  # neither factor split: ComfyUI applies no alpha
                written["lokr_w1"] = written["lokr_w1"] * (alpha / rank)
                module_alpha = float(rank)
        elif kind == "loha":
            written = {p: parts[p] for p in LOHA_PARTS}
        elif kind == "dora":
            magnitude = parts["magnitude"]
            written = {"lora_A.weight": parts["A"], "lora_B.weight": parts["B"], "dora_scale": magnitude.reshape(-1, 1)}
        else:
            raise ValueError(f"lora.adapter: {kind!r} is not one of {', '.join(KINDS)}")
        out.update({f"{x}.{name}": value.to(dtype).contiguous() for name, value in written.items()})
        out[f"{x}.alpha"] = _scalar(module_alpha)
    return out


def export_dora_diffusers(
    peft_sd: dict[str, torch.Tensor], rank: int, alpha: float, dtype: torch.dtype = torch.bfloat16
) -> dict[str, torch.Tensor]:
    """DoRA in diffusers' (peft's) layout: ``transformer.<module>.lora_A/B.weight`` (``alpha / r`` folded into B) and
    ``transformer.<module>.lora_magnitude_vector``."""
    scale = alpha / rank
    out = {}
    for module, parts in _by_module(peft_sd).items():
        x = f"{DIFFUSERS_PREFIX}{module}"
        out[f"{x}.lora_A.weight"] = parts["A"].to(dtype).contiguous()
        out[f"{x}.lora_B.weight"] = (parts["B"] * scale).to(dtype).contiguous()
        out[f"{x}.lora_magnitude_vector"] = parts["magnitude"].to(dtype).contiguous()
    return out


def save_adapter(
    model: LTXModel,
    kind: str,
    peft_sd: dict[str, torch.Tensor],
    rank: int,
    alpha: float,
    path: Path,
    dtype: torch.dtype,
    header: dict[str, str],
) -> list[Path]:
    """Write a trained DoRA/LoKr/LoHa (peft naming, fp32): the ComfyUI file at ``path`` and, for DoRA, the diffusers
    file next to it (``<stem>_diffusers.safetensors``); returns the files. ``header``: the LoRA header ``save_lora``
    made (rank, alpha, targets, base model, extras), to which the kind is added."""
    metadata = {**header, ADAPTER_KIND_KEY: kind, FOLDED_KEY: "false"}
    path = Path(path)
    tensors = export_adapter(kind, peft_sd, rank, alpha, model.official_module_name, dtype)
    written = [atomic_save_safetensors(tensors, path, metadata)]
    if kind == "dora":
        tensors = export_dora_diffusers(peft_sd, rank, alpha, dtype)
        written.append(atomic_save_safetensors(tensors, diffusers_copy_path(path), {**metadata, FOLDED_KEY: "true"}))
    return written


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------
def holds_adapters(path: Path) -> bool:
    """Whether the safetensors file at ``path`` has any LoKr, LoHa or DoRA key (then ``read_adapter`` reads it)."""
    with safe_open(path, "pt") as f:
        return any(marker in key for key in f.keys() for marker in _MARKERS)


def _module_path(key: str, to_diffusers: Callable[[str], str]) -> str | None:
    if key.startswith(COMFY_PREFIX):
        return to_diffusers(key.removeprefix(COMFY_PREFIX))
    for prefix in (DIFFUSERS_PREFIX, "base_model.model."):
        if key.startswith(prefix):
            return key.removeprefix(prefix)
    return None


def _classify(module: str, p: dict[str, torch.Tensor]) -> tuple[str, ModuleAdapter | tuple | str]:
    """(kind, weights) of one module, or ("error", reason)."""
    alpha = float(p["alpha"]) if "alpha" in p else None
    if any(k.startswith("lokr_") for k in p):
        if "lokr_t2" in p:
            return "error", "lokr_t2 (a convolution's Tucker core) does not fit a Linear layer"
        one = "lokr_w1" in p or ("lokr_w1_a" in p and "lokr_w1_b" in p)
        two = "lokr_w2" in p or ("lokr_w2_a" in p and "lokr_w2_b" in p)
        if not (one and two):
            return "error", "needs lokr_w1 (or lokr_w1_a + lokr_w1_b) and lokr_w2 (or lokr_w2_a + lokr_w2_b)"
        dim = p["lokr_w2_b"].shape[0] if "lokr_w2" not in p else p["lokr_w1_b"].shape[0] if "lokr_w1" not in p else None
        scale = alpha / dim if alpha is not None and dim is not None else 1.0
        return "lokr", ModuleAdapter("lokr", {k: v for k, v in p.items() if k in LOKR_PARTS}, scale)
    if any(k.startswith("hada_") for k in p):
        if "hada_t1" in p or "hada_t2" in p:
            return "error", "hada_t1/hada_t2 (a convolution's Tucker cores) do not fit a Linear layer"
        if not all(k in p for k in LOHA_PARTS):
            return "error", f"needs all of {', '.join(LOHA_PARTS)}"
        scale = alpha / p["hada_w1_b"].shape[0] if alpha is not None else 1.0
        return "loha", ModuleAdapter("loha", {k: p[k] for k in LOHA_PARTS}, scale)
    if "A" not in p or "B" not in p:
        return "error", "has no lora_A and lora_B"
    a, b = p["A"], p["B"]
    scale = alpha / a.shape[0] if alpha is not None else 1.0
    magnitude = p.get("magnitude", p.get("dora_scale"))
    if magnitude is None:
        return "lora", (a, b * scale if alpha is not None else b)
    if magnitude.ndim == 2 and magnitude.shape[1] != 1:
        return "error", f"dora_scale {list(magnitude.shape)} is on the input axis; only [out, 1] (peft's DoRA) is read"
    return "dora", ModuleAdapter("dora", {"A": a, "B": b, "magnitude": magnitude.reshape(-1)}, scale)


def read_adapter(path: str | Path, to_diffusers: Callable[[str], str]) -> LoraFile:
    """Read a file with LoKr/LoHa/DoRA modules (plain LoRA modules may be mixed in); ``to_diffusers`` is the model's
    ``diffusers_module_name``. ``LoraFile.modules`` holds the adapters, ``LoraFile.pairs`` any plain LoRA.

    Raises:
        ValueError: unknown keys or incomplete modules, naming the file and the first offenders.
    """
    path = Path(path)
    parts: dict[str, dict[str, torch.Tensor]] = {}
    unknown = []
    with safe_open(path, "pt") as f:
        metadata = dict(f.metadata() or {})
        for key in f.keys():
            suffix = next((s for s in _SUFFIXES if key.endswith(s)), None)
            module = _module_path(key.removesuffix(suffix), to_diffusers) if suffix else None
            if module is None:
                unknown.append(key)
                continue
            parts.setdefault(module, {})[_ROLES[suffix]] = f.get_tensor(key)
    pairs, modules, broken = {}, {}, []
    for module, p in parts.items():
        kind, weights = _classify(module, p)
        if kind == "error":
            broken.append(f"{module}: {weights}")
        elif kind == "lora":
            pairs[module] = weights
        else:
            modules[module] = weights
    if unknown or broken:
        problems = [f"keys not in a LoRA/LoKr/LoHa/DoRA layout: {unknown[:3]}"] if unknown else []
        raise ValueError(f"{path}: {'; '.join(problems + broken[:3])}")
    if not pairs and not modules:
        raise ValueError(f"{path}: no adapter weights in this file")
    return LoraFile(path, pairs, metadata, modules)
