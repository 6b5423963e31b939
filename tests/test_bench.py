"""`ltx-trainer bench`: full-size architectures are the real ones; the measurement runs end to end."""

import json

import pytest
import torch

from ltx_trainer.training.bench import build_random_model, markdown_row, run_bench, save_result

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


def test_bench_measures_every_phase(tmp_path):
    result = run_bench("tiny-ltx2.3", 64, 64, 9, steps=2, warmup=1, lora_rank=4)
    assert result.video_tokens == 2 * 2 * 2 and result.audio_tokens > 0
    phases = result.data_s + result.forward_s + result.backward_s + result.optimizer_s
    assert 0 < phases <= result.s_per_step * 1.05
    assert result.bare_s_per_step > 0 and result.peak_memory_gb > 0 and result.mfu_pct is None  # no GPU here
    saved = json.loads(save_result(result, tmp_path).read_text())
    assert saved["arch"] == "tiny-ltx2.3"
    assert markdown_row(result).count("|") == 14
