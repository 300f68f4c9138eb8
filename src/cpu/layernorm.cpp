#include "cpu/layernorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/parallel.h"

namespace xlstm {

// Both ops share one implementation over rows of (n, g): G groups of D features per row of x,
// statistics per (n, g), weight/bias per feature g*D + d. layernorm is G = 1.
// Statistics (two-pass mean and biased variance) and the backward row sums are accumulated in
// double for both T = float and T = double; mean and rstd are stored as T.
namespace {

// The effective per-feature scale (w, 1 + w, or the constant 1 / 0 without a weight), in double.
// Kept per thread and grown only (no allocation per call at a fixed width).
template <class T>
const double* effective_scale(const T* w, NormScale scale, int64_t C) {
  thread_local std::vector<double> buf;
  if ((int64_t)buf.size() < C) buf.resize((size_t)C);
  for (int64_t j = 0; j < C; ++j) {
    const double wj = w ? (double)w[j] : (scale == NormScale::Plain ? 1.0 : 0.0);
    buf[(size_t)j] = scale == NormScale::OnePlusWeight ? 1.0 + wj : wj;
  }
  return buf.data();
}

// The row loops below are `omp simd` reductions in double: the summation order is fixed by
// the vector width (not by the thread count), so results stay deterministic.
template <class T>
void norm_forward(int64_t N, int64_t G, int64_t D, const T* x, const T* w, const T* b, double eps,
                  NormScale scale, T* y, T* mean, T* rstd) {
  const int64_t C = G * D, rows = N * G;
  const double* sc_all = effective_scale(w, scale, C);
  parallel_for(rows, rows * D > 16384, [&](int64_t r) {
    const int64_t off = (r / G) * C + (r % G) * D, j0 = (r % G) * D;
    const T* xr = x + off;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t d = 0; d < D; ++d) s += (double)xr[d];
    const double mu = s / (double)D;
    double v = 0;
#pragma omp simd reduction(+ : v)
    for (int64_t d = 0; d < D; ++d) {
      const double c = (double)xr[d] - mu;
      v += c * c;
    }
    const double rs = 1.0 / std::sqrt(v / (double)D + eps);
    mean[r] = (T)mu;
    rstd[r] = (T)rs;
    T* yr = y + off;
    const double* sc = sc_all + j0;
    if (b) {
      const T* br = b + j0;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d)
        yr[d] = (T)(((double)xr[d] - mu) * rs * sc[d] + (double)br[d]);
    } else {
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) yr[d] = (T)(((double)xr[d] - mu) * rs * sc[d]);
    }
  });
}

template <class T>
void norm_backward(int64_t N, int64_t G, int64_t D, const T* x, const T* w, NormScale scale,
                   const T* mean, const T* rstd, const T* dy, T* dx, T* dw, T* db) {
  const int64_t C = G * D, rows = N * G;
  // dw, db first: dx may alias dy. Column blocks over the C features, rows summed in order;
  // a block is cut where a group ends so that each piece has one (mean, rstd).
  if (dw || db) {
    constexpr int64_t kBlock = 64;
    const int64_t nblocks = (C + kBlock - 1) / kBlock;
    parallel_for(nblocks, N * C > 16384, [&](int64_t blk) {
      const int64_t j0 = blk * kBlock, j1 = std::min(C, j0 + kBlock);
      double aw[kBlock] = {}, ab[kBlock] = {};
      for (int64_t n = 0; n < N; ++n) {
        const T* xr = x + n * C;
        const T* dyr = dy + n * C;
        for (int64_t j = j0; j < j1;) {
          const int64_t g = j / D, je = std::min(j1, (g + 1) * D), r = n * G + g;
          const double mu = (double)mean[r], rs = (double)rstd[r];
          double* awj = aw + (j - j0);
          double* abj = ab + (j - j0);
          const T* xj = xr + j;
          const T* dyj = dyr + j;
#pragma omp simd
          for (int64_t k = 0; k < je - j; ++k) {
            awj[k] += (double)dyj[k] * (((double)xj[k] - mu) * rs);
            abj[k] += (double)dyj[k];
          }
          j = je;
        }
      }
      for (int64_t j = j0; j < j1; ++j) {
        if (dw) dw[j] += (T)aw[j - j0];
        if (db) db[j] += (T)ab[j - j0];
      }
    });
  }
  // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * scale.
  const double* sc_all = effective_scale(w, scale, C);
  parallel_for(rows, rows * D > 16384, [&](int64_t r) {
    const int64_t off = (r / G) * C + (r % G) * D, j0 = (r % G) * D;
    const T* xr = x + off;
    const T* dyr = dy + off;
    const double* sc = sc_all + j0;
    const double mu = (double)mean[r], rs = (double)rstd[r];
    double sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t d = 0; d < D; ++d) {
      const double g = (double)dyr[d] * sc[d];
      sg += g;
      sgx += g * (((double)xr[d] - mu) * rs);
    }
    sg /= (double)D;
    sgx /= (double)D;
    T* dxr = dx + off;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) {
      const double g = (double)dyr[d] * sc[d];
      const double xhat = ((double)xr[d] - mu) * rs;
      dxr[d] = (T)(rs * (g - sg - xhat * sgx));
    }
  });
}

}  // namespace

template <class T>
void layernorm_forward(int64_t N, int64_t D, const T* x, const T* w, const T* b, double eps,
                       NormScale scale, T* y, T* mean, T* rstd) {
  norm_forward(N, 1, D, x, w, b, eps, scale, y, mean, rstd);
}

template <class T>
void layernorm_backward(int64_t N, int64_t D, const T* x, const T* w, NormScale scale,
                        const T* mean, const T* rstd, const T* dy, T* dx, T* dw, T* db) {
  norm_backward(N, 1, D, x, w, scale, mean, rstd, dy, dx, dw, db);
}

template <class T>
void multihead_norm_forward(int64_t N, int64_t NH, int64_t DH, const T* x, const T* w, const T* b,
                            double eps, NormScale scale, T* y, T* mean, T* rstd) {
  norm_forward(N, NH, DH, x, w, b, eps, scale, y, mean, rstd);
}

template <class T>
void multihead_norm_backward(int64_t N, int64_t NH, int64_t DH, const T* x, const T* w,
                             NormScale scale, const T* mean, const T* rstd, const T* dy, T* dx,
                             T* dw, T* db) {
  norm_backward(N, NH, DH, x, w, scale, mean, rstd, dy, dx, dw, db);
}

#define XLSTM_INST(T)                                                                         \
  template void layernorm_forward<T>(int64_t, int64_t, const T*, const T*, const T*, double,    \
                                     NormScale, T*, T*, T*);                                    \
  template void layernorm_backward<T>(int64_t, int64_t, const T*, const T*, NormScale,          \
                                      const T*, const T*, const T*, T*, T*, T*);                \
  template void multihead_norm_forward<T>(int64_t, int64_t, int64_t, const T*, const T*,        \
                                          const T*, double, NormScale, T*, T*, T*);             \
  template void multihead_norm_backward<T>(int64_t, int64_t, int64_t, const T*, const T*,       \
                                           NormScale, const T*, const T*, const T*, T*, T*, T*);
XLSTM_INST(float)
XLSTM_INST(double)
#undef XLSTM_INST

}  // namespace xlstm
