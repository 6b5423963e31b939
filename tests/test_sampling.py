"""The sampler on tiny models: the guidance formula, every condition re-imposed, frozen modalities, the schedule from
the real token count, LoRA parity between training and the saved file, the ``sample`` command, and the official
pipeline running our LoRA."""

from pathlib import Path

import av
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from ltx_trainer.commands.sample import sample as sample_command
from ltx_trainer.config import ValidationSample
from ltx_trainer.data.media import read_video, resize_and_crop
from ltx_trainer.errors import UsageError
from ltx_trainer.models import latents as lat
from ltx_trainer.models.families import load_model
from ltx_trainer.models.latents import sigma_schedule
from ltx_trainer.sampling.conditions import Geometry, encode_conditions
from ltx_trainer.sampling.lora import apply_loras, parse_lora_arg, read_lora
from ltx_trainer.sampling.sampler import (
    Guidance,
    SampleSpec,
    decode_sample,
    generate,
    guide,
    save_sample,
    stg_block_indices,
)
from ltx_trainer.training.trainer import Trainer
from media_fixtures import make_clip, make_image
from training_fixtures import LARGE, make_dataset, training_config

GEO = Geometry(64, 64, 17, 24.0)  # 3 x 2 x 2 = 12 video tokens, 18 audio steps


@pytest.fixture(scope="module")
def ltx2(tiny_ltx2):
    """The tiny LTX-2 model with a prompt's and the negative prompt's text contexts."""
    paths = tiny_ltx2["2.0"]
    model = load_model(paths["single_file"], paths["gemma"])
    features = model.encode_text(["a square moves"]), model.encode_text(["blurry"])
    with torch.no_grad():  # the connectors once (generate takes features or a ready context)
        prompt, negative = (model.text_context(f) for f in features)
    return model, prompt, negative


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    clip = make_clip(d / "clip.mp4", 25, 96, 64, fps=24, cuts=[12], seed=3)
    image = make_image(d / "image.png", 80, 60, seed=5)
    mask = Image.new("L", (64, 64))
    mask.paste(255, (0, 0, 32, 64))  # keep the left half
    mask.save(d / "mask.png")
    audio_mask = torch.zeros(18)
    audio_mask[:9] = 1
    torch.save({"mask": audio_mask}, d / "audio_mask.pt")
    return {"clip": str(clip), "image": str(image), "mask": str(d / "mask.png"), "audio_mask": str(d / "audio_mask.pt")}


def _spec(model, **overrides) -> SampleSpec:
    # The family defaults turn every guidance term on: CFG, STG (block 29 -> the last one), modality, rescale.
    return SampleSpec.family_defaults(model.spec, **{"width": 64, "height": 64, "frames": 17, "steps": 2, **overrides})


def _encode(model, conditions, geo=GEO):
    return encode_conditions(model, ValidationSample(prompt="x", conditions=conditions).conditions, geo)


def _tokens(model, sample):
    video = model.patchify_video(sample.video_latents) if sample.video_latents is not None else None
    audio = lat.patchify_audio(sample.audio_latents) if sample.audio_latents is not None else None
    return {"video": video, "audio": audio}


def _encode_frames(model, frames):
    pixels = frames.permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5 - 1.0
    return model.patchify_video(model.encode_video(pixels).float())


# ---- guidance --------------------------------------------------------------------------------------------------------
def test_guidance_formula():
    g = torch.Generator().manual_seed(0)
    cond, uncond, perturbed, isolated = (torch.randn(1, 6, 4, generator=g) for _ in range(4))
    assert torch.equal(guide(cond, uncond, perturbed, isolated, Guidance()), cond)  # neutral values
    cfg = guide(cond, uncond, None, None, Guidance(cfg=3.0))
    torch.testing.assert_close(cfg, cond + 2.0 * (cond - uncond))
    full = Guidance(cfg=3.0, stg=1.5, modality=2.0, rescale=0.0)
    expected = cond + 2.0 * (cond - uncond) + 1.5 * (cond - perturbed) + 1.0 * (cond - isolated)
    torch.testing.assert_close(guide(cond, uncond, perturbed, isolated, full), expected)
    rescaled = guide(cond, uncond, perturbed, isolated, Guidance(cfg=3.0, stg=1.5, modality=2.0, rescale=0.7))
    factor = 0.7 * cond.std() / expected.std() + 0.3
    torch.testing.assert_close(rescaled, expected * factor)
    full_rescale = guide(cond, uncond, perturbed, isolated, Guidance(cfg=3.0, stg=1.5, modality=2.0, rescale=1.0))
    torch.testing.assert_close(full_rescale.std(), cond.std())
    # a missing prediction drops its term (modality isolation without the other modality)
    torch.testing.assert_close(guide(cond, uncond, perturbed, None, full), expected - (cond - isolated))


