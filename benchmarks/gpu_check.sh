#!/usr/bin/env bash
# The GPU-speed check of issue 20 in one run (well under 10 minutes on an H100/H200):
# sam3d embed (fast exact, literal reference, plain ViT-B, bf16, compiled), fast-vs-reference
# difference with TF32 off, click decode eager and compiled (same masks), a ViT-B training step
# (batch 2, AMP, 3 x 4 clicks simulated on the GPU, checked against the CPU reference), LiteMedSAM
# box step and click on lung2, SAM 3 per slice at batch 1 and 8 (random full-size weights unless
# SAM3_DIR is set). Writes benchmarks/results/<gpu>_<time>.json (GPU name, torch and CUDA versions).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
extra=()
if [[ -n "${SAM3_DIR:-}" ]]; then extra+=(--sam3-weights "$SAM3_DIR"); fi
timeout 570 "$PYTHON" -m rtsam bench --device "${DEVICE:-cuda}" --all --autocast bf16 --repeats "${REPEATS:-5}" \
    --save benchmarks/results --json "${extra[@]}"
