#!/bin/bash
# One node's share of a multi-node slurm/train.sbatch job: run by srun, one task per node (not submitted
# by itself). Runs torchrun on every GPU of this node against the job's c10d rendezvous, and passes a
# USR1 from srun on to the training process of train.pid when that one runs on this node (rank 0).
#
#   bash slurm/train_node.sh HOST:PORT NODES CONFIG.yaml RUN_DIR [--set KEY=VALUE ...]
#
# Exit codes: 0 done; 75 stopped, last.pt saved by rank 0 (the batch shell requeues the job, once);
# anything else failed. See slurm/lib.sh for the protocol.
trap '_FFN_STOP=1' USR1  # first of all: a USR1 that arrives while bash starts is kept, not fatal
set -euo pipefail

cd "${SLURM_SUBMIT_DIR:-$PWD}"
[[ -f slurm/lib.sh ]] || { echo "error: $PWD is not the project root" >&2; exit 2; }
source slurm/lib.sh

ffn_train_node "$@"
