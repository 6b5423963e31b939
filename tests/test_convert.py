"""``ltx-trainer convert`` and ``info``: LoRA layouts both ways, full checkpoints single file <-> diffusers, merging.

The foreign LoRA files are written here key by key, as each tool writes them (not by our writer): official /
ComfyUI and ai-toolkit ``diffusion_model.*.lora_A/B``, diffusers ``transformer.*`` with diffusers module names,
kohya and musubi-tuner ``lora_unet_*`` with ``lora_down/up`` and a scalar ``.alpha`` in the weights' dtype.
"""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from cli_outcome import invoke
from ltx_trainer.cli import app
from ltx_trainer.models import convert as conversion
from ltx_trainer.models.base import ModalityInput, TextContext
from ltx_trainer.models.describe import describe
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.families import load_model
from ltx_trainer.models.formats import ltx2_transformer
from ltx_trainer.sampling.lora import apply_loras, read_lora

RANK = 4
# official module paths of the tiny LTX-2 transformers that the fixtures adapt: attention, feed-forward, audio,
# cross-modal, and two top-level layers diffusers renames (patchify_proj -> proj_in, audio_adaln_single -> ...)
TARGETS = [
    "transformer_blocks.0.attn1.to_q",
    "transformer_blocks.0.attn2.to_k",
    "transformer_blocks.1.ff.net.0.proj",
    "transformer_blocks.1.audio_attn1.to_v",
    "transformer_blocks.1.audio_to_video_attn.to_out.0",
    "patchify_proj",
    "audio_adaln_single.linear",
]


def _shapes(single_file) -> dict[str, tuple[int, int]]:
    with safe_open(single_file, "pt") as f:
        return {m: tuple(f.get_slice(f"model.diffusion_model.{m}.weight").get_shape()) for m in TARGETS}


