"""Streaming load: the transformer is filled unit by unit from the memory-mapped file, with the same tensors."""

import torch
from diffusers import LTX2VideoTransformer3DModel

from ltx_trainer.models.families import load_model
from ltx_trainer.models.formats import ltx2_transformer
from ltx_trainer.models.sources import SingleFile


def test_streaming_load_is_bit_equal_to_an_eager_load_and_calls_the_hook_per_unit(tiny_ltx2):
    path = tiny_ltx2["2.3"]["single_file"]
    eager = ltx2_transformer.to_diffusers(SingleFile(path).read(ltx2_transformer.FILE_PREFIX, torch.float32))

    seen: list[tuple[str, bool]] = []
    model = load_model(path, dtype=torch.float32)
    model.on_block = lambda name, module: seen.append((name, any(t.is_meta for t in module.state_dict().values())))
    streamed = model.transformer.state_dict()

    assert isinstance(model.transformer, LTX2VideoTransformer3DModel)
    assert set(streamed) == set(eager)
    for key, value in eager.items():
        assert streamed[key].dtype == torch.float32
        assert torch.equal(streamed[key], value), key
    names = [name for name, _ in seen]
    assert not any(meta for _, meta in seen), "the hook saw a unit before it was filled"
    assert len(names) == len(set(names))
    layers = model.transformer.config.num_layers
    for i in range(layers):  # every block arrives as its children: attention, feed-forward, ...
        assert f"transformer_blocks.{i}.attn1" in names
        assert f"transformer_blocks.{i}.ff" in names
    assert "proj_in" in names and not any(n == "transformer_blocks" for n in names)


def test_streaming_load_casts_on_the_way_and_keeps_the_file_dtype_when_asked(tiny_ltx2):
    folder = tiny_ltx2["2.0"]["diffusers"]  # a diffusers folder streams too
    bf16 = load_model(folder, dtype=torch.bfloat16).transformer
    fp32 = load_model(folder, dtype=torch.float32).transformer
    for (name, a), (_, b) in zip(bf16.state_dict().items(), fp32.state_dict().items(), strict=True):
        if b.is_floating_point():
            assert a.dtype == torch.bfloat16, name
            assert torch.equal(a, b.to(torch.bfloat16)), name
