"""The command line: fast start without heavy imports, and one error-to-exit-code rule for every verb."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "transformers", "av", "gradio")


def test_help_and_config_validate_import_no_heavy_library():
    script = (
        "import sys\n"
        "from ltx_trainer.cli import app\n"
        "for args in (['--help'], ['config', 'validate', sys.argv[1]]):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (args, e.code)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(REPO / "configs" / "t2v_lora.yaml")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_expected_failure_is_one_line_with_its_exit_code_and_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "model: {model_path: /x, training_mode: full}\ndata: {preprocessed_data_root: /y}\n"
        "training_strategy: {name: flexible, video: {is_generated: true, latents_dir: latents}}\n"
        "optimization: {learning_rate: .inf}\n"
    )
    cmd = [sys.executable, "-m", "ltx_trainer.cli"]
    plain = subprocess.run([*cmd, "config", "validate", str(bad)], capture_output=True, text=True)
    assert plain.returncode == 2
    assert "Traceback" not in plain.stderr
    lines = [line for line in plain.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "optimization.learning_rate" in lines[0], plain.stderr
    debug = subprocess.run([*cmd, "--debug", "config", "validate", str(bad)], capture_output=True, text=True)
    assert debug.returncode == 2 and "Traceback" in debug.stderr
