"""Hub push (integrations/hub.py, hub_card.py, ``ltx-trainer push``, ``hub.*``): the folder and model card of a real
tiny run, exactly; the uploads made by the real ``huggingface_hub`` client against a local stand-in of the Hub API
(tests/hub_stand_in.py, never the network); the one-line failures, before any model loads when training."""

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from PIL import Image
from safetensors.torch import load_file

from hub_stand_in import running
from ltx_trainer.commands.push import push
from ltx_trainer.config import check_paths
from ltx_trainer.data.preprocess import Item, preprocess_items
from ltx_trainer.data.preprocess_options import PreprocessOptions
from ltx_trainer.errors import EXIT_ENVIRONMENT
from ltx_trainer.integrations.hub import HubPushFailed, HubUnavailable, Publisher, push_run
from ltx_trainer.integrations.hub_card import build_push_folder, read_run
from ltx_trainer.models.families import load_model
from ltx_trainer.models.releases import trained_on
from ltx_trainer.training.run import launch_from_file
from ltx_trainer.training.trainer import Trainer
from media_fixtures import invoke_command, make_clip
from training_fixtures import SMALL, training_config

REPO = Path(__file__).resolve().parents[1]
TRIGGER = "tinystyle"
PROMPT = "tinystyle a square moves, then a cut"
REPO_ID = "me/tiny-lora"


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


@pytest.fixture(scope="module")
def trained(tiny_ltx2, tmp_path_factory):
    """A tiny LTX-2 LoRA run with a trigger word, validation samples and ``hub.push_to_hub`` + ``push_checkpoints``
    against a stand-in Hub: 2 steps, a checkpoint each step."""
    paths = tiny_ltx2["2.0"]
    data = tmp_path_factory.mktemp("hub-data")
    items = []
    (data / "clips").mkdir()
    for i in range(2):
        clip = make_clip(data / "clips" / f"c{i}.mp4", SMALL.frames, SMALL.width, SMALL.height, fps=24, seed=i)
        items.append(Item(clip, f"clip {i}: a square moves", clip.stem))
    options = PreprocessOptions(
        buckets=[SMALL], output=data / ".precomputed", trigger=TRIGGER, progress=False, write_report=False, dtype=None
    )
    preprocess_items(load_model(paths["single_file"], paths["gemma"]), items, options)
    run_dir = tmp_path_factory.mktemp("hub-run")
    config = training_config(
        paths["single_file"],
        data,
        run_dir,
        model={"text_encoder_path": str(paths["gemma"])},
        optimization={"steps": 2},
        checkpoints={"interval": 1, "keep_last_n": -1},
        validation={  # the last step only, one transformer pass per denoising step: seconds on a CPU
            "interval": 2,
            "skip_initial_validation": True,
            "inference_steps": 2,
            "video_dims": [64, 64, 9],
            "video_cfg_scale": 1.0,
            "audio_cfg_scale": 1.0,
            "video_stg_scale": 0.0,
            "audio_stg_scale": 0.0,
            "video_modality_guidance_scale": 1.0,
            "audio_modality_guidance_scale": 1.0,
            "samples": [{"prompt": PROMPT}],
        },
        hub={"push_to_hub": True, "hub_model_id": REPO_ID, "private": True, "push_checkpoints": True},
    )
    with running() as hub, pytest.MonkeyPatch.context() as env:
        env.setenv("HF_ENDPOINT", hub.url)
        env.setenv("HF_TOKEN", "hf_stand_in")
        env.delenv("HF_HUB_OFFLINE", raising=False)
        trainer = Trainer(config)
        trainer.setup()
        result = trainer.train()
    return SimpleNamespace(run_dir=run_dir, result=result, hub=hub, config=config)


@pytest.fixture
def stand_in(monkeypatch):
    with running() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", "hf_stand_in")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield hub


