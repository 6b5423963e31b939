"""Shared fixtures: tiny models written to disk in the real formats, and the official-code oracle."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Oracle:
    """The official ltx-core code, run with its own interpreter (shared/oracle/README.md)."""

    python: Path
    dir: Path

    def run(self, script: str, *args: str, timeout: int = 300) -> str:
        """Run an oracle tool; returns its output, fails the test with the tail of it when the tool fails."""
        proc = subprocess.run(
            [str(self.python), str(self.dir / script), *args], capture_output=True, text=True, timeout=timeout
        )
        out = proc.stdout + proc.stderr
        if proc.returncode != 0:
            pytest.fail(f"oracle {script} {' '.join(args)} exited {proc.returncode}:\n{out[-4000:]}")
        return out


def oracle_dir() -> Path:
    return Path(os.environ.get("LTX_ORACLE_DIR", REPO.parent / "shared" / "oracle"))


@pytest.fixture(scope="session")
def ltx25_release() -> Path:
    """The tiny LTX-2.5 split release with ltx-core 1.2.0's reference outputs (read-only data, oracle/ltx25)."""
    folder = oracle_dir() / "ltx25"
    if not (folder / "refs").is_dir():
        pytest.skip(f"LTX-2.5 oracle fixture absent ({folder}); it ships with ../shared/oracle")
    return folder


def find_oracle() -> Oracle | None:
    oracle_dir_ = oracle_dir()
    python = Path(os.environ.get("LTX_ORACLE_PYTHON", ""))  # set by `make test` (ORACLE_VENV)
    if (oracle_dir_ / "load_check.py").is_file() and python.name and python.is_file():
        return Oracle(python=python, dir=oracle_dir_)
    return None


@pytest.fixture(scope="session")
def oracle() -> Oracle:
    found = find_oracle()
    if found is None:
        pytest.skip(
            "oracle venv absent: run `bash ../shared/oracle/setup.sh` (make test does it when ../shared exists)"
        )
    return found


@pytest.fixture(scope="session")
def oracle_checkpoints(oracle: Oracle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Tiny 2.0 and 2.3 checkpoints made by the official code, with reference forwards saved next to them."""
    out = {}
    for variant in ("2.0", "2.3"):
        d = tmp_path_factory.mktemp(f"oracle-{variant}")
        oracle.run("make_tiny_checkpoint.py", "--out", str(d), "--variant", variant)
        ckpt = d / f"ltx-tiny-{variant}.safetensors"
        oracle.run("forward_ref.py", "--checkpoint", str(ckpt), "--out", str(d / "fwd.pt"), "--seed", "0")
        oracle.run(
            "forward_ref.py",
            "--checkpoint",
            str(ckpt),
            "--out",
            str(d / "fwd_first_frame.pt"),
            "--seed",
            "1",
            "--cond-first-frame",
            "--sigma",
            "0.4",
        )
        out[variant] = {"checkpoint": ckpt, "gemma": d / "gemma", "dir": d}
    return out


@pytest.fixture(scope="session")
def tiny_ltx2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Our tiny LTX-2 ("2.0") and LTX-2.3 ("2.3") models, each as a single file, a diffusers folder and a Gemma."""
    from ltx_trainer.models.tiny import write_tiny_ltx2

    return {v: write_tiny_ltx2(tmp_path_factory.mktemp(f"tiny-{v}"), version=v) for v in ("2.0", "2.3")}


@pytest.fixture(scope="session")
def tiny_ltx25(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Our tiny LTX-2.5, written as the official split release (``make-tiny --version 2.5``)."""
    from ltx_trainer.models.tiny_ltx25 import write_tiny_ltx25

    return write_tiny_ltx25(tmp_path_factory.mktemp("tiny-2.5"))
