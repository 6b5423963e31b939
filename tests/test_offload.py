"""Block offload (``acceleration.blocks_to_swap``): the frozen weights of N blocks live in host memory and are brought
to the training device ahead of use. Here both devices are the CPU, so the moves are real copies the tests can see."""

from typing import ClassVar

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.checkpoint import checkpoint

from ltx_trainer.config import ConfigError
from ltx_trainer.data.dataset import collate
from ltx_trainer.errors import UsageError
from ltx_trainer.models.offload import BlockOffloader, resolve_blocks_to_swap
from ltx_trainer.training.trainer import Trainer
from training_fixtures import SMALL, make_dataset, training_config


@pytest.fixture(scope="module")
def data(tiny_ltx2, tmp_path_factory):
    paths = tiny_ltx2["2.0"]
    return paths, make_dataset(tmp_path_factory.mktemp("data"), paths["single_file"], paths["gemma"], (SMALL,), 1)


class _Probe(torch.autograd.Function):
    """``x * w`` that records the storage of ``w`` when it is used in forward and in backward (saved by reference,
    like an RMSNorm weight)."""

    used: ClassVar[list[int]] = []

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(w)
        _Probe.used.append(w.data_ptr())
        return x * w

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        _Probe.used.append(w.data_ptr())
        return grad * w, None


