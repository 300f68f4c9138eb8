#!/usr/bin/env bash
# Training throughput side by side: `xlstm train --model lstm-small` against the same model and
# settings in PyTorch (bench/torch_train_lstm.py), on Tiny Shakespeare, for 1 and 2 threads.
# Usage: bench/train_compare.sh [DATA] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/tinyshakespeare.txt}"
steps="${2:-60}"
export OMP_WAIT_POLICY=passive
printf "%-8s %-8s %12s %12s %8s\n" threads params ours_tok/s torch_tok/s ratio
for th in 1 2; do
  out=$(mktemp -d)
  ./build/xlstm train --data "$data" --out "$out/run" --model lstm-small --batch-size 32 \
    --context 128 --lr 2e-3 --warmup 0 --steps $((steps + 3)) --eval-every 100000 \
    --log-every 1 --threads "$th" -q > "$out/log"
  # tokens/s over the steps after the first 3 (warm-up), from the metrics' elapsed time
  ours=$(awk -F, -v s=$((steps + 3)) 'NR==1{for(i=1;i<=NF;i++)c[$i]=i; next}
          $c["step"]==3{t0=$c["elapsed_s"]} $c["step"]==s{t1=$c["elapsed_s"]}
          END{printf "%.0f", (s-3)*32*128/(t1-t0)}' "$out/run/metrics.csv")
  params=$(grep -o '[0-9]* parameters' "$out/log" | cut -d' ' -f1)
  torch=$(/usr/bin/python3 bench/torch_train_lstm.py "$data" --steps "$steps" --threads "$th" |
          /usr/bin/python3 -c 'import json,sys; print(round(json.load(sys.stdin)["tokens_per_s"]))')
  printf "%-8s %-8s %12s %12s %8.2f\n" "$th" "$params" "$ours" "$torch" "$(echo "$ours / $torch" | bc -l)"
  rm -rf "$out"
done
