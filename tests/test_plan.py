"""``ltx-trainer plan``: exact parameter bytes per tier, a tier that fits a 24 GB card for LTX-2.3 22B, and a clear
refusal when nothing fits."""

import importlib.util

import pytest
import torch

from cli_outcome import invoke
from ltx_trainer.cli import app
from ltx_trainer.models import memory_plan
from ltx_trainer.models.families import load_model
from ltx_trainer.models.quantization import parameter_bytes, quantize_transformer_


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_planned_bytes_equal_the_loaded_transformer_per_tier(tiny_ltx2, version):
    path = tiny_ltx2[version]["single_file"]
    name, meta = memory_plan.meta_transformer(model=path)
    sizes = memory_plan.model_sizes(name, meta)
    assert sizes.params == sum(p.numel() for p in load_model(path).transformer.parameters())
    cpu_tiers = ("bf16", "fp8", "int8", *(("nf4",) if importlib.util.find_spec("bitsandbytes") else ()))
    for tier in cpu_tiers:  # the tiers a CPU can load (int4 needs CUDA; nf4 needs bitsandbytes)
        transformer = load_model(path, dtype=torch.bfloat16).transformer
        if memory_plan.TIERS[tier]:
            quantize_transformer_(transformer, memory_plan.TIERS[tier], torch.bfloat16)
        assert parameter_bytes(transformer) == sizes.total_bytes(tier), tier


def test_plan_names_a_tier_for_ltx23_on_24gb_and_refuses_the_impossible(tmp_path):
    out = tmp_path / "acceleration.yaml"
    args = ["plan", "--arch", "ltx2.3-22b", "--gpu-memory", 24, "--ram", 64, "--write", out]
    result = invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "<- fastest that fits" in result.output
    chosen = next(line for line in result.output.splitlines() if "fastest that fits" in line).split()
    assert float(chosen[3]) <= 24 * memory_plan.HEADROOM and float(chosen[4]) <= 64
    written = out.read_text()
    assert written.startswith("acceleration:\n") and "enable_gradient_checkpointing" in written
    impossible = invoke(app, ["plan", "--arch", "ltx2.3-22b", "--gpu-memory", 8, "--ram", 64, "--mode", "full"])
    assert impossible.exit_code == 1
    assert "nothing fits 8 GB GPU / 64 GB RAM for a full run" in impossible.output
    assert "a LoRA would need" in impossible.output  # what would fit: not even a LoRA at 8 GB
    lora_instead = invoke(app, ["plan", "--arch", "ltx2.3-22b", "--gpu-memory", 24, "--mode", "full"])
    assert lora_instead.exit_code == 1 and "a LoRA fits: " in lora_instead.output
