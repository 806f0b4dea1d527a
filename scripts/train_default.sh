#!/usr/bin/env bash
# Train the bundled default model on A2F-Synth, evaluate it against the static-template
# baseline (seen voices, unseen voices, the unseen engine, recorded speech) and copy it
# into src/unitalker/assets/models/default/.
# Usage: scripts/train_default.sh [WORK_DIR]
# Stage 1 (configs/default.yaml): S0-S5, eSpeak NG only, 2500 steps, about 22 min on 2
#   idle CPU cores.
# Stage 2 (configs/default_voices.yaml): fine-tunes stage 1 on S0-S5 + the voices
#   datasets V0-V3 with on-the-fly acoustic augmentation, 3300 steps (about 35 min on 2
#   idle CPU cores; 1.6-1.8 steps/s).
# Stage 3 (configs/default_polish.yaml): the same at a tenth of the learning rate, 400
#   steps (4 min), so the weights settle.
# Stage 4 (configs/default_window.yaml): streaming crops and windowed encoder passes
#   (model.encoder.stream_window [21, 1], half the batches), learning rate 1e-4, 1000
#   steps (19 min on 2 cores).
# Stage 5 (configs/default_window_polish.yaml): stage 4 at the polish learning rate, 400
#   steps (7 min).
# Stage 6 (configs/default_engines.yaml): stage 4's recipe on the voices datasets of the
#   large preset (five times the voices training data, Piper as a third engine), 1500
#   steps (17 min on 2 cores).
# Stage 7 (configs/default_engines_polish.yaml): stage 6 at the polish learning rate, 400
#   steps (4 min).
# Stage 8 (configs/default_engines_balance.yaml): stage 7 with S1 and S5 weighted twice,
#   400 steps (4 min).
# The bundled model is the uniform weight average of stages 5 and 8 (a model soup).
# Stages 2-5 of the bundled model saw the bench voices (24 training clips a dataset); a
# fresh run of this script trains them on the large preset's too. Every stage of the
# bundled model heard Kokoro and Piper clips whose phone timelines were 50 ms and 20 ms
# late against their sound (fixed 2026-12-06: synth.kokoro / synth.piper PHONE_SHIFT_S,
# docs/a2f-synth.md); a fresh run generates and trains on the corrected timelines.
# STAGE1=DIR skips stage 1 and starts stage 2 from the model in DIR. The bundled model was
# made with STAGE1 = the previous bundled model (stage 1 plus 200 steps of stage 2 at seed
# 0), its stage 2 run as 1000 steps, then resumed with steps=5000 and stopped at the
# step-3300 checkpoint (augmentation draws after a resume differ from an uninterrupted
# run's).
set -euo pipefail
WORK=${1:-data}
REPO=$(cd "$(dirname "$0")/.." && pwd)
REL=$WORK/a2f_synth_release
RUN1=$WORK/runs/default
RUN2=$WORK/runs/default_voices
RUN3=$WORK/runs/default_polish
RUN4=$WORK/runs/default_window
RUN5=$WORK/runs/default_window_polish
RUN6=$WORK/runs/default_engines
RUN7=$WORK/runs/default_engines_polish
RUN8=$WORK/runs/default_engines_balance
RUN=$WORK/runs/default_average

VOICES=1 VOICES_PRESET=large "$REPO/scripts/prepare_synth.sh" "$WORK"
if [ -z "${STAGE1:-}" ]; then
  unitalker train --config "$REPO/configs/default.yaml" --set data.manifest="$REL" --set out_dir="$RUN1" \
    ${RESUME:+--resume "$RUN1"}
  STAGE1=$RUN1/model
fi
# stage CONFIG OUT_DIR INIT_FROM [RESUME]: one fine-tuning stage (RESUME non-empty: resume it)
stage() {
  unitalker train --config "$REPO/configs/$1" --set data.manifest="$REL" --set out_dir="$2" \
    --set model.init_from="$3" ${4:+--resume "$2"}
}
stage default_voices.yaml "$RUN2" "$STAGE1" "${RESUME2:-}"
stage default_polish.yaml "$RUN3" "$RUN2/model" "${RESUME3:-}"
stage default_window.yaml "$RUN4" "$RUN3/model" "${RESUME4:-}"
stage default_window_polish.yaml "$RUN5" "$RUN4/model" "${RESUME5:-}"
stage default_engines.yaml "$RUN6" "$RUN5/model" "${RESUME6:-}"
stage default_engines_polish.yaml "$RUN7" "$RUN6/model" "${RESUME7:-}"
stage default_engines_balance.yaml "$RUN8" "$RUN7/model" "${RESUME8:-}"
python -c 'import sys; from unitalker.models.checkpoint import average_checkpoints as a; a(sys.argv[1:3], sys.argv[3])' \
  "$RUN5/model" "$RUN8/model" "$RUN/model"
unitalker evaluate "$RUN/model" "$REL" --split test --datasets S0 S1 S2 S3 S4 S5 --csv "$RUN/eval.csv" --json "$RUN/eval.json"
unitalker evaluate "$RUN/model" "$REL" --split test --datasets S0 S1 S2 S3 S4 S5 --baseline \
  --csv "$RUN/eval_baseline.csv" --json "$RUN/eval_baseline.json"
unitalker evaluate "$RUN/model" "$REL" --unseen --datasets V0 V1 V2 V3 --json "$RUN/eval_unseen.json"
unitalker evaluate-speech "$RUN/model" --json "$RUN/eval_speech.json"
python - "$RUN/model" "$REPO/src/unitalker/assets/models/default" <<'PY'
import sys
from pathlib import Path
from unitalker.models.checkpoint import copy_checkpoint
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
size = (src / "model.safetensors").stat().st_size / 2**20
assert size <= 25, f"model is {size:.1f} MB > 25 MB"
copy_checkpoint(src, dst)
print(f"bundled {dst} ({size:.1f} MB)")
PY
