"""The web UI driven in a real browser (Playwright + Debian's chromium, no browser download), on tiny models.

One UI server at a time (a subprocess: ``ltx-trainer ui``), one headless chromium; the tests run in file order and
share the workspace: the Dataset page builds a dataset from synthetic footage, the Train page refuses bad values
and launches a short run, the Runs page watches it, stops and resumes it while the UI itself is restarted, and the
Sample page renders with the LoRA the run saved. Screenshots of every page go to the test's folder, and also to
``$LTX_UI_SCREENSHOTS`` when set (``LTX_UI_SCREENSHOTS=docs/ui make test-browser`` refreshes docs/ui/).

Run with ``make test-browser`` (installs chromium and the ``ui`` extra) or ``pytest -m browser``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from media_fixtures import make_clip

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.browser
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is absent: `make test-browser` installs Debian's chromium (apt-get install chromium)",
        allow_module_level=True,
    )
pytest.importorskip("gradio", reason="the UI needs gradio: `uv sync --extra ui` (make test-browser does it)")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev dependency group")
expect = playwright_api.expect

STEPS = 60  # long enough to stop it mid-run: the tiny model takes 0.04-0.6 s per step on a (shared) CPU
TIMEOUT_MS = 240_000  # model loads and trainer start-ups on a shared CPU


# ---- the server and the browser ----


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UiServer:
    """``ltx-trainer ui`` in its own process group; stop() ends it (and only it: runs it started keep going)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None

    def start(self) -> UiServer:
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(self.root / ".gradio")}
        src = Path(__file__).resolve().parent.parent / "src"
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
        command = [sys.executable, "-m", "ltx_trainer.cli", "ui", "--root", str(self.root), "--port", str(self.port)]
        log = open(self.root / "ui-server.log", "ab")  # noqa: SIM115 - the server writes to it until stop()
        self.proc = subprocess.Popen(command, cwd=self.root, env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the UI server exited: {(self.root / 'ui-server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(1)
        raise RuntimeError("the UI server did not answer within 180 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # a crash, not a clean exit: the runs must not care
            self.proc.wait(30)
        self.proc = None


def _kill_runs(outputs: Path) -> None:
    """End the training processes the UI started for these tests (their PIDs are in the run folders)."""
    for marker in (*outputs.rglob("ui_launch.json"), *outputs.rglob(".ltx-trainer.lock")):
        try:
            pid = json.loads(marker.read_text() or "{}").get("pid")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if pid else b""
        except (OSError, ValueError):
            continue
        if b"ltx_trainer" in cmdline:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from ltx_trainer.models.tiny import write_tiny_ltx2

    root = tmp_path_factory.mktemp("ui")
    raw = root / "raw"
    raw.mkdir()
    for i in range(2):  # two shots each: split-scenes makes four clips
        make_clip(raw / f"footage_{i}.mp4", 40, 128, 96, fps=24, cuts=[20], seed=i)
    (raw / "notes.txt").write_text("not a video\n")  # listed as a rejected input
    model = write_tiny_ltx2(root / "model", version="2.0", seed=0)
    state = {
        "root": root,
        "raw": raw,
        "model": model,
        "outputs": root / "outputs",
        "shots": tmp_path_factory.mktemp("shots"),
    }
    yield state
    _kill_runs(root / "outputs")


@pytest.fixture(scope="module")
def server(workspace: dict):
    ui = UiServer(workspace["root"]).start()
    yield ui
    ui.stop()


@pytest.fixture(scope="module")
def page(server: UiServer):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(30_000)
        tab.goto(server.url)
        yield tab
        browser.close()


def _field(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input[type=text]").first


def _fill(page, elem_id: str, text: str) -> None:
    box = _field(page, elem_id)
    box.fill(text)
    box.blur()


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def _screenshot(page, workspace: dict, name: str, part=None) -> None:
    """The whole page (or one element of it) as ``<name>.png``."""
    page.wait_for_timeout(500)
    path = workspace["shots"] / f"{name}.png"
    if part is not None:
        part.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=True)
    if target := os.environ.get("LTX_UI_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


# ---- the pages ----


def test_dataset_page_builds_a_dataset_and_saves_an_edited_caption(page, workspace):
    root, model = workspace["root"], workspace["model"]
    clips = root / "clips"
    _tab(page, "Dataset")
    _fill(page, "ds-raw", str(workspace["raw"]))
    _fill(page, "ds-clips", str(clips))
    page.locator("#ds-split").click()
    expect(page.locator("#ds-progress")).to_contain_text("into 4 clip(s)", timeout=TIMEOUT_MS)
    expect(page.locator("#ds-bad")).to_contain_text("notes.txt")  # the rejected input, with its reason
    page.locator("#ds-caption").click()
    expect(page.locator("#ds-progress")).to_contain_text("captioned 4", timeout=TIMEOUT_MS)
    expect(page.locator("#caption-0 textarea")).to_have_value(
        'A 0.8-second 128x96 video clip, "footage 0 Scene 001", with sound.'
    )
    assert page.locator(".clip-card video").count() == 4

    edited = "A bright square slides across red stripes, then the scene cuts to blue."
    _fill(page, "caption-0", edited)
    expect(page.locator("#ds-saved")).to_contain_text("Saved the caption of footage_0-Scene-001.mp4")
    assert (clips / "footage_0-Scene-001.txt").read_text() == edited + "\n"

    _fill(page, "ds-model", str(model["single_file"]))
    _fill(page, "ds-text-encoder", str(model["gemma"]))
    _fill(page, "ds-buckets", "64x64x9")
    page.locator("#ds-preprocess").click()
    expect(page.locator("#ds-progress")).to_contain_text("4 written", timeout=TIMEOUT_MS)
    expect(page.locator("#ds-cache")).to_contain_text("cache ok: 4 sample(s)")
    expect(page.locator("#ds-cache")).to_contain_text("fingerprint")
    _screenshot(page, workspace, "dataset")


def test_train_page_shows_errors_inline_refuses_outside_paths_and_launches(page, workspace):
    root, outputs = workspace["root"], workspace["outputs"]
    base = {  # what a user keeps as their own preset: CPU-friendly settings, a 2-step validation sample
        "model": {"model_path": "/path/to/model.safetensors", "training_mode": "lora"},
        "lora": {"rank": 4, "alpha": 4, "target_modules": ["to_q", "to_k", "to_v", "to_out.0"]},
        "training_strategy": {
            "name": "flexible",
            "video": {"is_generated": True, "latents_dir": "latents"},
            "audio": {"is_generated": True, "latents_dir": "audio_latents"},
        },
        "optimization": {"steps": 3000, "batch_size": 1, "learning_rate": 1e-3},
        "acceleration": {"mixed_precision_mode": "no"},
        "data": {"preprocessed_data_root": "/path/to/dataset", "num_dataloader_workers": 0},
        "validation": {
            "samples": [{"prompt": "a square on stripes"}],
            "video_dims": [64, 64, 9],
            "inference_steps": 2,
            "interval": 20,
        },
        "checkpoints": {"interval": None, "keep_last_n": 1},
    }
    (root / "cpu.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    _tab(page, "Train")
    _fill(page, "train-yaml-path", str(root / "cpu.yaml"))
    page.get_by_role("button", name="Load YAML").click()
    expect(page.locator("#train-file-status")).to_contain_text("Loaded")
    _tab(page, "Dataset")  # the dataset just built: its cache, model and text encoder go into the form
    page.locator("#ds-to-train").click()
    expect(_field(page, "field-data-preprocessed-data-root")).to_have_value(str(root / "clips"))

    _fill(page, "field-optimization-steps", "0")  # invalid: shown under the field, in config validate's words
    error = page.locator("#error-field-optimization-steps")
    expect(error).to_contain_text("optimization.steps: Input should be greater than or equal to 1 (got 0)")
    _screenshot(page, workspace, "train-invalid-field", page.locator("#section-optimization"))
    page.locator("#train-launch").click()
    expect(page.locator("#train-status")).to_contain_text("Launch refused: 1 problem(s) to fix")
    expect(page.locator("#train-status")).to_contain_text("optimization.steps")
    _fill(page, "field-optimization-steps", str(STEPS))
    expect(error).to_be_hidden()

    _fill(page, "field-output-dir", "/var/tmp/ltx-ui-elsewhere")  # outside the allowed roots
    expect(page.locator("#error-field-output-dir")).to_contain_text("is outside the folders this UI may use")
    page.locator("#train-launch").click()
    expect(page.locator("#train-status")).to_contain_text("First: output_dir: /var/tmp/ltx-ui-elsewhere is outside")
    assert not Path("/var/tmp/ltx-ui-elsewhere").exists() and not outputs.exists()

    _fill(page, "field-output-dir", str(outputs / "run-1"))
    expect(page.locator("#train-summary")).to_contain_text("ok: the config is valid")
    _screenshot(page, workspace, "train")
    page.locator("#train-launch").click()
    expect(page.locator("#train-status")).to_contain_text("Started ltx-trainer train")
    assert (outputs / "run-1" / "training_config.yaml").is_file()


def test_runs_page_watches_stops_resumes_and_the_run_survives_a_ui_restart(page, workspace, server):
    run_dir = workspace["outputs"] / "run-1"
    expect(page.get_by_role("tab", name="Runs")).to_have_attribute("aria-selected", "true")  # launch opened it
    summary = page.locator("#run-summary")
    expect(summary).to_contain_text("running · step", timeout=TIMEOUT_MS)
    _wait_for_step(run_dir, 1)
    page.locator("#run-stop").click()  # at once: on an idle CPU the whole run takes a few seconds
    expect(page.locator("#run-action")).to_contain_text("asked pid")
    expect(summary).to_contain_text("stopped · step", timeout=TIMEOUT_MS)
    stopped_at = max(int(p.stem.rsplit("_", 1)[-1]) for p in (run_dir / "checkpoints").glob("lora_weights_step_*"))
    assert 0 < stopped_at < STEPS
    for plot, series in (("loss", "video"), ("sigma", "σ"), ("lr", "lr"), ("speed", "s/step")):  # curves, legends
        expect(page.locator(f"#plot-{plot}")).to_contain_text(series, timeout=30_000)
    assert page.locator("#plot-loss svg path").count() > 0
    expect(page.locator("#run-samples video, #run-samples img").first).to_be_visible()  # the step-0 sample

    page.locator("#run-resume").click()
    expect(page.locator("#run-action")).to_contain_text("Resumed")
    expect(summary).to_contain_text("starting · step")
    server.stop()  # the UI dies while the run starts up again
    server.start()
    page.goto(server.url)
    _tab(page, "Runs")
    expect(page.locator("#runs-table")).to_contain_text("run-1", timeout=60_000)
    # back: the run is listed, still training (or done, on a fast machine), and it ends at its last step
    expect(summary).to_contain_text(re.compile(r"(running|finished) · step"), timeout=TIMEOUT_MS)
    if "running" in summary.inner_text():
        _screenshot(page, workspace, "runs")
    expect(summary).to_contain_text(f"finished · step {STEPS}/{STEPS}", timeout=TIMEOUT_MS)
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))  # resumed from the checkpoint: every step once
    expect(page.locator("#run-report iframe")).to_be_visible(timeout=30_000)
    samples = sorted(p.name for p in (run_dir / "samples").glob("step_*.mp4"))  # every 20 steps and the resume point
    assert {f"step_{step:06d}_1.mp4" for step in range(0, STEPS + 1, 20)} <= set(samples)
    expect(page.locator("#run-samples video, #run-samples img")).to_have_count(len(samples))
    _screenshot(page, workspace, "runs-finished")


def _wait_for_step(run_dir: Path, step: int, timeout: float = TIMEOUT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines() if (run_dir / "metrics.jsonl").exists() else []
        if len(lines) >= step:
            return
        time.sleep(0.1)
    raise AssertionError(f"{run_dir}: step {step} not reached in {timeout:.0f} s")


def test_sample_page_renders_with_the_trained_lora(page, workspace):
    model, outputs = workspace["model"], workspace["outputs"]
    lora = outputs / "run-1" / "checkpoints" / f"lora_weights_step_{STEPS:05d}.safetensors"
    _tab(page, "Sample")
    _fill(page, "sm-model", str(model["single_file"]))
    _fill(page, "sm-text-encoder", str(model["gemma"]))
    _fill(page, "sm-loras", f"{lora}:0.8")
    _fill(page, "sm-prompt", "a bright square on red stripes")
    for elem_id, value in (("sm-width", "64"), ("sm-height", "64"), ("sm-frames", "9"), ("sm-steps", "2")):
        box = page.locator(f"#{elem_id} input").first
        box.fill(value)
        box.blur()
    _fill(page, "sm-output", "/var/tmp/outside.mp4")
    page.locator("#sm-render").click()
    expect(page.locator("#sm-status")).to_contain_text("is outside the folders this UI may use")
    _fill(page, "sm-output", str(outputs / "samples" / "square.mp4"))
    page.locator("#sm-render").click()
    expect(page.locator("#sm-status")).to_contain_text("done: wrote", timeout=TIMEOUT_MS)
    expect(page.locator("#sm-result video")).to_be_visible()
    assert (outputs / "samples" / "square.mp4").stat().st_size > 0
    _screenshot(page, workspace, "sample")
