"""``ltx-trainer info``: what a file or folder holds, read from headers only (no tensor of a checkpoint is loaded).

- A LoRA: its layout, rank, alpha (stored, or folded into B as the header records), targets (layer kinds and
  count), the base model (from the header, else inferred from the module names), the IC-LoRA reference scale.
- A full checkpoint: family and version, layout, dtypes, parameter counts (transformer and total).
"""

from collections import Counter
from pathlib import Path

from safetensors import safe_open

from ltx_trainer.models import lora_names
from ltx_trainer.models.convert import TRANSFORMER_PREFIX, kind_of, load_lora
from ltx_trainer.models.families import detect

LAYOUT_NAMES = {
    "official": "official / ComfyUI (diffusion_model.*.lora_A/B, alpha folded into B)",
    "ai-toolkit": "ai-toolkit (diffusion_model.*.lora_A/B, the official keys)",
    "diffusers": "diffusers (transformer.*.lora_A/B)",
    "peft": "peft (base_model.model.*.lora_A/B)",
    "kohya": "kohya (lora_unet_*.lora_down/up + .alpha)",
    "musubi": "musubi-tuner (lora_unet_*.lora_down/up + .alpha)",
}
_SCALES = (".weight_scale", ".input_scale")


def describe(path: Path) -> list[tuple[str, str]]:
    """(field, value) rows describing the LoRA or checkpoint at ``path``.

    Raises:
        ModelLoadError: missing, unreadable, or neither a LoRA nor an LTX checkpoint.
    """
    path = Path(path)
    return _lora(path) if kind_of(path) == "lora" else _checkpoint(path)


def _numbers(values: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _lora(path: Path) -> list[tuple[str, str]]:
    lora = load_lora(path)
    modules = lora.modules.values()
    stored = any(m.alpha is not None for m in modules)
    alphas = lora.alphas()
    if stored:
        alpha = f"{_numbers(alphas)} (stored as .alpha: B is scaled by alpha / rank)"
    elif alphas:
        alpha = f"{_numbers(alphas)} (already folded into B; the header records it)"
    else:
        alpha = "not recorded (B is applied unscaled: alpha = rank)"
    kinds = Counter(lora_names.BLOCK.sub("", m) for m in lora.modules)
    blocks = {int(match.group(1)) for m in lora.modules if (match := lora_names.BLOCK.match(m))}
    if lora.family:
        version = lora.version or ("2.0 or 2.3" if lora.family == "ltx2" else "0.9.x")
        base = f"{lora.family} {version} ({lora.family_source})"
    else:
        fits = sorted({f for f, _ in lora_names.architectures_with(lora.modules)})
        base = f"{' or '.join(fits)} (the module names fit each)" if fits else "unknown"
    scale = lora.reference_scale()
    dtypes = Counter(str(t.dtype).removeprefix("torch.") for m in modules for t in (m.a, m.b))
    params = sum(m.a.numel() + m.b.numel() for m in modules)
    return [
        ("path", str(path)),
        ("kind", "LoRA"),
        ("format", LAYOUT_NAMES.get(lora.layout, lora.layout)),
        ("rank", _numbers(lora.ranks())),
        ("alpha", alpha),
        ("targets", f"{len(lora.modules)} layers in {len(blocks)} blocks: {_kinds(kinds)}"),
        ("base model", base),
        ("IC-LoRA reference", f"downscale {scale[0]}, temporal {scale[1]}" if scale else "none"),
        ("dtype", ", ".join(sorted(dtypes))),
        ("parameters", f"{params:,}"),
    ]


def _kinds(kinds: Counter) -> str:
    return ", ".join(f"{kind} x{count}" for kind, count in sorted(kinds.items()))


def _checkpoint(path: Path) -> list[tuple[str, str]]:
    found = detect(path)
    files = [found.path] if found.layout == "single_file" else sorted(found.path.glob("*/*.safetensors"))
    dtypes: Counter = Counter()
    total = transformer = fp8 = 0
    for file in files:
        component = None if found.layout == "single_file" else file.parent.name
        with safe_open(file, "pt") as f:
            for key in f.keys():
                if key.endswith(_SCALES) or component in ("text_encoder", "tokenizer"):
                    continue
                s = f.get_slice(key)
                count = 1
                for n in s.get_shape():
                    count *= n
                dtypes[s.get_dtype()] += 1
                total += count
                in_transformer = component == "transformer" or (
                    component is None and key.startswith(TRANSFORMER_PREFIX) and "embeddings_connector" not in key
                )
                transformer += count if in_transformer else 0
                fp8 += count if s.get_dtype().startswith("F8") else 0
    layout = "official single file" if found.layout == "single_file" else "diffusers folder"
    rows = [
        ("path", str(path)),
        ("kind", "full checkpoint"),
        ("layout", layout),
        ("family", found.spec.family),
        ("version", found.spec.version),
        ("audio", "yes" if found.spec.has_audio else "no"),
        ("transformer blocks", str(found.spec.num_layers)),
        ("dtypes", ", ".join(f"{d} ({n} tensors)" for d, n in dtypes.most_common())),
        ("parameters", f"{total:,} (transformer {transformer:,}; text encoder not counted)"),
    ]
    if fp8:
        rows.append(("fp8", f"{fp8:,} weights pre-quantized (e4m3 with weight_scale)"))
    if found.layout == "diffusers":
        present = sorted(p.name for p in found.path.iterdir() if (p / "config.json").is_file() or p.name == "tokenizer")
        rows.append(("components", ", ".join(present)))
    return rows
