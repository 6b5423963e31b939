"""Training under real signals: 20 kill -9 at random points (checkpoint writes included) give the bit-identical final
LoRA and full fine-tune; the first SIGINT/SIGTERM saves a resumable checkpoint and exits 130, a second aborts at once;
a cache built for another model is one clean line and exit code 3.

The training runs are forked children of this process (``forked.py``): a restart costs no interpreter start."""

import json
import random
import signal
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from forked import Pause, run, start
from ltx_trainer.config import dump_config
from ltx_trainer.training import checkpoints
from training_fixtures import SMALL, make_dataset, training_config

STEPS = {"lora": 16, "full": 12}
KILLS = {"lora": 12, "full": 8}  # 20 in all
INTERVAL = 2


def write_config(model_path: Path, data_root: Path, out: Path, mode: str, interval: int | None) -> Path:
    config = training_config(
        model_path,
        data_root,
        out,
        model={"training_mode": mode},
        optimization={"steps": STEPS[mode], "batch_size": 1},
        checkpoints={"interval": interval, "keep_last_n": 2},
        **({"lora": None} if mode == "full" else {}),
    )
    path = out.parent / f"{out.name}.yaml"
    path.write_text(dump_config(config))
    return path


def final_weights(out: Path, mode: str) -> dict:
    kind = "lora" if mode == "lora" else "model"
    return load_file(checkpoints.weights_path(out / "checkpoints", kind, STEPS[mode]))


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not (a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].equal(b[k]))]
    assert not different, f"{len(different)} tensor(s) differ, e.g. {different[0]}"


@pytest.fixture(scope="module")
def runs(tiny_ltx2, tmp_path_factory):
    """A tiny LTX-2 cache and the uninterrupted LoRA and full runs (no intermediate checkpoints) to compare with."""
    root = tmp_path_factory.mktemp("kills")
    paths = tiny_ltx2["2.0"]
    data = make_dataset(root / "data", paths["single_file"], paths["gemma"], (SMALL,))
    straight = {}
    for mode in STEPS:
        out = root / f"straight-{mode}"
        code, output = run(["train", write_config(paths["single_file"], data, out, mode, None)], root / f"{mode}.log")
        assert code == 0, output
        straight[mode] = final_weights(out, mode)
    return {"model": paths["single_file"], "data": data, "straight": straight, "root": root}


def resume_point(out: Path) -> int:
    latest = checkpoints.latest_state(out / "checkpoints")
    return int(latest.stem.rsplit("_", 1)[1]) if latest else 0


def next_kill(rng: random.Random, resumes_at: int, total: int) -> Pause:
    """A random point after the resume point: a step, a moment inside a step, or a phase of a checkpoint write."""
    holding = ["step", "fsync-weights", "fsync-state", "renamed-weights"] + (["setup-write"] if resumes_at else [])
    advancing = ["timer", "timer", "renamed-state", "prune"]  # these may leave a newer resume point
    phase = rng.choice(holding + (advancing if resumes_at < total - INTERVAL else []))  # never finish the run early
    if phase == "setup-write":
        return Pause(phase, 0)
    if phase in ("step", "timer"):
        last = total if phase == "step" else total - 2  # a timer kill must land before the run ends
        return Pause(phase, min(resumes_at + rng.randint(1, 2), last), block=phase == "step")
    step = min((resumes_at // INTERVAL + 1) * INTERVAL, total)  # the first checkpoint this run writes
    if phase == "prune" and step < 3 * INTERVAL:  # retention (keep_last_n: 2) first deletes at the third save
        step = 3 * INTERVAL
    return Pause(phase, step)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_random_kill_9s_including_checkpoint_writes_resume_bit_identically(runs, tmp_path, mode):
    rng = random.Random(2026 + len(mode))
    out = tmp_path / "killed"
    config = write_config(runs["model"], runs["data"], out, mode, INTERVAL)
    kills = []
    for attempt in range(KILLS[mode]):
        pause = next_kill(rng, resume_point(out), STEPS[mode])
        child = start(["train", config], tmp_path / f"run{attempt}.log", [pause])
        where = child.wait_paused()
        assert where is not None, f"{pause} was never reached after {kills}:\n{child.output()}"
        if pause.phase == "timer":
            time.sleep(rng.uniform(0.0, 0.1))  # anywhere in the step, its logging or its checkpoint
        code = child.kill()
        assert code == -signal.SIGKILL
        kills.append((where, resume_point(out)))
    code, output = run(["train", config], tmp_path / "final.log")
    assert code == 0, output
    assert_identical(runs["straight"][mode], final_weights(out, mode))
    assert len(kills) == KILLS[mode]
    assert any(w.startswith(("fsync", "renamed", "prune")) for w, _ in kills), kills
    # nothing left behind (no temp file, no orphan of an interrupted retention pass), nothing logged twice
    assert not list(out.rglob(".*.tmp.*"))
    kind = "lora" if mode == "lora" else "model"
    kept = [STEPS[mode] - INTERVAL, STEPS[mode]]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == sorted(
        [checkpoints.weights_path(out, kind, s).name for s in kept]
        + [checkpoints.state_path(out, s).name for s in kept]
    ), kills
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS[mode] + 1))


