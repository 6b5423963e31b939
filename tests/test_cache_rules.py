"""Issue 9 on the cache: video-only samples, every input accounted for, a rebuild command that runs, notes on what a
bucket costs, reruns with new settings, bad cache tensors, pickles, kills and stale temp files (tiny LTX-2 models,
synthetic media)."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import typer
from rich.console import Console

from cli_outcome import invoke
from ltx_trainer.commands.preprocess import preprocess
from ltx_trainer.commands.verify import verify
from ltx_trainer.data.cache import read_fingerprint, read_sample_file, write_sample_file
from ltx_trainer.data.dataset import PrecomputedDataset, collate
from ltx_trainer.data.masks import MaskError, load_mask_array
from ltx_trainer.data.preprocess import PreprocessOptions, parse_buckets, preprocess_dataset, print_summary
from ltx_trainer.data.verify import verify_cache
from ltx_trainer.errors import DataError, UsageError
from ltx_trainer.models.base import FamilySpec
from ltx_trainer.models.families import load_model
from media_fixtures import make_clip, make_image, make_video_without_audio, make_wav

SMALL = "64x64x9"
AUDIO_SOURCES = {"latents": "video_latents", "conditions": "conditions", "audio_latents": "audio_latents"}


@pytest.fixture(scope="module")
def model20(tiny_ltx2):
    return load_model(tiny_ltx2["2.0"]["single_file"], tiny_ltx2["2.0"]["gemma"])


def options(buckets: str = SMALL, **kwargs) -> PreprocessOptions:
    return PreprocessOptions(buckets=parse_buckets(buckets), progress=False, **kwargs)


def clips(folder: Path, n: int = 2, frames: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_clip(folder / f"clip{i}.mp4", frames, 64, 64, fps=24, seed=i)
        (folder / f"clip{i}.txt").write_text(f"clip number {i}")
    return folder


def cache_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.safetensors"))}


def app_with(command) -> typer.Typer:
    app = typer.Typer()
    app.command()(command)
    app.command("noop")(lambda: None)  # two commands: the verb name is part of the command line, as in ltx-trainer
    return app


# ---- 4: --allow-missing-audio, one rule end to end ---------------------------------------------------------------


def test_a_video_only_sample_trains_with_its_audio_loss_masked_and_verify_does_not_call_it_missing(
    tmp_path: Path, model20
) -> None:
    data = clips(tmp_path / "data", n=1)
    make_video_without_audio(data / "silent.mp4", num_frames=12, width=64, height=64)
    (data / "silent.txt").write_text("a silent clip")
    result = preprocess_dataset(data, model20, options(allow_missing_audio=True))
    assert sorted(result.written) == ["clip0", "silent"]

    report = verify_cache(data, model=model20)
    assert report.ok and report.video_only == ["silent"], [p.message for p in report.problems]
    assert not [p for p in report.problems if p.kind == "missing"]

    dataset = PrecomputedDataset(data, AUDIO_SOURCES, spec=model20.spec)
    assert dataset.ids == ["clip0", "silent"]  # before: "1 of 2 samples are incomplete and skipped"
    real, silent = dataset[0], dataset[1]
    assert real["audio_latents"]["audio_present"] == 1.0 and silent["audio_latents"]["audio_present"] == 0.0
    assert not silent["audio_latents"]["latents"].any()
    assert "audio_missing" not in silent["video_latents"]
    # the silent audio is as long as real audio of the same clip length, so both share a batch
    assert silent["audio_latents"]["latents"].shape == real["audio_latents"]["latents"].shape
    batch = collate([real, silent])
    assert batch["audio_latents"]["audio_present"].tolist() == [1.0, 0.0]


# ---- 6: every input accounted for -------------------------------------------------------------------------------


def test_preprocess_accounts_for_audio_files_images_and_other_files(tmp_path: Path, model20, tiny_ltx2) -> None:
    data = clips(tmp_path / "data", n=1)
    make_wav(data / "voice.wav", seconds=1.0)
    make_image(data / "still.png", 80, 60)
    (data / "still.txt").write_text("an image")
    (data / "notes.md").write_text("not media")
    result = preprocess_dataset(data, model20, options())  # no ...x1 bucket declared
    assert result.written == ["clip0"]
    reasons = {s.source: s.reason for s in result.failed}
    assert set(reasons) == {"voice.wav", "still.png"}
    assert "audio-only" in reasons["voice.wav"]
    assert "no single-frame bucket" in reasons["still.png"]
    assert [s.source for s in result.not_media] == ["notes.md"]
    assert not (data / ".precomputed" / "latents" / "still.safetensors").exists()  # no undeclared 64x64x1 bucket
    report = json.loads(result.report.read_text())
    assert report["counts"]["skipped"] == 2 and report["counts"]["not_media"] == 1

    only_audio = tmp_path / "only_audio"
    only_audio.mkdir()
    make_wav(only_audio / "voice.wav", seconds=1.0)
    model = ["--model", tiny_ltx2["2.0"]["single_file"], "--text-encoder", tiny_ltx2["2.0"]["gemma"]]
    run = invoke(app_with(preprocess), ["preprocess", only_audio, *model, "--resolution-buckets", SMALL])
    assert run.exit_code == 1 and "nothing was preprocessed" in run.output and "audio-only" in run.output


# ---- 8: a rebuild command that runs as is, and one verdict ------------------------------------------------------


def test_verify_prints_a_rebuild_command_that_runs_as_is_and_one_verdict(tmp_path: Path, tiny_ltx2) -> None:
    data = clips(tmp_path / "data", n=1)
    make_video_without_audio(data / "silent.mp4", num_frames=12, width=64, height=64)
    (data / "silent.txt").write_text("a silent clip")
    old = ["--model", tiny_ltx2["2.0"]["single_file"], "--text-encoder", tiny_ltx2["2.0"]["gemma"]]
    flags = ["--resolution-buckets", SMALL, "--allow-missing-audio", "--trigger", "MY TOK", "--latents-dtype", "fp32"]
    assert invoke(app_with(preprocess), ["preprocess", data, *old, *flags]).exit_code == 0

    new = ["--model", tiny_ltx2["2.3"]["single_file"], "--text-encoder", tiny_ltx2["2.3"]["gemma"]]
    checked = invoke(app_with(verify), ["verify", data, *new])
    assert checked.exit_code == 1
    assert "cache NOT ok" in checked.output and "samples ok" not in checked.output and "cache ok" not in checked.output
    report = json.loads((data / ".precomputed" / "verify_report.json").read_text())
    commands = {p["message"].split("Rebuild the cache for this model: ")[1] for p in report["problems"]}
    assert len(commands) == 1
    command = commands.pop()
    for flag in ("--text-encoder", "--allow-missing-audio", "--trigger 'MY TOK'", "--latents-dtype fp32", "--output"):
        assert flag in command, (flag, command)

    args = shlex.split(command)
    assert args[:2] == ["ltx-trainer", "preprocess"]
    assert invoke(app_with(preprocess), args[1:]).exit_code == 0  # runs as printed
    rechecked = invoke(app_with(verify), ["verify", data, *new])
    assert rechecked.exit_code == 0 and "cache ok: 2 sample(s) (1 video-only" in rechecked.output


# ---- 11: say once per file what the bucket costs ----------------------------------------------------------------


def test_frames_beyond_the_bucket_crops_and_upscales_are_said_once_per_file(tmp_path: Path, model20) -> None:
    data = tmp_path / "data"
    data.mkdir()
    make_clip(data / "long.mp4", 30, 64, 64, fps=24)
    make_clip(data / "portrait.mp4", 9, 64, 128, fps=24)
    make_clip(data / "small.mp4", 9, 48, 40, fps=24)
    for name in ("long", "portrait", "small"):
        (data / f"{name}.txt").write_text(f"the {name} clip")
    result = preprocess_dataset(data, model20, options(audio=False))
    assert sorted(result.written) == ["long", "portrait", "small"]
    assert len(result.notes["long"]) == 1 and "only the first 9 frames" in result.notes["long"][0]
    assert "of 1.25 s" in result.notes["long"][0]
    assert result.notes["portrait"] == ["cropped 64x128 to the 64x64 bucket: 50% of the picture lost"]
    assert any("upscaled 48x40" in note for note in result.notes["small"])
    console = Console(record=True, width=200)
    print_summary(result, console)
    text = console.export_text()
    assert text.count("only the first 9 frames") == 1 and text.count("50% of the picture lost") == 1
    assert json.loads(result.report.read_text())["notes"] == result.notes


# ---- 16: new settings are not "already done" --------------------------------------------------------------------


def test_rerun_with_new_settings_redoes_the_affected_samples_and_the_report_tells(tmp_path: Path, model20) -> None:
    data = clips(tmp_path / "data", n=2)
    root = data / ".precomputed"
    first = preprocess_dataset(data, model20, options(trigger="OLD"))
    assert sorted(first.written) == ["clip0", "clip1"]
    latents = (root / "latents" / "clip0.safetensors").read_bytes()

    same = preprocess_dataset(data, model20, options(trigger="OLD"))
    assert same.written == [] and sorted(same.already_done) == ["clip0", "clip1"] and same.redone == {}

    trigger = preprocess_dataset(data, model20, options(trigger="NEWTRIG"))  # before: "0 written, 2 already done"
    assert sorted(trigger.written) == ["clip0", "clip1"] and "trigger 'OLD' -> 'NEWTRIG'" in trigger.redone["clip0"]
    assert read_fingerprint(root / "conditions" / "clip0.safetensors")["trigger"] == "NEWTRIG"
    assert (root / "latents" / "clip0.safetensors").read_bytes() == latents  # only the text features were affected
    report = json.loads((root / "preprocess_report.json").read_text())
    assert report["counts"]["redone"] == 2 and report["cache_settings"]["trigger"] == "NEWTRIG"

    buckets = preprocess_dataset(data, model20, options("64x64x9;32x32x9", trigger="NEWTRIG"))
    assert sorted(buckets.written) == ["clip0", "clip1"] and "buckets" in buckets.redone["clip0"]
    assert read_fingerprint(root / "latents" / "clip0.safetensors")["buckets"] == "64x64x9;32x32x9"

    pt = clips(tmp_path / "pt", n=1)
    preprocess_dataset(pt, model20, options(format="pt", trigger="OLD"))
    with pytest.raises(UsageError, match=r"trigger 'OLD' -> 'NEW'.*--overwrite"):
        preprocess_dataset(pt, model20, options(format="pt", trigger="NEW"))
    assert preprocess_dataset(pt, model20, options(format="pt", trigger="NEW", overwrite=True)).written == ["clip0"]


# ---- 18: bad cache tensors ----------------------------------------------------------------------------------------


def _sample(root: Path, name: str, latents: torch.Tensor, width: int = 8) -> None:
    frames, height, w = latents.shape[1:]
    write_sample_file(
        root / "latents" / f"{name}.safetensors",
        {"latents": latents, "num_frames": frames, "height": height, "width": w, "fps": 24.0},
    )
    write_sample_file(
        root / "conditions" / f"{name}.safetensors",
        {"video_prompt_embeds": torch.randn(16, width), "prompt_attention_mask": torch.ones(16)},
    )


def test_bad_cache_tensors_are_refused_by_the_dataset_and_by_verify_naming_the_file(tmp_path: Path) -> None:
    spec = FamilySpec(family="ltx2", version="2.0", has_audio=False, latent_channels=128)
    root = tmp_path / "cache"
    good = torch.randn(128, 2, 2, 2)
    for name in ("a", "b", "c"):
        _sample(root, name, good)
    nan = good.clone()
    nan[0, 0, 0, 0] = float("nan")
    bad = {
        "int32": good.to(torch.int32),
        "float64": good.double(),
        "nan": nan,
        "channels": torch.randn(64, 2, 2, 2),
    }
    for name, latents in bad.items():
        _sample(root, name, latents)
    _sample(root, "wide", good, width=16)  # text features twice as wide as the others

    report = verify_cache(root, {"latents": "video_latents", "conditions": "conditions"}, model=None)
    kinds = {p.sample: p.kind for p in report.problems}
    assert kinds == {"int32": "dtype", "float64": "dtype", "nan": "non_finite", "wide": "shape"}
    assert not report.ok and "cache NOT ok" in report.verdict
    with_spec = PrecomputedDataset(root, {"latents": "video_latents", "conditions": "conditions"}, spec=spec)
    from ltx_trainer.data.verify import check_file

    with pytest.raises(DataError, match="64 latent channels, the model has 128"):
        check_file(root / "latents" / "channels.safetensors", "video_latents", spec)

    for name, match in (("int32", "int32"), ("float64", "float64"), ("nan", "NaN"), ("channels", "64 latent")):
        with pytest.raises(DataError, match=match) as caught:
            with_spec[with_spec.ids.index(name)]
        assert f"latents/{name}.safetensors" in str(caught.value)
    with_spec[with_spec.ids.index("a")]
    with pytest.raises(DataError, match=r"conditions/wide\.safetensors: text features 16 wide"):
        with_spec[with_spec.ids.index("wide")]


# ---- still held: pickles never run, kills leave a resumable cache, stale temps go ----------------------------------


def test_a_pickle_in_the_cache_or_a_mask_never_executes(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for path in (tmp_path / "latents" / "x.pt", tmp_path / "mask.pt"):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"latents": Evil()}, path)
    with pytest.raises(DataError, match="unreadable cache file"):
        read_sample_file(tmp_path / "latents" / "x.pt")
    with pytest.raises(MaskError, match="unreadable mask"):
        load_mask_array(tmp_path / "mask.pt")
    assert not marker.exists()


_RUN = """
import sys
from pathlib import Path
from ltx_trainer.data.preprocess import PreprocessOptions, parse_buckets, preprocess_dataset
from ltx_trainer.models.families import load_model
model = load_model(sys.argv[1], sys.argv[2])
options = PreprocessOptions(buckets=parse_buckets("64x64x9"), progress=False, output=Path(sys.argv[4]))
preprocess_dataset(sys.argv[3], model, options)
"""


def _run(model: list[str], data: Path, out: Path) -> subprocess.Popen:
    """``preprocess`` in a process of its own, to be killed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _RUN, *model, str(data), str(out)], env=env)


@pytest.mark.slow
def test_preprocess_killed_and_rerun_gives_the_uninterrupted_cache(tmp_path: Path, tiny_ltx2, model20) -> None:
    data = clips(tmp_path / "data", n=6)
    preprocess_dataset(data, model20, options(output=tmp_path / "whole"))

    killed = tmp_path / "killed"
    process = _run([str(tiny_ltx2["2.0"]["single_file"]), str(tiny_ltx2["2.0"]["gemma"])], data, killed)
    deadline = time.monotonic() + 300
    while process.poll() is None and not list((killed / "latents").glob("*.safetensors")):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert len(list(killed.rglob("*.safetensors"))) < len(cache_bytes(tmp_path / "whole"))  # killed mid-run
    stale = killed / "latents" / ".clip5.safetensors.tmp.999999.0123abcd.safetensors"  # a dead writer's temp file
    stale.write_bytes(b"partial")

    preprocess_dataset(data, model20, options(output=killed))
    assert not stale.exists()
    assert not list(killed.rglob(".*.tmp.*"))
    assert cache_bytes(killed) == cache_bytes(tmp_path / "whole")  # byte-identical, file for file
