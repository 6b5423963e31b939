"""Issue 9 checks that have no better home: help that shows every option name whole at 80 columns."""

import re

import pytest
import typer
from typer.testing import CliRunner

from ltx_trainer.cli import LAZY_VERBS, app


def _verbs() -> list[tuple[str, ...]]:
    group = typer.main.get_command(app)
    verbs = []
    for name in sorted(set(group.list_commands(None)) | set(LAZY_VERBS)):
        command = group.get_command(None, name)
        subcommands = getattr(command, "list_commands", None)
        verbs.extend([(name, sub) for sub in subcommands(None)] if subcommands else [(name,)])
    return verbs


def _command(path: tuple[str, ...]):
    command = typer.main.get_command(app)
    for name in path:
        command = command.get_command(None, name)
        command = command.real() if hasattr(command, "real") else command
    return command


@pytest.mark.parametrize("verb", _verbs(), ids=" ".join)
def test_help_shows_every_option_name_whole_at_80_columns(verb, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(app, [*verb, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    names = [opt for param in _command(verb).params for opt in (*param.opts, *param.secondary_opts)]
    names = [n for n in names if n.startswith("-")] + ["--help"]
    for name in names:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", result.output), (name, result.output)


_LOAD_ALL = """
import json, sys
from ltx_trainer.config import ConfigError, load_config
out = {}
for path in sys.argv[1:]:
    try:
        load_config(path)
        out[path] = None
    except ConfigError as e:
        out[path] = str(e)
print(json.dumps({"messages": out, "torch": "torch" in sys.modules}))
"""


def test_every_fuzzed_config_fails_before_torch_is_imported(tmp_path, monkeypatch):
    """Item 19, the whole list in one process that never imports torch: each case one line naming the key."""
    import json
    import subprocess
    import sys

    import yaml

    from test_config import FUZZ, _fuzz_base, _set

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    base = _fuzz_base(tmp_path)
    cases: dict[str, tuple[object, str]] = {
        f"{dotted}={value!r}": (_set(base, dotted, value), dotted.split(".")[-1]) for dotted, value in FUZZ
    }
    validating = _set(_set(base, "validation.interval", 10), "validation.prompts", ["a cat"])
    cases["odd video_dims, validation on"] = (_set(validating, "validation.video_dims", [100, 64, 9]), "video_dims")
    (tmp_path / "taken").write_text("x")
    cases["output_dir is a file"] = (_set(base, "output_dir", str(tmp_path / "taken")), "output_dir")
    cases["binary file"] = (bytes(range(256)) * 4, "binary")
    cases["duplicated key"] = (yaml.safe_dump(base) + "lora:\n  rank: 4\n", "duplicated key 'lora'")
    paths = {}
    for i, (name, (content, key)) in enumerate(cases.items()):
        path = tmp_path / f"case{i}.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        paths[str(path)] = (name, key)
    proc = subprocess.run([sys.executable, "-c", _LOAD_ALL, *paths], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["torch"] is False
    for path, message in result["messages"].items():
        name, key = paths[path]
        assert message is not None, f"{name}: accepted"
        assert "\n" not in message and message.startswith(path) and key in message, (name, message)


def test_retention_removes_what_a_killed_pass_left_and_deletes_the_state_before_the_weights(tmp_path, monkeypatch):
    """A kill -9 in the middle of pruning left step 2's state without its weights (and step 4 whole): the next pass
    removes both; within a step the training state goes first, so an interrupted pass never orphans a state file."""
    from ltx_trainer.training import checkpoints

    (tmp_path / "training_state_step_00002.pt").write_bytes(b"s")  # its weights were deleted before the kill
    for step in (4, 6, 8):
        checkpoints.weights_path(tmp_path, "lora", step).write_bytes(b"w")
        checkpoints.state_path(tmp_path, step).write_bytes(b"s")
    order = []
    original = type(tmp_path).unlink

    def unlink(self, *args, **kwargs):
        order.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "unlink", unlink)  # records the order; the files are really deleted
    checkpoints.prune(tmp_path, keep_last_n=2, protect={8})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lora_weights_step_00006.safetensors",
        "lora_weights_step_00008.safetensors",
        "training_state_step_00006.pt",
        "training_state_step_00008.pt",
    ]
    assert order == [
        "training_state_step_00002.pt",
        "training_state_step_00004.pt",
        "lora_weights_step_00004.safetensors",
    ]
