"""Video VAE format: official LTX-2 single-file ``vae.*`` <-> diffusers ``AutoencoderKLLTX2Video``.

The pure tests need nothing but the project. The oracle tests compare against the official ltx-core code, run by
``tests/oracle_scripts/video_vae_ref.py`` in the oracle venv (``LTX_ORACLE_PYTHON``,
set by ``make test``; tools in ``LTX_ORACLE_DIR``, default ``../shared/oracle``).
"""

import copy
import json
import subprocess
from pathlib import Path

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKLLTX2Video
from safetensors.torch import load_file, save_file

from conftest import find_oracle
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats import ltx2_video_vae as vv
from ltx_trainer.models.formats.common import load_state_dict_strict

REPO = Path(__file__).resolve().parents[1]
REF_SCRIPT = REPO / "tests" / "oracle_scripts" / "video_vae_ref.py"
MAX_REL_ERR = 1e-5


def _res(n: int) -> list:
    return ["res_x", {"num_layers": n}]


def _down(name: str, multiplier: int) -> list:
    return [name, {"multiplier": multiplier}]


# the "vae" metadata section of the oracle's tiny checkpoints (make_tiny_checkpoint.py): no res_x between compresses
TINY = {
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "patch_size": 4, "norm_layer": "pixel_norm", "latent_log_var": "uniform", "causal_decoder": False,
    "timestep_conditioning": True, "decoder_base_channels": 8,
    "encoder_blocks": [_down("compress_space_res", 1), _down("compress_time_res", 1), _down("compress_all_res", 1),
                       _down("compress_all_res", 1), _res(1)],
    "decoder_blocks": [["compress_all", {"multiplier": 2, "residual": True}]] * 3
                      + [["res_x", {"num_layers": 1, "inject_noise": False}]],
}  # fmt: skip
# the real LTX-2.3 22B layout (shared/spec/configs/ltx-2.3-22b.metadata-config.json)
REAL_22B = {
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "encoder_blocks": [_res(4), _down("compress_space_res", 2), _res(6), _down("compress_time_res", 2), _res(4),
                       _down("compress_all_res", 2), _res(2), _down("compress_all_res", 1), _res(2)],
    "decoder_blocks": [_res(4), _down("compress_space", 2), _res(6), _down("compress_time", 2), _res(4),
                       _down("compress_all", 1), _res(2), _down("compress_all", 2), _res(2)],
    "scaling_factor": 1.0, "norm_layer": "pixel_norm", "patch_size": 4, "latent_log_var": "uniform",
    "use_quant_conv": False, "causal_decoder": False, "timestep_conditioning": False,
    "normalize_latent_channels": False, "encoder_base_channels": 128, "decoder_base_channels": 128,
    "spatial_padding_mode": "zeros",
}  # fmt: skip
# the real layout at small width, plus a causal decoder and an int-form res_x
MID = {
    "latent_channels": 16, "timestep_conditioning": False, "causal_decoder": True, "spatial_padding_mode": "zeros",
    "decoder_base_channels": 16,
    "encoder_blocks": [_res(1), _down("compress_space_res", 2), _res(1), _down("compress_time_res", 2), _res(1),
                       _down("compress_all_res", 2), _res(1), _down("compress_all_res", 1), _res(1)],
    "decoder_blocks": [_res(1), _down("compress_space", 2), _res(1), _down("compress_time", 2), ["res_x", 2],
                       _down("compress_all", 1), _res(1), ["compress_all", {"multiplier": 2, "residual": True}],
                       _res(1)],
}  # fmt: skip
# corner cases: consecutive res_x (blocks without a resampler), a plain strided encoder conv, no encoder/decoder mid
# res_x, decoder blocks without resnets (diffusers-only time embedders), reflect padding everywhere, patch size 2
ODD = {
    "latent_channels": 8, "patch_size": 2, "timestep_conditioning": True, "spatial_padding_mode": "reflect",
    "decoder_base_channels": 4,
    "encoder_blocks": [_res(1), _res(1), ["compress_all", {}], _down("compress_space_res", 2),
                       _down("compress_all_res", 2)],
    "decoder_blocks": [["compress_all", {"multiplier": 2, "residual": True}], _res(1), _res(1),
                       _down("compress_space", 2), _down("compress_time", 1)],
}  # fmt: skip
SMALL_LAYOUTS = {"tiny": TINY, "mid": MID, "odd": ODD}


