"""LTX-2.5 through the unchanged trainer and sampler: LoRA and full fine-tunes of our tiny split release in t2v, i2v
and video-to-audio, exported in the official layout, reloaded, reproducing the trained outputs."""

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ltx_trainer.models import latents as lat
from ltx_trainer.models.base import ModalityInput, TextContext
from ltx_trainer.models.families import load_model
from ltx_trainer.sampling.lora import apply_loras, read_lora
from ltx_trainer.training.trainer import Trainer
from training_fixtures import SMALL, make_dataset, training_config

TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "audio_ff.net.0.proj", "audio_ff.net.2"]
STRATEGIES = {
    "t2v": {"video": {"is_generated": True, "latents_dir": "latents"}},
    "i2v": {
        "video": {
            "is_generated": True,
            "latents_dir": "latents",
            "conditions": [{"type": "first_frame", "probability": 1.0}],
        },
        "audio": {"is_generated": True, "latents_dir": "audio_latents"},
    },
    "v2a": {
        "video": {"is_generated": False, "latents_dir": "latents"},
        "audio": {"is_generated": True, "latents_dir": "audio_latents"},
    },
}


@pytest.fixture(scope="module")
def data25(tiny_ltx25, tmp_path_factory):
    """Clips preprocessed with the 2.5 encoders (video, audio, Gemma-4 features)."""
    return make_dataset(tmp_path_factory.mktemp("data-2.5"), tiny_ltx25["release"], None, (SMALL,))


def probe(model) -> tuple[ModalityInput, ModalityInput, TextContext]:
    g = torch.Generator().manual_seed(3)
    grid = lat.LatentGrid(2, 2, 2)
    sigma = torch.tensor([0.7])
    timesteps = torch.full((1, grid.tokens), 0.7)
    timesteps[:, : grid.tokens_per_frame] = 0.0  # a clean first frame: per-token timesteps
    video = ModalityInput(
        torch.randn(1, grid.tokens, 128, generator=g),
        timesteps,
        sigma,
        model.video_positions(1, 2, 2, 2, 24.0),
        lat.keyframe_marker(1, grid),
    )
    audio = ModalityInput(
        torch.randn(1, 9, 128, generator=g), torch.full((1, 9), 0.4), torch.tensor([0.4]), model.audio_positions(1, 9)
    )
    context = TextContext(torch.randn(1, 16, 32, generator=g), torch.randn(1, 16, 16, generator=g), torch.ones(1, 16))
    return video, audio, context


def outputs(model) -> tuple[torch.Tensor, torch.Tensor]:
    model.transformer.eval()
    with torch.no_grad():
        return model.forward(*probe(model))


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_ltx25_trains_exports_and_reloads(tiny_ltx25, data25, tmp_path, strategy, mode):
    config = training_config(
        tiny_ltx25["transformer"],
        data25,
        tmp_path,
        model={"training_mode": mode},
        training_strategy={"name": "flexible", **STRATEGIES[strategy]},
        optimization={"steps": 2, "batch_size": 1, "learning_rate": 1e-2},
        **({"lora": None} if mode == "full" else {"lora": {"rank": 4, "alpha": 8, "target_modules": TARGETS}}),
    )
    trainer = Trainer(config)
    trainer.setup()
    base = outputs(load_model(tiny_ltx25["release"]))
    result = trainer.train()
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    trained = outputs(trainer.model)
    assert (trained[0] - base[0]).abs().max() > 1e-4 or (trained[1] - base[1]).abs().max() > 1e-4

    if mode == "lora":
        reloaded = load_model(tiny_ltx25["release"])
        apply_loras(reloaded.transformer, [(read_lora(result.weights, reloaded.diffusers_module_name), 1.0)])
    else:
        reloaded = load_model(result.weights, tiny_ltx25["text_encoder"])  # a transformer file of the release
        assert reloaded.spec.version == "2.5"
    again = outputs(reloaded)
    torch.testing.assert_close(again[0], trained[0], rtol=0, atol=2e-5)
    torch.testing.assert_close(again[1], trained[1], rtol=0, atol=2e-5)


def test_ltx25_lora_export_has_the_official_layout(tiny_ltx25, data25, tmp_path):
    """Every LoRA module is a weight of the 2.5 transformer file: no FFN biases, no prompt_adaln_single."""
    config = training_config(
        tiny_ltx25["release"], data25, tmp_path, lora={"rank": 4, "alpha": 4, "target_modules": [*TARGETS, "linear"]}
    )
    trainer = Trainer(config)
    trainer.setup()
    result = trainer.train()
    with safe_open(tiny_ltx25["transformer"], "pt") as f:
        weights = {k.removeprefix("model.") for k in f.keys() if k.endswith(".weight")}
    keys = load_file(result.weights)
    modules = {k.rsplit(".lora_", 1)[0] for k in keys}
    assert all(k.startswith("diffusion_model.") and k.endswith((".lora_A.weight", ".lora_B.weight")) for k in keys)
    assert {f"{m}.weight" for m in modules} <= weights
    assert any(".ff.net.2" in m for m in modules) and any("adaln_single.linear" in m for m in modules)
    assert not any("prompt_adaln" in m for m in modules)


@pytest.mark.parametrize("decoder", ["conv", "diffusion"])
def test_ltx25_sample_command_writes_video_with_audio(tiny_ltx25, tmp_path, decoder):
    import av
    import typer
    from typer.testing import CliRunner

    from ltx_trainer.commands.sample import sample as sample_command

    app = typer.Typer()
    app.command()(sample_command)
    args = ["--model", tiny_ltx25["release"], "--prompt", "a square moves", "--width", 64, "--height", 64]
    args += ["--frames", 17, "--steps", 2, "--video-decoder", decoder, "--output", tmp_path / "out.mp4"]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "ltx2 2.5" in result.output
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.audio[0].rate == 48000
        assert container.streams.video[0].codec_context.width == 64
        assert sum(1 for _ in container.decode(container.streams.video[0])) == 17
