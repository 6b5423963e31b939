"""Scale-out with real processes (gloo on the CPU): N processes x batch b train what 1 process x batch N*b trains,
validation samples are shared between ranks, checkpoints resume across world sizes, a killed rank ends the job,
preprocessing shards merge into the 1-process cache, and the shipped accelerate configs parse."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ltx_trainer.config import dump_config
from ltx_trainer.errors import UsageError
from ltx_trainer.training.trainer import Trainer
from training_fixtures import SMALL, make_dataset, training_config

REPO = Path(__file__).resolve().parents[1]
STEPS = 4


@pytest.fixture(scope="module")
def data(tiny_ltx2, tmp_path_factory):
    """Three clips of one bucket: with 2 x batch 1 every epoch ends in a short global batch (one rank pads)."""
    paths = tiny_ltx2["2.0"]
    root = make_dataset(tmp_path_factory.mktemp("data"), paths["single_file"], paths["gemma"], (SMALL,), 3)
    return paths, root


def config_for(data, out: Path, batch: int, steps: int = STEPS, **overrides):
    paths, root = data
    overrides["checkpoints"] = {"interval": 2, "keep_last_n": -1, **overrides.get("checkpoints", {})}
    optimization = {"steps": steps, "batch_size": batch, "learning_rate": 1e-3, **overrides.pop("optimization", {})}
    return training_config(paths["single_file"], root, out, optimization=optimization, **overrides)


def write(config, path: Path) -> Path:
    path.write_text(dump_config(config))
    return path


def train_in_process(config) -> Trainer:
    trainer = Trainer(config)
    trainer.setup()
    trainer.train()
    return trainer


def lora(out: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(out / "checkpoints" / f"lora_weights_step_{step:05d}.safetensors")


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def launch(config_path: Path, processes: int = 2, accelerate_config: str | None = None, **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "ltx_trainer.cli", "train", str(config_path), "--num-processes", str(processes)]
    if accelerate_config is not None:
        command += ["--accelerate-config", str(REPO / "configs" / "accelerate" / accelerate_config)]
    return subprocess.Popen(command, cwd=REPO, env=env, text=True, **popen)


def run_launched(config_path: Path, **kwargs) -> str:
    """Launch 2 processes, wait, and return their output (the test fails with its tail when the job fails)."""
    proc = launch(config_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-4000:]
    return log


@pytest.mark.slow
def test_two_processes_train_what_one_process_with_twice_the_batch_trains(data, tmp_path):
    """2 x batch 1 (launched by `train --num-processes 2`, with validation) == 1 x batch 2; the 2-process checkpoint
    resumes in 1 process with the same global batch, and a resume with another global batch is refused."""
    paths, _ = data
    validation = {
        "interval": STEPS,
        "skip_initial_validation": True,
        "inference_steps": 2,
        "generate_audio": False,
        "video_dims": [64, 64, 9],
        "samples": [{"prompt": "a square moves"}, {"prompt": "a cut"}, {"prompt": "a square"}],
    }
    two = tmp_path / "two"
    config = config_for(data, two, 1, model={"text_encoder_path": str(paths["gemma"])}, validation=validation)
    proc = launch(write(config, tmp_path / "two.yaml"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]

    one = tmp_path / "one"
    train_in_process(config_for(data, one, 2))
    assert max_diff(lora(one, STEPS), lora(two, STEPS)) <= 1e-5
    assert losses(one) == pytest.approx(losses(two), rel=1e-6, abs=1e-6)  # the logged loss is the all-ranks mean
    assert len(losses(two)) == STEPS  # one record per step: rank 0 logs

    # validation: 3 prompts over 2 ranks, each sample drawn by exactly one rank
    drawn = re.findall(r"validation at step 4 \(rank (\d) of 2\): \d samples in [\d.]+ s: ([^\n]*)", log)
    by_rank = {rank: names.split() for rank, names in drawn}
    assert sorted(by_rank) == ["0", "1"]
    names = [name for ranks in by_rank.values() for name in ranks]
    assert sorted(names) == sorted(p.name for p in (two / "samples").iterdir())
    assert sorted(n.rsplit(".", 1)[0] for n in names) == [f"step_000004_{k}" for k in (1, 2, 3)]
    states = sorted(p.name for p in (two / "checkpoints").glob("rng_state_step_00002_rank*.pt"))
    assert states == ["rng_state_step_00002_rank0.pt", "rng_state_step_00002_rank1.pt"]  # every rank's RNG

    # resume the 2-process run from step 2 in 1 process (same global batch): the same final LoRA
    resumed = tmp_path / "resumed"
    shutil.copytree(two, resumed)
    for path in (resumed / "checkpoints").glob("*_step_00004*"):
        path.unlink()
    trainer = train_in_process(config_for(data, resumed, 2))
    assert trainer.resumed_from.name == "training_state_step_00002.pt"
    assert max_diff(lora(resumed, STEPS), lora(two, STEPS)) <= 1e-5

    # another global batch (1 process x batch 1) is refused in one line naming both
    for path in (resumed / "checkpoints").glob("*_step_00004*"):
        path.unlink()
    with pytest.raises(UsageError, match=r"2 process\(es\) x batch 1 \(global batch 2\), now 1 x 1 = 1") as error:
        Trainer(config_for(data, resumed, 1)).setup()
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_a_killed_rank_ends_the_job_and_two_processes_resume_exactly(data, tmp_path):
    steps = 10
    out = tmp_path / "killed"
    config = config_for(data, out, 1, steps=steps, checkpoints={"interval": 2, "keep_last_n": 2})
    config_path = write(config, tmp_path / "killed.yaml")
    proc = launch(config_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not list((out / "checkpoints").glob("training_state_step_0000[4-8].pt")) and time.time() < deadline:
        time.sleep(0.05)
    rank1 = _rank_pid(proc.pid, 1)
    os.kill(rank1, signal.SIGKILL)
    killed_at = time.time()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert time.time() - killed_at < 60
    assert f"Signal 9 (SIGKILL) received by PID {rank1}" in err
    assert not (out / "checkpoints" / f"lora_weights_step_{steps:05d}.safetensors").exists()

    resumed = launch(config_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    straight = tmp_path / "straight"
    train_in_process(config_for(data, straight, 2, steps=steps, checkpoints={"interval": None}))
    assert max_diff(lora(straight, steps), lora(out, steps)) <= 1e-5


@pytest.mark.slow
@pytest.mark.oracle
def test_fsdp2_on_cpu_trains_the_lora_of_one_process_and_its_checkpoint_resumes_anywhere(data, tmp_path, oracle):
    """configs/accelerate/fsdp2.yaml, 2 gloo processes x batch 1 (CPU FSDP2 through accelerate's own prepare: each
    transformer block a unit, frozen base and fp32 LoRA sharded together) == 1 process x batch 2, losses step by step;
    the gathered LoRA passes the official loader; the FSDP2 checkpoint of step 2 (full optimizer state by name)
    resumes to the same final LoRA under FSDP2 with 2 processes and without FSDP in 1 process.

    AdamW's eps is 1e-6 here: with the default 1e-8, one tensor whose gradient is rounding noise (~1e-10: attn2's
    to_q LoRA B, queries against near-identical tiny-Gemma keys) has that noise scaled up to lr-sized steps, and the
    different float rounding of FSDP2's gathered weights shows as 8.8e-6 max |dLoRA| (measured; 2.7e-7 with 1e-6)."""
    paths, _ = data
    adam = {"optimizer_params": {"eps": 1e-6}}
    two = tmp_path / "fsdp2"
    config_path = write(config_for(data, two, 1, optimization=adam), tmp_path / "fsdp2.yaml")
    log = run_launched(config_path, accelerate_config="fsdp2.yaml")
    assert torch.cuda.is_available() or "FSDP2 on the CPU (gloo)" in log  # GPUs (scripts/gpu_fsdp2.sh): NCCL
    one = tmp_path / "one"
    train_in_process(config_for(data, one, 2, optimization=adam))
    assert max_diff(lora(one, STEPS), lora(two, STEPS)) <= 1e-5
    assert losses(one) == pytest.approx(losses(two), rel=1e-6, abs=1e-6)
    weights = two / "checkpoints" / f"lora_weights_step_{STEPS:05d}.safetensors"
    out = oracle.run("lora_check.py", "--checkpoint", str(paths["single_file"]), "--lora", str(weights))
    assert "RESULT: PASS" in out

    final = lora(two, STEPS)
    single = tmp_path / "single"
    shutil.copytree(two, single)
    for folder in (two, single):
        for path in (folder / "checkpoints").glob(f"*_step_{STEPS:05d}*"):
            path.unlink()
    run_launched(config_path, accelerate_config="fsdp2.yaml")
    assert max_diff(lora(two, STEPS), final) <= 1e-5
    trainer = train_in_process(config_for(data, single, 2, optimization=adam))
    assert trainer.resumed_from.name == "training_state_step_00002.pt"
    assert max_diff(lora(single, STEPS), final) <= 1e-5


