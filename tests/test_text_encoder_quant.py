"""The text encoder in 8 bit on a CPU: torchao int8 weight-only, text features close to full precision."""

import pytest
import torch
from torchao.utils import TorchAOBaseTensor

from ltx_trainer.config import parse_config
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.families import load_model
from ltx_trainer.models.text_encoders import load_gemma


def test_text_encoder_in_8bit_on_cpu_is_int8_and_its_features_stay_close(tiny_ltx2):
    paths = tiny_ltx2["2.3"]
    gemma, _ = load_gemma(paths["gemma"], paths["gemma"], torch.float32, bits=8)
    linears = [m for m in gemma.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m.weight, TorchAOBaseTensor) for m in linears)
    assert all(m.weight.qdata.dtype == torch.int8 for m in linears)

    prompts = ["a red fox runs through snow", ""]
    full = load_model(paths["single_file"], paths["gemma"], torch.float32).encode_text(prompts)
    int8 = load_model(paths["single_file"], paths["gemma"], torch.float32, text_encoder_bits=8).encode_text(prompts)
    assert torch.equal(full.mask, int8.mask)
    for a, b in ((full.video, int8.video), (full.audio, int8.audio)):
        relative = (a - b).norm() / a.norm()
        assert 0 < relative < 0.05, relative  # quantized (not identical), within 5 % of the features' norm


def test_text_encoder_in_4bit_is_refused_on_cpu_and_both_switches_at_once_at_config_load(tiny_ltx2):
    paths = tiny_ltx2["2.0"]
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match=r"acceleration\.load_text_encoder_in_4bit"):
            load_model(paths["single_file"], paths["gemma"], text_encoder_bits=4).encode_text(["x"])
    with pytest.raises(Exception, match="load_text_encoder_in_4bit"):
        parse_config(
            {
                "model": {"model_path": str(paths["single_file"]), "training_mode": "lora"},
                "lora": {"rank": 4},
                "training_strategy": {"name": "text_to_video"},
                "acceleration": {"load_text_encoder_in_8bit": True, "load_text_encoder_in_4bit": True},
                "data": {"preprocessed_data_root": "/tmp"},
                "output_dir": "/tmp/x",
            },
            source="test",
        )
