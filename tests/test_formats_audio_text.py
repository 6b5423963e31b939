"""Audio VAE, vocoder and text connectors: official LTX-2 single-file layout <-> diffusers, and the runtime helpers.

The pure tests need nothing but the project. The oracle tests compare against the official ltx-core code, run by
``tests/oracle_scripts/audio_text_ref.py`` in the oracle venv (``LTX_ORACLE_PYTHON``,
set by ``make test``; tools in ``LTX_ORACLE_DIR``, default ``../shared/oracle``): one process loads
the oracle's tiny 2.0 / 2.3 checkpoints and two files we wrote from random diffusers components, checks that ours load
through ltx-core's real path (load_check, --strict), and saves ltx-core's outputs on seeded inputs.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLLTX2Audio
from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from conftest import find_oracle
from ltx_trainer.models.formats import ltx2_audio as A
from ltx_trainer.models.formats import ltx2_text as T
from ltx_trainer.models.formats.common import load_state_dict_strict
from ltx_trainer.models.tiny import AMP_VOCODER

REPO = Path(__file__).resolve().parents[1]
REF_SCRIPT = REPO / "tests" / "oracle_scripts" / "audio_text_ref.py"
_REAL_23_PATH = REPO.parent / "shared" / "spec" / "configs" / "ltx-2.3-22b.metadata-config.json"
REAL_23 = json.loads(_REAL_23_PATH.read_text()) if _REAL_23_PATH.is_file() else None
MAX_REL_ERR = 1e-5
V1_WEIGHT = "text_embedding_projection.aggregate_embed.weight"
VARIANTS = ("2.0", "2.3")
GEMMA_TINY = {"text_config": {"hidden_size": 64, "num_hidden_layers": 2}}  # the oracle's tiny Gemma

# the audio_vae / vocoder / transformer sections of the oracle's tiny checkpoints (make_tiny_checkpoint.py)
TINY_AUDIO_VAE = {
    "model": {"params": {"sampling_rate": 16000, "ddconfig": {
        "ch": 128, "out_ch": 2, "in_channels": 2, "ch_mult": [1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [],
        "resolution": 256, "z_channels": 8, "double_z": True, "norm_type": "pixel", "causality_axis": "height",
        "dropout": 0.0, "mid_block_add_attention": True, "attn_type": "vanilla", "mel_bins": 64}}},
    "preprocessing": {"stft": {"filter_length": 1024, "hop_length": 160, "causal": True},
                      "mel": {"n_mel_channels": 64}},
}  # fmt: skip
TINY_VOCODERS = {
    "2.0": {"resblock": "1", "stereo": True, "upsample_rates": [15, 16], "upsample_kernel_sizes": [31, 32],
            "upsample_initial_channel": 32, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]],
            "output_sampling_rate": 24000},
    "2.3": {"vocoder": {**AMP_VOCODER, "upsample_rates": [10, 16], "upsample_kernel_sizes": [20, 32]},
            "bwe": {**AMP_VOCODER, "upsample_rates": [15, 16], "upsample_kernel_sizes": [31, 32],
                    "input_sampling_rate": 16000, "output_sampling_rate": 48000, "n_fft": 512, "hop_length": 80,
                    "num_mels": 64}},
}  # fmt: skip
TINY_CONNECTORS = {
    "2.0": {"connector_num_layers": 1, "caption_channels": 64, "rope_type": "interleaved",
            "frequencies_precision": "float32", "connector_num_attention_heads": 2, "connector_attention_head_dim": 32},
    "2.3": {"connector_num_layers": 1, "rope_type": "split", "frequencies_precision": "float64",
            "num_attention_heads": 2, "attention_head_dim": 16, "audio_num_attention_heads": 2,
            "audio_attention_head_dim": 8, **T.V2_KEYS, "connector_apply_gated_attention": True,
            "connector_num_attention_heads": 2, "connector_attention_head_dim": 16,
            "audio_connector_num_attention_heads": 2, "audio_connector_attention_head_dim": 8},
}  # fmt: skip

# Random diffusers components we write back in the official format (non-default values on purpose: attention at one
# resolution, width causality, a BWE first stage whose length isn't a multiple of the STFT hop, unequal connectors).
_VAE = {
    "base_channels": 128,
    "output_channels": 2,
    "num_res_blocks": 1,
    "in_channels": 2,
    "resolution": 256,
    "latent_channels": 8,
    "norm_type": "pixel",
    "dropout": 0.0,
    "sample_rate": 16000,
    "mel_hop_length": 160,
    "is_causal": True,
    "mel_bins": 64,
    "double_z": True,
}
_GENERATOR = {
    "in_channels": 128,
    "out_channels": 2,
    "leaky_relu_negative_slope": 0.1,
    "antialias_ratio": 2,
    "antialias_kernel_size": 12,
}
_CONNECTORS = {
    "caption_channels": 64,
    "text_proj_in_factor": 3,
    "video_connector_num_learnable_registers": 128,
    "audio_connector_num_learnable_registers": 128,
    "connector_rope_base_seq_len": 4096,
    "rope_theta": 10000.0,
    "causal_temporal_positioning": False,
}
WRITTEN = {
    "2.0": {
        "audio_vae": {**_VAE, "ch_mult": (1, 1, 2), "attn_resolutions": (128,), "causality_axis": "height",
                      "mid_block_add_attention": True},
        "vocoder": {**_GENERATOR, "hidden_channels": 32, "upsample_kernel_sizes": [16, 12], "upsample_factors": [8, 6],
                    "resnet_kernel_sizes": [3, 5], "resnet_dilations": [[1, 3, 5], [1, 2, 4]], "act_fn": "leaky_relu",
                    "antialias": False, "final_act_fn": "tanh", "final_bias": True, "output_sampling_rate": 4800},
        "connectors": {**_CONNECTORS, "video_connector_num_attention_heads": 4,
                       "video_connector_attention_head_dim": 16, "video_connector_num_layers": 2,
                       "video_gated_attn": False,
                       "audio_connector_num_attention_heads": 2, "audio_connector_attention_head_dim": 32,
                       "audio_connector_num_layers": 1, "audio_gated_attn": False, "rope_double_precision": False,
                       "rope_type": "interleaved", "per_modality_projections": False, "video_hidden_dim": 64,
                       "audio_hidden_dim": 64, "proj_bias": False},
    },
    "2.3": {
        "audio_vae": {**_VAE, "ch_mult": (1, 1, 1), "attn_resolutions": (), "causality_axis": "width",
                      "mid_block_add_attention": False},
        "vocoder": {**_GENERATOR, "hidden_channels": 32, "upsample_kernel_sizes": [15, 11], "upsample_factors": [7, 5],
                    "resnet_kernel_sizes": [3], "resnet_dilations": [[1, 3, 5]], "act_fn": "snakebeta",
                    "antialias": True, "final_act_fn": "tanh", "final_bias": True,
                    **{f"bwe_{k}": v for k, v in _GENERATOR.items()}, "bwe_hidden_channels": 32,
                    "bwe_upsample_kernel_sizes": [31, 32], "bwe_upsample_factors": [15, 16],
                    "bwe_resnet_kernel_sizes": [3], "bwe_resnet_dilations": [[1, 3, 5]], "bwe_act_fn": "snakebeta",
                    "bwe_antialias": True, "bwe_final_act_fn": None, "bwe_final_bias": False, "filter_length": 512,
                    "hop_length": 80, "window_length": 512, "num_mel_channels": 64, "input_sampling_rate": 3500,
                    "output_sampling_rate": 10500},
        "connectors": {**_CONNECTORS, "video_connector_num_attention_heads": 2,
                       "video_connector_attention_head_dim": 16, "video_connector_num_layers": 2,
                       "video_gated_attn": True,
                       "audio_connector_num_attention_heads": 4, "audio_connector_attention_head_dim": 4,
                       "audio_connector_num_layers": 1, "audio_gated_attn": True, "rope_double_precision": True,
                       "rope_type": "split", "per_modality_projections": True, "video_hidden_dim": 32,
                       "audio_hidden_dim": 16, "proj_bias": True},
    },
}  # fmt: skip


def _json(x: object) -> object:
    return json.loads(json.dumps(x))  # tuples -> lists, for comparing configs


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
    return float((got.double() - want.double()).norm() / want.double().norm().clamp_min(1e-30))


def _assert_close(got: torch.Tensor, want: torch.Tensor, what: str, tol: float = MAX_REL_ERR) -> None:
    rel = _rel_err(got, want)
    assert rel <= tol, f"{what}: relative error {rel:.3e} > {tol:.0e} (max abs {(got - want).abs().max():.3e})"


# ---------------------------------------------------------------------------------------------------------------
# pure tests
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "official", [TINY_AUDIO_VAE, {}, REAL_23 and REAL_23["audio_vae"]], ids=["tiny", "empty", "real23"]
)
def test_audio_vae_config_round_trip(official):
    if official is None:
        pytest.skip("no shared/spec/configs/ltx-2.3-22b.metadata-config.json")
    cfg = A.audio_vae_diffusers_config(official)
    back = A.audio_vae_official_config(cfg, n_fft=A.audio_processor_params(official)["n_fft"])
    assert A.audio_vae_diffusers_config(back) == cfg
    assert A.audio_processor_params(back) == A.audio_processor_params(official)
    if not official:  # ltx-core's defaults, not diffusers': 3-level (1,2,4), mid attention on, 1024-point STFT
        assert cfg["mid_block_add_attention"] is True and cfg["attn_resolutions"] == (8, 16, 32)
        assert cfg["mel_bins"] is None and A.audio_processor_params({})["n_fft"] == 1024


@pytest.mark.parametrize("variant", VARIANTS)
def test_vocoder_config_round_trip(variant):
    cfg = A.vocoder_diffusers_config(TINY_VOCODERS[variant])
    assert A.vocoder_diffusers_config(A.vocoder_official_config(cfg)) == cfg
    assert A.vocoder_class(TINY_VOCODERS[variant]) is (LTX2VocoderWithBWE if variant == "2.3" else LTX2Vocoder)
    if variant == "2.3":  # ltx-core clamps the first stage (use_tanh_at_final false) and never the BWE generator
        assert (cfg["final_act_fn"], cfg["bwe_final_act_fn"], cfg["final_bias"]) == ("clamp", None, False)
    assert A.vocoder_diffusers_config(A.vocoder_official_config(WRITTEN[variant]["vocoder"])) == _json(
        WRITTEN[variant]["vocoder"]
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_connectors_config_round_trip(variant):
    cfg = T.connectors_diffusers_config(TINY_CONNECTORS[variant], gemma_config=GEMMA_TINY)
    official = T.connectors_official_config(cfg, TINY_CONNECTORS[variant])
    assert T.connectors_diffusers_config({**TINY_CONNECTORS[variant], **official}, gemma_config=GEMMA_TINY) == cfg
    written = WRITTEN[variant]["connectors"]
    alone = T.connectors_official_config(written)  # V2 also names the transformer widths it needs
    assert T.connectors_diffusers_config(alone, gemma_config=GEMMA_TINY) == written
    assert ("audio_connector_num_layers" in alone) and ("caption_proj_before_connector" in alone) == (variant == "2.3")


def test_full_size_configs_match_reference_parameter_counts():
    """Built on meta from ltx-core's defaults (2.0) and the real 2.3 metadata: the counts of spec §4."""
    counts = {}
    with torch.device("meta"):
        counts["connectors_20"] = LTX2TextConnectors(**T.connectors_diffusers_config({"caption_channels": 3840}))
        counts["vae_20"] = AutoencoderKLLTX2Audio(**A.audio_vae_diffusers_config({}))
        counts["vocoder_20"] = LTX2Vocoder(**A.vocoder_diffusers_config({"resblock": "1", "stereo": True}))
        if REAL_23 is not None:
            counts["connectors_23"] = LTX2TextConnectors(**T.connectors_diffusers_config(REAL_23["transformer"]))
            counts["vae_23"] = AutoencoderKLLTX2Audio(**A.audio_vae_diffusers_config(REAL_23["audio_vae"]))
            counts["vocoder_23"] = LTX2VocoderWithBWE(**A.vocoder_diffusers_config(REAL_23["vocoder"]))
    n = {k: sum(p.numel() for p in m.parameters()) for k, m in counts.items()}
    expected = {
        "connectors_20": 1.431e9,
        "vae_20": 55.35e6,
        "vocoder_20": 55.6e6,
        "connectors_23": 3.172e9,
        "vae_23": 53.25e6,
        "vocoder_23": 0.1285e9,
    }
    for k, v in n.items():
        assert abs(v - expected[k]) / expected[k] < 2e-3, (k, v)
    if REAL_23 is not None:
        c = T.connectors_diffusers_config(REAL_23["transformer"])
        assert (c["video_hidden_dim"], c["audio_hidden_dim"], c["connector_rope_base_seq_len"]) == (4096, 2048, 4096)
        assert c["rope_double_precision"] and c["video_gated_attn"] and c["video_connector_num_layers"] == 8


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_round_trip(variant):
    torch.manual_seed(0)
    spec = WRITTEN[variant]
    vocoder_official = A.vocoder_official_config(spec["vocoder"])
    models = {
        "audio_vae": (AutoencoderKLLTX2Audio(**spec["audio_vae"]), A.audio_vae_to_official, A.audio_vae_to_diffusers),
        "vocoder": (
            A.vocoder_class(vocoder_official)(**spec["vocoder"]),
            lambda sd: A.vocoder_to_official(sd, vocoder_official),
            lambda sd: A.vocoder_to_diffusers(sd, vocoder_official),
        ),
        "connectors": (LTX2TextConnectors(**spec["connectors"]), T.connectors_to_official, T.connectors_to_diffusers),
    }
    file_keys = set()
    for model, to_official, to_diffusers in models.values():
        sd = model.state_dict()
        official = to_official(sd)
        file_keys |= set(official)
        back = to_diffusers(official)
        assert back.keys() == sd.keys() and all(back[k] is sd[k] for k in sd)
    # the three never claim each other's keys
    everything = {k: torch.zeros(1) for k in file_keys}
    assert sum(len(to_d(everything)) for _, _, to_d in models.values()) == len(file_keys)
    assert {"audio_vae.per_channel_statistics.mean-of-means", "audio_vae.encoder.conv_in.conv.weight"} <= file_keys
    if variant == "2.3":
        assert {
            "vocoder.vocoder.conv_pre.weight",
            "vocoder.vocoder.resblocks.0.acts1.0.downsample.lowpass.filter",
            "vocoder.bwe_generator.act_post.upsample.filter",
            "vocoder.mel_stft.stft_fn.forward_basis",
            "text_embedding_projection.video_aggregate_embed.bias",
            "model.diffusion_model.audio_embeddings_connector.transformer_1d_blocks.0.attn1.to_gate_logits.weight",
            "model.diffusion_model.video_embeddings_connector.learnable_registers",
        } <= file_keys
    else:
        assert {
            "vocoder.conv_post.bias",
            "vocoder.ups.1.weight",
            "text_embedding_projection.aggregate_embed.weight",
            "model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.1.attn1.k_norm.weight",
        } <= file_keys
    with pytest.raises(ValueError, match="bandwidth extension"):
        A.vocoder_to_diffusers(
            A.vocoder_to_official(models["vocoder"][0].state_dict()),
            TINY_VOCODERS["2.0" if variant == "2.3" else "2.3"],
        )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: A.audio_vae_diffusers_config({"model": {"params": {"ddconfig": {"causality_axis": None}}}}), "none"),
        (lambda: A.audio_vae_diffusers_config({"model": {"params": {"ddconfig": {"attn_type": "linear"}}}}), "attn"),
        (lambda: A.vocoder_diffusers_config({"resblock": "2", "stereo": True}), "resblock"),
        (lambda: A.vocoder_diffusers_config({"resblock": "1"}), "stereo"),
        (lambda: A.vocoder_diffusers_config({"vocoder": AMP_VOCODER, "bwe": AMP_VOCODER}), "no default"),
        (lambda: A.vocoder_official_config({**WRITTEN["2.0"]["vocoder"], "final_act_fn": None}), "final_act_fn"),
        (lambda: T.connectors_diffusers_config({"caption_channels": 64, "connector_num_learnable_registers": 64}),
         "registers"),
        (lambda: T.connectors_diffusers_config({"caption_proj_before_connector": True}), "neither"),
        (lambda: T.connectors_diffusers_config(TINY_CONNECTORS["2.3"], {V1_WEIGHT: torch.zeros(64, 192)}), "V1"),
        (lambda: T.connectors_official_config({**WRITTEN["2.3"]["connectors"], "rope_theta": 500.0}), "rope_theta"),
        (lambda: T.connectors_official_config(WRITTEN["2.3"]["connectors"], {"rope_type": "interleaved"}), "rope_type"),
    ],
)  # fmt: skip
def test_unrepresentable_configs_raise(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_text_context_is_per_sample_with_any_padding():
    """Batches with different left paddings give each sample's own result (ltx-core itself only runs batch 1)."""
    torch.manual_seed(0)
    connectors = LTX2TextConnectors(**WRITTEN["2.3"]["connectors"]).eval()
    hidden = torch.randn(2, 256, 64, 3)
    mask = torch.zeros(2, 256, dtype=torch.int64)
    mask[0, -20:], mask[1, -256:] = 1, 1
    with torch.no_grad():
        feats = T.text_features(connectors, hidden, mask)
        batched = T.text_context(connectors, *feats, mask)
        forward = connectors(hidden.flatten(2), mask)
        for i in range(2):
            one = T.text_context(
                connectors,
                *T.text_features(connectors, tuple(hidden[i : i + 1].unbind(-1)), mask[i : i + 1]),
                mask[i : i + 1],
            )
            for a, b in zip(one, batched, strict=True):
                torch.testing.assert_close(a, b[i : i + 1], rtol=1e-5, atol=1e-6)
    for a, b in zip(forward, batched, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(feats[0][0, :-20], torch.zeros_like(feats[0][0, :-20]).add(connectors.video_text_proj_in.bias))


def test_waveform_to_mel_shapes_and_mono():
    g = torch.Generator().manual_seed(0)
    stereo = torch.randn(1, 2, 22050, generator=g) * 0.1
    mel = A.waveform_to_mel(stereo, 22050)
    assert mel.shape == (1, 2, 101, 64) and mel.dtype == torch.float32  # 16000 samples // 160 + 1 frames
    mono = A.waveform_to_mel(stereo[:, :1], 22050)
    assert torch.equal(mono[:, 0], mel[:, 0]) and torch.equal(mono[:, 1], mel[:, 0])
    assert torch.equal(A.waveform_to_mel(stereo[0], 22050), mel)
    assert A.waveform_to_mel(stereo.to(torch.bfloat16), 22050).dtype == torch.bfloat16
    assert torch.equal(A.resample(stereo, 16000, 16000), stereo)
    with pytest.raises(ValueError, match="downmix"):
        A.waveform_to_mel(torch.zeros(1, 6, 1000), 48000)


# ---------------------------------------------------------------------------------------------------------------
# oracle tests (official ltx-core 1.0.0)
# ---------------------------------------------------------------------------------------------------------------
def _random_components(variant: str) -> dict[str, torch.nn.Module]:
    spec = WRITTEN[variant]
    torch.manual_seed(int(variant[-1]))
    vae = AutoencoderKLLTX2Audio(**spec["audio_vae"]).eval()
    vocoder = A.vocoder_class(A.vocoder_official_config(spec["vocoder"]))(**spec["vocoder"]).eval()
    connectors = LTX2TextConnectors(**spec["connectors"]).eval()
    with torch.no_grad():
        vae.latents_mean.normal_(0, 0.1)
        vae.latents_std.uniform_(0.5, 1.5)
        for name, buf in vocoder.named_buffers():
            if name.startswith("mel_stft."):  # zeros in a fresh model; real files carry the training-time bases
                buf.copy_(torch.randn(buf.shape).abs() * 0.02)
        for name, p in vocoder.named_parameters():
            if name.endswith(("alpha", "beta")):
                p.normal_(0, 0.1)
    return {"audio_vae": vae, "vocoder": vocoder, "connectors": connectors}


def _write_official(path: Path, variant: str, comps: dict[str, torch.nn.Module]) -> None:
    vocoder_official = A.vocoder_official_config(dict(comps["vocoder"].config))
    sd = {
        **A.audio_vae_to_official(comps["audio_vae"].state_dict()),
        **A.vocoder_to_official(comps["vocoder"].state_dict(), vocoder_official),
        **T.connectors_to_official(comps["connectors"].state_dict()),
    }
    config = {
        "transformer": T.connectors_official_config(dict(comps["connectors"].config)),
        "audio_vae": A.audio_vae_official_config(dict(comps["audio_vae"].config)),
        "vocoder": vocoder_official,
    }
    save_file(
        {k: v.contiguous() for k, v in sd.items()},
        path,
        metadata={"config": json.dumps(config), "model_version": f"{variant}.0"},
    )


def _load_ours(checkpoint: Path, gemma_config: dict) -> dict[str, torch.nn.Module]:
    """What the model layer does with an official single file (fp32)."""
    with safe_open(checkpoint, "pt") as f:
        config = json.loads(f.metadata()["config"])
    sd = {k: t.float() for k, t in load_file(checkpoint).items()}
    vae = AutoencoderKLLTX2Audio(**A.audio_vae_diffusers_config(config["audio_vae"])).eval()
    load_state_dict_strict(vae, A.audio_vae_to_diffusers(sd), str(checkpoint), "audio VAE")
    vocoder = A.vocoder_class(config["vocoder"])(**A.vocoder_diffusers_config(config["vocoder"])).eval()
    load_state_dict_strict(vocoder, A.vocoder_to_diffusers(sd, config["vocoder"]), str(checkpoint), "vocoder")
    connectors = LTX2TextConnectors(**T.connectors_diffusers_config(config["transformer"], sd, gemma_config)).eval()
    load_state_dict_strict(connectors, T.connectors_to_diffusers(sd), str(checkpoint), "text connectors")
    return {"audio_vae": vae, "vocoder": vocoder, "connectors": connectors, "config": config}


@pytest.fixture(scope="session")
def oracle_results(tmp_path_factory) -> dict[str, dict]:
    """One oracle process: references for the tiny official 2.0/2.3 files and for our two written files."""
    found = find_oracle()
    if found is None:
        pytest.skip("oracle venv absent: run bash ../shared/oracle/setup.sh")
    root = tmp_path_factory.mktemp("audio-text")
    makers = {
        v: subprocess.Popen(
            [
                str(found.python),
                str(found.dir / "make_tiny_checkpoint.py"),
                "--out",
                str(root / v),
                "--variant",
                v,
                "--lora-rank",
                "0",
                "--no-verify",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for v in VARIANTS
    }
    written = {}
    for v in VARIANTS:  # meanwhile, write ours
        comps = _random_components(v)
        path = root / f"written-{v}.safetensors"
        _write_official(path, v, comps)
        written[v] = (path, comps)
    for v, proc in makers.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"make_tiny_checkpoint {v} failed:\n{out[-3000:]}"
    jobs = {f"official-{v}": root / v / f"ltx-tiny-{v}.safetensors" for v in VARIANTS}
    jobs.update({f"written-{v}": written[v][0] for v in VARIANTS})
    args = [str(found.python), str(REF_SCRIPT), "--gemma", str(root / "2.0" / "gemma")]
    for name, path in jobs.items():
        args += ["--job", str(path), str(root / f"{name}.pt")]
    for v in VARIANTS:
        args += ["--load-check", str(written[v][0])]
    result = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "LTX_ORACLE_DIR": str(found.dir)},
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"{REF_SCRIPT.name} failed:\n{log[-5000:]}"
    gemma_config = json.loads((root / "2.0" / "gemma" / "config.json").read_text())
    out = {}
    for name, path in jobs.items():
        ref = torch.load(root / f"{name}.pt", weights_only=True)
        ours = _load_ours(path, gemma_config)
        out[name] = {"ref": ref, "ours": ours, "path": path, "log": log}
    for v in VARIANTS:
        out[f"written-{v}"]["original"] = written[v][1]
    return out


def _check_against_reference(ref: dict, comps: dict, config: dict) -> None:
    vae, vocoder, connectors = comps["audio_vae"], comps["vocoder"], comps["connectors"]
    mel_params = A.audio_processor_params(config["audio_vae"])
    with torch.no_grad():
        for sr in (44100, 48000, 16000):
            _assert_close(A.resample(ref[f"wave_{sr}"], sr, 16000), ref[f"resampled_{sr}"], f"resample {sr}")
            mel = A.waveform_to_mel(ref[f"wave_{sr}"], sr, **mel_params)
            _assert_close(mel, ref[f"mel_{sr}"], f"mel {sr}")
            _assert_close(A.encode_audio(vae, ref[f"mel_{sr}"]), ref[f"latent_{sr}"], f"latent {sr}")
            _assert_close(A.encode_audio(vae, mel), ref[f"latent_{sr}"], f"latent from our mel {sr}")
        _assert_close(A.decode_audio(vae, ref["dec_latent"]), ref["dec_mel"], "decoded mel")
        wave, rate = A.vocode(vocoder, ref["voc_mel"])
        assert rate == ref["voc_rate"]
        assert 1e-3 < ref["voc_wave"].abs().max() < 1, "degenerate vocoder reference"
        _assert_close(wave, ref["voc_wave"], "waveform")

        hidden, mask = ref["hidden_states"], ref["mask"]
        video_feats, audio_feats = T.text_features(connectors, hidden, mask)
        _assert_close(video_feats, ref["video_feats"], "video features")
        _assert_close(audio_feats, ref["audio_feats"], "audio features")
        video, audio, ctx_mask = T.text_context(connectors, ref["video_feats"], ref["audio_feats"], mask)
        _assert_close(video, ref["video_ctx"], "video context")
        _assert_close(audio, ref["audio_ctx"], "audio context")
        assert torch.equal(ctx_mask, ref["ctx_mask"])
        for got, want in zip(connectors(hidden, mask), (ref["video_ctx_full"], ref["audio_ctx_full"]), strict=False):
            _assert_close(got, want, "LTX2TextConnectors.forward")


@pytest.mark.oracle
@pytest.mark.parametrize("variant", VARIANTS)
def test_official_tiny_checkpoint_matches_ltx_core(oracle_results, variant):
    res = oracle_results[f"official-{variant}"]
    ours = res["ours"]
    assert type(ours["vocoder"]) is (LTX2VocoderWithBWE if variant == "2.3" else LTX2Vocoder)
    assert res["ref"]["feature_extractor"] == ("FeatureExtractorV2" if variant == "2.3" else "FeatureExtractorV1")
    _check_against_reference(res["ref"], ours, ours["config"])


@pytest.mark.oracle
@pytest.mark.parametrize("variant", VARIANTS)
def test_written_checkpoint_loads_in_ltx_core_and_matches(oracle_results, variant):
    res = oracle_results[f"written-{variant}"]
    # load_check --strict on our file: 4 components (+ the Gemma) OK and no key left over
    assert f"load_check] {res['path']}" in res["log"]
    assert f"every one of the {len(load_file(res['path']))} file keys was consumed" in res["log"]
    original, reloaded = res["original"], res["ours"]
    for name in ("audio_vae", "vocoder", "connectors"):
        assert _json(dict(reloaded[name].config)) == _json(dict(original[name].config)), name
        a, b = original[name].state_dict(), reloaded[name].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    _check_against_reference(res["ref"], original, reloaded["config"])
