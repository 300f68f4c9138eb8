#include "cpu/headwise.h"

#include <algorithm>

#include "cpu/gemm.h"
#include "cpu/gemm_tn.h"

#include <type_traits>
#include <vector>

#include <omp.h>

namespace xlstm {

// One strided GEMM per head: head h reads columns [h*I, (h+1)*I) of x and writes columns
// [h*O, (h+1)*O) of y; W[h] is the (O, I) block.

template <class T>
void headwise_forward(int64_t N, int64_t NH, int64_t I, int64_t O, const T* x, const T* W,
                      const T* b, T* y) {
  for (int64_t h = 0; h < NH; ++h)
    gemm<T>(Trans::N, Trans::T, N, O, I, T(1), x + h * I, NH * I, W + h * O * I, I, T(0), y + h * O,
            NH * O);
  if (!b) return;
  const int64_t C = NH * O;
#pragma omp parallel for schedule(static) if (N * C > 16384)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) y[n * C + c] += b[c];
}

template <class T>
void headwise_backward(int64_t N, int64_t NH, int64_t I, int64_t O, const T* x, const T* W,
                       const T* dy, T* dx, T* dW, T* db, bool dx_accumulate) {
  if (dx)
    for (int64_t h = 0; h < NH; ++h)
      gemm<T>(Trans::N, Trans::N, N, I, O, T(1), dy + h * O, NH * O, W + h * O * I, I,
              dx_accumulate ? T(1) : T(0), dx + h * I, NH * I);
  if constexpr (std::is_same_v<T, float>) {
    // The transposed-A shape: our kernel (gemm_tn.h), the bias as its column sums. When the
    // heads split evenly among the threads each thread takes whole heads (it then packs only
    // its own heads' x, and a head's product alone is small: 2 threads on one M = 128 product
    // ran at ~260 GFLOP/s, ~360 on two heads at once).
    thread_local std::vector<double> sums;
    double* cs = nullptr;
    if (db) {
      sums.assign((size_t)(NH * O), 0.0);
      cs = sums.data();
    }
    const int nth = omp_get_max_threads();
    if (nth > 1 && NH % nth == 0 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
      for (int64_t h = 0; h < NH; ++h)
        gemm_tn(O, I, N, dy + h * O, NH * O, x + h * I, NH * I, 1.0f, dW + h * O * I, I,
                cs ? cs + h * O : nullptr);
    } else {
      for (int64_t h = 0; h < NH; ++h)
        gemm_tn(O, I, N, dy + h * O, NH * O, x + h * I, NH * I, 1.0f, dW + h * O * I, I,
                cs ? cs + h * O : nullptr);
    }
    if (db)
      for (int64_t c = 0; c < NH * O; ++c) db[c] += (T)sums[(size_t)c];
    return;
  } else {
    for (int64_t h = 0; h < NH; ++h)
      gemm<T>(Trans::T, Trans::N, O, I, N, T(1), dy + h * O, NH * O, x + h * I, NH * I, T(1),
              dW + h * O * I, I);
  }
  if (!db) return;
  // Column sums of dy: column blocks in parallel, rows in order (deterministic).
  const int64_t C = NH * O;
  constexpr int64_t kBlock = 64;
  const int64_t nblocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (N * C > 16384)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const int64_t c0 = blk * kBlock, c1 = std::min(C, c0 + kBlock);
    double acc[kBlock] = {};
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += (double)dy[n * C + c];
    for (int64_t c = c0; c < c1; ++c) db[c] += (T)acc[c - c0];
  }
}

#define XLSTM_INST(T)                                                                          \
  template void headwise_forward<T>(int64_t, int64_t, int64_t, int64_t, const T*, const T*,     \
                                    const T*, T*);                                              \
  template void headwise_backward<T>(int64_t, int64_t, int64_t, int64_t, const T*, const T*,    \
                                     const T*, T*, T*, T*, bool);
XLSTM_INST(float)
XLSTM_INST(double)
#undef XLSTM_INST

}  // namespace xlstm
