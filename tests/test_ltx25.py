"""LTX-2.5: the split release loads strictly through our loader and matches ltx-core 1.2.0's numbers (oracle/ltx25).

The fixture (tests/conftest.py ``ltx25_release``) is a tiny LTX-2.5 written in the official split layout with the
outputs the official code computed from it; it is read as it is. Every comparison is fp32 on CPU, relative error
``|a - b| / |b| <= 1e-5``.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ltx_trainer.models.base import ModalityInput, TextContext
from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.families import detect, load_model
from ltx_trainer.models.formats import (
    ltx2_audio,
    ltx2_text,
    ltx2_transformer,
    ltx2_video_vae,
    ltx25_text,
    ltx25_video_vae,
)
from ltx_trainer.models.formats.ltx25_video_vae import encoder_flat_config

TOL = 1e-5
TRANSFORMER = "diffusion_models/ltx-2.5-tiny-transformer-fp32.safetensors"
TEXT_ENCODER = "text_encoders/gemma4-tiny-with-proj-ltx-2.5-fp32.safetensors"
VIDEO_VAE = "vae/ltx-2.5-tiny-video-vae-fp32.safetensors"
VIDEO_VAE_CONV = "vae/ltx-2.5-tiny-video-vae-conv-fp32.safetensors"
AUDIO_VAE = "vae/ltx-2.5-tiny-audio-vae-fp32.safetensors"
PROMPT = "A cat walks on the beach at sunset, waves crash."


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    with safe_open(path, "pt") as f:
        return dict(f.metadata() or {}), {k: f.get_tensor(k) for k in f.keys()}


@pytest.fixture(scope="module")
def ltx25(ltx25_release):
    return load_model(ltx25_release)


@pytest.fixture(scope="module")
def refs(ltx25_release) -> dict[str, dict[str, torch.Tensor]]:
    names = ("text_path", "transformer_forward", "video_vae", "video_vae_conv", "audio_vae")
    return {name: load_file(ltx25_release / "refs" / f"{name}.safetensors") for name in names}


def assert_same(module_sd: dict[str, torch.Tensor], file_sd: dict[str, torch.Tensor], what: str) -> None:
    assert set(module_sd) == set(file_sd), f"{what}: {sorted(set(module_sd) ^ set(file_sd))[:5]}"
    for key, value in file_sd.items():
        assert torch.equal(module_sd[key], value), f"{what}: {key} differs"


# ---- loading ------------------------------------------------------------------------------------------------------
def test_ltx25_release_is_detected_from_folder_and_transformer(ltx25_release):
    for path in (ltx25_release, ltx25_release / TRANSFORMER):
        found = detect(path)
        assert (found.spec.family, found.spec.version, found.layout) == ("ltx2", "2.5", "split")
        assert found.path == ltx25_release / TRANSFORMER


def test_ltx25_every_file_tensor_is_loaded_bit_exact(ltx25, ltx25_release):
    """Each component consumes exactly its file's tensors (bit-equal after the renames), nothing left on meta."""
    release = ltx25.release
    assert release.projection.path == ltx25_release / TEXT_ENCODER
    assert (release.video_vae.path, release.video_vae_conv.path) == (
        ltx25_release / VIDEO_VAE,
        ltx25_release / VIDEO_VAE_CONV,
    )
    assert release.audio_vae.path == ltx25_release / AUDIO_VAE

    _, transformer_file = read(ltx25_release / TRANSFORMER)
    _, te_file = read(ltx25_release / TEXT_ENCODER)
    connectors = ltx2_text.connectors_to_official(ltx25.connectors.state_dict())
    transformer = ltx2_transformer.to_official(ltx25.transformer.state_dict())
    assert_same(
        {**transformer, **{k: v for k, v in connectors.items() if not k.startswith("text_embedding_projection.")}},
        transformer_file,
        "transformer file",
    )
    projection = {k: v for k, v in te_file.items() if k.startswith("text_embedding_projection.")}
    assert_same({k: v for k, v in connectors.items() if k in projection or k.startswith("text_")}, projection, "proj")

    # Gemma-4: transformers reports no missing/unexpected key (checked while loading); here: count and bytes
    gemma, _ = ltx25._text_encoder
    gemma_file = ltx25_text.to_hf(te_file)
    params = {t.data_ptr(): t for t in gemma.state_dict().values()}  # the tied lm_head counts once
    assert len(params) == len(gemma_file) == 41
    file_values = sorted(float(t.double().sum()) for t in gemma_file.values())
    assert file_values == sorted(float(p.double().sum()) for p in params.values())
    files = ltx25_text.assets(te_file)
    assert set(files) == {"tokenizer.json", "tokenizer_config.json", "processor_config.json"}

    _, conv_file = read(ltx25_release / VIDEO_VAE_CONV)
    conv_cfg = json.loads(read(ltx25_release / VIDEO_VAE_CONV)[0]["config"])["vae"]
    assert_same(ltx2_video_vae.to_official(ltx25.video_vae.state_dict(), conv_cfg), conv_file, "conv video VAE")

    _meta, diffusion_file = read(ltx25_release / VIDEO_VAE)
    decoder = ltx25_video_vae.decoder_to_official(ltx25.diffusion_decoder.state_dict())
    encoder_keys = {k: v for k, v in diffusion_file.items() if k.startswith("vae.encoder.")}
    assert_same(decoder, {k: v for k, v in diffusion_file.items() if k not in encoder_keys}, "diffusion decoder")

    _, audio_file = read(ltx25_release / AUDIO_VAE)
    audio_cfg = json.loads(read(ltx25_release / AUDIO_VAE)[0]["config"])
    audio = {
        **ltx2_audio.audio_vae_to_official(ltx25.audio_vae.state_dict()),
        **ltx2_audio.vocoder_to_official(ltx25.vocoder.state_dict(), audio_cfg["vocoder"]),
    }
    assert_same(audio, audio_file, "audio VAE + vocoder")

    modules = [ltx25.transformer, ltx25.connectors, gemma, ltx25.video_vae, ltx25.diffusion_decoder]
    for module in [*modules, ltx25.audio_vae, ltx25.vocoder]:
        assert not any(t.is_meta for t in [*module.parameters(), *module.buffers()])


