#!/usr/bin/env bash
# The whole test suite: install dependencies, build, run ctest (prints ctest's summary line).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 600