def test_stg_blocks_past_the_depth_map_to_the_last_block():
    assert stg_block_indices([28], depth=2) == [1]
    assert stg_block_indices([0, 29, -1], depth=4) == [0, 3]
    assert stg_block_indices(None, depth=3) == [0, 1, 2]
    assert stg_block_indices([], depth=3) == []
    with pytest.raises(ValueError, match="block -5"):
        stg_block_indices([-5], depth=2)


# ---- schedule, conditions, frozen modalities -------------------------------------------------------------------------
def test_schedule_uses_the_real_token_count(ltx2, media, tmp_path):
    model, prompt, negative = ltx2
    out = generate(model, prompt, negative, _spec(model, steps=3))
    torch.testing.assert_close(out.sigmas, sigma_schedule(3, 12))  # 3 x 2 x 2 video tokens
    assert not torch.allclose(out.sigmas, sigma_schedule(3, 4096))  # not the official fixed 4096-token shift
    # video frozen (video-to-audio): the generated audio's 18 steps set the shift
    frozen = _encode(model, [{"type": "video_to_audio", "video": media["clip"]}])
    out = generate(model, prompt, negative, _spec(model, steps=3), frozen)
    torch.testing.assert_close(out.sigmas, sigma_schedule(3, 18))
    # audio only: the audio's steps set the shift, and the sample is a wav
    out = generate(model, prompt, negative, _spec(model, steps=3, generate_video=False))
    assert out.video_latents is None and out.audio_latents.shape == (1, 8, 18, 16)
    torch.testing.assert_close(out.sigmas, sigma_schedule(3, 18))
    assert save_sample(model, out, tmp_path / "audio_only.mp4", 24.0).name == "audio_only.wav"


def test_one_step_schedule_is_finite():
    """One inference step is pure noise -> data (validation with ``inference_steps: 1`` once wrote NaN audio)."""
    assert sigma_schedule(1, 12).tolist() == [1.0, 0.0]
    assert torch.isfinite(sigma_schedule(2, 4096)).all()


CONDITIONS = {
    "first_frame": lambda m: [{"type": "first_frame", "image_or_video": m["image"]}],
    "prefix": lambda m: [{"type": "prefix", "video": m["clip"], "num_frames": 9}],
    "suffix": lambda m: [{"type": "suffix", "video": m["clip"], "num_frames": 8}],
    "spatial_crop": lambda m: [{"type": "spatial_crop", "video": m["clip"], "spatial_region": [0, 0, 32, 64]}],
    "mask": lambda m: [{"type": "mask", "video": m["clip"], "mask": m["mask"]}],
    "audio_prefix": lambda m: [{"type": "prefix", "audio": m["clip"], "duration": 0.2}],
    "audio_suffix": lambda m: [{"type": "suffix", "audio": m["clip"], "duration": 0.2}],
    "audio_mask": lambda m: [{"type": "mask", "audio": m["clip"], "mask": m["audio_mask"]}],
    "first_frame+audio_prefix": lambda m: [
        {"type": "first_frame", "image_or_video": m["image"]},
        {"type": "prefix", "audio": m["clip"], "duration": 0.2},
    ],
    "video_to_audio": lambda m: [{"type": "video_to_audio", "video": m["clip"]}],
    "audio_to_video": lambda m: [{"type": "audio_to_video", "audio": m["clip"]}],
}
KEPT = {  # conditioning tokens: video out of 12 (3 latent frames x 2 x 2), audio out of 18
    "first_frame": {"video": 4},
    "prefix": {"video": 8},
    "suffix": {"video": 4},
    "spatial_crop": {"video": 6},
    "mask": {"video": 6},
    "audio_prefix": {"audio": 5},
    "audio_suffix": {"audio": 5},
    "audio_mask": {"audio": 9},
    "first_frame+audio_prefix": {"video": 4, "audio": 5},
    "video_to_audio": {"video": 12},
    "audio_to_video": {"audio": 18},
}


