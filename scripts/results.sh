#!/usr/bin/env bash
# The cell comparison of docs/results.md: LSTM, sLSTM-only, mLSTM-only and xLSTM[7:1] at about
# 0.9M parameters each, trained for the same wall time on Tiny Shakespeare (nanoGPT's split:
# first 90% train, last 10% validation), all cores. Prints one markdown table row per model.
# Usage: scripts/results.sh [MINUTES] [DATA]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-4}"
data="${2:-../shared/data/tinyshakespeare.txt}"
out="runs/results"
mkdir -p "$out"
declare -A models=(
  [lstm]="--model lstm-small --width 408"
  [slstm]="--model slstm-small"
  [mlstm]="--model mlstm-small"
  [xlstm-7-1]="--model xlstm-7-1-small"
  [default]=""
)
echo "| model | parameters | steps | tokens/s | best val loss | command |"
echo "| --- | --- | --- | --- | --- | --- |"
for name in ${MODELS:-lstm slstm mlstm xlstm-7-1 default}; do
  rm -rf "$out/$name"
  cmd="build/xlstm train --data $data --out $out/$name ${models[$name]} --minutes $minutes --eval-every 200 --eval-batches 40"
  log=$($cmd -q)
  params=$(echo "$log" | grep -o '[0-9]* parameters' | cut -d' ' -f1)
  steps=$(echo "$log" | sed -n 's/^trained \([0-9]*\) steps.*/\1/p')
  tps=$(echo "$log" | sed -n 's/.*: \([0-9]*\) tokens\/s.*/\1/p')
  best=$(echo "$log" | sed -n 's/.*best \([0-9.]*\)$/\1/p')
  echo "| $name | $params | $steps | $tps | $best | \`$cmd\` |"
done