@pytest.mark.slow
@pytest.mark.oracle
def test_fsdp2_on_cpu_full_finetune_equals_one_process_and_passes_the_official_loader(data, tmp_path, oracle):
    paths, _ = data
    full = {"model": {"training_mode": "full"}, "lora": None, "checkpoints": {"interval": None}}
    two = tmp_path / "fsdp2"
    run_launched(write(config_for(data, two, 1, **full), tmp_path / "fsdp2.yaml"), accelerate_config="fsdp2.yaml")
    one = tmp_path / "one"
    train_in_process(config_for(data, one, 2, **full))
    name = f"model_weights_step_{STEPS:05d}.safetensors"
    assert max_diff(load_file(one / "checkpoints" / name), load_file(two / "checkpoints" / name)) <= 1e-5
    assert losses(one) == pytest.approx(losses(two), rel=1e-6, abs=1e-6)
    out = oracle.run(
        "load_check.py", "--checkpoint", str(two / "checkpoints" / name), "--gemma", str(paths["gemma"]), "--strict"
    )
    assert "RESULT: PASS" in out


def _rank_pid(launcher: int, rank: int) -> int:
    """The pid of the training process with ``RANK=rank`` among ``launcher``'s descendants."""
    deadline = time.time() + 60
    while time.time() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                found = (
                    proc.name.isdigit()
                    and f"RANK={rank}".encode() in (proc / "environ").read_bytes().split(b"\0")
                    and "ltx_trainer.cli" in (proc / "cmdline").read_text()
                    and _descends_from(int(proc.name), launcher)
                )
            except OSError:
                continue
            if found:
                return int(proc.name)
        time.sleep(0.1)
    raise AssertionError(f"no rank {rank} process under {launcher}")


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(re.search(r"^PPid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M).group(1))
        except (OSError, AttributeError):
            return False
    return False


def test_shipped_accelerate_configs_parse_with_accelerates_own_dataclasses():
    """Each file loads as accelerate's ClusterConfig (unknown keys are refused) and its FSDP / DeepSpeed section
    builds accelerate's plugin (DeepSpeed itself is not installed here: the plugin's own checks of the values)."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin

    folder = REPO / "configs" / "accelerate"
    configs = {p.stem: ClusterConfig.from_yaml_file(p) for p in folder.glob("*.yaml")}
    assert set(configs) == {
        "ddp",
        "fsdp2",
        "deepspeed_zero2",
        "deepspeed_zero3",
        "deepspeed_zero3_offload",
        "two_nodes",
    }
    assert configs["two_nodes"].num_machines == 2 and configs["two_nodes"].num_processes == 16
    fsdp = configs["fsdp2"].fsdp_config
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=fsdp["fsdp_version"],
        auto_wrap_policy=fsdp["fsdp_auto_wrap_policy"].lower(),
        transformer_cls_names_to_wrap=fsdp["fsdp_transformer_layer_cls_to_wrap"].split(","),
        reshard_after_forward=fsdp["fsdp_reshard_after_forward"],
        state_dict_type=fsdp["fsdp_state_dict_type"],
        cpu_ram_efficient_loading=fsdp["fsdp_cpu_ram_efficient_loading"],
        use_orig_params=fsdp["fsdp_use_orig_params"],
    )
    assert plugin.fsdp_version == 2 and plugin.transformer_cls_names_to_wrap == ["LTX2VideoTransformerBlock"]
    assert fsdp["fsdp_cpu_ram_efficient_loading"] is False  # accelerate's loader fails on diffusers models
    from diffusers.models.transformers import transformer_ltx2

    assert hasattr(transformer_ltx2, fsdp["fsdp_transformer_layer_cls_to_wrap"])  # the class FSDP2 wraps exists
    for name in ("deepspeed_zero2", "deepspeed_zero3", "deepspeed_zero3_offload"):
        ds = configs[name].deepspeed_config
        assert ds["zero_stage"] == int(name[len("deepspeed_zero")])
        assert (ds["offload_optimizer_device"] == "cpu") == name.endswith("offload")
        plugin = DeepSpeedPlugin(
            zero_stage=ds["zero_stage"],
            gradient_accumulation_steps=ds["gradient_accumulation_steps"],
            gradient_clipping=ds["gradient_clipping"],
            offload_optimizer_device=ds["offload_optimizer_device"],
            offload_param_device=ds["offload_param_device"],
            zero3_init_flag=ds["zero3_init_flag"],
            zero3_save_16bit_model=ds.get("zero3_save_16bit_model", False),
        )
        assert plugin.deepspeed_config["zero_optimization"]["stage"] == ds["zero_stage"]


def test_fsdp1_on_the_cpu_is_refused_in_one_line(monkeypatch):
    """Only FSDP2 is lifted onto the CPU; an FSDP1 launch config (read from accelerate's FSDP_* variables) stops."""
    from ltx_trainer.training.distributed import fsdp_on_cpu

    monkeypatch.setenv("FSDP_VERSION", "1")
    with pytest.raises(UsageError, match=r"fsdp_version 1 on the CPU.*fsdp_config\.fsdp_version: 2") as error:
        fsdp_on_cpu(None, "no")
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_preprocess_in_two_processes_equals_one_process_and_a_crashed_shard_resumes_alone(tiny_ltx2, tmp_path):
    from cli_outcome import invoke
    from ltx_trainer.commands.preprocess import preprocess
    from ltx_trainer.data.cache import read_sample_file
    from media_fixtures import make_clip

    data = tmp_path / "clips"
    data.mkdir()
    for i in range(8):
        make_clip(data / f"clip{i}.mp4", 9, 64, 64, fps=24, cuts=[4], seed=i)
        (data / f"clip{i}.txt").write_text(f"clip number {i}")
    paths = tiny_ltx2["2.0"]
    args = ["--model", paths["single_file"], "--text-encoder", paths["gemma"], "--resolution-buckets", "64x64x9"]
    two, one = tmp_path / "two", tmp_path / "one"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "ltx_trainer.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*command, "preprocess", data, *args, "--output", two], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    app = _preprocess_app(preprocess)
    assert invoke(app, ["preprocess", data, *args, "--output", one]).exit_code == 0

    def files(root: Path) -> dict[str, Path]:
        return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.safetensors"))}

    def assert_equal_caches() -> None:
        a, b = files(one), files(two)
        assert a.keys() == b.keys() and len(a) == 8 * 3  # latents, audio latents, conditions
        for name in a:
            x, y = read_sample_file(a[name]), read_sample_file(b[name])
            assert x.keys() == y.keys()
            assert all(torch.equal(x[k], y[k]) if isinstance(x[k], torch.Tensor) else x[k] == y[k] for k in x), name

    assert_equal_caches()
    report = json.loads((two / "preprocess_report.json").read_text())
    assert sorted(report["written"]) == [f"clip{i}" for i in range(8)]
    assert sorted(report["index"]["files"]) == sorted(files(two))
    digest = report["index"]["digest"]

    # shard 1 "crashed": its report is not complete and one of its samples is missing; it is run again alone
    shard1 = two / "preprocess_report.shard-1-of-2.json"
    shard1.write_text(json.dumps({k: v for k, v in json.loads(shard1.read_text()).items() if k != "complete"}))
    (two / "preprocess_report.json").unlink()
    (two / "latents" / "clip3.safetensors").unlink()
    rerun = invoke(app, ["preprocess", data, *args, "--output", two, "--shard-index", "1", "--num-shards", "2"])
    assert rerun.exit_code == 0, rerun.output
    assert_equal_caches()
    merged = json.loads((two / "preprocess_report.json").read_text())
    assert merged["index"]["digest"] == digest and "clip3" in merged["written"]


def _preprocess_app(verb):
    import typer

    app = typer.Typer()
    app.command()(verb)
    app.command("noop")(lambda: None)
    return app