def _factors(single_file, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Random bf16 (A [r, in], B [out, r]) per target module."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for module, (rows, cols) in _shapes(single_file).items():
        a = torch.randn(RANK, cols, generator=g) / cols**0.5
        b = torch.randn(rows, RANK, generator=g) * 0.5
        out[module] = (a.bfloat16(), b.bfloat16())
    return out


def write_foreign(layout: str, single_file, path, alpha: float = 8.0) -> dict[str, torch.Tensor]:
    """A LoRA file as ``layout``'s own tool writes it; returns its tensors."""
    factors, sd, metadata = _factors(single_file), {}, {}
    for module, (a, b) in factors.items():
        if layout in ("official", "ai-toolkit"):
            sd[f"diffusion_model.{module}.lora_A.weight"], sd[f"diffusion_model.{module}.lora_B.weight"] = a, b
        elif layout == "diffusers":
            name = "transformer." + ltx2_transformer.module_to_diffusers(module)
            sd[f"{name}.lora_A.weight"], sd[f"{name}.lora_B.weight"] = a, b
        else:
            name = "lora_unet_" + module.replace(".", "_")
            sd[f"{name}.lora_down.weight"], sd[f"{name}.lora_up.weight"] = a, b
            sd[f"{name}.alpha"] = torch.tensor(alpha, dtype=a.dtype)
    if layout == "ai-toolkit":
        metadata = {"software": json.dumps({"name": "ai-toolkit", "url": "https://github.com/ostris/ai-toolkit"})}
    elif layout in ("kohya", "musubi"):
        metadata = {"ss_network_dim": str(RANK), "ss_network_alpha": str(alpha)}
        if layout == "musubi":
            metadata["ss_network_module"] = "networks.lora_ltx2"
    save_file(sd, str(path), metadata=metadata or None)
    return sd


LAYOUTS = ["official", "ai-toolkit", "diffusers", "kohya", "musubi"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_lora_layout_to_ours_and_back_is_exact(tiny_ltx2, tmp_path, layout):
    # alpha 8 with rank 4: folding multiplies B by 2 and unfolding divides, both exact in bf16
    original = write_foreign(layout, tiny_ltx2["2.0"]["single_file"], tmp_path / "in.safetensors")
    ours = conversion.convert(tmp_path / "in.safetensors", tmp_path / "ours.safetensors", "official")
    assert (ours.source_layout, ours.layout) == (layout, "official")
    assert all(k.startswith("diffusion_model.") and ".lora_" in k for k in load_file(tmp_path / "ours.safetensors"))
    conversion.convert(tmp_path / "ours.safetensors", tmp_path / "back.safetensors", layout)
    back = load_file(tmp_path / "back.safetensors")
    assert set(back) == set(original)
    for key, tensor in original.items():
        assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor), key


@pytest.mark.parametrize("layout", ["kohya", "musubi"])
def test_alpha_not_a_power_of_two_rank_ratio_round_trips_to_bf16_rounding(tiny_ltx2, tmp_path, layout):
    original = write_foreign(layout, tiny_ltx2["2.0"]["single_file"], tmp_path / "in.safetensors", alpha=3.0)
    conversion.convert(tmp_path / "in.safetensors", tmp_path / "ours.safetensors", "official")
    header = safe_open(tmp_path / "ours.safetensors", "pt").metadata()
    assert (header["ltx_trainer_rank"], header["ltx_trainer_alpha"]) == ("4", "3.0")
    conversion.convert(tmp_path / "ours.safetensors", tmp_path / "back.safetensors", layout)
    back = load_file(tmp_path / "back.safetensors")
    for key, tensor in original.items():
        # B * 3/4 then * 4/3, each rounded to bf16: within two bf16 steps (2 * 2^-8 relative)
        torch.testing.assert_close(back[key].float(), tensor.float(), rtol=2**-7, atol=0)
    # --fold-alpha: B carries alpha / rank, .alpha = rank
    conversion.convert(tmp_path / "in.safetensors", tmp_path / "folded.safetensors", layout, fold_alpha=True)
    folded = load_file(tmp_path / "folded.safetensors")
    up = next(k for k in folded if k.endswith("lora_up.weight"))
    assert folded[up.replace("lora_up.weight", "alpha")].item() == RANK
    assert torch.equal(folded[up], (original[up].float() * 0.75).bfloat16())


@pytest.mark.parametrize("layout", [*LAYOUTS, "peft"])
def test_info_names_each_layout(tiny_ltx2, tmp_path, layout):
    path = tmp_path / "lora.safetensors"
    if layout == "peft":
        sd = write_foreign("diffusers", tiny_ltx2["2.0"]["single_file"], path)
        save_file({"base_model.model." + k.removeprefix("transformer."): v for k, v in sd.items()}, str(path))
    else:
        write_foreign(layout, tiny_ltx2["2.0"]["single_file"], path, alpha=3.0)
    rows = dict(describe(path))
    expected = {"official": "official / ComfyUI", "ai-toolkit": "ai-toolkit", "diffusers": "diffusers",
                "kohya": "kohya", "musubi": "musubi-tuner", "peft": "peft"}  # fmt: skip
    assert rows["format"].startswith(expected[layout]), rows["format"]
    assert rows["rank"] == "4" and rows["targets"].startswith(f"{len(TARGETS)} layers in 2 blocks")
    assert rows["base model"] == "ltx2 2.0 or 2.3 (module names)"  # audio layers: LTX-2; no 2.3-only layer
    if layout in ("kohya", "musubi"):
        assert rows["alpha"].startswith("3 (stored as .alpha")


def _forward(model, transformer=None):
    """The transformer velocities on fixed inputs (``transformer``: another module with the same weights)."""
    g = torch.Generator().manual_seed(0)
    video = ModalityInput(
        torch.randn(1, 12, 128, generator=g), torch.full((1, 12), 0.6), torch.full((1,), 0.6),
        model.video_positions(1, 2, 2, 3, fps=24.0),
    )  # fmt: skip
    audio = ModalityInput(
        torch.randn(1, 9, 128, generator=g), torch.full((1, 9), 0.6), torch.full((1,), 0.6),
        model.audio_positions(1, 9),
    )  # fmt: skip
    cfg = model.transformer.config
    widths = (
        (cfg.caption_channels,) * 2
        if cfg.use_prompt_embeddings
        else (cfg.cross_attention_dim, cfg.audio_cross_attention_dim)
    )
    context = TextContext(torch.randn(1, 16, widths[0], generator=g), torch.randn(1, 16, widths[1], generator=g),
                          torch.ones(1, 16, dtype=torch.long))  # fmt: skip
    with torch.no_grad():
        if transformer is None:
            return torch.cat(model.forward(video, audio, context), dim=1)
        out = transformer(
            hidden_states=video.latent, audio_hidden_states=audio.latent,
            encoder_hidden_states=context.video, audio_encoder_hidden_states=context.audio,
            timestep=video.timesteps * 1000, audio_timestep=audio.timesteps * 1000,
            sigma=video.sigma * 1000, audio_sigma=audio.sigma * 1000,
            encoder_attention_mask=context.mask, audio_encoder_attention_mask=context.mask,
            video_coords=video.positions, audio_coords=audio.positions,
            use_cross_timestep=True, return_dict=False,
        )  # fmt: skip
        return torch.cat(out, dim=1)


def test_musubi_file_converted_to_ours_gives_the_same_output_as_applied_directly(tiny_ltx2, tmp_path):
    paths = tiny_ltx2["2.0"]
    write_foreign("musubi", paths["single_file"], tmp_path / "musubi.safetensors", alpha=3.0)
    conversion.convert(tmp_path / "musubi.safetensors", tmp_path / "ours.safetensors", "official")
    model = load_model(paths["single_file"])
    base = _forward(model)
    outputs = []
    for name in ("musubi", "ours"):
        lora = read_lora(tmp_path / f"{name}.safetensors", model.diffusers_module_name)
        assert len(lora.pairs) == len(TARGETS)
        handles = apply_loras(model.transformer, [(lora, 1.0)])
        outputs.append(_forward(model))
        for handle in handles:
            handle.remove()
    assert (outputs[0] - base).abs().max() > 1e-2  # the LoRA changes the output
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=1e-6)


