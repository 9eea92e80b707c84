#!/usr/bin/env bash
# A Cloud TPU VM (single host or pod slice): install learnjax on every worker and run the
# experiment on all of them; each host joins through jax.distributed (Cloud TPU is detected) and
# takes its share of the experiment on its local TPU chips.
#
#   launch/tpu_vm.sh TPU_NAME ZONE configs/t4_shallow_variants.py gs://BUCKET/learnjax/t4
#
# The workdir must be visible to every worker (a GCS bucket through gcsfuse, or NFS); the
# tensorflow-datasets data dir likewise (--config.data.data_dir=...).
set -euo pipefail
tpu=${1:?usage: launch/tpu_vm.sh TPU_NAME ZONE CONFIG WORKDIR [flags...]}
zone=${2:?}
config=${3:?}
workdir=${4:?}
shift 4
repo=$(cd "$(dirname "$0")/.." && pwd)
gcloud compute tpus tpu-vm scp --recurse --zone="$zone" --worker=all "$repo" "$tpu":learnjax
gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" --worker=all --command="
  cd learnjax && python3 -m venv .venv && . .venv/bin/activate &&
  pip install -q -e . 'jax[tpu]' &&
  python -m learnjax.main --config=$config --workdir=$workdir --distributed $*"
