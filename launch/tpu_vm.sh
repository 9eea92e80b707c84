#!/usr/bin/env bash
# A Cloud TPU VM (single host or pod slice): install learnjax on every worker and run the
# experiment on all of them; each host joins through jax.distributed (Cloud TPU is detected) and
# takes its share of the experiment on its local TPU chips.
#
#   launch/tpu_vm.sh TPU_NAME ZONE configs/t4_shallow_variants.py /mnt/gcs/learnjax/t4
#
# The workdir is a folder that every worker sees at the same path: NFS, or a GCS bucket mounted
# on every worker (gcsfuse --implicit-dirs --rename-dir-limit=100000 BUCKET /mnt/gcs; orbax renames
# each finished checkpoint's folder). A gs:// URL is not a folder and is refused. Under
# --distributed each row of the experiment belongs to one process (its process index), so the
# rows need no file locks, which gcsfuse lacks; process 0 records the settings before the others
# start. The tensorflow-datasets data dir must be visible likewise (--config.data.data_dir=...).
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
