#!/usr/bin/env bash
# Memory tiers on one GPU: LTX-2 19B and LTX-2.3 22B, LoRA r=64, 704x384x97, gradient checkpointing, random weights
# built from the architecture (models/architectures.py). One tier per process (peak host RSS is per process).
# Budget: <= 8 minutes on an H100 (8 tiers x 2 models x ~25 s: build + 2 warm-up + 3 timed step pairs).
# Writes outputs/gpu_bench/<date>/table.md (append the rows to docs/benchmarks.md) and one JSON per run.
#
#   bash scripts/gpu_bench.sh                 # every tier
#   TIERS="bf16 int8" bash scripts/gpu_bench.sh
#
# A tier whose feature is not in this build (acceleration.quantization / blocks_to_swap refused at config load)
# is listed as "not available" with the one-line reason instead of a number.
set -uo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-"uv run --frozen"}
TIERS=${TIERS:-"bf16 fp8 int8 nf4 bf16-swap16 fp8-swap16 int8-swap24 nf4-swap24"}
ARCHS=${ARCHS:-"ltx2-19b ltx2.3-22b"}
OUT=${OUT:-outputs/gpu_bench/$(date -u +%Y%m%d-%H%M)}
PER_RUN_S=${PER_RUN_S:-90}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>/dev/null || echo "no nvidia-smi" > "$OUT/gpu.txt"
TABLE="$OUT/table.md"
: > "$TABLE"
header_written=0
for arch in $ARCHS; do
  for tier in $TIERS; do
    log="$OUT/${arch}_${tier}.log"
    timeout "$PER_RUN_S" $RUN ltx-trainer bench --arch "$arch" --tier "$tier" --res 704x384x97 --lora-rank 64 \
      --gradient-checkpointing --dtype bf16 --steps 3 --warmup 2 --out "$OUT" > "$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
      if [ $header_written -eq 0 ]; then grep -m2 '^|' "$log" >> "$TABLE"; header_written=1; fi
      grep '^| ' "$log" | tail -1 >> "$TABLE"
    else
      reason=$(grep -v '^\s*$' "$log" | tail -1 | cut -c1-160)
      echo "| $arch | $tier | not available (exit $rc): ${reason//|//} |" >> "$TABLE"
    fi
    echo "$arch $tier -> exit $rc"
  done
done
echo "GPU: $(cat "$OUT/gpu.txt")" >> "$TABLE"
cat "$TABLE"
