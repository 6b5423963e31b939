"""The LTX-2 family through our loader: both on-disk formats, parity with the official code, loud failures."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltx_trainer.models import latents as lat
from ltx_trainer.models.base import ModalityInput, TextContext
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.families import detect, load_model

VIDEO_GRID = (2, 2, 3)  # latent F', H', W'
AUDIO_STEPS = 9


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def fixed_inputs(model, seed: int = 0, batch: int = 1) -> tuple[ModalityInput, ModalityInput, TextContext]:
    g = torch.Generator().manual_seed(seed)
    frames, height, width = VIDEO_GRID
    video_tokens = frames * height * width
    sigma = torch.full((batch,), 0.6)
    video = ModalityInput(
        latent=torch.randn(batch, video_tokens, 128, generator=g),
        timesteps=sigma[:, None].expand(batch, video_tokens).clone(),
        sigma=sigma,
        positions=model.video_positions(batch, frames, height, width, fps=24.0),
    )
    audio = ModalityInput(
        latent=torch.randn(batch, AUDIO_STEPS, 128, generator=g),
        timesteps=sigma[:, None].expand(batch, AUDIO_STEPS).clone(),
        sigma=sigma,
        positions=model.audio_positions(batch, AUDIO_STEPS),
    )
    cfg = model.transformer.config
    ctx_len = 16
    context = TextContext(
        video=torch.randn(
            batch,
            ctx_len,
            cfg.cross_attention_dim if not cfg.use_prompt_embeddings else cfg.caption_channels,
            generator=g,
        ),
        audio=torch.randn(
            batch,
            ctx_len,
            cfg.audio_cross_attention_dim if not cfg.use_prompt_embeddings else cfg.caption_channels,
            generator=g,
        ),
        mask=torch.ones(batch, ctx_len, dtype=torch.long),
    )
    return video, audio, context


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_detects_version_from_file_and_folder(tiny_ltx2, version):
    for key in ("single_file", "diffusers"):
        found = detect(tiny_ltx2[version][key])
        assert (found.spec.family, found.spec.version) == ("ltx2", version)


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_single_file_and_diffusers_folder_give_the_same_forward(tiny_ltx2, version):
    single = load_model(tiny_ltx2[version]["single_file"])
    folder = load_model(tiny_ltx2[version]["diffusers"])
    video, audio, context = fixed_inputs(single)
    with torch.no_grad():
        v1, a1 = single.forward(video, audio, context)
        v2, a2 = folder.forward(video, audio, context)
    assert v1.shape == (1, 12, 128) and a1.shape == (1, AUDIO_STEPS, 128)
    assert v1.abs().mean() > 1e-3  # a real output, not zeros
    # Same weights, two load paths; fp32 sums may differ in the last bit (1.2e-6 seen on 2.3's gated attention).
    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-5)
    torch.testing.assert_close(a1, a2, rtol=0, atol=1e-5)


def test_video_only_forward_ignores_audio(tiny_ltx2):
    model = load_model(tiny_ltx2["2.0"]["single_file"])
    video, audio, context = fixed_inputs(model)
    with torch.no_grad():
        alone, none = model.forward(video, None, context)
        other_audio = ModalityInput(audio.latent * 3, audio.timesteps, audio.sigma, audio.positions)
        isolated, _ = model.transformer(
            hidden_states=video.latent,
            audio_hidden_states=other_audio.latent,
            encoder_hidden_states=context.video,
            audio_encoder_hidden_states=context.audio,
            timestep=video.timesteps * 1000,
            audio_timestep=audio.timesteps * 1000,
            sigma=video.sigma * 1000,
            audio_sigma=audio.sigma * 1000,
            video_coords=video.positions,
            audio_coords=audio.positions,
            isolate_modalities=True,
            use_cross_timestep=True,
            return_dict=False,
        )
    assert none is None
    torch.testing.assert_close(alone, isolated, rtol=0, atol=1e-6)


def test_stg_perturbation_changes_only_the_perturbed_sample(tiny_ltx2):
    from ltx_trainer.models.base import Perturbation

    model = load_model(tiny_ltx2["2.3"]["single_file"])
    video, audio, context = fixed_inputs(model, batch=2)
    with torch.no_grad():
        plain, _ = model.forward(video, audio, context)
        perturbed, _ = model.forward(video, audio, context, Perturbation(blocks=[1], mask=torch.tensor([0.0, 1.0])))
    assert (plain[0] - perturbed[0]).abs().max() > 1e-4
    torch.testing.assert_close(plain[1], perturbed[1], rtol=0, atol=1e-6)


# ---- parity with the official code (shared/oracle) ------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("variant", ["2.0", "2.3"])
def test_official_checkpoint_loads_with_every_tensor_matched(oracle_checkpoints, variant):
    ckpt = oracle_checkpoints[variant]["checkpoint"]
    model = load_model(ckpt, text_encoder_path=oracle_checkpoints[variant]["gemma"])
    assert model.spec.version == variant
    with safe_open(ckpt, "pt") as f:
        file_keys = set(f.keys())
    consumed = set()
    from ltx_trainer.models.formats import ltx2_audio, ltx2_text, ltx2_transformer, ltx2_video_vae

    cfg = json.loads(safe_open(ckpt, "pt").metadata()["config"])
    for module, to_official in [
        (model.transformer, ltx2_transformer.to_official),
        (model.video_vae, lambda sd: ltx2_video_vae.to_official(sd, cfg["vae"])),
        (model.audio_vae, ltx2_audio.audio_vae_to_official),
        (model.vocoder, lambda sd: ltx2_audio.vocoder_to_official(sd, cfg["vocoder"])),
        (model.connectors, ltx2_text.connectors_to_official),
    ]:
        back = to_official(module.state_dict())
        with safe_open(ckpt, "pt") as f:
            for key, value in back.items():
                if key in file_keys:
                    torch.testing.assert_close(value, f.get_tensor(key).to(value.dtype), rtol=0, atol=0)
                    consumed.add(key)
    leftover = file_keys - consumed
    # ltx-core's VAE statistics carry two unused tensors; everything else must be consumed
    assert all("per_channel_statistics" in k for k in leftover), sorted(leftover)[:10]


@pytest.mark.oracle
@pytest.mark.parametrize("variant", ["2.0", "2.3"])
@pytest.mark.parametrize("reference", ["fwd.pt", "fwd_first_frame.pt"])
def test_transformer_forward_matches_official(oracle_checkpoints, variant, reference):
    ref = torch.load(oracle_checkpoints[variant]["dir"] / reference, weights_only=True)
    model = load_model(oracle_checkpoints[variant]["checkpoint"])
    frames, height, width = (ref["meta"][k] for k in ("latent_frames", "latent_height", "latent_width"))
    positions = model.video_positions(1, frames, height, width, fps=ref["meta"]["fps"])
    torch.testing.assert_close(positions, ref["video_positions"])
    torch.testing.assert_close(model.audio_positions(1, ref["meta"]["audio_frames"]), ref["audio_positions"])
    video = ModalityInput(ref["video_latent"], ref["video_timesteps"][..., 0], ref["sigma"], positions)
    audio = ModalityInput(ref["audio_latent"], ref["audio_timesteps"][..., 0], ref["sigma"], ref["audio_positions"])
    context = TextContext(ref["video_context"], ref["audio_context"], torch.ones(ref["video_context"].shape[:2]))
    with torch.no_grad():
        video_velocity, audio_velocity = model.forward(video, audio, context)
    assert relative_error(video_velocity, ref["video_velocity"]) <= 1e-5
    assert relative_error(audio_velocity, ref["audio_velocity"]) <= 1e-5


@pytest.mark.oracle
@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_our_single_file_passes_official_load_check(oracle, tiny_ltx2, version):
    out = oracle.run(
        "load_check.py",
        "--checkpoint",
        str(tiny_ltx2[version]["single_file"]),
        "--gemma",
        str(tiny_ltx2[version]["gemma"]),
        "--strict",
    )
    assert "RESULT: PASS" in out


# ---- loud failures --------------------------------------------------------------------------------------------


def test_truncated_checkpoint_is_named(tiny_ltx2, tmp_path):
    src = tiny_ltx2["2.0"]["single_file"].read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(src[: len(src) // 2])
    with pytest.raises(ModelLoadError, match=r"truncated\.safetensors.*(truncated|corrupt)"):
        load_model(bad).transformer  # noqa: B018


def test_missing_tensor_is_listed(tiny_ltx2, tmp_path):
    path = tiny_ltx2["2.3"]["single_file"]
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
        sd = {k: f.get_tensor(k) for k in f.keys()}
    dropped = "model.diffusion_model.transformer_blocks.1.attn1.to_q.weight"
    del sd[dropped]
    bad = tmp_path / "missing.safetensors"
    save_file(sd, str(bad), metadata=metadata)
    with pytest.raises(
        ModelLoadError, match=r"missing\.safetensors.*1 missing tensor.*transformer_blocks\.1\.attn1\.to_q"
    ):
        load_model(bad).transformer  # noqa: B018


def test_wrongly_shaped_tensor_is_listed(tiny_ltx2, tmp_path):
    path = tiny_ltx2["2.0"]["single_file"]
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
        sd = {k: f.get_tensor(k) for k in f.keys()}
    key = "model.diffusion_model.transformer_blocks.0.ff.net.2.weight"
    sd[key] = sd[key][:, :-1].contiguous()
    bad = tmp_path / "narrow.safetensors"
    save_file(sd, str(bad), metadata=metadata)
    with pytest.raises(ModelLoadError, match=r"wrongly shaped.*transformer_blocks\.0\.ff\.net\.2\.weight"):
        load_model(bad).transformer  # noqa: B018


def test_folder_that_is_neither_format(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="neither a single-file checkpoint nor a diffusers folder"):
        detect(tmp_path)


def test_hub_id_gives_offline_advice():
    with pytest.raises(ModelLoadError, match=r"Hugging Face repo id.*offline"):
        detect("Lightricks/LTX-2")


def test_positions_follow_official_convention():
    positions = lat.video_positions(1, 2, 1, 1, fps=24.0)
    # latent frame 0 covers pixel frame 0 only; frame 1 covers pixel frames 1..8 (seconds)
    torch.testing.assert_close(positions[0, 0, :, :], torch.tensor([[0.0, 1 / 24], [1 / 24, 9 / 24]]))
    torch.testing.assert_close(positions[0, 1, 0], torch.tensor([0.0, 32.0]))
    audio = lat.audio_positions(1, 3)
    torch.testing.assert_close(audio[0, 0], torch.tensor([[0.0, 0.01], [0.01, 0.05], [0.05, 0.09]]))


def test_patchify_round_trips():
    video = torch.randn(2, 128, 3, 2, 4)
    tokens = lat.patchify_video(video)
    assert tokens.shape == (2, 24, 128)
    torch.testing.assert_close(lat.unpatchify_video(tokens, 3, 2, 4), video)
    audio = torch.randn(2, 8, 5, 16)
    torch.testing.assert_close(lat.unpatchify_audio(lat.patchify_audio(audio)), audio)


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_interface_shapes_end_to_end(tiny_ltx2, version):
    model = load_model(tiny_ltx2[version]["single_file"], tiny_ltx2[version]["gemma"])
    pixels = torch.rand(1, 3, 17, 64, 96) * 2 - 1
    latents = model.encode_video(pixels)
    assert latents.shape == (1, 128, 3, 2, 3)
    assert model.decode_video(latents).shape == (1, 3, 17, 64, 96)
    seconds = 17 / 24
    waveform = torch.sin(torch.linspace(0, 800, int(44100 * seconds))).repeat(1, 2, 1) * 0.3
    audio = model.encode_audio(waveform, 44100)
    assert audio.shape[:2] == (1, 8) and audio.shape[3] == 16
    assert abs(audio.shape[2] - 25 * seconds) <= 1  # 25 latent steps per second
    wave, rate = model.decode_audio(audio)
    assert rate == (24000 if version == "2.0" else 48000) and wave.shape[:2] == (1, 2)
    features = model.encode_text(["a red square slides", "rain at night"])
    assert features.video.shape[:2] == (2, 1024) and features.mask.shape == (2, 1024)
    assert features.mask[:, -1].all() and not features.mask[:, 0].any()  # Gemma pads on the left
    context = model.text_context(features)
    assert context.video.shape[:2] == (2, 1024) and torch.isfinite(context.video).all()


def test_tiled_video_encode_matches_untiled_in_the_middle(tiny_ltx2):
    model = load_model(tiny_ltx2["2.0"]["single_file"])
    pixels = torch.rand(1, 3, 9, 768, 768) * 2 - 1  # above diffusers' 512-pixel tile size
    plain = model.encode_video(pixels)
    tiled = model.encode_video(pixels, tiled=True)
    assert tiled.shape == plain.shape == (1, 128, 2, 24, 24)
    error = relative_error(tiled, plain)
    assert 0 < error < 0.5  # tiled (so not identical), blended at the seams (so close)


@pytest.mark.parametrize(("perturbed", "spared"), [("video", "audio"), ("audio", "video")])
def test_stg_can_perturb_one_modality_only(tiny_ltx2, perturbed, spared):
    """As in ltx-core: STG on the video skips only video self-attention (and vice versa). With cross-modal attention
    off, the spared modality's output is then exactly the unperturbed one."""
    from ltx_trainer.models.base import Perturbation

    model = load_model(tiny_ltx2["2.3"]["single_file"])
    video, audio, context = fixed_inputs(model)
    isolated = Perturbation(blocks=[], isolate_modalities=True)
    one = Perturbation(blocks=[0, 1], modalities=(perturbed,), isolate_modalities=True)
    with torch.no_grad():
        plain = dict(zip(("video", "audio"), model.forward(video, audio, context, isolated), strict=True))
        stg = dict(zip(("video", "audio"), model.forward(video, audio, context, one), strict=True))
    torch.testing.assert_close(stg[spared], plain[spared], rtol=0, atol=0)
    assert (stg[perturbed] - plain[perturbed]).abs().max() > 1e-4
    assert type(model.transformer.transformer_blocks[0].attn1.processor).__name__ != "_Unperturbed"  # restored