def _interrupted(runs, tmp_path, first: int, second_inside_write: bool) -> tuple[int, str, Path, Path]:
    out = tmp_path / "run"
    config = write_config(runs["model"], runs["data"], out, "lora", None)
    pauses = [Pause("step", 3)] + ([Pause("fsync-weights", 3)] if second_inside_write else [])
    child = start(["train", config], tmp_path / "interrupted.log", pauses)
    assert child.wait_paused() == "step 3"
    child.signal(first)  # during step 3
    child.go()
    if second_inside_write:
        assert child.wait_paused() == "fsync-weights 3"  # writing the checkpoint the first signal asked for
        child.signal(signal.SIGINT)
        child.go()
    return child.wait(), child.output(), out, config


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_first_signal_saves_a_resumable_checkpoint_and_exits_130(runs, tmp_path, first):
    code, output, out, config = _interrupted(runs, tmp_path, first, second_inside_write=False)
    assert code == 130, output
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if line.startswith("interrupted:")]
    saved = out / "checkpoints" / "lora_weights_step_00003.safetensors"
    assert f"stopped by {signal.Signals(first).name} at step 3" in line and str(out / "checkpoints") in line, line
    assert saved.name in line and saved.is_file()
    assert (out / "checkpoints" / "training_state_step_00003.pt").is_file()
    if first == signal.SIGTERM:
        return  # the same save path; resuming it once (after SIGINT) is enough
    code, output = run(["train", config], tmp_path / "resumed.log")
    assert code == 0, output
    assert "resumed from" in output
    assert_identical(runs["straight"]["lora"], final_weights(out, "lora"))


def test_second_signal_aborts_at_once_without_a_torn_checkpoint(runs, tmp_path):
    code, output, out, _ = _interrupted(runs, tmp_path, signal.SIGINT, second_inside_write=True)
    assert code == 130, output
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if line.startswith("interrupted:")]
    assert "second SIGINT" in line and "aborted" in line, line
    assert not list((out / "checkpoints").iterdir())  # the write in progress was dropped, temp file included


def test_train_on_a_cache_built_for_another_model_is_one_line_and_exit_3(runs, tiny_ltx2, tmp_path):
    for other in (tiny_ltx2["2.3"]["single_file"],):
        config = write_config(other, runs["data"], tmp_path / "other", "lora", None)
        code, output = run(["train", config], tmp_path / "other.log")
        assert code == 3, output
        assert "Traceback" not in output
        errors = [line for line in output.splitlines() if "error" in line.lower()]
        assert len(errors) == 1 and errors[0].startswith("error: "), output
        assert str(runs["data"]) in errors[0] and "preprocess" in errors[0], errors[0]


def test_a_second_run_on_one_output_dir_is_refused_and_a_killed_runs_lock_is_taken_over(runs, tmp_path):
    """Item 13 with two real training processes: the second names the first's PID and host and touches nothing."""
    import socket

    out = tmp_path / "shared"
    config = write_config(runs["model"], runs["data"], out, "lora", INTERVAL)
    first = start(["train", config], tmp_path / "first.log", [Pause("step", 3)])
    assert first.wait_paused() == "step 3"  # holds the lock; step 2 is saved
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, output = run(["train", config], tmp_path / "second.log")
    assert code == 5, output
    (line,) = [line for line in output.splitlines() if line.startswith("error:")]
    assert f"pid {first.pid} on host {socket.gethostname()}" in line, line
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert first.kill() == -signal.SIGKILL
    code, output = run(["train", config], tmp_path / "third.log")
    assert code == 0, output
    assert f"taking over the lock of a run that is gone (pid {first.pid}" in output
    assert_identical(runs["straight"]["lora"], final_weights(out, "lora"))


def test_validation_during_training_shows_progress(runs, tiny_ltx2, tmp_path):
    """Item 9: validation sampling says when it starts, how many samples, and when it is done."""
    config = training_config(
        runs["model"],
        runs["data"],
        tmp_path / "out",
        model={"training_mode": "lora", "text_encoder_path": str(tiny_ltx2["2.0"]["gemma"])},
        optimization={"steps": 1, "batch_size": 1},
        validation={
            "interval": 1,
            "prompts": ["a red square moves"],
            "video_dims": [64, 64, 9],
            "inference_steps": 2,
            "skip_initial_validation": True,
        },
    )
    path = tmp_path / "validating.yaml"
    path.write_text(dump_config(config))
    code, output = run(["train", path], tmp_path / "validating.log")
    assert code == 0, output
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "validation at step 1: sampling 1 sample(s)" in line)
    assert any("validation at step 1 done in" in line and "1 file(s)" in line for line in lines[start + 1 :]), output