def test_our_lora_as_diffusers_loads_in_ltx2_pipeline_with_the_same_output(tiny_ltx2, tmp_path):
    from diffusers import LTX2Pipeline

    paths = tiny_ltx2["2.0"]
    write_foreign("official", paths["single_file"], tmp_path / "ours.safetensors")
    conversion.convert(tmp_path / "ours.safetensors", tmp_path / "diffusers.safetensors", "diffusers")
    assert all(k.startswith("transformer.") for k in load_file(tmp_path / "diffusers.safetensors"))
    assert "transformer.proj_in.lora_A.weight" in load_file(tmp_path / "diffusers.safetensors")

    pipe = LTX2Pipeline.from_pretrained(paths["diffusers"])
    pipe.load_lora_weights(str(tmp_path / "diffusers.safetensors"))
    ours = load_model(paths["diffusers"])
    base = _forward(ours, ours.transformer)
    apply_loras(ours.transformer, [(read_lora(tmp_path / "ours.safetensors", ours.diffusers_module_name), 1.0)])
    expected = _forward(ours, ours.transformer)
    got = _forward(ours, pipe.transformer)
    assert (expected - base).abs().max() > 1e-2
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_lora_name_errors_are_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    save_file({"lora_unet_transformer_blocks_0_attn9_to_q.lora_down.weight": torch.zeros(2, 4),
               "lora_unet_transformer_blocks_0_attn9_to_q.lora_up.weight": torch.zeros(4, 2)}, str(bad))  # fmt: skip
    with pytest.raises(ModelLoadError, match=r"bad\.safetensors: 1 kohya/musubi module name\(s\) match no linear"):
        conversion.convert(bad, tmp_path / "out.safetensors", "official")
    other = tmp_path / "other.safetensors"
    save_file({"some.weight": torch.zeros(2)}, str(other))
    with pytest.raises(ModelLoadError, match=r"other\.safetensors: neither an LTX checkpoint .* nor a LoRA"):
        conversion.convert(other, tmp_path / "out.safetensors", "official")


