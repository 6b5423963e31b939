"""``model.load_checkpoint``: a run starts from trained weights (LoRA or full), with its own fresh step count."""

import pytest
import torch
from safetensors.torch import load_file

from ltx_trainer.errors import UsageError
from ltx_trainer.models.lora_files import export_lora
from ltx_trainer.training import adapters
from ltx_trainer.training.trainer import Trainer
from training_fixtures import SMALL, make_dataset, training_config


@pytest.fixture(scope="module")
def data(tiny_ltx2, tmp_path_factory):
    paths = tiny_ltx2["2.0"]
    root = make_dataset(tmp_path_factory.mktemp("warm"), paths["single_file"], paths["gemma"], (SMALL,))
    return paths["single_file"], root


def _trained(config) -> Trainer:
    trainer = Trainer(config)
    trainer.setup()
    trainer.train()
    return trainer


def test_a_lora_run_starts_from_an_earlier_runs_lora(data, tmp_path):
    model_path, root = data
    first = _trained(training_config(model_path, root, tmp_path / "a", optimization={"steps": 2}))
    written = load_file(first.checkpoint_dir / "lora_weights_step_00002.safetensors")

    # Another alpha: the file's products B @ A are what the new run starts from, whatever its own scaling.
    config = training_config(
        model_path,
        root,
        tmp_path / "b",
        model={"load_checkpoint": str(first.checkpoint_dir)},  # a folder: its latest lora_weights_step_* file
        lora={"rank": 4, "alpha": 16},
        optimization={"steps": 2},
    )
    second = Trainer(config)
    second.setup()
    assert second.step == 0  # weights only: no resume
    started = export_lora(
        adapters.lora_state_dict(second.model.transformer), 4, 16, second.model.official_module_name, torch.float32
    )
    assert started.keys() == written.keys()
    for key, value in written.items():
        torch.testing.assert_close(started[key], value.float(), rtol=1e-6, atol=1e-7)
    # The LoRA is really applied: the adapted transformer differs from a fresh one with the same seed.
    fresh = Trainer(training_config(model_path, root, tmp_path / "c", lora={"rank": 4, "alpha": 16}))
    fresh.setup()
    b_fresh = adapters.lora_state_dict(fresh.model.transformer)
    assert all(not v.any() for k, v in b_fresh.items() if "lora_B" in k)  # peft starts B at zero
    assert any(v.any() for k, v in adapters.lora_state_dict(second.model.transformer).items() if "lora_B" in k)


def test_a_lora_of_another_rank_or_modules_is_refused_naming_the_key(data, tmp_path):
    model_path, root = data
    first = _trained(training_config(model_path, root, tmp_path / "a", optimization={"steps": 1}))
    weights = first.checkpoint_dir / "lora_weights_step_00001.safetensors"
    other_rank = training_config(
        model_path, root, tmp_path / "b", model={"load_checkpoint": str(weights)}, lora={"rank": 8, "alpha": 8}
    )
    with pytest.raises(UsageError, match=r"model.load_checkpoint: .* has rank \[4\], the config lora.rank: 8"):
        Trainer(other_rank).setup()
    fewer = training_config(
        model_path,
        root,
        tmp_path / "c",
        model={"load_checkpoint": str(weights)},
        lora={"rank": 4, "alpha": 4, "target_modules": ["to_q"]},
    )
    with pytest.raises(UsageError, match=r"model.load_checkpoint: .* lora.target_modules does not adapt"):
        Trainer(fewer).setup()
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = training_config(model_path, root, tmp_path / "d", model={"load_checkpoint": str(empty)})
    with pytest.raises(UsageError, match=r"model.load_checkpoint: no \*step_\*.safetensors under"):
        Trainer(missing).setup()


def test_a_full_run_starts_from_an_earlier_full_checkpoint(data, tmp_path):
    model_path, root = data
    full = {"model": {"training_mode": "full"}, "lora": None, "optimization": {"steps": 2}}
    first = _trained(training_config(model_path, root, tmp_path / "a", **full))
    trained = {k: v.clone() for k, v in first.model.transformer.state_dict().items()}
    checkpoint = first.checkpoint_dir / "model_weights_step_00002.safetensors"
    config = training_config(
        model_path,
        root,
        tmp_path / "b",
        model={"training_mode": "full", "load_checkpoint": str(checkpoint)},
        lora=None,
    )
    second = Trainer(config)
    second.setup()
    started = second.model.transformer.state_dict()
    assert started.keys() == trained.keys()
    assert all(torch.equal(started[k], trained[k]) for k in trained)  # saved in float32 (the fixture's precision)
    base = Trainer(training_config(model_path, root, tmp_path / "c", model={"training_mode": "full"}, lora=None))
    base.setup()
    assert any(not torch.equal(base.model.transformer.state_dict()[k], started[k]) for k in started)
