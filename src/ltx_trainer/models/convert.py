"""``ltx-trainer convert``: LoRAs between layouts, full checkpoints between the single file and diffusers, and a LoRA
merged into a base single file. The input's kind and layout are read from the input itself.

- A LoRA (``models.lora_files``): any layout in, any of ``LORA_TARGETS`` out; rank, alpha and the header carry over
  (alpha stays an ``.alpha`` tensor for kohya/musubi, or is folded into B, see ``lora_files.layout_tensors``).
- A full checkpoint (``models.checkpoint_convert``): official single file <-> diffusers folder, or a single file in
  another dtype; streamed, one tensor at a time.
- ``merge``: ``W + strength * alpha/r * B @ A`` (float32) for every LoRA module, written as a new single file in the
  base's dtype or the one asked for (an fp8 base's merged weights are quantized again); everything else is copied.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ltx_trainer.errors import UsageError
from ltx_trainer.io import atomic_save_safetensors_streamed
from ltx_trainer.models import lora_files, tensor_stream
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.families import detect
from ltx_trainer.models.quantization import fp8_file_keys

LORA_TARGETS = ("official", "comfyui", "ai-toolkit", "diffusers", "kohya", "musubi")
CHECKPOINT_TARGETS = ("official", "comfyui", "diffusers")
TRANSFORMER_PREFIX = "model.diffusion_model."
MERGED_KEY = "ltx_trainer_merged_loras"


@dataclass(frozen=True)
class Converted:
    """What ``convert`` did: the input's kind (``lora`` / ``checkpoint``) and layout, the output and its layout."""

    kind: str
    source_layout: str
    out: Path
    layout: str


