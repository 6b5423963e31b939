"""The web UI's logic without a browser: allowed roots, the config form from the schema, run folders and processes,
caption editing, the rejected-inputs list, and the ``ui`` verb's refusals (the browser tests: test_ui_browser.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from cli_outcome import invoke
from ltx_trainer.cli import app
from ltx_trainer.config import LtxTrainerConfig, parse_config
from ltx_trainer.errors import UsageError
from ltx_trainer.ui import dataset_ops, form, runs
from ltx_trainer.ui.roots import PathRefused, Roots

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "ltx_trainer"


# ---- roots ----


def test_roots_allow_what_is_inside_and_refuse_the_rest_links_included(tmp_path):
    inside, outside = tmp_path / "work", tmp_path / "private"
    (inside / "data").mkdir(parents=True)
    outside.mkdir()
    (inside / "escape").symlink_to(outside)
    roots = Roots.of([inside])
    assert roots.check(inside / "data" / "new.yaml", "YAML file") == (inside / "data" / "new.yaml").resolve()
    assert roots.check(str(inside / "data" / ".." / "x"), "x") == (inside / "x").resolve()
    for path in (outside / "a.yaml", inside / ".." / "private", inside / "escape" / "secret.txt"):
        with pytest.raises(PathRefused, match=r"^model\.model_path: .* is outside the folders this UI may use"):
            roots.check(path, "model.model_path")
    with pytest.raises(PathRefused, match="empty"):
        roots.check("  ", "Dataset")
    with pytest.raises(UsageError, match="does not exist"):
        Roots.of([tmp_path / "missing"])


# ---- the form ----


def _schema_leaves() -> dict[str, object]:
    """key -> pydantic FieldInfo of every field the form must show (a section's fields, or the field itself)."""
    leaves = {}
    for name, info in LtxTrainerConfig.model_fields.items():
        tp, _ = form._strip(info.annotation)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            leaves.update({f"{name}.{sub}": sub_info for sub, sub_info in tp.model_fields.items()})
        else:
            leaves[name] = info
    return leaves


def test_every_schema_field_is_in_the_form_with_its_description_and_default():
    fields = {f.key: f for f in form.schema_fields()}
    leaves = _schema_leaves()
    assert set(fields) == set(leaves) and len(fields) > 60
    for key, info in leaves.items():
        shown = fields[key]
        assert shown.description == (info.description or "").strip(), key
        assert shown.description in shown.info
        if info.is_required():
            assert shown.required and "Required." in shown.info, key
        elif info.default_factory is None and info.default not in (None, "") and not isinstance(info.default, bool):
            assert f"Default: {form.to_widget(shown, info.default)[:100]}" in shown.info, key
    assert fields["optimization.scheduler_type"].choices[:2] == ("constant", "linear")
    assert fields["acceleration.quantization"].choices[-1] == form.NULL  # optional: null is a choice
    assert fields["training_strategy"].kind == "yaml" and fields["validation.samples"].kind == "yaml"
    assert form.optional_sections() == ("lora", "pipeline")
    assert [s.name for s in form.schema_sections()][-1] == form.GENERAL


@pytest.mark.parametrize("preset", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_a_preset_goes_through_the_form_unchanged(preset):
    data = yaml.safe_load(preset.read_text())
    values = form.values_from_mapping(data)
    back, problems = form.mapping_from_values(values)
    assert problems == []
    assert parse_config(back).model_dump() == parse_config(data).model_dump()


def test_the_form_reports_what_config_validate_prints_under_the_field_it_names(tmp_path):
    values = form.values_from_mapping(yaml.safe_load((REPO / "configs" / "t2v_lora.yaml").read_text()))
    values.update({"optimization.steps": "0", "lora.rank": "abc", "optimization.scheduler_type": "cosine"})
    values["training_strategy"] = "name: flexible\nvideo: {is_generated: true}\n"
    check = form.check_values(values, Roots.of([tmp_path]))
    assert not check.ok and check.config is None
    assert set(check.errors) == {"optimization.steps", "lora.rank", "training_strategy"}

    written = tmp_path / "same.yaml"
    written.write_text(yaml.safe_dump(check.data))
    cli = invoke(app, ["config", "validate", written])
    assert cli.exit_code == 2
    for line in check.lines():  # the same words, line for line
        assert line in cli.output, (line, cli.output)

    values.update({"optimization.steps": "1000", "lora.rank": "8", "training_strategy": "name: flexible\nvideo: [\n"})
    broken = form.check_values(values, Roots.of([tmp_path]))
    assert list(broken.errors) == ["training_strategy"]
    assert broken.errors["training_strategy"][0].startswith("training_strategy: invalid YAML at line")


def test_paths_outside_the_roots_and_missing_paths_are_filed_under_their_fields(tmp_path):
    root = tmp_path / "root"
    (root / "data" / "latents").mkdir(parents=True)
    (root / "data" / "conditions").mkdir()
    (root / "model.safetensors").write_bytes(b"")
    values = form.values_from_mapping(
        {
            "model": {"model_path": str(root / "model.safetensors")},
            "lora": {},
            "training_strategy": {"name": "flexible", "video": {"is_generated": True, "latents_dir": "latents"}},
            "data": {"preprocessed_data_root": str(root / "data")},
            "validation": {
                "samples": [{"prompt": "p", "conditions": [{"type": "first_frame", "image_or_video": "/etc/hostname"}]}]
            },
            "output_dir": str(tmp_path / "elsewhere"),
        }
    )
    check = form.check_values(values, Roots.of([root]))
    assert set(check.errors) == {"output_dir", "validation.samples"}
    assert "outside the folders this UI may use" in check.errors["output_dir"][0]
    assert check.errors["validation.samples"][0].startswith("validation.samples[0].conditions[0].image_or_video: ")

    values.update({"output_dir": str(root / "run"), "validation.samples": "[]", "data.preprocessed_data_root": "/"})
    values["data.preprocessed_data_root"] = str(root / "nothing")
    check = form.check_values(values, Roots.of([root]))
    assert list(check.errors) == ["data.preprocessed_data_root"]  # train's own path check, same words
    assert (
        "does not exist; point it at the folder written by preprocessing"
        in check.errors["data.preprocessed_data_root"][0]
    )
    values["data.preprocessed_data_root"] = str(root / "data")
    assert form.check_values(values, Roots.of([root])).ok


def test_a_switched_off_lora_section_is_null_and_a_lora_run_then_needs_it(tmp_path):
    values = form.values_from_mapping(
        {"model": {"model_path": "m"}, "lora": {"rank": 8}, "data": {"preprocessed_data_root": "d"}}
    )
    values["lora"] = False
    data, _ = form.mapping_from_values(values)
    assert data["lora"] is None
    check = form.check_values(values, Roots.of([tmp_path]), check_files=False)
    assert any(line.startswith("lora: required when model.training_mode is 'lora'") for line in check.errors["lora"])


# ---- runs ----


def _run_folder(path: Path, steps: int, done: int, checkpoints: list[int], log: str = "") -> Path:
    (path / "checkpoints").mkdir(parents=True)
    (path / runs.CONFIG).write_text(yaml.safe_dump({"optimization": {"steps": steps}}))
    metrics = [{"step": s, "loss": 1.0 / s, "loss_sigma_0.00_0.25": 0.5, "lr": 1e-4, "s_per_step": 0.5}
               for s in range(1, done + 1)]  # fmt: skip
    (path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics) + '{"step": 9')  # torn
    for step in checkpoints:
        (path / "checkpoints" / f"lora_weights_step_{step:05d}.safetensors").write_bytes(b"")
    (path / runs.LOG).write_text(log)
    return path


def test_run_status_is_read_from_the_folder(tmp_path):
    outputs = tmp_path / "outputs"
    finished = _run_folder(outputs / "a", 4, 4, [4], f"{runs.SESSION}x\ndone: 4 steps in 2 s -> w\n")
    stopped = _run_folder(outputs / "b", 10, 3, [3], f"{runs.SESSION}x\ninterrupted: stopped by SIGTERM at step 3\n")
    failed = _run_folder(outputs / "c" / "deeper", 10, 0, [], f"{runs.SESSION}x\nerror: data: no samples\n")
    crashed = _run_folder(
        outputs / "d", 10, 1, [], f"{runs.SESSION}x\nTraceback (most recent call last):\nKeyError: 'x'\n"
    )
    (outputs / "not-a-run" / "x").mkdir(parents=True)
    found = runs.find_runs(outputs)
    assert set(found) == {finished, stopped, failed, crashed}
    status = {p.name: runs.read_run(p) for p in found}
    assert status["a"].status == "finished" and status["a"].step == 4 and status["a"].total == 4
    assert status["b"].status == "stopped" and status["b"].summary().startswith("stopped · step 3/10 · loss 0.3333")
    assert status["deeper"].status == "failed" and status["deeper"].message == "error: data: no samples"
    assert status["d"].status == "failed" and status["d"].message == "error: KeyError: 'x'"
    assert len(status["b"].metrics) == 3  # the torn last line is skipped
    with pytest.raises(UsageError, match="finished at step 4"):
        runs.resume(status["a"])
    with pytest.raises(UsageError, match="already holds a run"):
        runs.launch_new("seed: 1\n", stopped)


def test_a_running_trainer_is_found_by_its_lock_and_stop_sends_it_sigterm(tmp_path):
    run_dir = _run_folder(tmp_path / "run", 10, 2, [], f"{runs.SESSION}x\n")
    code = "import signal, sys, time  # ltx_trainer stand-in\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
    code += "print('ready', flush=True)\ntime.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        lock = {"pid": proc.pid, "host": socket.gethostname(), "started": "now"}
        (run_dir / runs.LOCK).write_text(json.dumps(lock))
        run = runs.read_run(run_dir)
        assert run.status == "running" and run.pid == proc.pid and run.alive
        with pytest.raises(UsageError, match="stop it first"):
            runs.resume(run)
        assert "asked pid" in runs.stop(run)
        assert proc.wait(30) == 7
        (run_dir / runs.LOCK).write_text("")  # the trainer empties its lock when it exits
        assert runs.read_run(run_dir).status == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_lock_left_by_a_dead_process_is_not_a_running_run(tmp_path):
    run_dir = _run_folder(tmp_path / "run", 10, 2, [2])
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run_dir / runs.LOCK).write_text(json.dumps({"pid": int(proc.stdout), "host": socket.gethostname()}))
    assert runs.read_run(run_dir).status == "stopped"
    (run_dir / runs.LOCK).write_text(json.dumps({"pid": os.getpid(), "host": "another-machine"}))
    assert runs.read_run(run_dir).status == "stopped"