def test_ltx25_encoder_of_the_diffusion_vae_file_loads(ltx25_release, refs):
    """Only the diffusion-decoder VAE file: its encoder is loaded alone (all its vae.encoder.* tensors)."""
    model = load_model(ltx25_release / TRANSFORMER, video_vae_path=ltx25_release / VIDEO_VAE)
    assert model.release.video_vae_conv is None and model.video_decoder == "diffusion"
    meta, file_sd = read(ltx25_release / VIDEO_VAE)
    flat = encoder_flat_config(json.loads(meta["config"])["vae"])
    encoder = {k: v for k, v in file_sd.items() if k.startswith(("vae.encoder.", "vae.per_channel_statistics."))}
    assert_same(ltx2_video_vae.to_official(model.video_vae.state_dict(), flat), encoder, "video encoder")
    with torch.no_grad():
        latent = model.encode_video(refs["video_vae"]["pixels"])
    assert relative_error(latent, refs["video_vae"]["encoded_latent"]) <= TOL
    with pytest.raises(ModelLoadError, match="conv video decoder's file is not in the release"):
        model.select_video_decoder("conv")  # validation.video_decoder / --video-decoder are refused at start
    assert model.codec_modules(video=True, audio=False) == [model.video_vae, model.diffusion_decoder]


def test_ltx25_gemma_from_the_hugging_face_folder(ltx25_release, refs):
    model = load_model(ltx25_release / TRANSFORMER, ltx25_release / "text_encoders/gemma4-tiny-root")
    assert model.release.gemma_dir is not None and model.release.projection.path == ltx25_release / TEXT_ENCODER
    features = model.encode_text([PROMPT])
    assert relative_error(features.video, refs["text_path"]["video_features"]) <= TOL


# ---- parity with ltx-core 1.2.0 -------------------------------------------------------------------------------------
def test_ltx25_text_path_matches_each_stage(ltx25, refs):
    ref = refs["text_path"]
    gemma, tokenizer = ltx25._text_encoder
    ids, mask = ltx25_text.tokenize(tokenizer, [PROMPT], 1024)
    assert torch.equal(ids, ref["input_ids"]) and torch.equal(mask, ref["attention_mask"])
    with torch.no_grad():
        hidden = gemma.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    assert len(hidden) == 3
    for i, state in enumerate(hidden):
        assert relative_error(state, ref[f"gemma_hidden_state_{i}"]) <= TOL
    features = ltx25.encode_text([PROMPT])
    assert relative_error(features.video, ref["video_features"]) <= TOL
    assert relative_error(features.audio, ref["audio_features"]) <= TOL
    context = ltx25.text_context(features)
    assert relative_error(context.video, ref["video_context"]) <= TOL
    assert relative_error(context.audio, ref["audio_context"]) <= TOL
    assert torch.equal(context.mask.long(), ref["context_binary_mask"])


