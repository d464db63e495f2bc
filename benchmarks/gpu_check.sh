#!/usr/bin/env bash
# The GPU path in one run, at most 8 minutes on one H100/H200-class GPU: installs requirements/gpu.txt
# (TensorRT) when it is missing, then runs benchmarks/gpu_check.py, which writes
# benchmarks/results/gpu_<UTC date-time>.{json,md} (CUDA FP32/FP16 agreement, TensorRT FP16/INT8
# engines, the node over DDS with TensorRT, AMP training). Every step reports failure and continues.
#
#   benchmarks/gpu_check.sh                      # install if needed, run everything
#   benchmarks/gpu_check.sh --wheels DIR         # install offline from wheels in DIR (no index)
#   benchmarks/gpu_check.sh --dry-run --out-dir /tmp/x   # no install, GPUs hidden: every CUDA step skips
#
# Other options go to gpu_check.py (--budget S, --steps a,b, --work DIR). Exit status 0 when the
# report was written (failed steps are in the report), non-zero only when it could not be written.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -f env.sh ]; then
  # shellcheck disable=SC1091
  source env.sh
fi
PY="${PYTHON:-$(command -v python || command -v python3)}"
BUDGET=480
dry_run=0
wheels=""
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1; pass+=("$1") ;;
    --wheels) wheels="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    *) pass+=("$1") ;;
  esac
  shift
done
start=$(date +%s)
install_log="$(mktemp -t gpu_check_install.XXXXXX)"
if [ "$dry_run" = 1 ]; then
  echo "dry run: nothing installed" >"$install_log"
elif "$PY" -c "import tensorrt" >/dev/null 2>&1; then
  "$PY" -c "import tensorrt; print('tensorrt', tensorrt.__version__, 'already installed')" >"$install_log" 2>&1
else
  echo "installing requirements/gpu.txt (timeout 120 s)" | tee "$install_log"
  if [ -n "$wheels" ]; then
    timeout 120 "$PY" -m pip install --no-index --find-links "$wheels" -r requirements/gpu.txt >>"$install_log" 2>&1
  else
    timeout 120 "$PY" -m pip install -r requirements/gpu.txt >>"$install_log" 2>&1
  fi
  echo "pip exit status $?" >>"$install_log"
  tail -3 "$install_log"
fi
left=$((BUDGET - ($(date +%s) - start)))
[ "$left" -lt 60 ] && left=60
exec "$PY" benchmarks/gpu_check.py --budget "$left" --install-log "$install_log" "${pass[@]}"
