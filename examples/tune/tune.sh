#!/usr/bin/env bash
# Hyperparameter search example (docs/tune.md): 9 random configurations of a tiny character-level
# LSTM on Moby-Dick, pruned by successive halving (9 x 33 steps, 3 x 100, 1 x 300), then the
# gates of the winner. Run from the repository root after `bash scripts/setup.sh` (or
# scripts/build.sh and scripts/fetch_data.sh data/moby-dick.txt). About 1-2 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-runs/tune}"
if [ -f "$out/tune.json" ]; then
  build/xlstm tune --out "$out" --resume          # continues (or re-prints) an earlier search
else
  build/xlstm tune --space examples/tune/space.json --trials 9 --budget-steps 300 --out "$out" \
    --data data/moby-dick.txt --model lstm-tiny --warmup 30 --eval-batches 5
fi
best=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_dir"])' "$out/best.json" 2>/dev/null \
       || sed -n 's/.*"run_dir": "\(.*\)".*/\1/p' "$out/best.json")
build/xlstm inspect --checkpoint "$best" --input "Call me Ishmael. Some years ago" --out "$out/inspect"