# ---- full checkpoints ------------------------------------------------------------------------------------------------
def _same_file(a, b) -> None:
    with safe_open(a, "pt") as fa, safe_open(b, "pt") as fb:
        assert set(fa.keys()) == set(fb.keys()) and fa.metadata() == fb.metadata()
        for key in fa.keys():
            x, y = fa.get_tensor(key), fb.get_tensor(key)
            assert (
                x.dtype == y.dtype
                and x.shape == y.shape
                and torch.equal(x.view(-1).view(torch.uint8), y.view(-1).view(torch.uint8))
            ), key


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_single_file_to_diffusers_and_back_is_bit_identical(tiny_ltx2, tmp_path, version):
    single = tiny_ltx2[version]["single_file"]
    conversion.convert(single, tmp_path / "folder", "diffusers")
    folder = load_model(tmp_path / "folder")
    assert (folder.spec.family, folder.spec.version) == ("ltx2", version)
    torch.testing.assert_close(_forward(folder), _forward(load_model(single)), rtol=0, atol=1e-5)
    conversion.convert(tmp_path / "folder", tmp_path / "back.safetensors", "official")
    _same_file(single, tmp_path / "back.safetensors")
    assert (tmp_path / "back.safetensors").read_bytes() == single.read_bytes()  # same bytes, too


@pytest.fixture(scope="module")
def tiny_ltxv(tmp_path_factory):
    from ltx_trainer.models.tiny import write_tiny_ltxv

    return write_tiny_ltxv(tmp_path_factory.mktemp("tiny-ltxv"))


def test_ltxv_lora_in_diffusers_names_and_its_family_left_open(tiny_ltxv, tmp_path):
    g = torch.Generator().manual_seed(0)
    with safe_open(tiny_ltxv["single_file"], "pt") as f:
        shapes = {m: f.get_slice(f"model.diffusion_model.{m}.weight").get_shape()
                  for m in ("patchify_proj", "transformer_blocks.1.attn1.to_q")}  # fmt: skip
    sd = {}
    for module, (rows, cols) in shapes.items():
        sd[f"diffusion_model.{module}.lora_A.weight"] = torch.randn(RANK, cols, generator=g)
        sd[f"diffusion_model.{module}.lora_B.weight"] = torch.randn(rows, RANK, generator=g)
    save_file(sd, str(tmp_path / "ltxv.safetensors"))
    conversion.convert(tmp_path / "ltxv.safetensors", tmp_path / "d.safetensors", "diffusers")
    assert sorted(load_file(tmp_path / "d.safetensors")) == [
        f"transformer.{m}.lora_{x}.weight" for m in ("proj_in", "transformer_blocks.1.attn1.to_q") for x in "AB"
    ]
    assert dict(describe(tmp_path / "d.safetensors"))["base model"] == "ltx2 or ltxv (the module names fit each)"
    model = load_model(tiny_ltxv["single_file"])  # and LTX-Video's own reader takes the diffusers names
    assert set(read_lora(tmp_path / "d.safetensors", model.diffusers_module_name).pairs) == {
        "proj_in", "transformer_blocks.1.attn1.to_q"
    }  # fmt: skip


def test_ltxv_single_file_to_diffusers_and_back_is_bit_identical(tiny_ltxv, tmp_path):
    single = tiny_ltxv["single_file"]
    conversion.convert(single, tmp_path / "folder", "diffusers")
    assert load_model(tmp_path / "folder").spec.family == "ltxv"
    conversion.convert(tmp_path / "folder", tmp_path / "back.safetensors", "official")
    assert (tmp_path / "back.safetensors").read_bytes() == single.read_bytes()


def test_fp8_output_is_the_released_layout_and_fp8_input_dequantizes(tiny_ltx2, tmp_path):
    from ltx_trainer.models.tiny import write_fp8_variant

    single = tiny_ltx2["2.0"]["single_file"]
    shutil.copy(single, tmp_path / "base.safetensors")
    reference = write_fp8_variant(tmp_path / "base.safetensors")
    conversion.convert(single, tmp_path / "fp8.safetensors", "official", dtype="fp8")
    _same_file(reference, tmp_path / "fp8.safetensors")
    conversion.convert(reference, tmp_path / "folder", "diffusers")  # fp8 -> bf16 weights (weight * weight_scale)
    with safe_open(reference, "pt") as f:
        key = next(k for k in f.keys() if k.endswith(".weight_scale"))
        expected = (f.get_tensor(key.replace("_scale", "")).float() * f.get_tensor(key).float()).bfloat16()
    name = ltx2_transformer.module_to_diffusers(key.removeprefix("model.diffusion_model.").replace("_scale", ""))
    assert torch.equal(load_file(tmp_path / "folder" / "transformer" / "diffusion_pytorch_model.safetensors")[name],
                       expected)  # fmt: skip
    with pytest.raises(Exception, match="fp8"):
        conversion.convert(single, tmp_path / "folder8", "diffusers", dtype="fp8")


