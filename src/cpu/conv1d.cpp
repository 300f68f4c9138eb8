#include "cpu/conv1d.h"

#include <algorithm>
#include <vector>

#include <omp.h>

#include "cpu/parallel.h"

namespace xlstm {

// Positions p in [0, K-1+T) index the padded input xpad = concat(state_in, x): p < K-1 is
// state_in[:, p], p >= K-1 is x[:, p-(K-1)]. The weight is transposed to (K, F) so that every
// inner loop runs over contiguous features.

namespace {
template <class T>
inline const T* xpad_row(int64_t b, int64_t p, int64_t Tn, int64_t F, int64_t K, const T* x,
                         const T* state_in) {
  const int64_t S = K - 1;
  if (p >= S) return x + (b * Tn + (p - S)) * F;
  return state_in ? state_in + (b * S + p) * F : nullptr;  // null: zero state
}
template <class T>
std::vector<T> transpose_w(int64_t F, int64_t K, const T* w) {
  std::vector<T> wt((size_t)(K * F));
  for (int64_t f = 0; f < F; ++f)
    for (int64_t k = 0; k < K; ++k) wt[(size_t)(k * F + f)] = w[f * K + k];
  return wt;
}
}  // namespace

template <class T>
void conv1d_forward(int64_t B, int64_t Tn, int64_t F, int64_t K, const T* x, const T* w,
                    const T* bias, const T* state_in, T* y, T* state_out) {
  const int64_t S = K - 1;
  const std::vector<T> wt = transpose_w(F, K, w);
  parallel_for(B * Tn, B * Tn * F * K > 32768, [&](int64_t bt) {
    const int64_t b = bt / Tn, t = bt % Tn;
    T* yr = y + (b * Tn + t) * F;
    for (int64_t f = 0; f < F; ++f) yr[f] = bias ? bias[f] : T(0);
    for (int64_t k = 0; k < K; ++k) {
      const T* xr = xpad_row(b, t + k, Tn, F, K, x, state_in);
      if (!xr) continue;
      const T* wk = wt.data() + k * F;
      for (int64_t f = 0; f < F; ++f) yr[f] += wk[f] * xr[f];
    }
  });
  if (!state_out) return;
  // Ascending j reads xpad[T + j] >= j, so this also works in place (state_out == state_in).
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < S; ++j) {
      const T* src = xpad_row(b, Tn + j, Tn, F, K, x, state_in);
      T* dst = state_out + (b * S + j) * F;
      if (src) std::copy(src, src + F, dst);
      else std::fill(dst, dst + F, T(0));
    }
}

template <class T>
void conv1d_backward(int64_t B, int64_t Tn, int64_t F, int64_t K, const T* x, const T* w,
                     const T* state_in, const T* dy, const T* dstate_out, T* dx, T* dw, T* dbias,
                     T* dstate_in, bool dx_accumulate) {
  const int64_t S = K - 1, P = S + Tn;
  const std::vector<T> wt = transpose_w(F, K, w);
  // dxpad[b, p] = sum_k w[:, k] * dy[b, p-k] (0 <= p-k < T) + dstate_out[b, p-T] (p >= T),
  // routed to dstate_in (p < K-1) or dx (p >= K-1).
  parallel_for(B * P, B * P * F * K > 32768, [&](int64_t bp) {
    const int64_t b = bp / P, p = bp % P;
    T* out = p >= S ? dx + (b * Tn + (p - S)) * F : (dstate_in ? dstate_in + (b * S + p) * F : nullptr);
    if (!out) return;
    const T* ds = p >= Tn && dstate_out ? dstate_out + (b * S + (p - Tn)) * F : nullptr;
    if (dx_accumulate && p >= S) {
      if (ds)
        for (int64_t f = 0; f < F; ++f) out[f] += ds[f];
    } else if (ds) {
      std::copy(ds, ds + F, out);
    } else {
      std::fill(out, out + F, T(0));
    }
    for (int64_t k = std::max<int64_t>(0, p - Tn + 1); k < K && k <= p; ++k) {
      const T* dyr = dy + (b * Tn + (p - k)) * F;
      const T* wk = wt.data() + k * F;
      for (int64_t f = 0; f < F; ++f) out[f] += wk[f] * dyr[f];
    }
  });
  // dw[f, k] += sum_{b,t} dy[b,t,f] * xpad[b,t+k,f]; dbias[f] += sum_{b,t} dy[b,t,f].
  // Each thread takes a contiguous range of features and walks the rows in order (contiguous
  // reads the prefetcher follows); per batch row the sums over t go to float partials (K+1 rows
  // of the range: L1-resident, vectorised), then over b to double. Fixed feature ranges and
  // orders: deterministic, and the same for any thread count (each feature's sums are in the
  // same order whichever thread owns it).
  parallel_region(B * Tn * F * K > 32768, [&](int th, int nth) {
    const int64_t f0 = F * th / nth, f1 = F * (th + 1) / nth, nf = f1 - f0;
    if (nf > 0) {
      std::vector<double> aw((size_t)(K * nf), 0.0), ab((size_t)nf, 0.0);
      std::vector<T> pw((size_t)(K * nf)), pb((size_t)nf);
      for (int64_t b = 0; b < B; ++b) {
        std::fill(pw.begin(), pw.end(), T(0));
        std::fill(pb.begin(), pb.end(), T(0));
        for (int64_t t = 0; t < Tn; ++t) {
          const T* dyr = dy + (b * Tn + t) * F + f0;
          T* pbp = pb.data();
#pragma omp simd
          for (int64_t f = 0; f < nf; ++f) pbp[f] += dyr[f];
          for (int64_t k = 0; k < K; ++k) {
            const T* xr = xpad_row(b, t + k, Tn, F, K, x, state_in);
            if (!xr) continue;
            xr += f0;
            T* a = pw.data() + k * nf;
#pragma omp simd
            for (int64_t f = 0; f < nf; ++f) a[f] += dyr[f] * xr[f];
          }
        }
        for (size_t e = 0; e < aw.size(); ++e) aw[e] += (double)pw[e];
        for (int64_t f = 0; f < nf; ++f) ab[(size_t)f] += (double)pb[(size_t)f];
      }
      for (int64_t f = f0; f < f1; ++f) {
        for (int64_t k = 0; k < K; ++k) dw[f * K + k] += (T)aw[(size_t)(k * nf + f - f0)];
        if (dbias) dbias[f] += (T)ab[(size_t)(f - f0)];
      }
    }
  });
}

#define XLSTM_INST(T)                                                                          \
  template void conv1d_forward<T>(int64_t, int64_t, int64_t, int64_t, const T*, const T*,       \
                                  const T*, const T*, T*, T*);                                  \
  template void conv1d_backward<T>(int64_t, int64_t, int64_t, int64_t, const T*, const T*,      \
                                   const T*, const T*, const T*, T*, T*, T*, T*, bool);
XLSTM_INST(float)
XLSTM_INST(double)
#undef XLSTM_INST

}  // namespace xlstm
