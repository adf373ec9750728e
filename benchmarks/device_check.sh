#!/usr/bin/env bash
# Accelerator readiness in one command (issue 15): installs the benchmark peers (make's bench
# set-up), then runs benchmarks/device_check.py at full sizes on JAX's default device and
# writes device_check/device_check.{json,md}. On a GPU machine, install the jaxlib CUDA plugin
# matching the pinned jax first (pip install "jax[cuda12]==<jax version>"); the report's first
# line says which backend ran. Extra arguments go to device_check.py (e.g. --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s .venv/.bench-stamp
exec .venv/bin/python benchmarks/device_check.py --out device_check "$@"
