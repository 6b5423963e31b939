#!/usr/bin/env bash
# FSDP2 on GPUs (NCCL, Accelerate's own FSDP2 branch), the GPU twin of the CPU/gloo tests in tests/test_distributed.py.
# Needs 2+ CUDA GPUs and the oracle venv (../shared/oracle/setup.sh). Budget: ~5 minutes (tiny LTX-2 models).
#
#   CUDA_VISIBLE_DEVICES=0,1 bash scripts/gpu_fsdp2.sh
#
# Runs, with configs/accelerate/fsdp2.yaml and 2 processes x batch 1 on 2 GPUs against 1 process x batch 2 on GPU 0:
# the LoRA (exported file passes oracle/lora_check.py; the FSDP2 checkpoint resumes under FSDP2 and in 1 process)
# and the full fine-tune (exported single file passes oracle/load_check.py --strict). The bound is the CPU one,
# max |dweights| <= 1e-5 in fp32 (mixed_precision "no"); a failure prints the measured difference.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-"uv run --frozen"}
gpus=$(nvidia-smi --list-gpus 2>/dev/null | wc -l)
if [ "$gpus" -lt 2 ]; then
  echo "scripts/gpu_fsdp2.sh: needs 2 or more CUDA GPUs (found $gpus); on the CPU the same tests run with gloo:" \
    "make test-slow (tests/test_distributed.py -k fsdp2)" >&2
  exit 2
fi
ORACLE_DIR=${LTX_ORACLE_DIR:-../shared/oracle}
ORACLE_PYTHON=${LTX_ORACLE_PYTHON:-/tmp/ltx-oracle-venv/bin/python}
[ -x "$ORACLE_PYTHON" ] || bash "$ORACLE_DIR/setup.sh" "$(dirname "$(dirname "$ORACLE_PYTHON")")"
LTX_ORACLE_DIR=$ORACLE_DIR LTX_ORACLE_PYTHON=$ORACLE_PYTHON \
  $RUN pytest -q -m "slow or not slow" -k fsdp2 --durations=5 tests/test_distributed.py