@pytest.mark.oracle
@pytest.mark.slow
@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_converted_single_files_pass_the_official_load_check(oracle, tiny_ltx2, tmp_path, version):
    paths = tiny_ltx2[version]
    conversion.convert(paths["single_file"], tmp_path / "folder", "diffusers")
    conversion.convert(tmp_path / "folder", tmp_path / "round_trip.safetensors", "official")
    # a diffusers folder without our metadata record: the metadata is derived from its configs
    conversion.convert(paths["diffusers"], tmp_path / "derived.safetensors", "official")
    for name in ("round_trip", "derived"):
        out = oracle.run("load_check.py", "--checkpoint", str(tmp_path / f"{name}.safetensors"),
                         "--gemma", str(paths["gemma"]), "--strict")  # fmt: skip
        assert "RESULT: PASS" in out, name
    torch.testing.assert_close(_forward(load_model(tmp_path / "derived.safetensors")),
                               _forward(load_model(paths["single_file"])), rtol=0, atol=1e-5)  # fmt: skip


# ---- merge -----------------------------------------------------------------------------------------------------------
def test_merged_base_gives_the_output_of_base_plus_runtime_lora(tiny_ltx2, tmp_path):
    single = tiny_ltx2["2.0"]["single_file"]
    # alpha / rank = 2: the sampler's reader folds it into the bf16 B exactly, so both sides apply the same delta
    write_foreign("musubi", single, tmp_path / "lora.safetensors", alpha=8.0)
    conversion.merge(tmp_path / "lora.safetensors", single, tmp_path / "fp32.safetensors", dtype="fp32", strength=0.7)
    model = load_model(single)
    apply_loras(model.transformer, [(read_lora(tmp_path / "lora.safetensors", model.diffusers_module_name), 0.7)])
    runtime = _forward(model)
    merged = _forward(load_model(tmp_path / "fp32.safetensors"))
    assert (merged - _forward(load_model(single))).abs().max() > 1e-2
    # W + 0.7 * B@A in fp32 (merged) vs W x + 0.7 * B (A x) (hooks): fp32 rounding only
    torch.testing.assert_close(merged, runtime, rtol=1e-5, atol=1e-5)

    # in the base's dtype (bf16), the merged weights are exactly what the sampler's merge computes
    write_foreign("official", single, tmp_path / "ours.safetensors")
    conversion.merge(tmp_path / "ours.safetensors", single, tmp_path / "bf16.safetensors")
    expected = load_model(single, dtype=torch.bfloat16)
    apply_loras(expected.transformer, [(read_lora(tmp_path / "ours.safetensors", expected.diffusers_module_name), 1)],
                merge=True)  # fmt: skip
    got = load_model(tmp_path / "bf16.safetensors", dtype=torch.bfloat16).transformer.state_dict()
    for key, value in expected.transformer.state_dict().items():
        assert torch.equal(got[key], value), key
    header = safe_open(tmp_path / "bf16.safetensors", "pt").metadata()
    assert json.loads(header["ltx_trainer_merged_loras"]) == [{"lora": "ours.safetensors", "strength": 1.0}]


