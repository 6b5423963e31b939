"""Issue 15, adapters: DoRA, LoKr and LoHa train tiny LTX-2 and LTXV through peft, are written in ComfyUI's key layout
(checked against ComfyUI's own key patterns, restated below from its source) and read back by our sampler, which then
gives exactly the in-memory model's output. Incompatible options fail at config load, naming the key."""

import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ltx_trainer.config import ConfigError, parse_config
from ltx_trainer.data.dataset import collate
from ltx_trainer.models.families import load_model
from ltx_trainer.sampling.lora import apply_loras, read_lora
from ltx_trainer.training.timesteps import Fixed
from ltx_trainer.training.trainer import Trainer
from training_fixtures import make_dataset, training_config

# ComfyUI's LoRA loader, comfyanonymous/ComfyUI: comfy/lora.py::load_lora reads "<x>.alpha" and "<x>.dora_scale" for
# every module key <x>; comfy/weight_adapter/lokr.py (179c2d3) reads <x>.lokr_w1 | lokr_w1_a + lokr_w1_b and
# <x>.lokr_w2 | lokr_w2_a + lokr_w2_b; loha.py (17adbb5) <x>.hada_w1_a, hada_w1_b, hada_w2_a, hada_w2_b; lora.py
# (6fd406f) <x>.lora_B.weight (up) + <x>.lora_A.weight (down). For LTX models <x> is "diffusion_model.<module>".
X = r"^diffusion_model\.(?P<module>[A-Za-z0-9_.]+?)\."
COMFY = {
    "lokr": re.compile(X + r"(?P<part>lokr_w1|lokr_w2|lokr_w1_a|lokr_w1_b|lokr_w2_a|lokr_w2_b|alpha)$"),
    "loha": re.compile(X + r"(?P<part>hada_w1_a|hada_w1_b|hada_w2_a|hada_w2_b|alpha)$"),
    "dora": re.compile(X + r"(?P<part>lora_A\.weight|lora_B\.weight|alpha|dora_scale)$"),
}
COMPLETE = {  # what ComfyUI needs to build each module's adapter
    "lokr": lambda p: (
        ({"lokr_w1"} <= p or {"lokr_w1_a", "lokr_w1_b"} <= p) and ({"lokr_w2"} <= p or {"lokr_w2_a", "lokr_w2_b"} <= p)
    ),
    "loha": lambda p: {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"} <= p,
    "dora": lambda p: {"lora_A.weight", "lora_B.weight", "dora_scale"} <= p,
}
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj"]


@pytest.fixture(scope="module")
def data(tiny_ltx2, tmp_path_factory):
    from ltx_trainer.models.tiny import write_tiny_ltxv

    paths = tiny_ltx2["2.0"]
    ltxv = write_tiny_ltxv(tmp_path_factory.mktemp("tiny-ltxv"))
    return {
        "2.0": (
            paths["single_file"],
            make_dataset(tmp_path_factory.mktemp("d2"), paths["single_file"], paths["gemma"]),
        ),
        "ltxv": (ltxv["single_file"], make_dataset(tmp_path_factory.mktemp("dv"), ltxv["single_file"], ltxv["t5"])),
    }


def _train(data, family, tmp_path, **lora):
    model_path, root = data[family]
    lora = {"rank": 2, "alpha": 4, "target_modules": TARGETS, **lora}
    config = training_config(
        model_path,
        root,
        tmp_path,
        audio=family != "ltxv",
        lora=lora,
        optimization={"steps": 2, "learning_rate": 2e-2, "scheduler_type": "constant"},
    )
    trainer = Trainer(config)
    trainer.setup()
    return trainer, trainer.train()


def _forward(trainer, model):
    """The transformer output of ``model`` on the trainer's first sample (fixed sigma, fixed noise)."""
    batch = collate([trainer.dataset[0]])
    prepared = trainer.strategy.prepare(batch, trainer.model, Fixed(0.5), torch.Generator().manual_seed(0))
    context = trainer._context(batch["conditions"])
    with torch.no_grad():
        video, audio = model.forward(
            prepared["video"].input, prepared["audio"].input if "audio" in prepared else None, context
        )
    return torch.cat([video.flatten(), audio.flatten()]) if audio is not None else video.flatten()


@pytest.mark.parametrize("family", ["2.0", "ltxv"])
@pytest.mark.parametrize(("adapter", "rank", "alpha"), [("dora", 2, 4), ("lokr", 2, 4), ("lokr", 4, 4), ("loha", 2, 4)])
def test_adapter_file_has_comfyui_keys_and_samples_exactly_like_training(data, tmp_path, family, adapter, rank, alpha):
    """lokr rank 2 splits w2 (alpha kept); rank 4 on the 32-wide layers splits nothing (alpha / r folded into w1)."""
    trainer, result = _train(data, family, tmp_path, adapter=adapter, rank=rank, alpha=alpha)
    keys = list(load_file(result.weights))
    parts: dict[str, set[str]] = {}
    for key in keys:
        match = COMFY[adapter].match(key)
        assert match, f"{key} is not in ComfyUI's {adapter} layout"
        parts.setdefault(match["module"], set()).add(match["part"])
    assert parts and all(COMPLETE[adapter](p) and "alpha" in p for p in parts.values())
    with safe_open(result.weights, "pt") as f:
        assert f.metadata()["ltx_trainer_adapter"] == adapter

    trainer.accelerator.unwrap_model(trainer.model.transformer).eval()  # as validation samples it
    trained = _forward(trainer, trainer.model)
    fresh = load_model(data[family][0])
    base = _forward(trainer, fresh)
    lora = read_lora(result.weights, fresh.diffusers_module_name)
    assert len(lora.modules) == len(parts) and not lora.pairs
    handles = apply_loras(fresh.transformer, [(lora, 1.0)])
    assert torch.equal(_forward(trainer, fresh), trained)  # the sampler's hooks: bit for bit
    assert (trained - base).abs().max() > 1e-4  # and the adapter matters
    for handle in handles:
        handle.remove()
    assert torch.equal(_forward(trainer, fresh), base)
    apply_loras(fresh.transformer, [(lora, 1.0)], merge=True)
    torch.testing.assert_close(_forward(trainer, fresh), trained, atol=1e-5, rtol=1e-5)


def _comfy_delta(kind: str, t: dict[str, torch.Tensor]) -> torch.Tensor:
    """ComfyUI's LoKr / LoHa update from a file's tensors, written from the rules quoted at the top of this file."""
    alpha = float(t["alpha"]) if "alpha" in t else None
    if kind == "loha":
        scale = alpha / t["hada_w1_b"].shape[0] if alpha is not None else 1.0
        return (t["hada_w1_a"] @ t["hada_w1_b"]) * (t["hada_w2_a"] @ t["hada_w2_b"]) * scale
    dim = None
    w1, w2 = t.get("lokr_w1"), t.get("lokr_w2")
    if w1 is None:
        dim, w1 = t["lokr_w1_b"].shape[0], t["lokr_w1_a"] @ t["lokr_w1_b"]
    if w2 is None:
        dim, w2 = t["lokr_w2_b"].shape[0], t["lokr_w2_a"] @ t["lokr_w2_b"]
    return torch.kron(w1, w2) * (alpha / dim if alpha is not None and dim is not None else 1.0)


@pytest.mark.parametrize(("adapter", "rank", "alpha"), [("lokr", 2, 4), ("lokr", 4, 8), ("loha", 2, 4)])
def test_comfyui_rules_rebuild_the_trained_update(data, tmp_path, adapter, rank, alpha):
    """ComfyUI's scale rules applied to our file give peft's trained delta weight, module by module."""
    trainer, result = _train(data, "ltxv", tmp_path, adapter=adapter, rank=rank, alpha=alpha)
    tensors = load_file(result.weights)
    transformer = trainer.accelerator.unwrap_model(trainer.model.transformer)
    checked = 0
    for name, layer in transformer.named_modules():
        if not hasattr(layer, "get_delta_weight") or not hasattr(layer, "base_layer"):
            continue
        x = f"diffusion_model.{trainer.model.official_module_name(name)}."
        ours = {k.removeprefix(x): v for k, v in tensors.items() if k.startswith(x)}
        with torch.no_grad():
            torch.testing.assert_close(
                _comfy_delta(adapter, ours), layer.get_delta_weight("default"), atol=1e-7, rtol=1e-5
            )
        checked += 1
    assert checked == len({k.rsplit(".", 1)[0] for k in tensors})


def test_dora_diffusers_file_loads_in_the_diffusers_pipeline(data, tiny_ltx2, tmp_path):
    """diffusers can't read ComfyUI's dora_scale; it loads the _diffusers file (peft's magnitude vector) as DoRA."""
    from diffusers import LTX2Pipeline

    trainer, result = _train(data, "2.0", tmp_path, adapter="dora", rank=2, alpha=4)
    diffusers_file = result.weights.with_name(result.weights.stem + "_diffusers.safetensors")
    keys = load_file(diffusers_file)
    assert keys and all(k.startswith("transformer.") for k in keys)
    assert any(k.endswith(".lora_magnitude_vector") for k in keys)
    transformer = trainer.accelerator.unwrap_model(trainer.model.transformer).eval()
    inputs = _probe_inputs(trainer.model)
    with torch.no_grad():
        trained = transformer(**inputs, return_dict=False)[0]
    pipe = LTX2Pipeline.from_pretrained(tiny_ltx2["2.0"]["diffusers"])
    pipe.load_lora_weights(str(diffusers_file))
    with torch.no_grad():
        reloaded = pipe.transformer(**inputs, return_dict=False)[0]
    torch.testing.assert_close(reloaded, trained, rtol=0, atol=1e-5)
    # our reader takes either file and gives the same module weights
    fresh = load_model(data["2.0"][0])
    comfy, folded = (read_lora(p, fresh.diffusers_module_name) for p in (result.weights, diffusers_file))
    assert comfy.modules.keys() == folded.modules.keys()


def _probe_inputs(model) -> dict:
    """diffusers LTX2VideoTransformer3DModel inputs for the tiny model (8 video tokens, 9 audio steps)."""
    g = torch.Generator().manual_seed(0)
    width = model.transformer.config.caption_channels
    return {
        "hidden_states": torch.randn(1, 8, 128, generator=g),
        "audio_hidden_states": torch.randn(1, 9, 128, generator=g),
        "encoder_hidden_states": torch.randn(1, 16, width, generator=g),
        "audio_encoder_hidden_states": torch.randn(1, 16, width, generator=g),
        "timestep": torch.full((1, 8), 500.0),
        "audio_timestep": torch.full((1, 9), 500.0),
        "sigma": torch.full((1,), 500.0),
        "audio_sigma": torch.full((1,), 500.0),
        "video_coords": model.video_positions(1, 2, 2, 2, 24.0),
        "audio_coords": model.audio_positions(1, 9),
        "use_cross_timestep": True,
    }


def test_adapter_file_errors_name_the_file_and_module(tmp_path):
    from safetensors.torch import save_file

    from ltx_trainer.models.formats.ltx2_transformer import module_to_diffusers

    x = "diffusion_model.transformer_blocks.0.attn1.to_q."
    save_file({x + "lokr_w1": torch.ones(4, 4)}, tmp_path / "half.safetensors")
    with pytest.raises(ValueError, match=r"half\.safetensors.*attn1\.to_q: needs lokr_w1.*lokr_w2"):
        read_lora(tmp_path / "half.safetensors", module_to_diffusers)
    dora = {
        x + "lora_A.weight": torch.ones(2, 4),
        x + "lora_B.weight": torch.ones(4, 2),
        x + "dora_scale": torch.ones(1, 4),
    }
    save_file(dora, tmp_path / "in.safetensors")
    with pytest.raises(ValueError, match=r"input axis"):
        read_lora(tmp_path / "in.safetensors", module_to_diffusers)


def _base(**sections) -> dict:
    config = {
        "model": {"model_path": "/m.safetensors"},
        "lora": {"rank": 4},
        "data": {"preprocessed_data_root": "/d"},
        "validation": {"interval": None},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    return config


@pytest.mark.parametrize(
    ("sections", "problem"),
    [
        ({"lora": {"factor": 4}}, "lora.factor: only for adapter lokr, not 'lora'"),
        ({"lora": {"adapter": "dora", "rank_dropout": 0.1}}, "lora.rank_dropout: only for adapter lokr and loha"),
        ({"lora": {"adapter": "loha", "decompose_both": True}}, "lora.decompose_both: only for adapter lokr"),
        ({"lora": {"adapter": "lokr", "dropout": 0.1}}, "lora.dropout: lokr has no input dropout"),
        ({"lora": {"adapter": "lokr", "factor": 0}}, "lora.factor: 0 is not -1"),
        (
            {"lora": {"adapter": "dora"}, "acceleration": {"quantization": "fp8"}},
            "lora.adapter: 'dora' can't wrap an acceleration.quantization 'fp8' base",
        ),
        (
            {"lora": {"adapter": "lokr"}, "model": {"load_checkpoint": "/old.safetensors"}},
            "model.load_checkpoint: starts plain LoRA runs only",
        ),
    ],
    ids=[
        "factor_on_lora",
        "rank_dropout_on_dora",
        "decompose_both_on_loha",
        "dropout_on_lokr",
        "bad_factor",
        "dora_on_fp8",
        "warm_start_lokr",
    ],
)
def test_adapter_misconfigurations_fail_at_load_naming_the_key(sections, problem):
    with pytest.raises(ConfigError) as info:
        parse_config(_base(**sections), "cfg.yaml")
    assert [p for p in info.value.problems if p.startswith(problem)], info.value.problems


def test_adapter_options_reach_peft():
    from peft import LoHaConfig, LoKrConfig

    from ltx_trainer.config import LoraConfig
    from ltx_trainer.training.adapters import peft_config

    lokr = peft_config(LoraConfig(adapter="lokr", rank=4, factor=8, decompose_both=True, rank_dropout=0.1))
    assert isinstance(lokr, LoKrConfig)
    assert (lokr.decompose_factor, lokr.decompose_both, lokr.rank_dropout, lokr.module_dropout) == (8, True, 0.1, 0.0)
    loha = peft_config(LoraConfig(adapter="loha", rank=4, alpha=8, module_dropout=0.2))
    assert isinstance(loha, LoHaConfig) and (loha.r, loha.alpha, loha.module_dropout) == (4, 8, 0.2)
    dora = peft_config(LoraConfig(adapter="dora", rank=4, dropout=0.1))
    assert dora.use_dora and dora.lora_dropout == 0.1


@pytest.mark.parametrize("adapter", ["lora", "dora", "lokr", "loha"])
def test_sharded_state_dict_keys_get_peft_names(adapter):
    """FSDP/ZeRO-3 exports read the module state dict (distributed.gathered_weights): its adapter keys, renamed, are
    exactly the keys of peft's own adapter state dict that the file writers take."""
    from torch import nn

    from ltx_trainer.config import LoraConfig
    from ltx_trainer.training.adapters import ADAPTER, add_lora, is_adapter_key, lora_state_dict
    from ltx_trainer.training.distributed import _peft_name

    model = nn.Sequential()
    model.add_module("to_q", nn.Linear(64, 64))
    add_lora(model, LoraConfig(adapter=adapter, rank=2, alpha=2, target_modules=["to_q"]))
    renamed = {_peft_name(k, ADAPTER) for k in model.state_dict() if is_adapter_key(k)}
    assert renamed == set(lora_state_dict(model))
