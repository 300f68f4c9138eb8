#include "cpu/rmsnorm.h"

#include <algorithm>
#include <cmath>

#include "cpu/parallel.h"

namespace xlstm {

// Row reductions are accumulated in double for both T = float and T = double; rstd is stored
// as T.

template <class T>
void rmsnorm_forward(int64_t N, int64_t D, const T* x, const T* w, double eps, T* y, T* rstd) {
  parallel_for(N, N * D > 16384, [&](int64_t n) {
    const T* xr = x + n * D;
    double ss = 0;
    for (int64_t d = 0; d < D; ++d) ss += (double)xr[d] * (double)xr[d];
    const double rs = 1.0 / std::sqrt(ss / (double)D + eps);
    rstd[n] = (T)rs;
    T* yr = y + n * D;
    for (int64_t d = 0; d < D; ++d) yr[d] = (T)((double)xr[d] * rs * (w ? (double)w[d] : 1.0));
  });
}

template <class T>
void rmsnorm_backward(int64_t N, int64_t D, const T* x, const T* w, const T* rstd, const T* dy,
                      T* dx, T* dw) {
  // dw first, in case dx aliases dy: column blocks, rows summed in order (deterministic).
  if (dw) {
    constexpr int64_t kBlock = 64;
    const int64_t nblocks = (D + kBlock - 1) / kBlock;
    parallel_for(nblocks, N * D > 16384, [&](int64_t blk) {
      const int64_t d0 = blk * kBlock, d1 = std::min(D, d0 + kBlock);
      double acc[kBlock] = {};
      for (int64_t n = 0; n < N; ++n) {
        const double rs = (double)rstd[n];
        for (int64_t d = d0; d < d1; ++d)
          acc[d - d0] += (double)dy[n * D + d] * (double)x[n * D + d] * rs;
      }
      for (int64_t d = d0; d < d1; ++d) dw[d] += (T)acc[d - d0];
    });
  }
  // dx = rstd * (g - x * rstd^2 * mean(g * x)), g = dy * w.
  parallel_for(N, N * D > 16384, [&](int64_t n) {
    const T* xr = x + n * D;
    const T* dyr = dy + n * D;
    const double rs = (double)rstd[n];
    double sgx = 0;
    for (int64_t d = 0; d < D; ++d) sgx += (double)dyr[d] * (w ? (double)w[d] : 1.0) * (double)xr[d];
    const double c = rs * rs * sgx / (double)D;
    T* dxr = dx + n * D;
    for (int64_t d = 0; d < D; ++d) {
      const double g = (double)dyr[d] * (w ? (double)w[d] : 1.0);
      dxr[d] = (T)(rs * (g - (double)xr[d] * c));
    }
  });
}

#define XLSTM_INST(T)                                                                           \
  template void rmsnorm_forward<T>(int64_t, int64_t, const T*, const T*, double, T*, T*);        \
  template void rmsnorm_backward<T>(int64_t, int64_t, const T*, const T*, const T*, const T*, T*, \
                                    T*);
XLSTM_INST(float)
XLSTM_INST(double)
#undef XLSTM_INST

}  // namespace xlstm
