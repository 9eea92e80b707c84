#!/usr/bin/env bash
# One process per local GPU, each taking its share of the experiment's N1 rows; one workdir.
#
#   launch/local_gpus.sh configs/t2_shallow_width_grid.py /data/learnjax/t2 [extra flags...]
#
# Each process sees one GPU (CUDA_VISIBLE_DEVICES) and runs --task_index=i --num_tasks=N. Finished
# cells are skipped on a restart; kill the whole script with Ctrl-C (SIGTERM is forwarded, and
# each process saves its in-flight training before it exits).
set -euo pipefail
config=${1:?usage: launch/local_gpus.sh CONFIG WORKDIR [flags...]}
workdir=${2:?usage: launch/local_gpus.sh CONFIG WORKDIR [flags...]}
shift 2
num_gpus=${NUM_GPUS:-$(nvidia-smi -L | wc -l)}
mkdir -p "$workdir/logs"
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' INT TERM
for ((i = 0; i < num_gpus; i++)); do
  CUDA_VISIBLE_DEVICES=$i XLA_PYTHON_CLIENT_PREALLOCATE=false \
    python -m learnjax.main --config="$config" --workdir="$workdir" \
      --task_index=$i --num_tasks="$num_gpus" "$@" >"$workdir/logs/task$i.log" 2>&1 &
  pids+=($!)
done
echo "started ${#pids[@]} processes; logs in $workdir/logs"
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
# Gather every task's cells into results.json; --gather_only trains nothing (exit 1: cells missing).
python -m learnjax.main --config="$config" --workdir="$workdir" --gather_only "$@" || { [ "$status" -ne 0 ] || status=1; }
python -m learnjax.report --workdir="$workdir"
exit $status