def _build(official: dict, seed: int = 0) -> AutoencoderKLLTX2Video:
    """A random diffusers VAE for ``official``, with non-trivial statistics and modulation tables."""
    torch.manual_seed(seed)
    vae = AutoencoderKLLTX2Video(**vv.diffusers_config(official)).eval()
    with torch.no_grad():
        for name, param in vae.named_parameters():
            if "scale_shift_table" in name:
                param.normal_(0, 0.1)
        vae.latents_mean.normal_()
        vae.latents_std.uniform_(0.5, 2.0)
    return vae


def _load(sd: dict, official: dict, source: str) -> AutoencoderKLLTX2Video:
    with init_empty_weights():
        vae = AutoencoderKLLTX2Video(**vv.diffusers_config(official))
    load_state_dict_strict(vae, vv.to_diffusers(sd, official), source, "video VAE")
    return vae.eval()


# ---------------------------------------------------------------------------------------------------------------
# pure tests
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("official", [TINY, REAL_22B, MID, ODD], ids=["tiny", "22b", "mid", "odd"])
def test_config_round_trip(official):
    cfg = vv.diffusers_config(official)
    back = vv.official_config(cfg)
    assert vv.diffusers_config(back) == cfg
    assert vv.diffusers_config({"vae": official}) == cfg  # the whole metadata config is accepted too
    assert (cfg["spatial_compression_ratio"], cfg["temporal_compression_ratio"]) == (
        (16, 4) if official is ODD else (32, 8)
    )


def test_real_22b_config_fields_and_parameter_counts():
    cfg = vv.diffusers_config(REAL_22B)
    assert cfg["block_out_channels"] == (256, 512, 1024, 1024)
    assert cfg["layers_per_block"] == (4, 6, 4, 2, 2)
    assert cfg["decoder_block_out_channels"] == (256, 512, 512, 1024)
    assert cfg["upsample_type"] == ("spatiotemporal", "spatiotemporal", "temporal", "spatial")
    assert cfg["upsample_factor"] == (2, 2, 1, 2)
    assert cfg["upsample_residual"] == (False,) * 4
    assert not cfg["timestep_conditioning"]
    assert cfg["decoder_spatial_padding_mode"] == "zeros"
    with init_empty_weights():
        vae = AutoencoderKLLTX2Video(**cfg)
    # ltx-core's VideoEncoder / VideoDecoder built from the same config on the meta device have exactly these counts
    assert sum(p.numel() for p in vae.encoder.parameters()) == 318_936_897
    assert sum(p.numel() for p in vae.decoder.parameters()) == 407_169_072
    official = vv.to_official(vae.state_dict(), REAL_22B)
    assert len([k for k in official if k.startswith("vae.encoder.")]) == 84
    assert "vae.decoder.up_blocks.8.res_blocks.3.conv2.conv.weight" in official  # the first res_x(4), built last
    assert tuple(official["vae.decoder.up_blocks.7.conv.conv.weight"].shape) == (512, 256, 3, 3, 3)  # compress_space


@pytest.mark.parametrize("name", list(SMALL_LAYOUTS))
def test_state_dict_round_trip(name):
    official = SMALL_LAYOUTS[name]
    vae = _build(official)
    file_sd = vv.to_official(vae.state_dict(), official)
    assert all(k.startswith("vae.") for k in file_sd)
    again = vv.to_official(vv.to_diffusers(file_sd, official), official)
    assert again.keys() == file_sd.keys()
    assert all(again[k] is file_sd[k] for k in file_sd)
    reloaded = _load(file_sd, official, name)
    pixels = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(vv.encode(reloaded, pixels), vv.encode(vae, pixels))


