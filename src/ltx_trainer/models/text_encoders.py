"""Text encoders from local folders (transformers): Gemma-3/Gemma-4 for the LTX-2 family."""

from pathlib import Path

import torch
import transformers
from torch import nn

from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.sources import read_json

# Tied or recomputed weights transformers may report as missing without harm.
_IGNORABLE_MISSING = ("lm_head.weight",)


def load_gemma(model_dir: Path, tokenizer_dir: Path, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, object]:
    """Load a Gemma text encoder and its tokenizer (left padding, as LTX-2 was trained) from local folders.

    Raises:
        ModelLoadError: the folder is missing, is not a Gemma model, or lacks weights.
    """
    model_dir, tokenizer_dir = Path(model_dir), Path(tokenizer_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"{model_dir}: text encoder folder not found (expected a Gemma folder with config.json)")
    config = read_json(model_dir / "config.json")
    arch = (config.get("architectures") or [""])[0]
    if not config.get("model_type", "").startswith("gemma"):
        raise ModelLoadError(f"{model_dir}: model_type={config.get('model_type')!r}; LTX-2 models need a Gemma folder")
    cls = getattr(transformers, arch, None) or transformers.AutoModel
    model, info = cls.from_pretrained(model_dir, dtype=dtype, output_loading_info=True, local_files_only=True)
    missing = [k for k in info.get("missing_keys", []) if not k.endswith(_IGNORABLE_MISSING)]
    if missing:
        raise ModelLoadError(f"{model_dir}: the text encoder is missing {len(missing)} tensor(s), e.g. {missing[:5]}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    tokenizer.padding_side = "left"
    return model.eval().requires_grad_(False), tokenizer
