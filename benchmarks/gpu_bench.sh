#!/usr/bin/env bash
# The whole `unitalker bench` on a CUDA GPU, in one command; prints the table.
#
#   benchmarks/gpu_bench.sh [--synth-data DIR] [other unitalker bench options]
#
# Speed paths (per-dataset demo loop, one pass fp32, bf16 model, onnxruntime with the CUDA
# provider when installed) and streaming run on the GPU; memory runs measure host memory.
# Fails with a clear message when this machine has no CUDA device.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_bench: no CUDA device (torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})")
print(f"gpu_bench: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", file=sys.stderr)
PY
exec python -m unitalker bench --device cuda "$@"
