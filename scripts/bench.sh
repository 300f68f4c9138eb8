#!/usr/bin/env bash
# Builds the benchmark programs (Release, build-bench/) and prints the side-by-side table of
# bench/compare.py for 1 and 2 threads: our LSTM / sLSTM / mLSTM vs oneDNN's LSTM primitive vs
# PyTorch 1.13 (Debian's /usr/bin/python3), plus the GEMM backend table (bench/gemm_bench).
# About 10 minutes on the 2-core machine; run it on an otherwise idle machine.
# Extra arguments go to compare.py (e.g. --filter lstm/, --quick, --no-torch, --save out.json).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build-bench
mkdir -p "$BUILD"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DXLSTM_BUILD_BENCH=ON \
  -DXLSTM_BUILD_TESTS=OFF > "$BUILD/cmake.log" 2>&1 || { cat "$BUILD/cmake.log"; exit 1; }
ninja -C "$BUILD" -j"$(nproc)" lstm_bench slstm_bench mlstm_bench gemm_bench xlstm_large_bench

# OpenMP threads spin after a parallel region by default; with two runtimes (oneDNN's OpenMP,
# OpenBLAS's pthreads) in one process that steals the other's core. Passive = sleep at once.
export OMP_WAIT_POLICY=passive
if [[ -n "${OPENBLAS_CORETYPE:-}" ]]; then
  echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE} (left as the environment sets it; affects the OpenBLAS column of the GEMM table only)"
else
  echo "OPENBLAS_CORETYPE unset (OpenBLAS picks its kernels by CPU detection)"
fi
echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; should be near 0)"
python3 bench/compare.py --build "$BUILD" --threads 1,2 --gemm "$@"
# xLSTM-Large inference (issue 4; docs/perf.md): decode, prefill vs PyTorch, load memory. Opt-in
# (about 10 more minutes, writes ~750 MB of checkpoints to a temp directory): XLSTM_BENCH_LARGE=1.
if [[ "${XLSTM_BENCH_LARGE:-0}" == 1 ]]; then "$BUILD/bench/xlstm_large_bench" --torch bench/torch_xlstm_large.py; fi
