#!/usr/bin/env bash
# Run a grid of experiments x seeds with hf_itt, then one report over all of them.
#
#   run_scripts/run_grid.sh                                   # every experiment of paper/grid.txt, seeds 1 2 3, this node
#   run_scripts/run_grid.sh --gpus 8 --seeds "1 2 3 4 5"      # deepspeed on 8 local GPUs
#   run_scripts/run_grid.sh --slurm --gpus 8                  # one SLURM array element per (experiment, seed)
#   run_scripts/run_grid.sh -- hub.namespace=my-org           # overrides passed to every run
#
# On one node the runs go one after another, so a stage shared by several experiments is trained
# once and reused by the later ones (same stage hash). SLURM array elements run in parallel: list
# the experiments that train a shared prefix first, or run the prefix-sharing ones on one node.
set -euo pipefail
cd "$(dirname "$0")/.."

GRID=run_scripts/paper/grid.txt
SEEDS="1 2 3"
GPUS=1
SLURM=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --grid) GRID=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --gpus) GPUS=$2; shift 2 ;;
    --slurm) SLURM=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
OVERRIDES=("$@")
GRID_DIR=$(dirname "$GRID")
mapfile -t EXPERIMENTS < <(grep -v '^\s*#' "$GRID" | grep -v '^\s*$')
RUNS=()
for experiment in "${EXPERIMENTS[@]}"; do
  for seed in $SEEDS; do RUNS+=("$GRID_DIR/$experiment $seed"); done
done

run_one() {  # config seed
  local config=$1 seed=$2
  echo "=== $config seed=$seed"
  if [[ "$GPUS" -gt 1 ]]; then
    deepspeed --num_gpus "$GPUS" run_itt.py --config "$config" "seed=$seed" --no-report "${OVERRIDES[@]}"
  else
    python run_itt.py --config "$config" "seed=$seed" --no-report "${OVERRIDES[@]}"
  fi
}

if [[ "$SLURM" == 1 && -z "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  python -m hf_itt validate "${RUNS[@]%% *}" >/dev/null   # fail before queueing anything
  exec sbatch --array="0-$(( ${#RUNS[@]} - 1 ))" --gres="gpu:$GPUS" --job-name=hf_itt-grid \
    "$0" --grid "$GRID" --seeds "$SEEDS" --gpus "$GPUS" --slurm -- "${OVERRIDES[@]}"
fi
if [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  run_one ${RUNS[$SLURM_ARRAY_TASK_ID]}
  exit 0
fi
for run in "${RUNS[@]}"; do run_one $run; done
python -m hf_itt.report runs --out report
