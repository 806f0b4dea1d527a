#!/usr/bin/env bash
# Train the bundled default model on A2F-Synth (bench preset), evaluate it against the
# static-template baseline, and copy it into src/unitalker/assets/models/default/.
# Usage: scripts/train_default.sh [WORK_DIR]   (about 20-25 min on 2 CPU cores)
set -euo pipefail
WORK=${1:-data}
REPO=$(cd "$(dirname "$0")/.." && pwd)
REL=$WORK/a2f_synth_release
RUN=$WORK/runs/default

"$REPO/scripts/prepare_synth.sh" "$WORK"
unitalker train --config "$REPO/configs/default.yaml" --set data.manifest="$REL" --set out_dir="$RUN" \
  ${RESUME:+--resume "$RUN"}
unitalker evaluate "$RUN/model" "$REL" --split test --csv "$RUN/eval.csv" --json "$RUN/eval.json"
unitalker evaluate "$RUN/model" "$REL" --split test --baseline --csv "$RUN/eval_baseline.csv" --json "$RUN/eval_baseline.json"
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
