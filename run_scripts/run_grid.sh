#!/usr/bin/env bash
# Run a grid of experiments x seeds with hf_itt as a graph of unique stages, then one report over all.
#
#   run_scripts/run_grid.sh --plan                            # unique stages vs naive count, GPU-hour estimate
#   run_scripts/run_grid.sh                                   # paper/grid.txt, seeds 1 2 3, this node, one worker
#   run_scripts/run_grid.sh --workers 4 --gpus 2              # 4 workers here, each stage on 2 GPUs (deepspeed)
#   run_scripts/run_grid.sh --slurm --gpus 8                  # one SLURM job per unique stage, after its parent
#   run_scripts/run_grid.sh -- hub.namespace=my-org           # overrides passed to every run
#
# Stages shared by several experiments (same stage hash: e.g. squad-v1 in seq_squad_mnli and
# seq_squad_hellaswag) are trained once, by one job, and the jobs that start from them wait for it.
# Every mode runs `hf-itt plan` (python -m hf_itt plan --help for its other options, e.g. --gpu h100).
set -euo pipefail
cd "$(dirname "$0")/.."

GRID=run_scripts/paper/grid.txt
SEEDS="1 2 3"
GPUS=1
MODE=(--execute local --workers 1)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --grid) GRID=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --gpus) GPUS=$2; shift 2 ;;
    --workers) MODE=(--execute local --workers "$2"); shift 2 ;;
    --slurm) MODE=(--execute slurm); shift ;;
    --plan) MODE=(); shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
# shellcheck disable=SC2086  # SEEDS is a list of numbers
exec python -m hf_itt plan "$GRID" --seeds $SEEDS --gpus "$GPUS" "${MODE[@]}" "$@"