def kind_of(path: Path) -> str:
    """``"checkpoint"`` (a diffusers folder, or a file with ``model.diffusion_model.*`` tensors) or ``"lora"``.

    Raises:
        ModelLoadError: missing, unreadable, or neither.
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file or folder")
    if path.is_dir():
        return "checkpoint"
    try:
        with safe_open(path, "pt") as f:
            keys, metadata = list(f.keys()), dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: not a readable safetensors file ({e}); re-download or re-export it") from e
    if any(k.startswith(TRANSFORMER_PREFIX) for k in keys):
        return "checkpoint"
    if lora_files.detect_layout(keys, metadata) is not None:
        return "lora"
    raise ModelLoadError(
        f"{path}: neither an LTX checkpoint (model.diffusion_model.* tensors) nor a LoRA in a known layout "
        "(diffusion_model.* / transformer.* lora_A/B, lora_unet_* lora_down/up); see docs/interop.md"
    )


def _check_out(src: Path, out: Path, overwrite: bool) -> None:
    if Path(out).resolve() == Path(src).resolve():
        raise UsageError(f"{out}: the output is the input; write to another path")
    if Path(out).exists() and not overwrite:
        raise UsageError(f"{out}: already exists; pass --overwrite to replace it, or choose another output path")


def convert(
    src: Path,
    out: Path,
    to: str,
    fold_alpha: bool = False,
    dtype: str = "keep",
    text_encoder: Path | None = None,
    overwrite: bool = False,
) -> Converted:
    """Convert the LoRA or checkpoint at ``src`` to layout ``to`` at ``out`` (see the module docstring).

    Raises:
        UsageError: an output that exists (without ``overwrite``), a target the input kind has no such layout for,
            options that do not apply.
        ModelLoadError: an input that is missing, unreadable, or in no known layout.
    """
    src, out = Path(src), Path(out)
    kind = kind_of(src)
    _check_out(src, out, overwrite)
    if dtype not in tensor_stream.DTYPES:
        raise UsageError(f"--dtype {dtype!r}: use one of {', '.join(tensor_stream.DTYPES)}")
    if kind == "lora":
        return _convert_lora(src, out, to, fold_alpha, dtype, text_encoder)
    return _convert_checkpoint(src, out, to, fold_alpha, dtype, text_encoder, overwrite)


def _convert_lora(src: Path, out: Path, to: str, fold_alpha: bool, dtype: str, text_encoder: Path | None) -> Converted:
    if to not in LORA_TARGETS:
        raise UsageError(f"--to {to!r}: a LoRA converts to one of {', '.join(LORA_TARGETS)}")
    if dtype == "fp8" or text_encoder is not None:
        raise UsageError("--dtype fp8 and --text-encoder apply to full checkpoints, not to LoRAs")
    lora = load_lora(src)
    cast = {"bf16": torch.bfloat16, "fp32": torch.float32}.get(dtype)
    try:
        lora_files.save_lora_layout(lora, to, out, fold_alpha, cast)
    except ValueError as e:
        raise ModelLoadError(str(e)) from e
    return Converted("lora", lora.layout, out, lora_files.ALIASES.get(to, to))


def _convert_checkpoint(
    src: Path, out: Path, to: str, fold_alpha: bool, dtype: str, text_encoder: Path | None, overwrite: bool
) -> Converted:
    from ltx_trainer.models import checkpoint_convert as cc

    if to not in CHECKPOINT_TARGETS:
        raise UsageError(f"--to {to!r}: a full checkpoint converts to official (= comfyui) or diffusers")
    if fold_alpha:
        raise UsageError("--fold-alpha applies to LoRAs, not to full checkpoints")
    source_layout = "diffusers" if src.is_dir() else "official"
    if to == "diffusers":
        if dtype == "fp8":
            raise UsageError("--dtype fp8 is the official single-file layout; diffusers folders have none")
        cc.to_diffusers(src, out, dtype, text_encoder, overwrite)
        return Converted("checkpoint", source_layout, out, "diffusers")
    if text_encoder is not None:
        raise UsageError("--text-encoder goes into diffusers folders; an official single file has no text encoder")
    cc.to_single_file(src, out, dtype, overwrite)
    return Converted("checkpoint", source_layout, out, "official")


def load_lora(path: Path) -> lora_files.LoraTensors:
    """A LoRA in any layout (``lora_files.load_lora_tensors``); problems become one-line ``ModelLoadError``s."""
    try:
        return lora_files.load_lora_tensors(path)
    except ValueError as e:
        raise ModelLoadError(str(e)) from e


# ---------------------------------------------------------------------------------------------------------------------
# merge
# ---------------------------------------------------------------------------------------------------------------------
def merge(
    lora_path: Path, base: Path, out: Path, dtype: str = "keep", strength: float = 1.0, overwrite: bool = False
) -> Path:
    """Fuse the LoRA at ``lora_path`` into the official single file ``base``, written as ``out``.

    Raises:
        ModelLoadError: the base is not an official single file, or the LoRA was trained on another model (its
            header's family/version, or modules the base lacks or shapes that differ).
        UsageError: ``out`` exists (without ``overwrite``); an unknown dtype.
    """
    base, out = Path(base), Path(out)
    _check_out(base, out, overwrite)
    if dtype not in tensor_stream.DTYPES:
        raise UsageError(f"--dtype {dtype!r}: use one of {', '.join(tensor_stream.DTYPES)}")
    found = detect(base)
    if found.layout != "single_file":
        raise ModelLoadError(f"{base}: --merge needs an official single file; convert the folder first (--to official)")
    lora = load_lora(lora_path)
    spec = found.spec
    if (lora.family and lora.family != spec.family) or (lora.version and lora.version != spec.version):
        raise ModelLoadError(
            f"{lora_path}: a LoRA for {lora.family} {lora.version or ''} ({lora.family_source}), the base {base} is "
            f"{spec.family} {spec.version}; merge it into the model it was trained on"
        )
    plan = tensor_stream.file_refs(base)
    transforms, problems = {}, []
    for official, module in lora.modules.items():
        key = f"{TRANSFORMER_PREFIX}{official}.weight"
        want = (module.b.shape[0], module.a.shape[1])
        if key not in plan or tuple(plan[key].shape) != want:
            have = "missing" if key not in plan else f"{list(plan[key].shape)}, the LoRA's {list(want)}"
            problems.append(f"{key} ({have})")
            continue
        transforms[key] = lambda w, m=module: w + strength * m.delta()
    if problems:
        raise ModelLoadError(
            f"{lora_path}: {len(problems)} LoRA module(s) do not fit the base {base}, e.g. {problems[0]}; the LoRA was "
            "trained on another model family or size"
        )
    fp8_keys = fp8_file_keys(tensor_stream.meta_tensors(plan)) if dtype == "fp8" else ()
    entries = tensor_stream.entries(plan, dtype, tensor_stream.Reader(), True, fp8_keys, transforms)
    metadata = dict(found.source.metadata)
    merged = [*json.loads(metadata.get(MERGED_KEY, "[]")), {"lora": Path(lora_path).name, "strength": strength}]
    metadata[MERGED_KEY] = json.dumps(merged)
    return atomic_save_safetensors_streamed(entries, out, metadata)