def test_push_folder_and_model_card_of_a_run_exactly(trained, tmp_path):
    out = tmp_path / "folder"
    result = push_run(trained.run_dir, REPO_ID, include_checkpoints=True, dry_run=True, out=out)
    assert result.files == [
        "README.md",
        "checkpoints/lora_weights_step_00001.safetensors",
        "loss.png",
        "samples/step_000002_1.mp4",
        "samples/step_000002_1.webp",
        "tiny-lora.safetensors",
    ]
    # the final weights are the trainer's final file (the names hub_card reads are the ones training writes)
    assert trained.result.weights.name == "lora_weights_step_00002.safetensors"
    final, pushed = load_file(trained.result.weights), load_file(out / "tiny-lora.safetensors")
    assert final.keys() == pushed.keys() and all((final[k] == pushed[k]).all() for k in final)

    card = (out / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["base_model"] == "Lightricks/LTX-2"
    assert meta["base_model_relation"] == "adapter"
    assert {"lora", "text-to-video", "ltx-video"} <= set(meta["tags"])
    assert meta["library_name"] == "diffusers" and meta["pipeline_tag"] == "text-to-video"
    assert (meta["license"], meta["license_name"]) == ("other", "ltx-2-community-license-agreement")
    assert meta["instance_prompt"] == TRIGGER
    assert meta["widget"] == [{"text": PROMPT, "output": {"url": "samples/step_000002_1.mp4"}}]
    assert (out / meta["widget"][0]["output"]["url"]).is_file()

    for section in ("## Trigger word", "## Samples", "## Training", "## How to use it", "## License"):
        assert section in card
    assert f"Start prompts with `{TRIGGER}`" in card
    assert "| LoRA rank / alpha | 4 / 4 (alpha/rank folded into the weights) |" in card
    assert "| Steps | 2 of 2 |" in card
    assert "| Learning rate | 0.001 (" in card
    assert "| Resolution buckets (WxHxF) | 64x64x9 (2) |" in card
    assert "| Dataset | 2 clips |" in card
    assert "![loss curve](loss.png)" in card
    assert f"![{PROMPT}](samples/step_000002_1.webp)" in card
    assert "LoraLoaderModelOnly" in card and "python -m ltx_pipelines.ti2vid_one_stage" in card
    assert 'pipe.load_lora_weights("me/tiny-lora", weight_name="tiny-lora.safetensors")' in card
    assert "LTX-2 Community License Agreement" in card

    with Image.open(out / "samples/step_000002_1.webp") as preview:
        assert preview.format == "WEBP" and preview.is_animated and preview.n_frames == SMALL.frames
    with Image.open(out / "loss.png") as curve:
        assert curve.format == "PNG" and curve.width > 100


def test_training_pushes_each_checkpoint_then_the_run_to_the_stand_in(trained):
    hub = trained.hub
    assert hub.requests[0] == ("GET", "/api/whoami-v2")  # the preflight, at setup
    assert hub.tokens == {"Bearer hf_stand_in"}
    assert hub.created == [{"name": "tiny-lora", "organization": "me", "visibility": "private"}] * 2
    assert [(c.repo_id, c.revision) for c in hub.commits] == [(REPO_ID, "main")] * 2
    step_1, final = hub.commits
    assert step_1.summary == "ltx-trainer: checkpoint step 1"
    assert set(step_1.files) == {"checkpoints/lora_weights_step_00001.safetensors"}
    assert (
        step_1.files["checkpoints/lora_weights_step_00001.safetensors"]
        == (trained.run_dir / "checkpoints" / "lora_weights_step_00001.safetensors").read_bytes()
    )
    folder = trained.run_dir / "hub"
    expected = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert ".ltx-trainer-push" in expected  # the marker stays local
    expected.remove(".ltx-trainer-push")
    assert sorted(final.files) == expected
    assert "checkpoints/lora_weights_step_00001.safetensors" in final.files  # hub.push_checkpoints
    assert all(final.files[name] == (folder / name).read_bytes() for name in expected)
    assert final.summary == "ltx-trainer: lora weights at step 2"
    assert not (trained.run_dir / ".hub-staging").exists()


def test_push_command_uploads_and_a_failed_push_says_how_to_retry(trained, stand_in, tmp_path):
    out = tmp_path / "folder"
    stand_in.commit_status = 403
    with pytest.raises(HubPushFailed) as failed:
        push_run(trained.run_dir, "me/other", private=False, out=out)
    message = str(failed.value)
    assert failed.value.exit_code == EXIT_ENVIRONMENT
    assert f"the run is intact in {trained.run_dir}" in message
    retry = message.split("retry with `")[1].rstrip("`")
    assert retry == f"ltx-trainer push {trained.run_dir} me/other"
    assert (trained.run_dir / "checkpoints" / "lora_weights_step_00002.safetensors").is_file()

    stand_in.commit_status = 200
    run = invoke_command(push, *retry.split()[2:], "--out", str(out))
    assert run.exit_code == 0, run.output
    assert "pushed" in run.output and "me/other/commit/" in run.output
    committed = stand_in.committed()
    assert set(committed) == {
        "README.md",
        "loss.png",
        "other.safetensors",  # the weights are named after the repository
        "samples/step_000002_1.mp4",
        "samples/step_000002_1.webp",
    }
    assert _front_matter(committed["README.md"].decode())["base_model"] == "Lightricks/LTX-2"
    assert stand_in.created[-1]["visibility"] == "public"


def test_dry_run_prints_the_folder_and_uploads_nothing(trained, stand_in, tmp_path):
    run = invoke_command(push, str(trained.run_dir), REPO_ID, "--dry-run", "--out", str(tmp_path / "f"))
    assert run.exit_code == 0, run.output
    assert "tiny-lora.safetensors" in run.output and "dry run: nothing uploaded" in run.output
    assert stand_in.requests == []


def test_push_refuses_a_folder_it_did_not_make_and_a_directory_that_is_not_a_run(trained, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    run = invoke_command(push, str(trained.run_dir), REPO_ID, "--dry-run", "--out", str(mine))
    assert run.exit_code == 2 and "was not made by `ltx-trainer push`" in run.output
    assert (mine / "notes.txt").read_text() == "keep me"
    run = invoke_command(push, str(tmp_path), REPO_ID, "--dry-run")
    assert run.exit_code == 2 and "not a training run" in run.output
    run = invoke_command(push, str(trained.run_dir), "me/a/b", "--dry-run")
    assert run.exit_code == 2 and "REPO_ID" in run.output


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    return subprocess.run(
        [sys.executable, "-m", "ltx_trainer.cli", *args], capture_output=True, text=True, env={**clean, **env}
    )


def test_missing_token_rejected_token_and_unreachable_hub_are_one_line_each(tmp_path):
    run_dir = tmp_path / "run"  # the token is checked before the run directory is read
    home = {"HF_HOME": str(tmp_path / "hf-home")}  # no stored login
    no_token = _cli("push", str(run_dir), REPO_ID, **home)
    assert no_token.returncode == EXIT_ENVIRONMENT
    assert no_token.stderr.strip().splitlines() == [
        "error: push: no Hugging Face token (set HF_TOKEN or run `hf auth login`)  (--debug shows the traceback)"
    ]
    with running() as hub:
        hub.whoami_status = 401
        rejected = _cli("push", str(run_dir), REPO_ID, HF_TOKEN="hf_bad", HF_ENDPOINT=hub.url, **home)
        hub.whoami_status, hub.token_role = 200, "read"
        read_only = _cli("push", str(run_dir), REPO_ID, HF_TOKEN="hf_read", HF_ENDPOINT=hub.url, **home)
        closed = hub.url  # nothing listens there once the stand-in stops
    unreachable = _cli("push", str(run_dir), REPO_ID, HF_TOKEN="hf_x", HF_ENDPOINT=closed, **home)
    for proc, words in ((rejected, "rejected the token"), (read_only, "read-only"), (unreachable, "unreachable")):
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == EXIT_ENVIRONMENT and len(lines) == 1 and words in lines[0], proc.stderr


def test_training_checks_the_hub_before_loading_any_model(tmp_path, monkeypatch):
    import huggingface_hub.constants

    not_a_model = tmp_path / "model.safetensors"
    not_a_model.write_bytes(b"not a checkpoint")  # loading it would fail: the hub check must come first
    config = training_config(
        not_a_model, tmp_path / "data", tmp_path / "run", hub={"push_to_hub": True, "hub_model_id": REPO_ID}
    )
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(HubUnavailable, match=r"^hub.push_to_hub: no Hugging Face token \(set HF_TOKEN"):
        Trainer(config).setup()
    assert not (tmp_path / "run").exists()  # nothing claimed, nothing written
    for folder in ("latents", "conditions", "audio_latents"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert check_paths(config) == []
    with pytest.raises(HubUnavailable, match=r"^hub\.push_to_hub: no Hugging Face token"):
        launch_from_file(config_file, num_processes=2)  # refused once, before any process starts
    with running() as hub:
        closed = hub.url
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    monkeypatch.setenv("HF_ENDPOINT", closed)
    with pytest.raises(HubUnavailable, match=r"hub\.push_to_hub: the Hugging Face Hub at .* is unreachable"):
        Trainer(config).setup()
    assert Publisher.for_training(config.hub.model_copy(update={"push_to_hub": False}), tmp_path, 2) is None


def test_hub_config_fields_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"hub\.push_checkpoints: needs push_to_hub: true"):
        training_config(Path("m"), tmp_path, tmp_path, hub={"push_checkpoints": True})
    with pytest.raises(ValueError, match=r"hub\.hub_model_id: .*namespace/repo_name"):
        training_config(Path("m"), tmp_path, tmp_path, hub={"push_to_hub": True, "hub_model_id": "a/b/c"})
    with pytest.raises(ValueError, match=r"hub\.hub_model_id: required when push_to_hub"):
        training_config(Path("m"), tmp_path, tmp_path, hub={"push_to_hub": True})


def test_card_for_other_bases_a_diffusers_twin_and_a_full_fine_tune(trained, tiny_ltx2, tmp_path):
    facts = read_run(trained.run_dir)
    assert facts.base == ("ltx2", "2.0")  # from the LoRA header
    assert trained_on(tiny_ltx2["2.3"]["single_file"]) == ("ltx2", "2.3")  # a full checkpoint: detected
    twin = tmp_path / "lora_weights_step_00002_diffusers.safetensors"
    shutil.copy(facts.weights[0], twin)
    ltxv = build_push_folder(
        replace(facts, base=("ltxv", "0.9.5"), weights=[facts.weights[0], twin]), "me/v", tmp_path / "v"
    )
    meta = _front_matter(ltxv.card)
    assert meta["base_model"] == "Lightricks/LTX-Video" and "license_name" not in meta
    assert "v_diffusers.safetensors" in ltxv.files
    assert 'LTXPipeline.from_pretrained("Lightricks/LTX-Video-0.9.5"' in ltxv.card
    assert 'weight_name="v_diffusers.safetensors"' in ltxv.card
    assert "ltx_pipelines" not in ltxv.card  # the official package runs the LTX-2 family only

    full = build_push_folder(replace(facts, kind="model", base=("ltx2", "2.3")), "me/full", tmp_path / "f")
    meta = _front_matter(full.card)
    assert (meta["base_model"], meta["base_model_relation"]) == ("Lightricks/LTX-2.3", "finetune")
    assert "lora" not in meta["tags"] and "LoRA rank" not in full.card
    assert "ComfyUI/models/checkpoints/" in full.card and "--checkpoint-path full.safetensors" in full.card
