"""Released (and tiny) transformer architectures by name, built with random weights for ``ltx-trainer bench``."""

import json
from importlib import resources

import torch

from ltx_trainer.models.base import LTXModel

ARCHS = ("tiny-ltx2", "tiny-ltx2.3", "tiny-ltxv", "ltx2-19b", "ltx2.3-22b", "ltxv-2b", "ltxv-13b")
GEMMA_3_12B = {"text_config": {"hidden_size": 3840, "num_hidden_layers": 48}}


def official_transformer(arch: str) -> tuple[str, dict, dict | None]:
    """(family, official transformer config, Gemma config for the connectors)."""
    from ltx_trainer.models.formats import ltxv as ltxv_formats
    from ltx_trainer.models.tiny import TINY_TRANSFORMER, tiny_ltx2_config
    from ltx_trainer.models.tiny_text import GEMMA_HIDDEN, GEMMA_LAYERS

    tiny_gemma = {"text_config": {"hidden_size": GEMMA_HIDDEN, "num_hidden_layers": GEMMA_LAYERS}}
    if arch in ("tiny-ltx2", "tiny-ltx2.3"):
        return "ltx2", tiny_ltx2_config("2.0" if arch == "tiny-ltx2" else "2.3")["transformer"], tiny_gemma
    if arch == "ltx2-19b":  # ltx-core's configurator defaults are the 19B model; connectors 30 x 128, 2 layers
        return (
            "ltx2",
            {
                "caption_channels": 3840,
                "connector_num_attention_heads": 30,
                "connector_attention_head_dim": 128,
                "connector_num_layers": 2,
            },
            GEMMA_3_12B,
        )
    if arch == "ltx2.3-22b":
        text = resources.files("ltx_trainer.models").joinpath("configs/ltx-2.3-22b.json").read_text()
        return "ltx2", json.loads(text)["transformer"], GEMMA_3_12B
    if arch == "tiny-ltxv":
        return "ltxv", ltxv_formats.transformer_official_config(TINY_TRANSFORMER), None
    if arch in ("ltxv-2b", "ltxv-13b"):
        return "ltxv", ltxv_formats.KNOWN_TRANSFORMER_CONFIGS[arch.removeprefix("ltxv-")], None
    raise ValueError(f"--arch {arch!r} is not one of {', '.join(ARCHS)}")


def random_model(arch: str, device: torch.device, dtype: torch.dtype) -> LTXModel:
    """The model's trainable part (transformer, and connectors for LTX-2) with random weights, built on ``device``."""
    from ltx_trainer.models.ltx2 import LTX2Model
    from ltx_trainer.models.ltxv import LTXVModel

    family, official, gemma = official_transformer(arch)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            if family == "ltx2":
                return LTX2Model.from_architecture(official, gemma, dtype, "2.3" if "2.3" in arch else "2.0")
            return LTXVModel.from_architecture(official, dtype)
    finally:
        torch.set_default_dtype(previous)