def _forward(model, ref, case: str, keyframes: bool = True):
    def get(key: str) -> torch.Tensor:
        return ref[f"{case}.{key}"]

    marker = get("video_keyframes_mask")[..., 0] if keyframes else None
    video = ModalityInput(
        get("video_latent"), get("video_timesteps")[..., 0], get("sigma"), get("video_positions"), marker
    )
    audio = ModalityInput(get("audio_latent"), get("audio_timesteps")[..., 0], get("sigma"), get("audio_positions"))
    context = TextContext(get("video_context"), get("audio_context"), torch.ones(get("video_context").shape[:2]))
    with torch.no_grad():
        return model.forward(video, audio, context)


@pytest.mark.parametrize("case", ["t2v", "i2v", "e2e"])
def test_ltx25_transformer_forward_matches(ltx25, refs, case):
    ref = refs["transformer_forward"]
    frames, height, width = 2, 2, 3
    assert torch.equal(ltx25.video_positions(1, frames, height, width, 24.0), ref[f"{case}.video_positions"])
    assert torch.equal(ltx25.audio_positions(1, 9), ref[f"{case}.audio_positions"])
    from ltx_trainer.models.latents import LatentGrid, keyframe_marker

    assert torch.equal(
        keyframe_marker(1, LatentGrid(frames, height, width)), ref[f"{case}.video_keyframes_mask"][..., 0]
    )
    video, audio = _forward(ltx25, ref, case)
    assert relative_error(video, ref[f"{case}.video_velocity"]) <= TOL
    assert relative_error(audio, ref[f"{case}.audio_velocity"]) <= TOL
    timesteps = ref[f"{case}.video_timesteps"]
    assert relative_error(ref[f"{case}.video_latent"] - video * timesteps, ref[f"{case}.video_denoised"]) <= TOL


def test_ltx25_transformer_forward_without_keyframes_mask(ltx25, refs):
    ref = refs["transformer_forward"]
    video, _ = _forward(ltx25, ref, "t2v", keyframes=False)
    assert relative_error(video, ref["t2v.video_velocity_without_keyframes_mask"]) <= TOL
    assert relative_error(video, ref["t2v.video_velocity"]) > 0.1  # the marker matters


def test_ltx25_video_encoder_and_conv_decoder_match(ltx25, refs):
    ref = refs["video_vae_conv"]
    with torch.no_grad():
        latent = ltx25.encode_video(refs["video_vae"]["pixels"])
        pixels = ltx2_video_vae.decode(
            ltx25.video_vae, ref["decode_latent_input"], generator=torch.Generator().manual_seed(1234)
        )
    assert relative_error(latent, ref["encoded_latent"]) <= TOL  # with both files, the conv file's encoder
    assert relative_error(pixels, ref["decoded_pixels"]) <= TOL


def test_ltx25_diffusion_decoder_matches(ltx25, refs):
    ref = refs["video_vae"]
    decoder = ltx25.diffusion_decoder
    with torch.no_grad():
        given = ltx25_video_vae.decode(decoder, ref["decode_latent_input"], noise=ref["decoder_initial_noise"])
        drawn = ltx25_video_vae.decode(decoder, ref["decode_latent_input"], torch.Generator().manual_seed(1234))
    assert given.shape == ref["decoded_pixels"].shape
    assert relative_error(given, ref["decoded_pixels"]) <= TOL
    assert torch.equal(given, drawn)  # the one random draw is the saved noise


def test_ltx25_audio_vae_and_vocoder_match(ltx25, refs):
    ref = refs["audio_vae"]
    with torch.no_grad():
        latent = ltx2_audio.encode_audio(ltx25.audio_vae, ref["mel_input"])
        mel = ltx2_audio.decode_audio(ltx25.audio_vae, ref["decode_latent_input"])
        waveform, rate = ltx2_audio.vocode(ltx25.vocoder, ref["decoded_mel"])
    assert relative_error(latent, ref["encoded_latent"]) <= TOL
    assert relative_error(mel, ref["decoded_mel"]) <= TOL
    assert rate == 48000 and relative_error(waveform, ref["vocoder_waveform"]) <= TOL


