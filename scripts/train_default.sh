#!/usr/bin/env bash
# Train the bundled default model on A2F-Synth (bench preset), evaluate it against the
# static-template baseline, and copy it into src/unitalker/assets/models/default/.
# Usage: scripts/train_default.sh [WORK_DIR]   (about 20-25 min on 2 CPU cores)
set -euo pipefail
WORK=${1:-data}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$WORK/a2f_synth_bench
REL=$WORK/a2f_synth_release
RUN=$WORK/runs/default

[ -f "$BENCH/summary.json" ] || python -c "from unitalker.synth.generate import generate; generate('$BENCH', 'bench', 0)"
mkdir -p "$REL"
# S0-S2 come in community layouts (BIWI, VOCASET, 3D-ETF): convert them with the real
# converters, naming the A2F-Synth convention and dataset key.
[ -f "$REL/S0/train.json" ] || unitalker data convert biwi "$BENCH/S0_synbiwi" "$REL/S0" \
  --dataset S0 --convention synth_head_vertices --mode symlink
[ -f "$REL/S1/train.json" ] || unitalker data convert vocaset "$BENCH/S1_synvoca" "$REL/S1" \
  --dataset S1 --convention synth_head2_vertices --mode symlink
[ -f "$REL/S2/S2/train.json" ] || unitalker data convert 3detf "$BENCH/S2_syn3detf" "$REL/S2" \
  --dataset S2 --convention synth_arkit52 --mode symlink
for d in S3_synflame S4_synmandarin S5_synsong; do [ -e "$REL/$d" ] || ln -s "$(cd "$BENCH" && pwd)/$d" "$REL/$d"; done
# PCA of the vertex datasets once (training reads pca.npz beside the split files).
for d in S0 S1; do [ -f "$REL/$d/pca.npz" ] || unitalker pca fit "$REL/$d" -o "$REL/$d/pca.npz" --components 64; done

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
