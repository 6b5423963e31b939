"""``ltx-trainer run-pipeline``: footage to LoRA and samples in one command, split-scenes -> caption -> preprocess ->
train -> sample, each stage the library call of its verb and skipped when that verb's own resume finds it done.

The layer above ``data``, ``training`` and ``sampling`` (it calls all three); only ``commands/`` and ``cli.py`` sit
above it. ``run.py`` orders and checks the stages and names a failing one; ``stages.py`` holds one function per stage;
``report.py`` writes the state file and the HTML report that links every stage's own report.
"""

from ltx_trainer.pipeline.run import PipelineResult, StageFailed, parse_stages, run_pipeline
from ltx_trainer.pipeline.stages import STAGES, Layout, StageResult

__all__ = ["STAGES", "Layout", "PipelineResult", "StageFailed", "StageResult", "parse_stages", "run_pipeline"]