# ---- refusals: one line naming the file ---------------------------------------------------------------------------
def _copy_release(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    for name in (TRANSFORMER, TEXT_ENCODER, VIDEO_VAE_CONV, AUDIO_VAE):
        if name not in skip:
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / name, dst / name)
    return dst


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_ltx25_gemma_version_mismatch_is_refused(ltx25_release, tmp_path):
    release = _copy_release(ltx25_release, tmp_path, skip=(TEXT_ENCODER,))
    metadata, tensors = read(ltx25_release / TEXT_ENCODER)
    config = json.loads(metadata["gemma_config"])
    config["gemma_version"] = "gemma4-some-other-finetune"
    from safetensors.torch import save_file

    (release / TEXT_ENCODER).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, release / TEXT_ENCODER, {**metadata, "gemma_config": json.dumps(config)})
    with pytest.raises(ModelLoadError) as error:
        load_model(release)
    message = _one_line(error)
    assert str(release / TEXT_ENCODER) in message and "gemma4-some-other-finetune" in message
    assert "gemma4-tiny-ltx-fixture-v1" in message


def test_ltx25_split_transformer_without_text_encoder_is_refused(ltx25_release, tmp_path):
    release = _copy_release(ltx25_release, tmp_path, skip=(TEXT_ENCODER,))
    with pytest.raises(ModelLoadError) as error:
        load_model(release / TRANSFORMER)
    message = _one_line(error)
    assert str(release / TRANSFORMER) in message and "text_encoder_path" in message
    # a Gemma folder alone is not enough either: the text projection is only in the packed file
    with pytest.raises(ModelLoadError, match="text projection is only in the packed file"):
        load_model(release / TRANSFORMER, ltx25_release / "text_encoders/gemma4-tiny-root")


def test_ltx25_packed_text_encoder_given_as_model_is_refused(ltx25_release):
    with pytest.raises(ModelLoadError) as error:
        load_model(ltx25_release / TEXT_ENCODER)
    message = _one_line(error)
    assert str(ltx25_release / TEXT_ENCODER) in message and "packed text encoder" in message


# ---- make-tiny --version 2.5 --------------------------------------------------------------------------------------
def _schema(value: object) -> object:
    """Key names (recursively) and leaf types of a metadata value (JSON parsed when it is JSON, as ltx-core does)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return "str"
        if not isinstance(value, dict):
            return type(value).__name__
    if isinstance(value, dict):
        return {k: _schema(v) if isinstance(v, dict) else type(v).__name__ for k, v in value.items()}
    return type(value).__name__


def test_ltx25_make_tiny_writes_the_release_layout_and_loads_back(ltx25_release, tmp_path):
    import typer
    from typer.testing import CliRunner

    from ltx_trainer.cli import app
    from ltx_trainer.models.tiny_ltx25 import FILES

    assert isinstance(app, typer.Typer)
    result = CliRunner().invoke(app, ["make-tiny", str(tmp_path), "--version", "2.5"])
    assert result.exit_code == 0, result.output
    for name, relative in FILES.items():
        if name == "gemma":
            ours, theirs = tmp_path / relative, ltx25_release / relative
            assert {p.name for p in ours.iterdir()} == {p.name for p in theirs.iterdir()}
            assert _schema((ours / "config.json").read_text()) == _schema((theirs / "config.json").read_text())
            continue
        ours, theirs = read(tmp_path / relative), read(ltx25_release / relative)
        assert set(ours[1]) == set(theirs[1]), name  # the same tensor names
        assert {k: _schema(v) for k, v in ours[0].items()} == {k: _schema(v) for k, v in theirs[0].items()}, name
        assert {k: v.dtype for k, v in ours[1].items()} == {k: v.dtype for k, v in theirs[1].items()}, name

    model = load_model(tmp_path)
    assert model.spec.version == "2.5" and model.release.projection.path == tmp_path / TEXT_ENCODER
    for module in (model.transformer, model.connectors, model._text_encoder[0], model.video_vae):
        assert not any(t.is_meta for t in [*module.parameters(), *module.buffers()])
    for module in (model.diffusion_decoder, model.audio_vae, model.vocoder):
        assert not any(t.is_meta for t in [*module.parameters(), *module.buffers()])
    features = model.encode_text([PROMPT])
    assert features.video.shape == (1, 1024, 32) and features.audio.shape == (1, 1024, 16)
