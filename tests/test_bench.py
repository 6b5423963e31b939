"""`ltx-trainer bench`: full-size architectures are the real ones; the measurement runs end to end."""

import json

import pytest
import torch

from ltx_trainer.training.bench import TIERS, build_random_model, markdown_row, run_bench, save_result

# Parameter counts of the released architectures (spec/backend-diffusers.md §5, spec/reference-ltx-core.md §4).
FULL_SIZE = {
    "ltx2-19b": (18.876, 1.431),
    "ltx2.3-22b": (18.989, 3.172),
    "ltxv-2b": (1.923, 0.0),
    "ltxv-13b": (13.043, 0.0),
}


@pytest.mark.parametrize("arch", sorted(FULL_SIZE))
def test_full_size_architectures_have_the_released_parameter_counts(arch):
    model = build_random_model(arch, torch.device("meta"), torch.bfloat16)
    transformer = sum(p.numel() for p in model.transformer.parameters()) / 1e9
    connectors = sum(p.numel() for p in model.connectors.parameters()) / 1e9 if model.spec.family == "ltx2" else 0.0
    assert (round(transformer, 3), round(connectors, 3)) == FULL_SIZE[arch]


def test_bench_interleaves_trainer_and_bare_steps_and_reports_medians(tmp_path):
    result = run_bench("tiny-ltx2.3", 64, 64, 9, steps=2, warmup=1, lora_rank=4, dtype="bf16")
    assert result.video_tokens == 2 * 2 * 2 and result.audio_tokens > 0
    assert result.dtype == "bf16" and result.tier == "bf16" and result.repeats == 2
    assert result.s_per_step_min <= result.s_per_step <= result.s_per_step_max
    assert 0 < result.bare_s_per_step_min <= result.bare_s_per_step <= result.bare_s_per_step_max
    phases = result.data_s + result.forward_s + result.backward_s + result.optimizer_s
    assert 0 < phases <= result.s_per_step_max * 1.05
    params = sum(
        p.numel()
        for p in build_random_model("tiny-ltx2.3", torch.device("meta"), torch.bfloat16).transformer.parameters()
    )
    assert result.transformer_gb * 2**30 >= params * 2  # bf16 base (+ fp32 LoRA and buffers)
    assert result.peak_host_gb > 0 and result.peak_vram_gb is None and result.mfu_pct is None  # no GPU here
    saved = json.loads(save_result(result, tmp_path).read_text())
    assert saved["arch"] == "tiny-ltx2.3" and saved["tier"] == "bf16"
    assert markdown_row(result).count("|") == 18


def test_every_tier_names_its_config_fields():
    assert TIERS["bf16"].acceleration() == {}
    assert TIERS["nf4-swap24"].acceleration() == {"quantization": "nf4", "blocks_to_swap": 24}
