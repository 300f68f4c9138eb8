#!/usr/bin/env bash
# The newcomer's first command: install dependencies, build, and run the main job.
# Main job (until training lands): the conformance run against the official implementations'
# golden cases in ../shared/conformance.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
shared="${XLSTM_SHARED_DIR:-../shared}"
if [ -d "$shared/conformance" ]; then
  ./build/xlstm conformance "$shared/conformance"
else
  echo "no $shared/conformance folder: nothing to check (set XLSTM_SHARED_DIR)"
fi