def test_statistics_and_foreign_keys():
    vae = _build(TINY)
    file_sd = vv.to_official(vae.state_dict(), TINY)
    stats = sorted(k for k in file_sd if "per_channel_statistics" in k)
    assert stats == ["vae.per_channel_statistics.mean-of-means", "vae.per_channel_statistics.std-of-means"]
    extra = {f"vae.per_channel_statistics.{k}": torch.zeros(128) for k in ("channel", "mean-of-stds")}
    other = {"audio_vae.encoder.conv_in.conv.weight": torch.zeros(1)}
    sd = vv.to_diffusers({**file_sd, **extra, **other}, TINY)
    assert sd.keys() == vae.state_dict().keys()
    assert torch.equal(sd["latents_mean"], vae.latents_mean)
    with pytest.raises(ModelLoadError, match=r"vae\.encoder\.down_blocks\.9\.conv\.conv\.weight"):
        vv.to_diffusers({**file_sd, "vae.encoder.down_blocks.9.conv.conv.weight": torch.zeros(1)}, TINY)
    with pytest.raises(ModelLoadError, match=r"encoder\.extra"):
        vv.to_official({**vae.state_dict(), "encoder.extra": torch.zeros(1)}, TINY)


def _changed(**changes) -> dict:
    official = copy.deepcopy(TINY)
    official.update(changes)
    return official


@pytest.mark.parametrize(
    ("official", "message"),
    [
        (_changed(norm_layer="group_norm"), "norm_layer"),
        (_changed(latent_log_var="per_channel"), "latent_log_var"),
        (_changed(dims=2), "dims"),
        (_changed(encoder_blocks=[["res_x_y", {"multiplier": 2}], *TINY["encoder_blocks"]]), "res_x_y"),
        (_changed(encoder_blocks=[["compress_time", {}], *TINY["encoder_blocks"]]), "compress_time"),
        (_changed(decoder_blocks=[*TINY["decoder_blocks"], ["attn_res_x", {"num_layers": 1}]]), "attn_res_x"),
        (_changed(encoder_blocks=[]), "no encoder_blocks"),
        ({}, "no encoder_blocks"),
    ],
    ids=["group_norm", "log_var", "dims", "res_x_y", "plain_compress_time", "attn_res_x", "empty", "no_config"],
)
def test_unrepresentable_layouts_raise(official, message):
    with pytest.raises(ModelLoadError, match=message):
        vv.diffusers_config(official)


def test_official_config_rejects_what_ltx_core_cannot_build():
    cfg = vv.diffusers_config(TINY)
    with pytest.raises(ModelLoadError, match="patch_size_t"):
        vv.official_config({**cfg, "patch_size_t": 2})
    with pytest.raises(ModelLoadError, match="padding"):
        vv.official_config({**cfg, "encoder_spatial_padding_mode": "reflect", "decoder_spatial_padding_mode": "zeros"})
    with pytest.raises(ModelLoadError, match="residual"):
        vv.official_config({**vv.diffusers_config(REAL_22B), "upsample_residual": True})
    assert "spatial_padding_mode" not in vv.official_config(cfg)  # zeros/reflect are ltx-core's own defaults


def test_decode_noise_and_timestep():
    vae = _build(TINY)
    latents = torch.randn(1, 128, 2, 2, 2)
    with torch.no_grad():

        def run(seed: int, **kwargs) -> torch.Tensor:
            return vv.decode(vae, latents, generator=torch.Generator().manual_seed(seed), **kwargs)

        default, clean = run(1), run(1, noise_scale=0.0)
        assert default.shape == (1, 3, 9, 64, 64)
        assert torch.equal(default, run(1, timestep=vv.DECODE_TIMESTEP))
        assert not torch.equal(default, run(2))  # ltx-core blends seeded noise into the latent
        assert torch.equal(clean, run(2, noise_scale=0.0))
        assert not torch.equal(clean, run(1, noise_scale=0.0, timestep=0.5))
        pixels = torch.rand(1, 3, 10, 64, 64) * 2 - 1
        assert torch.equal(vv.encode(vae, pixels), vv.encode(vae, pixels[:, :, :9]))  # cropped to 1 + 8k frames
    with pytest.raises(ValueError, match="multiples of 32"):
        vv.encode(vae, torch.zeros(1, 3, 9, 64, 48))


# ---------------------------------------------------------------------------------------------------------------
# oracle tests (official ltx-core 1.0.0)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def oracle_python() -> Path:
    found = find_oracle()
    if found is None:
        pytest.skip("oracle venv absent: run bash ../shared/oracle/setup.sh")
    return found.python