# ---- dataset ----


def test_an_edited_caption_goes_back_to_its_sidecar_or_its_row(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (folder / name).write_bytes(b"")
    (folder / "a.txt").write_text("old caption\n")
    assert [(c.name, c.caption) for c in dataset_ops.clips(folder)] == [("a.mp4", "old caption"), ("b.mp4", "")]
    assert dataset_ops.save_caption(folder, folder / "b.mp4", "  new\n caption ") == folder / "b.txt"
    assert (folder / "b.txt").read_text() == "new caption\n"
    with pytest.raises(UsageError, match="empty caption"):
        dataset_ops.save_caption(folder, folder / "a.mp4", "   ")

    table = folder / "captions.csv"
    table.write_text("media_path,caption,audio\na.mp4,first,a.wav\nb.mp4,second,\n")
    assert dataset_ops.caption_file(folder) == table
    dataset_ops.save_caption(table, folder / "b.mp4", "second, edited")
    assert table.read_text() == 'media_path,caption,audio\na.mp4,first,a.wav\nb.mp4,"second, edited",\n'
    lines = folder / "captions.jsonl"
    lines.write_text('{"video": "a.mp4", "text": "first"}\n')
    dataset_ops.save_caption(lines, folder / "b.mp4", "added")
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    assert rows == [{"video": "a.mp4", "text": "first"}, {"media_path": "b.mp4", "caption": "added"}]
    assert [c.caption for c in dataset_ops.clips(lines)] == ["first", "added"]


def test_rejected_inputs_are_gathered_from_the_stage_reports(tmp_path):
    (tmp_path / ".precomputed").mkdir()
    (tmp_path / "scenes.json").write_text(
        json.dumps(
            {
                "inputs": [
                    {"input": "/raw/cut.mp4", "error": "no video stream", "scenes": []},
                    {"input": "/raw/ok.mp4", "damaged": None, "scenes": [{}], "note": "odd size padded"},
                ],
                "skipped": [{"input": "/raw/notes.txt", "reason": "not a video"}],
            }
        )
    )
    (tmp_path / "caption_failures.json").write_text(json.dumps([{"media_path": "x.mp4", "error": "timeout"}]))
    report = {"skipped": [{"source": "y.mp4", "reason": "too few frames (5 < 9)"}]}
    (tmp_path / ".precomputed" / "preprocess_report.json").write_text(json.dumps(report))
    assert dataset_ops.bad_inputs(tmp_path) == [
        ("/raw/cut.mp4", "split-scenes: failed", "no video stream"),
        ("/raw/notes.txt", "split-scenes: skipped", "not a video"),
        ("x.mp4", "caption", "timeout"),
        ("y.mp4", "preprocess", "too few frames (5 < 9)"),
    ]


# ---- the verb and the layering ----


def test_the_ui_verb_refuses_other_hosts_without_a_login_and_bad_roots(tmp_path, monkeypatch):
    monkeypatch.delenv("LTX_TRAINER_UI_AUTH", raising=False)
    refused = invoke(app, ["ui", "--root", tmp_path, "--host", "0.0.0.0"])
    assert refused.exit_code == 2 and "serving beyond this machine needs a login" in refused.output
    missing = invoke(app, ["ui", "--root", tmp_path / "missing"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    outside = invoke(app, ["ui", "--root", tmp_path, "--outputs", "/var/tmp/x"])
    assert outside.exit_code == 2 and "--outputs: /var/tmp/x is outside" in outside.output
    bad_login = invoke(app, ["ui", "--root", tmp_path, "--host", "0.0.0.0", "--auth", "nopassword"])
    assert bad_login.exit_code == 2 and "USER:PASSWORD" in bad_login.output


def test_the_cli_starts_without_gradio_and_only_the_ui_package_imports_it():
    script = (
        "import sys\nfrom ltx_trainer.cli import app\n"
        "try:\n    app(['ui', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gradio', 'torch', 'pandas')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    importers = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if any(line.lstrip().startswith(("import gradio", "from gradio")) for line in p.read_text().splitlines())
    )
    assert importers and all(p.startswith("ui/") for p in importers), importers


def test_the_app_builds_with_a_widget_per_field(tmp_path):
    pytest.importorskip("gradio", reason="the UI needs gradio: uv sync --extra ui")
    from ltx_trainer.ui import app as ui_app
    from ltx_trainer.ui.train_page import elem_id

    ctx = ui_app.UiContext(Roots.of([tmp_path]), tmp_path / "outputs", tmp_path, ui_app.presets_folder())
    blocks = ui_app.build_app(ctx)
    ids = {getattr(block, "elem_id", None) for block in blocks.blocks.values()}
    wanted = {elem_id(f.key) for f in form.schema_fields()} | {elem_id(name) for name in form.optional_sections()}
    assert wanted <= ids  # a widget for every field, and an error line under each
    assert {"error-" + elem_id(f.key) for f in form.schema_fields()} <= ids
    assert {"train-launch", "ds-split", "ds-preprocess", "run-stop", "run-resume", "sm-render"} <= ids


def test_the_memory_tier_and_new_run_helpers(tmp_path):
    pytest.importorskip("gradio", reason="the UI needs gradio: uv sync --extra ui")
    from ltx_trainer.models.memory_plan import TIERS
    from ltx_trainer.ui.runs_page import next_free
    from ltx_trainer.ui.sample_page import conditions, lora_files
    from ltx_trainer.ui.train_page import _plan

    rows, best, text = _plan("tiny-ltx2", 24, 64, "256x256x33", {"model.training_mode": "lora", "lora.rank": "8"})
    assert best is not None and best.fits and best.tier in TIERS and text.startswith("tiny-ltx2: fastest that fits")
    assert {r.tier for r in rows} == set(TIERS)
    _, nothing, text = _plan("tiny-ltx2", 1, 1, "704x384x97", {})  # the host alone needs 4 GB
    assert nothing is None and text.startswith("Nothing fits 1 GB GPU")
    with pytest.raises(ValueError, match="is not W x H x F"):
        _plan("tiny-ltx2", 24, 64, "256x256", {})

    run = _run_folder(tmp_path / "outputs" / "run-1", 10, 1, [5, 10])
    (tmp_path / "outputs" / "run-2").mkdir()
    assert next_free(run) == tmp_path / "outputs" / "run-3"
    assert lora_files(tmp_path / "outputs") == [
        str(run / "checkpoints" / f"lora_weights_step_{s:05d}.safetensors") for s in (10, 5)
    ]
    assert conditions(Path("a.png"), Path("v.mp4"), 9, Path("s.wav")) == [
        {"type": "first_frame", "image_or_video": "a.png"},
        {"type": "prefix", "video": "v.mp4", "num_frames": 9},
        {"type": "audio_to_video", "audio": "s.wav"},
    ]
