#!/usr/bin/env bash
# The accelerator check in one command: installs the project on a machine without network,
# then runs `python -m experiments.bench.device` (every stage, within a time budget), which
# writes $OUT/device_check.json, device_check.md and device_check.log.
#
#   bash scripts/device_check.sh                  # on the device machine (sizes: `device`)
#   bash scripts/device_check.sh --size=tiny      # the same stages at CPU-test size
#   OUT=runs/check PYTHON=.venv/bin/python bash scripts/device_check.sh --size=tiny
#
# Install: the wheels in $WHEELS (default .whl/, filled by scripts/fetch_device_wheels.sh
# where there is network) go into $SITE (default /tmp/site) with pip's offline flags; the project itself runs from
# this checkout (first on PYTHONPATH; it is pure Python). With no .whl/ the interpreter's
# own packages are used (a test points WHEELS at an empty folder). An install that fails is recorded, and the stages still run.
# PYTHON is the interpreter (default python3: on the device machine, the one with JAX and
# CUDA); every stage runs in it (sys.executable), never in a `python` found on PATH.
# Other flags go to experiments.bench.device (--budget_s, --stages, --train_epochs, ...).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$repo/runs/device_check}
SITE=${SITE:-/tmp/site}
WHEELS=${WHEELS:-.whl}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/lira_device_check.XXXXXX")}
mkdir -p "$OUT" "$WORK"

install_rc=none
shopt -s nullglob
wheels=("$WHEELS"/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "${wheels[@]}" > "$WORK/install.log" 2>&1
  install_rc=$?
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "no wheels in $WHEELS/: using the interpreter's own packages" > "$WORK/install.log"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

exec "$PYTHON" -m experiments.bench.device --out="$OUT" --work="$WORK" \
  --install_log="$WORK/install.log" --install_rc="$install_rc" "$@"