def test_merge_into_an_fp8_base_requantizes_only_the_merged_weights(tiny_ltx2, tmp_path):
    from ltx_trainer.models.tiny import write_fp8_variant

    shutil.copy(tiny_ltx2["2.0"]["single_file"], tmp_path / "base.safetensors")
    base = write_fp8_variant(tmp_path / "base.safetensors")
    write_foreign("official", base, tmp_path / "lora.safetensors")
    conversion.merge(tmp_path / "lora.safetensors", base, tmp_path / "merged.safetensors")
    lora = load_file(tmp_path / "lora.safetensors")
    merged, original = load_file(tmp_path / "merged.safetensors"), load_file(base)
    assert set(merged) == set(original)
    changed = {f"model.diffusion_model.{m}.weight" for m in TARGETS}
    for key, value in original.items():
        if key in changed or key.removesuffix("_scale") in changed:
            continue
        assert torch.equal(value.view(-1).view(torch.uint8), merged[key].view(-1).view(torch.uint8)), key
    key = "model.diffusion_model.transformer_blocks.1.ff.net.0.proj.weight"  # an fp8 block weight
    assert merged[key].dtype == torch.float8_e4m3fn
    module = key.removeprefix("model.diffusion_model.").removesuffix(".weight")
    a, b = lora[f"diffusion_model.{module}.lora_A.weight"], lora[f"diffusion_model.{module}.lora_B.weight"]
    want = original[key].float() * original[key + "_scale"] + b.float() @ a.float()
    got = merged[key].float() * merged[key + "_scale"]
    # e4m3 keeps 3 mantissa bits: within half a step (2^-4 relative) of each value, plus the subnormal floor
    assert ((got - want).abs() <= want.abs() * 2**-4 + merged[key + "_scale"] * 2**-9).all()


def test_merge_refuses_a_lora_of_another_model(tiny_ltx2, tmp_path):
    single = tiny_ltx2["2.0"]["single_file"]
    write_foreign("official", single, tmp_path / "lora.safetensors")
    sd = load_file(tmp_path / "lora.safetensors")
    save_file(sd, str(tmp_path / "tagged.safetensors"), {"ltx_trainer_base_family": "ltx2",
                                                          "ltx_trainer_base_version": "2.3"})  # fmt: skip
    with pytest.raises(ModelLoadError, match=r"tagged\.safetensors: a LoRA for ltx2 2\.3 \(header\), the base"):
        conversion.merge(tmp_path / "tagged.safetensors", single, tmp_path / "out.safetensors")
    wide = {k: torch.zeros(v.shape[0], v.shape[1] * 2) if "lora_A" in k else v for k, v in sd.items()}
    save_file(wide, str(tmp_path / "wide.safetensors"))
    with pytest.raises(ModelLoadError, match=r"wide\.safetensors: 7 LoRA module\(s\) do not fit the base"):
        conversion.merge(tmp_path / "wide.safetensors", single, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


# ---- the command line ------------------------------------------------------------------------------------------------
def test_convert_and_info_commands(tiny_ltx2, tmp_path):
    write_foreign("musubi", tiny_ltx2["2.3"]["single_file"], tmp_path / "m.safetensors")
    out = tmp_path / "ours.safetensors"
    done = invoke(app, ["convert", tmp_path / "m.safetensors", out, "--to", "comfyui"])
    assert done.exit_code == 0 and "(musubi) ->" in done.output and out.is_file()
    again = invoke(app, ["convert", tmp_path / "m.safetensors", out, "--to", "official"])
    assert again.exit_code == 2 and "already exists; pass --overwrite" in again.output
    assert invoke(app, ["convert", tmp_path / "m.safetensors", out, "--to", "official", "--overwrite"]).exit_code == 0
    assert invoke(app, ["convert", tmp_path / "m.safetensors", out, "--to", "onnx", "--overwrite"]).exit_code == 2
    missing = invoke(app, ["convert", tmp_path / "nope.safetensors", tmp_path / "x", "--to", "official"])
    assert missing.exit_code == 4 and "nope.safetensors: no such file or folder" in missing.output
    shown = invoke(app, ["info", out])
    assert shown.exit_code == 0 and "official / ComfyUI" in shown.output and "ltx2 2.0 or 2.3" in shown.output
    model = invoke(app, ["info", tiny_ltx2["2.3"]["single_file"]])
    assert model.exit_code == 0 and "official single file" in model.output and "2.3" in model.output
    merged = invoke(app, ["convert", out, tmp_path / "merged.safetensors", "--merge", tiny_ltx2["2.3"]["single_file"]])
    assert merged.exit_code == 0 and (tmp_path / "merged.safetensors").is_file()
