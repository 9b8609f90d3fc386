#!/usr/bin/env bash
# Runs on the GPU machine (the project's device runs carry the wheels in .whl/): installs the carried CUDA 13
# nvImageCodec wheels from .whl/ into /tmp/site, imports gpuimg from the checkout, prints
# the device, then runs the command given (default: the test suite). Logs go to $OUT.
#   bash .ci/device.sh                       -> python3 -m pytest -q
#   bash .ci/device.sh pytest tests/test_x.py
#   bash .ci/device.sh python3 bench/ops.py
set -uo pipefail
export PYTHONUNBUFFERED=1
# (re)install whenever the carried wheels differ from what a warm machine already has
wheels=$(ls .whl 2>/dev/null)
if [ "$wheels" != "$(cat /tmp/site/.carried 2>/dev/null)" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  echo "$wheels" > /tmp/site/.carried
fi
export PYTHONPATH=/tmp/site:$PWD
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1
if [ $# -eq 0 ]; then set -- pytest -q; fi
if [ "$1" = pytest ]; then shift; set -- python3 -m pytest "$@"; fi
log="$OUT/$(basename -- "${@: -1}" | tr -c 'A-Za-z0-9._-' '_' | cut -c1-40).log"
"$@" 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