def _oracle(python: Path, *args: str) -> str:
    result = subprocess.run([str(python), *args], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _reference(python: Path, jobs: dict[Path, Path], load_check: bool = False) -> str:
    """ltx-core encodes/decodes the seeded cases of ``video_vae_ref.py`` for each ``checkpoint -> out`` job."""
    args = [str(REF_SCRIPT), "--oracle-dir", str(find_oracle().dir), *(["--load-check"] if load_check else [])]
    for checkpoint, out in jobs.items():
        args += ["--job", str(checkpoint), str(out)]
    return _oracle(python, *args)


@pytest.fixture(scope="session", params=["2.0", "2.3"])
def tiny_checkpoint(request, oracle_python, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(f"tiny-{request.param}")
    maker = str(find_oracle().dir / "make_tiny_checkpoint.py")
    _oracle(oracle_python, maker, "--out", str(out), "--variant", request.param, "--lora-rank", "0", "--no-verify")
    return out / f"ltx-tiny-{request.param}.safetensors"


def _assert_matches_reference(vae: AutoencoderKLLTX2Video, out: Path) -> None:
    """Compare every encode/decode case in the reference file ``out`` with ``vae`` in fp32."""
    ref = torch.load(out, weights_only=True)
    meta = json.loads(ref["meta"])
    assert (meta["decode_timestep"], meta["decode_noise_scale"]) == (vv.DECODE_TIMESTEP, vv.DECODE_NOISE_SCALE)
    results = {}
    with torch.no_grad():
        for case in ("enc_a", "enc_b"):
            results[case] = vv.encode(vae, ref[f"{case}_in"])
        for case, (_, timestep, seed) in meta["decode_cases"].items():
            t = None if timestep is None else torch.tensor(timestep)
            results[case] = vv.decode(vae, ref[f"{case}_in"], t, torch.Generator().manual_seed(seed))
    for case, got in results.items():
        want = ref[f"{case}_out"]
        assert got.shape == want.shape, case
        rel = (got - want).abs().max() / want.abs().max()
        assert rel <= MAX_REL_ERR, f"{case}: max relative error {rel:.3e}"


@pytest.mark.oracle
def test_official_tiny_checkpoint_matches_ltx_core(tiny_checkpoint, oracle_python, tmp_path):
    from safetensors import safe_open

    with safe_open(tiny_checkpoint, "pt") as f:
        official = json.loads(f.metadata()["config"])["vae"]
    sd = {k: t.float() for k, t in load_file(tiny_checkpoint).items() if k.startswith("vae.")}
    vae = _load(sd, official, str(tiny_checkpoint))
    _reference(oracle_python, {tiny_checkpoint: tmp_path / "ref.pt"})
    _assert_matches_reference(vae, tmp_path / "ref.pt")


@pytest.fixture(scope="session")
def written_checkpoints(oracle_python, tmp_path_factory) -> dict[str, tuple[AutoencoderKLLTX2Video, Path, str]]:
    """Random diffusers VAEs of every small layout, written with ``to_official`` + ``official_config`` and run
    through load_check --strict and ltx-core in one oracle process: name -> (vae, reference file, oracle log)."""
    root = tmp_path_factory.mktemp("written-vae")
    vaes, jobs = {}, {}
    for name, layout in SMALL_LAYOUTS.items():
        vae = _build(layout, seed=1)
        official = vv.official_config(vae.config)
        path = root / f"{name}.safetensors"
        tensors = {k: t.contiguous() for k, t in vv.to_official(vae.state_dict(), official).items()}
        save_file(tensors, path, metadata={"config": json.dumps({"vae": official}), "model_version": "2.3.0"})
        vaes[name], jobs[path] = vae, root / f"{name}.pt"
    log = _reference(oracle_python, jobs, load_check=True)
    return {name: (vae, root / f"{name}.pt", log) for name, vae in vaes.items()}


@pytest.mark.oracle
@pytest.mark.parametrize("name", list(SMALL_LAYOUTS))
def test_written_checkpoint_loads_in_ltx_core(name, written_checkpoints):
    vae, reference, log = written_checkpoints[name]
    # load_check --strict per file: every key consumed, every tensor bit-equal; other components are just "absent"
    assert log.count("RESULT: PASS (2/2 components OK)") == len(SMALL_LAYOUTS)
    _assert_matches_reference(vae, reference)
