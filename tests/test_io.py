import os
import subprocess
import sys

import pytest
import torch

from ltx_trainer.io import (
    FILE_MODE,
    atomic_save_safetensors,
    atomic_write,
    atomic_write_json,
    clean_stale_temps,
    temp_path,
)


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})

    def broken(tmp):
        tmp.write_text("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(target, broken)
    assert target.read_text().strip().endswith("}") and '"x": 1' in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_files_are_0644_and_safetensors_bytes_do_not_depend_on_key_order(tmp_path):
    old = os.umask(0o022)  # mkstemp-style writers gave 0600 whatever the umask
    try:
        a = atomic_save_safetensors(
            {"b": torch.ones(2), "a": torch.zeros(3)}, tmp_path / "a.safetensors", {"z": "1", "m": "2"}
        )
    finally:
        os.umask(old)
    b = atomic_save_safetensors(
        {"a": torch.zeros(3), "b": torch.ones(2)}, tmp_path / "b.safetensors", {"m": "2", "z": "1"}
    )
    assert a.read_bytes() == b.read_bytes()
    assert (a.stat().st_mode & 0o777) == FILE_MODE


def test_non_finite_json_is_refused(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "m.json", {"loss": float("nan")})
    assert not list(tmp_path.iterdir())


def test_stale_temps_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / "sub" / f".ckpt.safetensors.tmp.{dead_pid}.0123abcd.safetensors"
    stale.parent.mkdir()
    stale.write_bytes(b"x" * 10)
    live = temp_path(tmp_path / "live.pt")
    live.write_bytes(b"y")
    user = tmp_path / ".hidden.tmp.notes"
    user.write_text("mine")
    removed = clean_stale_temps(tmp_path)
    assert removed == [stale]
    assert live.exists() and user.exists()


def test_safetensors_writer_temps_are_removed_only_under_the_run_lock(tmp_path):
    """safetensors 0.8 writes through its own ``.tmpXXXXXX`` next to our temp path; a kill inside it leaves one."""
    from safetensors.torch import save_file

    foreign = tmp_path / "checkpoints" / ".tmpcZnxzS"
    foreign.parent.mkdir()
    foreign.write_bytes(b"half a checkpoint")
    user = tmp_path / ".tmp_notes"
    user.write_text("mine")
    assert clean_stale_temps(tmp_path) == []  # without the lock another writer may own it
    assert clean_stale_temps(tmp_path, locked=True) == [foreign]
    assert user.exists()
    save_file({"x": torch.zeros(2)}, str(tmp_path / "probe.safetensors"))  # the writer does leave nothing behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp_notes", "checkpoints", "probe.safetensors"]