@pytest.mark.parametrize("name", list(CONDITIONS))
def test_conditioning_tokens_equal_the_encoded_condition_after_sampling(ltx2, media, name):
    model, prompt, negative = ltx2
    encoded = _encode(model, CONDITIONS[name](media))
    out = _tokens(model, generate(model, prompt, negative, _spec(model), encoded))
    for modality in ("video", "audio"):
        cond = getattr(encoded, modality)
        if modality not in KEPT[name]:
            assert cond is None
            continue
        assert int(cond.keep.sum()) == KEPT[name][modality]
        kept, free = out[modality][0][cond.keep], out[modality][0][~cond.keep]
        assert torch.equal(kept, cond.clean[0][cond.keep])  # re-imposed exactly after the last step
        assert cond.frozen == (cond.keep.all().item())
        if free.numel():
            assert not torch.allclose(free, torch.zeros_like(free))  # the rest was generated
    if name == "first_frame":  # the tokens are the image's own encoding (resized, center-cropped, alone)
        frames = resize_and_crop(read_video(media["image"])[0], 64, 64)
        assert torch.equal(out["video"][:, :4], _encode_frames(model, frames))
    if name == "video_to_audio":  # the frozen video is the clip's encoding, untouched by sampling
        frames = resize_and_crop(read_video(media["clip"], max_frames=17, fps=24.0)[0], 64, 64)
        assert torch.equal(out["video"], _encode_frames(model, frames))


def test_reference_tokens_condition_the_target_and_leave_the_output(ltx2, media, tmp_path):
    model, prompt, negative = ltx2
    reference = {"type": "reference", "video": media["clip"], "downscale_factor": 2, "temporal_scale_factor": 2}
    encoded = _encode(model, [{**reference, "include_in_output": True}])
    video = encoded.video
    assert video.reference.shape == (1, 2, 128)  # 9 frames at 32x32 -> 2 x 1 x 1 tokens
    assert not video.keep.any()
    # positions share the target's space and time: y/x scaled back by 2, time shifted by -(2-1)/fps and clamped
    positions = video.reference_positions
    assert positions[0, 1:, 0].tolist() == [[0.0, 64.0], [0.0, 64.0]]
    torch.testing.assert_close(positions[0, 0, 1], torch.tensor([2 / 24 - 1 / 24, 18 / 24 - 1 / 24]))
    spec = _spec(model)
    with_ref = generate(model, prompt, negative, spec, encoded)
    without = generate(model, prompt, negative, spec)
    assert with_ref.video_latents.shape == without.video_latents.shape == (1, 128, 3, 2, 2)
    assert not torch.equal(with_ref.video_latents, without.video_latents)
    path = save_sample(model, with_ref, tmp_path / "side_by_side", 24.0)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (128, 64)  # reference | output
    audio_ref = _encode(model, [{"type": "reference", "audio": media["clip"]}]).audio
    assert audio_ref.reference.shape == (1, 18, 128) and not audio_ref.keep.any()


def test_condition_errors_name_what_to_change(ltx2, media):
    model, _, _ = ltx2
    with pytest.raises(ValueError, match=r"prefix: num_frames=8 must be 8k\+1"):
        _encode(model, [{"type": "prefix", "video": media["clip"], "num_frames": 8}])
    with pytest.raises(ValueError, match="downscale_factor 4"):
        _encode(model, [{"type": "reference", "video": media["clip"], "downscale_factor": 4}])
    with pytest.raises(ValueError, match="width=50 is not a multiple of 32"):
        generate(model, *ltx2[1:], _spec(model, width=50))


# ---- LoRA: in memory during training == from the saved file ----------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tiny_ltx2, tmp_path_factory):
    """A LoRA trained for 2 steps (weights saved in float32, alpha = rank) and the trainer that holds it."""
    paths = tiny_ltx2["2.0"]
    root = make_dataset(tmp_path_factory.mktemp("data"), paths["single_file"], paths["gemma"], (LARGE,), 1)
    config = training_config(
        paths["single_file"],
        root,
        tmp_path_factory.mktemp("run"),
        optimization={"steps": 2, "learning_rate": 1e-2},
        lora={"target_modules": ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]},
    )
    trainer = Trainer(config)
    trainer.setup()
    result = trainer.train()
    return trainer, result.weights


