#!/usr/bin/env bash
# Downloads, on a machine with network to PyPI, the wheels that the accelerator machine
# lacks (scripts/device_wheels.txt) into .whl/ (ignored by git; the device tool carries it).
#
#   bash scripts/fetch_device_wheels.sh      # then: the device tool's run, carry [".whl"]
#
# The wheels are for the machine, not for here: CPython 3.12, manylinux x86-64. PYTHON picks
# the interpreter whose pip downloads them (default: .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
mapfile -t pins < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' scripts/device_wheels.txt | grep -v '^$')
rm -rf .whl
mkdir .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
  manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d .whl "${pins[@]}"
count=$(find .whl -type f -name '*.whl' | wc -l)
if [ "$count" -ne "${#pins[@]}" ]; then
  echo "error: ${#pins[@]} pins in scripts/device_wheels.txt but $count wheels in .whl/" >&2
  exit 1
fi
echo "$count wheels, $(du -sh .whl | cut -f1), in .whl/:"
ls .whl
