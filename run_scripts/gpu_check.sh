#!/usr/bin/env bash
# GPU check for a lent GPU machine (H100): a few hundred steps of XLM-R-Large-sized joint multi-task
# training (random init, no download) under ZeRO-2 bf16 with the deepspeed launcher on 1 GPU.
# Prints samples/s, tokens/s, peak CUDA memory and MFU (formula: python -m pydoc scripts.gpu_check).
#
#   run_scripts/gpu_check.sh                      # 300 timed steps, micro-batch 32 x 256 tokens, zero2
#   run_scripts/gpu_check.sh --steps 100 --batch 16 --ds-config ds_configs/zero3.json
#
# RESULTS_DIR (default: results/gpu_check) receives gpu_check.json and the full log.
# Needs DeepSpeed (pip install 'hf_itt[deepspeed]'). The first run JIT-compiles DeepSpeed's fused_adam
# CUDA op (nvcc + ninja, about a minute, cached in $TORCH_EXTENSIONS_DIR or ~/.cache/torch_extensions).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PYTHON=${PYTHON:-python3}
RESULTS_DIR=${RESULTS_DIR:-results/gpu_check}
mkdir -p "$RESULTS_DIR"

"$PYTHON" - <<'PY'
import sys
try:
    import deepspeed, torch, transformers
except ImportError as err:
    sys.exit(f"gpu_check: {err}. Install with: pip install 'hf_itt[deepspeed]'")
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible (for a CPU smoke run: DS_ACCELERATOR=cpu deepspeed --num_gpus 2 scripts/gpu_check.py --tiny --steps 3)")
print(f"torch {torch.__version__}, transformers {transformers.__version__}, deepspeed {deepspeed.__version__}, "
      f"{torch.cuda.get_device_name()}", flush=True)
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

start=$(date +%s)
status=0
"$PYTHON" -m deepspeed.launcher.runner --num_gpus 1 --master_port "${MASTER_PORT:-29512}" scripts/gpu_check.py \
    --json-out "$RESULTS_DIR/gpu_check.json" "$@" 2>&1 | tee "$RESULTS_DIR/gpu_check.log" || status=$?
echo "gpu_check: wall time $(( $(date +%s) - start )) s (launch, imports, op build and the timed steps)"
if [ "$status" -ne 0 ] || ! grep -q '^GPU_CHECK ' "$RESULTS_DIR/gpu_check.log"; then
    echo "gpu_check: FAILED (exit $status; log: $RESULTS_DIR/gpu_check.log)"
    exit 1
fi