def test_lora_file_samples_the_same_frames_as_the_in_memory_lora(ltx2, trained, tiny_ltx2):
    base, prompt, negative = ltx2
    trainer, weights = trained
    spec = _spec(base, steps=3, seed=11)
    trainer.accelerator.unwrap_model(trainer.model.transformer).eval()  # as validation samples it
    in_memory = generate(trainer.model, prompt, negative, spec)

    paths = tiny_ltx2["2.0"]
    fresh = load_model(paths["single_file"], paths["gemma"])
    handles = apply_loras(fresh.transformer, [(read_lora(weights, fresh.diffusers_module_name), 1.0)])
    from_file = generate(fresh, prompt, negative, spec)
    assert torch.equal(from_file.video_latents, in_memory.video_latents)
    assert torch.equal(from_file.audio_latents, in_memory.audio_latents)
    frames_file, wave_file, _ = decode_sample(fresh, from_file, seed=spec.seed)
    frames_memory, wave_memory, _ = decode_sample(trainer.model, in_memory, seed=spec.seed)
    assert torch.equal(frames_file, frames_memory) and torch.equal(wave_file, wave_memory)

    for handle in handles:
        handle.remove()
    without = generate(fresh, prompt, negative, spec)
    assert not torch.allclose(without.video_latents, in_memory.video_latents, atol=1e-4)  # the LoRA matters
    apply_loras(fresh.transformer, [(read_lora(weights, fresh.diffusers_module_name), 1.0)], merge=True)
    merged = generate(fresh, prompt, negative, spec)  # W + B @ A: the same up to float rounding
    torch.testing.assert_close(merged.video_latents, in_memory.video_latents, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def ltxv_paths(tmp_path_factory):
    from ltx_trainer.models.tiny import write_tiny_ltxv

    return write_tiny_ltxv(tmp_path_factory.mktemp("tiny-ltxv"))


def test_ltxv_lora_file_in_official_names_reproduces_the_peft_model(ltxv_paths, tmp_path):
    from ltx_trainer.config import LoraConfig
    from ltx_trainer.models.base import ModalityInput, TextContext
    from ltx_trainer.models.lora_files import save_lora
    from ltx_trainer.training import adapters

    trained = load_model(ltxv_paths["single_file"])
    adapters.add_lora(trained.transformer, LoraConfig(rank=2, alpha=4))  # alpha != rank: folded into B on export
    with torch.no_grad():
        for name, param in trained.transformer.named_parameters():
            if "lora_B" in name:
                param.normal_(generator=torch.Generator().manual_seed(len(name)))
    sd = adapters.lora_state_dict(trained.transformer)
    written = save_lora(trained, sd, 2, 4, ["to_q"], tmp_path / "ltxv.safetensors", torch.float32)
    assert [p.name for p in written] == ["ltxv.safetensors", "ltxv_diffusers.safetensors"]  # LTXV: both layouts

    fresh = load_model(ltxv_paths["single_file"])
    lora, diffusers_layout = (read_lora(p, fresh.diffusers_module_name) for p in written)
    assert len(lora.pairs) == len(sd) // 2
    for module, (a, b) in lora.pairs.items():
        assert torch.equal(a, diffusers_layout.pairs[module][0]) and torch.equal(b, diffusers_layout.pairs[module][1])
    apply_loras(fresh.transformer, [(lora, 1.0)])
    g = torch.Generator().manual_seed(0)
    video = ModalityInput(
        torch.randn(1, 8, 128, generator=g), torch.full((1, 8), 0.5), torch.full((1,), 0.5),
        fresh.video_positions(1, 2, 2, 2, 24.0),
    )  # fmt: skip
    context = TextContext(torch.randn(1, 6, 32, generator=g), None, torch.ones(1, 6, dtype=torch.long))
    with torch.no_grad():
        expected, _ = trained.forward(video, None, context)
        got, _ = fresh.forward(video, None, context)
        base, _ = load_model(ltxv_paths["single_file"]).forward(video, None, context)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert (base - expected).abs().max() > 1e-3


def test_lora_argument_and_key_errors(tmp_path):
    assert parse_lora_arg("a/b.safetensors:0.5") == (Path("a/b.safetensors"), 0.5)
    assert parse_lora_arg("C:/x.safetensors") == (Path("C:/x.safetensors"), 1.0)
    from safetensors.torch import save_file

    from ltx_trainer.models.formats.ltx2_transformer import module_to_diffusers

    key = "diffusion_model.transformer_blocks.0.attn1.to_q.lora_"
    save_file({key + "A.weight": torch.zeros(2, 4)}, tmp_path / "h.st")
    with pytest.raises(ValueError, match="without both lora_A and lora_B"):
        read_lora(tmp_path / "h.st", module_to_diffusers)
    header = {"reference_downscale_factor": "2", "reference_temporal_scale_factor": "3"}
    pair = {
        key + "A.weight": torch.ones(2, 4),
        key + "B.weight": torch.ones(4, 2),
        key[:-6] + ".alpha": torch.tensor(4.0),
    }
    save_file(pair, tmp_path / "ic.st", metadata=header)
    lora = read_lora(tmp_path / "ic.st", module_to_diffusers)
    assert lora.reference_scale() == (2, 3)  # the sample command's reference defaults
    assert torch.equal(lora.pairs["transformer_blocks.0.attn1.to_q"][1], torch.full((4, 2), 2.0))  # alpha / rank


# ---- the sample command ----------------------------------------------------------------------------------------------
def _cli(*args: str):
    app = typer.Typer()
    app.command()(sample_command)
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize(("version", "layout"), [("2.0", "single_file"), ("2.3", "diffusers")])
def test_sample_command_writes_video_with_audio(tiny_ltx2, trained, media, tmp_path, version, layout):
    paths = tiny_ltx2[version]
    if layout == "single_file":  # our LoRA (2.0) at 0.8, a first frame, a reference shown beside the output
        extra = ["--text-encoder", paths["gemma"], "--lora", f"{trained[1]}:0.8", "--image", media["image"]]
        extra += ["--reference", media["clip"], "--side-by-side"]
    else:  # the folder brings its own Gemma; extend a clip's video and audio
        extra = ["--video", media["clip"], "--prefix-frames", 9, "--audio", media["clip"], "--audio-prefix", 0.2]
    result = _cli(
        "--model", paths[layout], "--prompt", "a square moves", "--width", 64, "--height", 64, "--frames", 17,
        "--steps", 2, "--output", tmp_path / "out.mp4", *extra,
    )  # fmt: skip
    assert f"ltx2 {version}" in result.output
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.audio[0].rate == (24000 if version == "2.0" else 48000)  # the vocoder's rate
        width = container.streams.video[0].codec_context.width
        assert width == (128 if version == "2.0" else 64)
        assert sum(1 for _ in container.decode(container.streams.video[0])) == 17


def test_sample_command_one_ltxv_frame_is_a_png(ltxv_paths, tmp_path):
    paths = ltxv_paths
    _cli(
        "--model", paths["single_file"], "--text-encoder", paths["t5"], "--prompt", "a square", "--frames", 1,
        "--width", 64, "--height", 96, "--steps", 2, "--video-stg", 1.0, "--stg-block", 40,
        "--output", tmp_path / "still.mp4",
    )  # fmt: skip
    assert not (tmp_path / "still.mp4").exists()
    with Image.open(tmp_path / "still.png") as image:
        assert image.size == (64, 96)


def test_sample_command_reports_bad_requests(tiny_ltx2, tmp_path):
    paths = tiny_ltx2["2.0"]
    app = typer.Typer()
    app.command()(sample_command)
    args = ["--model", str(paths["single_file"]), "--prompt", "x", "--frames", "16", "--output", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)  # cli.py's handler prints the message and exits with its code (2)
    assert isinstance(result.exception, UsageError) and "frames=16 is not 8k+1" in str(result.exception)
    result = CliRunner().invoke(app, [*args[:-4], "--crop", "0,0,32,32"])
    assert isinstance(result.exception, UsageError) and "need --video" in str(result.exception)
    (tmp_path / "taken.mp4").write_bytes(b"a user's earlier sample")  # a rerun never replaces it silently
    result = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "taken.mp4")])
    assert isinstance(result.exception, UsageError) and "--overwrite" in str(result.exception)
    assert (tmp_path / "taken.mp4").read_bytes() == b"a user's earlier sample"


# ---- the official pipeline runs our LoRA -----------------------------------------------------------------------------
@pytest.mark.oracle
def test_official_pipeline_runs_our_trained_lora(oracle, tiny_ltx2, trained, tmp_path):
    paths = tiny_ltx2["2.0"]
    _, weights = trained
    out = oracle.run(
        "pipeline_check.py", "--checkpoint", str(paths["single_file"]), "--gemma", str(paths["gemma"]),
        "--lora", str(weights), "--out", str(tmp_path / "official.mp4"), "--steps", "2",
    )  # fmt: skip
    assert "RESULT: PASS" in out
    assert "the LoRA did not change the decoded output" not in out
