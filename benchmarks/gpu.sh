#!/usr/bin/env bash
# One prepared GPU benchmark run (for a machine with an NVIDIA GPU and PyTorch + transformers
# already installed, e.g. a lent accelerator machine with no network; the four runs fit one
# 600 s device command): our engine vs
# transformers on the same random-weight checkpoints with the real dimensions, both precisions.
#   bash benchmarks/gpu.sh [repeats]      (prints everything; nothing is written outside ~/.cache/taskscope)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
R=${1:-10}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
for t in object-detection image-classification speech-recognition audio-classification; do
  echo "=== bench $t (cuda, exact + fast, $R repeats)"
  timeout 140 "$PY" main.py bench "$t" --device cuda --precision both --repeats "$R" 2>&1 | grep -v "Loading weights"
done