class _Block(nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.linear = nn.Linear(8, 8)
        self.scale = nn.Parameter(torch.rand(8, generator=gen) + 0.5)
        self.lora = nn.Linear(8, 8, bias=False)  # trainable, stays on the device
        self.linear.requires_grad_(False)
        self.scale.requires_grad_(False)

    def forward(self, x):
        return _Probe.apply(torch.tanh(self.linear(x) + self.lora(x)), self.scale)


class _Stack(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleList(_Block(i) for i in range(6))

    def forward(self, x):
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False) if torch.is_grad_enabled() else block(x)
        return x


def test_offloaded_blocks_are_resident_in_forward_recompute_and_backward_and_results_are_bit_identical():
    x = torch.randn(3, 8)
    reference = _Stack()
    reference(x).square().sum().backward()
    expected = {n: p.grad.clone() for n, p in reference.named_parameters() if p.requires_grad}

    stack = _Stack()
    offloader = BlockOffloader(stack, stack.blocks, 4, "cpu").attach()
    host = {h.data_ptr() for pairs in offloader.host.values() for _, h in pairs}
    _Probe.used = []
    for _ in range(2):  # two steps: the second starts from the state the first backward left
        stack.zero_grad()
        stack(x).square().sum().backward()
    got = {n: p.grad for n, p in stack.named_parameters() if p.requires_grad}
    assert got.keys() == expected.keys() and all(torch.equal(got[n], expected[n]) for n in expected)
    assert len(_Probe.used) == 2 * 6 * 3  # per step and block: forward, checkpoint recompute, backward
    assert not host & set(_Probe.used)  # never computed on a host copy: always on a fresh device copy
    # per step each offloaded block comes in for forward and again for backward, except the last (still resident)
    assert offloader.onloads == 2 * (4 + 3) and offloader.offloads == offloader.onloads
    assert all(p.requires_grad or p.data_ptr() in host for b in stack.blocks[2:] for p in b.parameters())
    assert all(p.grad is not None for b in stack.blocks[2:] for p in b.lora.parameters())
    with torch.no_grad():  # sampling (validation) runs the same hooks without autograd
        torch.testing.assert_close(stack(x), reference(x), rtol=0, atol=0)


def test_training_with_blocks_offloaded_is_bit_identical_and_validation_samples(data, tmp_path):
    paths, root = data
    runs = {}
    for swap in (0, "50%"):
        validation = {
            "interval": 1,
            "skip_initial_validation": True,
            "inference_steps": 2,
            "video_dims": [64, 64, 9],
            **{f"{m}_{k}": 1.0 for m in ("video", "audio") for k in ("cfg_scale", "modality_guidance_scale")},
            "video_stg_scale": 0.0,
            "audio_stg_scale": 0.0,
            "samples": [{"prompt": "a square moves", "seed": 3}],
        }
        config = training_config(
            paths["single_file"],
            root,
            tmp_path / str(swap).rstrip("%"),
            model={"text_encoder_path": str(paths["gemma"])},
            optimization={"steps": 1, "enable_gradient_checkpointing": True},
            acceleration={"mixed_precision_mode": "no", "blocks_to_swap": swap},
            validation=validation if swap else {"interval": None},
        )
        trainer = Trainer(config)
        trainer.setup()
        batch = collate([trainer.dataset[0]])
        loss, _, _ = trainer._loss(batch)
        loss.mean().backward()
        grads = {n: p.grad.clone() for n, p in trainer.model.transformer.named_parameters() if p.requires_grad}
        trainer.optimizer.zero_grad(set_to_none=True)
        result = trainer.train()
        runs[swap] = (loss.detach(), grads, result.losses, load_file(result.weights), trainer.offloader)
    (loss0, grads0, losses0, lora0, none), (loss1, grads1, losses1, lora1, offloader) = runs[0], runs["50%"]
    assert none is None and offloader.swapped == {1}  # tiny LTX-2 has 2 blocks
    assert torch.equal(loss0, loss1) and losses0 == losses1
    assert grads0.keys() == grads1.keys() and all(torch.equal(grads0[k], grads1[k]) for k in grads0)
    assert lora0.keys() == lora1.keys() and all(torch.equal(lora0[k], lora1[k]) for k in lora0)
    # in: the forward+backward, the training step, validation's first pass (it stays for the others: the block before
    # it keeps its successor); out: at each backward's end
    assert offloader.onloads == 3 and offloader.offloads == 2
    assert [p.name for p in (tmp_path / "50" / "samples").iterdir()] == ["step_000001_1.mp4"]
    block = offloader.blocks[1]
    host = {h.data_ptr() for _, h in offloader.host[1]}
    frozen = [p for p in block.parameters() if not p.requires_grad]
    assert frozen and all(p.data_ptr() not in host for p in frozen)  # resident: validation's last pass just ran it
    trainer._loss(batch)[0].mean().backward()  # the next step's backward sends it back to host memory
    assert all(p.data_ptr() in host for p in frozen)


@pytest.mark.parametrize("mode", ["fp8", "int8"])
def test_a_quantized_base_with_blocks_offloaded_trains_what_it_trains_resident(data, tmp_path, mode):
    """The 22B-on-24GB tier: quantized frozen weights (fp8 layerwise casting, torchao int8 tensors) swap like bf16."""
    paths, root = data
    losses, loras = [], []
    for swap in (0, 1):
        config = training_config(
            paths["single_file"],
            root,
            tmp_path / str(swap),
            optimization={"steps": 2, "enable_gradient_checkpointing": True},
            acceleration={"mixed_precision_mode": "no", "blocks_to_swap": swap, "quantization": mode},
        )
        trainer = Trainer(config)
        trainer.setup()
        result = trainer.train()
        losses.append(result.losses)
        loras.append(load_file(result.weights))
    assert trainer.offloader.swapped == {1} and trainer.offloader.onloads > 0
    assert losses[0] == losses[1]
    assert loras[0].keys() == loras[1].keys() and all(torch.equal(loras[0][k], loras[1][k]) for k in loras[0])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"acceleration": {"blocks_to_swap": -1}}, "-1 is not a block count"),
        ({"acceleration": {"blocks_to_swap": "150%"}}, "neither a block count nor a percentage"),
        ({"acceleration": {"blocks_to_swap": "half"}}, "neither a block count nor a percentage"),
        ({"acceleration": {"blocks_to_swap": 3}}, "3 but the model has 2 transformer blocks"),
        ({"acceleration": {"blocks_to_swap": 1}, "optimization": {}}, "needs optimization.enable_gradient_check"),
        ({"acceleration": {"blocks_to_swap": 1}, "model": {"training_mode": "full"}, "lora": None}, "only works"),
    ],
)
def test_bad_blocks_to_swap_fail_at_load_naming_the_key(tiny_ltx2, tmp_path, overrides, message):
    overrides.setdefault("optimization", {"enable_gradient_checkpointing": True})
    with pytest.raises(ConfigError) as err:
        training_config(tiny_ltx2["2.0"]["single_file"], tmp_path, tmp_path / "out", **overrides)
    (line,) = str(err.value).splitlines()
    assert "acceleration.blocks_to_swap" in line and message in line


def test_block_count_is_checked_against_the_loaded_model():
    assert resolve_blocks_to_swap("50%", 48) == 24 and resolve_blocks_to_swap(0, 2) == 0
    with pytest.raises(UsageError, match=r"acceleration.blocks_to_swap: 49 but the model has 48"):
        resolve_blocks_to_swap(49, 48)
