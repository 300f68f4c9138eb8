#include "cpu/linear.h"

#include <algorithm>

#include "cpu/gemm.h"

namespace xlstm {

namespace {

// db[o] += sum_n dy[n, o]. Parallel over column blocks, each summing its rows in order, so the
// result does not depend on the thread count. Sums in double, rounded once into db.
template <class T>
void add_column_sums(int64_t N, int64_t O, const T* dy, T* db) {
  constexpr int64_t kBlock = 64;
  const int64_t nblocks = (O + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (N * O > 16384)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const int64_t o0 = blk * kBlock, o1 = std::min(O, o0 + kBlock);
    double acc[kBlock] = {};
    for (int64_t n = 0; n < N; ++n) {
      const T* row = dy + n * O;
      for (int64_t o = o0; o < o1; ++o) acc[o - o0] += (double)row[o];
    }
    for (int64_t o = o0; o < o1; ++o) db[o] += (T)acc[o - o0];
  }
}

}  // namespace

template <class T>
void linear_forward(int64_t N, int64_t I, int64_t O, const T* x, const T* W, const T* b, T* y) {
  gemm<T>(Trans::N, Trans::T, N, O, I, T(1), x, I, W, I, T(0), y, O);
  if (!b) return;
#pragma omp parallel for schedule(static) if (N * O > 16384)
  for (int64_t n = 0; n < N; ++n) {
    T* row = y + n * O;
    for (int64_t o = 0; o < O; ++o) row[o] += b[o];
  }
}

template <class T>
void linear_backward(int64_t N, int64_t I, int64_t O, const T* x, const T* W, const T* dy, T* dx,
                     T* dW, T* db) {
  if (dx) gemm<T>(Trans::N, Trans::N, N, I, O, T(1), dy, O, W, I, T(0), dx, I);
  gemm<T>(Trans::T, Trans::N, O, I, N, T(1), dy, O, x, I, T(1), dW, I);
  if (db) add_column_sums(N, O, dy, db);
}

#define XLSTM_INST(T)                                                                        \
  template void linear_forward<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, T*); \
  template void linear_backward<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, T*, \
                                   T*, T*);
XLSTM_INST(float)
XLSTM_INST(double)
#undef XLSTM_INST

}  // namespace xlstm
