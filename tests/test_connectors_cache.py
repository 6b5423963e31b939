"""The frozen text connectors off the hot path: each sample's transformer context is computed once at setup (the empty
prompt's too, for caption dropout), equals what the connectors give every step, and a training step never runs them."""

import pytest
import torch

from ltx_trainer.data.dataset import collate
from ltx_trainer.training.trainer import Trainer
from training_fixtures import SMALL, make_dataset, training_config


@pytest.fixture(scope="module")
def data(tiny_ltx2, tmp_path_factory):
    paths = tiny_ltx2["2.3"]
    return paths, make_dataset(tmp_path_factory.mktemp("data"), paths["single_file"], paths["gemma"], (SMALL,), 1)


def test_cached_context_equals_the_connectors_and_a_step_never_runs_them(data, tmp_path):
    paths, root = data
    config = training_config(
        paths["single_file"],
        root,
        tmp_path,
        model={"text_encoder_path": str(paths["gemma"])},
        optimization={"steps": 2, "caption_dropout": 0.5},
    )
    trainer = Trainer(config)
    trainer.setup()
    calls = []
    for connectors in trainer.model.connector_modules():
        for module in connectors.modules():  # text_context calls the video and audio connectors directly
            module.register_forward_hook(lambda *_: calls.append(1))
    assert trainer.contexts is not None and calls == []
    assert all(p.device.type == "cpu" for m in trainer.model.connector_modules() for p in m.parameters())

    batch = collate([trainer.dataset[0]])
    outcomes = set()
    for _ in range(6):  # both caption-dropout outcomes, cached against the connectors run on the batch
        state = trainer.generator.get_state()
        cached = trainer._context(batch["conditions"], ids=batch["id"])
        trainer.generator.set_state(state)
        computed = trainer._context(batch["conditions"])
        for name in ("video", "audio", "mask"):
            assert torch.equal(getattr(cached, name), getattr(computed, name))
        outcomes.add(torch.equal(cached.video, trainer.contexts.empty.video))
    assert outcomes == {True, False} and calls  # the uncached path did run them

    state = trainer.generator.get_state()
    cached_loss = trainer._loss(batch)[0]
    contexts, trainer.contexts = trainer.contexts, None
    trainer.generator.set_state(state)
    computed_loss = trainer._loss(batch)[0]
    trainer.contexts = contexts
    assert torch.equal(cached_loss, computed_loss)  # bit for bit

    calls.clear()
    result = trainer.train()
    assert result.steps == 2 and calls == []  # the steps never ran the connectors
