#!/usr/bin/env bash
# Every accelerator measurement in one call, sized for a short GPU session (about 7 minutes):
# the engine/PyTorch benchmark at the default precision (TF32 on NVIDIA GPUs; its rows include the
# seed-batched shallow CNN (layout vmap), the grouped one (vmap_grouped), the seeds in turn, and an
# `auto` row: what train.seed_layout=auto measures and picks on this device, against the fastest
# path of the run), the T2 device-time estimate from it, and a short bf16 benchmark of the
# shallow CNNs and the MLP.
#
#   OUT=/path/to/results bash benchmarks/device_check.sh
#
# Needs jax with the accelerator, flax, optax and (for the reference rows) torch; not
# ml_collections or tensorflow-datasets (PYTHON: the interpreter, default python3). Everything is
# written under $OUT.
set -u
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/learnjax_device_check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)   # absolute: the script moves to the repository root below
export XLA_PYTHON_CLIENT_PREALLOCATE=false
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/device.txt" 2>&1
$PY -c "import jax; print(jax.__version__, jax.devices())" >> "$OUT/device.txt" 2>&1
$PY benchmarks/benchmark.py --out "$OUT/bench_default.json" --budget_s 330 \
  2>&1 | tee "$OUT/bench_default.log"
$PY benchmarks/t2_estimate.py "$OUT/bench_default.json" 2>&1 | tee "$OUT/t2_estimate.txt"
$PY benchmarks/t2_estimate.py "$OUT/bench_default.json" --path fastest 2>&1 \
  | tee -a "$OUT/t2_estimate.txt"
$PY benchmarks/benchmark.py --precision bf16 --models shallow_cnn_16 shallow_cnn_1024 mlp_3 \
  --out "$OUT/bench_bf16.json" --budget_s 60 2>&1 | tee "$OUT/bench_bf16.log"
