#!/usr/bin/env bash
# One script for every GPU claim of symexp: on a CUDA machine with a fresh clone it sets up .venv with a
# CUDA torch (reusing one that is already installed) and runs bench/gpu_check.py within ~10 minutes,
# writing the tables as markdown to bench/results/gpu_check.md (paste them into BENCHMARKS.md).
#
#   bash bench/gpu_check.sh             # on the GPU machine
#   bash bench/gpu_check.sh --dry-run   # anywhere: print the plan, run the CPU-safe parts (tiny, CPU)
#
# Environment: PYTHON (a python whose torch sees the GPU; skips the set-up), CUDA_WHEEL (the PyTorch wheel
# index tag, default cu128), GPU_CHECK_BUDGET_S (seconds for the measurements, default 540), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $arg (use --dry-run)" >&2; exit 2 ;;
  esac
done

CUDA_WHEEL=${CUDA_WHEEL:-cu128}
BUDGET=${GPU_CHECK_BUDGET_S:-540}
export WANDB_MODE=offline

has_cuda_torch() {  # $1: python; true when its torch is a CUDA build that sees a GPU
  "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1
}
has_deps() {
  "$1" -c 'import lightning, hydra, omegaconf, matplotlib, pytest' >/dev/null 2>&1
}

setup_steps() {  # prints the set-up commands this machine needs, one per line
  if [ -n "${PYTHON:-}" ]; then return; fi
  if [ -x .venv/bin/python ] && has_cuda_torch .venv/bin/python; then
    has_deps .venv/bin/python || echo ".venv/bin/pip install -q -e '.[dev,rl]'"
    return
  fi
  if command -v python3 >/dev/null && has_cuda_torch python3; then
    # a CUDA torch is already installed system-wide: reuse it instead of downloading ~2.5 GB
    echo "python3 -m venv --system-site-packages .venv"
  else
    echo "python3 -m venv .venv"
    echo ".venv/bin/pip install -q --upgrade pip"
    echo ".venv/bin/pip install -q torch --index-url https://download.pytorch.org/whl/${CUDA_WHEEL}"
  fi
  echo ".venv/bin/pip install -q -e '.[dev,rl]'"
}

if [ "$DRY" = 1 ]; then
  PY=${PYTHON:-}
  if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
  fi
  OUT=${OUT:-${TMPDIR:-/tmp}/symexp_gpu_check_dry.md}
  echo "gpu_check.sh --dry-run: on a CUDA machine this would run"
  echo "  set-up (as needed on this machine):"
  steps=$(setup_steps || true)
  if [ -n "$steps" ]; then echo "$steps" | sed 's/^/    /'
  elif [ -n "${PYTHON:-}" ]; then echo "    (none: PYTHON=$PYTHON is used as it is)"
  else echo "    (none: .venv already has a CUDA torch and the dependencies)"; fi
  echo "  measurements:"
  echo "    timeout $((BUDGET + 60)) .venv/bin/python bench/gpu_check.py --budget-s $BUDGET --out bench/results/gpu_check.md"
  echo "  now: the CPU exercise ($PY bench/gpu_check.py --cpu --out $OUT)"
  exec "$PY" bench/gpu_check.py --cpu --out "$OUT"
fi

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
T0=$(date +%s)
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
else
  while IFS= read -r step; do
    [ -n "$step" ] || continue
    echo "+ $step"
    eval "$step"
  done < <(setup_steps)
  PY=.venv/bin/python
fi
if ! has_cuda_torch "$PY"; then
  echo "gpu_check.sh: $PY has no CUDA torch that sees a GPU ($("$PY" -c 'import torch; print(torch.__version__)' 2>&1))." >&2
  echo "  Install one: $PY -m pip install torch --index-url https://download.pytorch.org/whl/${CUDA_WHEEL}" >&2
  exit 2
fi
echo "set-up: $(( $(date +%s) - T0 )) s; measuring with $PY (budget ${BUDGET} s)"
OUT=${OUT:-bench/results/gpu_check.md}
timeout $((BUDGET + 60)) "$PY" bench/gpu_check.py --budget-s "$BUDGET" --out "$OUT"
