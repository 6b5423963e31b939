"""`ltx-trainer demo` end to end (fewer steps than `make demo`): every stage runs and leaves its outputs, and the report
shows the before/after comparison."""

import av
import pytest
from safetensors import safe_open

from ltx_trainer.demo import run_demo
from ltx_trainer.sampling.efficacy import Efficacy


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tmp_path):
    paths = run_demo(tmp_path, steps=20)
    assert len(list((tmp_path / "clips").glob("*-Scene-*.mp4"))) == 6  # 2 videos x 3 shots, cut by split-scenes
    assert all(p.with_suffix(".txt").read_text().startswith("tinystyle") for p in (tmp_path / "clips").glob("*.mp4"))
    assert (tmp_path / "clips" / ".precomputed" / "preprocess_report.json").is_file()
    with safe_open(paths["lora"], "pt") as f:
        assert all(k.startswith("diffusion_model.") for k in f.keys())
    with av.open(str(paths["sample"])) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
    assert paths["loss_curve"].stat().st_size > 0
    assert paths["sample"].name == "step_000020_1.mp4"
    page = paths["report"].read_text()
    assert "samples/step_000000_1.mp4" in page and "base model (step 0)" in page and "samples/step_000010_1.mp4" in page
    efficacy = Efficacy.load(paths["comparison"])
    assert len(efficacy.captions) == 2 and efficacy.verdict() in page
    assert page.count("poster=") == 3 + 2 * 3  # validation steps 0, 10, 20; per clip: clip, base, trained
