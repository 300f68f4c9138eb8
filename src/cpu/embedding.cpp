#include "cpu/embedding.h"

#include <algorithm>

#include "cpu/parallel.h"
#include "xlstm/error.h"

namespace xlstm {

namespace {
void check_ids(const char* op, int64_t N, int64_t V, const int64_t* ids) {
  for (int64_t n = 0; n < N; ++n)
    XLSTM_CHECK(ids[n] >= 0 && ids[n] < V, ValueError, "[", op, "] id ", ids[n], " at row ", n,
                " is outside [0, ", V, "); hint: the vocabulary has ", V, " tokens");
}
}  // namespace

template <class T>
void embedding_forward(int64_t N, int64_t V, int64_t D, const int64_t* ids, const T* W, T* y) {
  check_ids("embedding_forward", N, V, ids);
  parallel_for(N, N * D > 65536,
               [&](int64_t n) { std::copy(W + ids[n] * D, W + (ids[n] + 1) * D, y + n * D); });
}

template <class T>
void embedding_backward(int64_t N, int64_t V, int64_t D, const int64_t* ids, const T* dy, T* dW) {
  check_ids("embedding_backward", N, V, ids);
  // Repeated ids hit the same row of dW: split the work over columns instead of rows, each
  // thread adding every row in order, so there are no races and the sum order is fixed.
  constexpr int64_t kBlock = 64;
  const int64_t nblocks = (D + kBlock - 1) / kBlock;
  parallel_for(nblocks, N * D > 65536, [&](int64_t blk) {
    const int64_t d0 = blk * kBlock, d1 = std::min(D, d0 + kBlock);
    for (int64_t n = 0; n < N; ++n) {
      const T* src = dy + n * D;
      T* dst = dW + ids[n] * D;
      for (int64_t d = d0; d < d1; ++d) dst[d] += src[d];
    }
  });
}

#define XLSTM_INST(T)                                                                       \
  template void embedding_forward<T>(int64_t, int64_t, int64_t, const int64_t*, const T*, T*); \
  template void embedding_backward<T>(int64_t, int64_t, int64_t, const int64_t*, const T*, T*);
XLSTM_INST(float)
XLSTM_INST(double)
#undef XLSTM_INST

}  // namespace xlstm
