// Shared by the LSTM kernels (cpu/lstm.cpp: sequence forward / backward; cpu/lstm_step.cpp: the
// decode step): the float activations and the pointwise passes of one step.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu/parallel.h"

namespace xlstm::lstm_impl {

// ---- activations -------------------------------------------------------------------------
// Branch-free float forms that GCC vectorises (libm calls would keep the pointwise pass scalar
// and cost more than the recurrent GEMM at H = 512). NaN propagates.

inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// exp(x), Cephes polynomial after range reduction x = n ln2 + r; ~1 ulp on [-87, 88].
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + kMagic;
  const float n = t - kMagic;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  const float e = p * r * r + r + 1.0f;
  const uint32_t k = (f32_bits(t) - 0x4B400000u + 127u) << 23;  // 2^n
  return e * f32_from_bits(k);
}
inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }
// tanh: (1 - e^{-2|x|}) / (1 + e^{-2|x|}) with the sign, and an odd Taylor series near 0 where
// that form cancels.
inline float fast_tanh(float x) {
  const float a = std::fabs(x);
  const float e = fast_exp(-2.0f * a);
  const float t = std::copysign((1.0f - e) / (1.0f + e), x);
  const float x2 = x * x;
  const float s =
      x * (1.0f +
           x2 * (-0.333333333f + x2 * (0.133333333f + x2 * (-0.0539682540f + x2 * 0.0218694885f))));
  return a < 0.15f ? s : t;
}

template <class T>
struct Act;
template <>
struct Act<float> {
  static float sig(float x) { return fast_sigmoid(x); }
  static float tanh(float x) { return fast_tanh(x); }
};
template <>
struct Act<double> {
  static double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }
  static double tanh(double x) { return std::tanh(x); }
};

// ---- pointwise passes ----------------------------------------------------------------------

constexpr int64_t kColBlock = 16;       // columns per work item (one AVX-512 float vector)
constexpr int64_t kParallelMin = 8192;  // B*H below which a pass stays on one thread

// One step forward. g: (B, 4H) input projections (x W_ih^T) read, overwritten with the
// activations [i, f, g, o]. gh: (B, 4H) recurrent part (h_prev W_hh^T) read (ignored unless
// kRec). bias: (4H) read (ignored unless kBias). cprev: (B, H) read. c: (B, H) written (may
// alias cprev). h: (B, H) row stride ldh, written.
// g_next: the next step's (B, 4H) projections, or null; prefetched here so that they arrive
// while the next recurrent GEMM runs (the gates buffer is far bigger than the caches).
template <class T, bool kRec, bool kBias>
void pointwise_forward(int64_t B, int64_t H, T* g, const T* gh, const T* bias, const T* cprev, T* c,
                       T* h, int64_t ldh, const T* g_next = nullptr) {
  const int64_t G = 4 * H, nblk = (H + kColBlock - 1) / kColBlock;
  parallel_for(B * nblk, B * H >= kParallelMin, [&](int64_t bj) {
    const int64_t b = bj / nblk, jb = bj % nblk;
    const int64_t j0 = jb * kColBlock, j1 = std::min(H, j0 + kColBlock);
    T* gi = g + b * G;
    T* gf = gi + H;
    T* gg = gi + 2 * H;
    T* go = gi + 3 * H;
    const T* ri = kRec ? gh + b * G : nullptr;
    const T* cp = cprev + b * H;
    T* cr = c + b * H;
    T* hr = h + b * ldh;
    if (g_next)
      for (int q = 0; q < 4; ++q) __builtin_prefetch(g_next + b * G + q * H + j0);
#pragma omp simd
    for (int64_t j = j0; j < j1; ++j) {
      T pi = gi[j], pf = gf[j], pg = gg[j], po = go[j];
      if (kRec) pi += ri[j], pf += ri[H + j], pg += ri[2 * H + j], po += ri[3 * H + j];
      if (kBias) pi += bias[j], pf += bias[H + j], pg += bias[2 * H + j], po += bias[3 * H + j];
      const T ai = Act<T>::sig(pi), af = Act<T>::sig(pf), ag = Act<T>::tanh(pg),
              ao = Act<T>::sig(po);
      const T cn = af * cp[j] + ai * ag;
      gi[j] = ai, gf[j] = af, gg[j] = ag, go[j] = ao;
      cr[j] = cn;
      hr[j] = ao * Act<T>::tanh(cn);
    }
  });
}

// One step backward. act: (B, 4H) activations read. c, cprev: (B, H) read. dy: (B, H) row
// stride lddy, read. dh_rec: (B, H) read (dh from the later step). dc: (B, H) read (dc from the
// later step) and overwritten with dc for the earlier step. dg: (B, 4H) written.
// dbias: (4H) accumulated, in the order b = 0..B-1 for each column whatever the thread count.
// act_next (B, 4H), cprev_next (B, H), dy_next (B, H; lddy): what the next step (in backward
// order) reads from memory, or null; prefetched as in pointwise_forward.
template <class T>
void pointwise_backward(int64_t B, int64_t H, const T* act, const T* c, const T* cprev, const T* dy,
                        int64_t lddy, const T* dh_rec, T* dc, T* dg, T* dbias,
                        const T* act_next = nullptr, const T* cprev_next = nullptr,
                        const T* dy_next = nullptr) {
  const int64_t G = 4 * H, nblk = (H + kColBlock - 1) / kColBlock;
  parallel_for(nblk, B * H >= kParallelMin, [&](int64_t jb) {
    const int64_t j0 = jb * kColBlock, j1 = std::min(H, j0 + kColBlock);
    for (int64_t b = 0; b < B; ++b) {
      const T* ai = act + b * G;
      const T* cr = c + b * H;
      const T* cp = cprev + b * H;
      const T* dyr = dy + b * lddy;
      const T* dhr = dh_rec + b * H;
      T* dcr = dc + b * H;
      T* dgr = dg + b * G;
      if (act_next) {
        for (int q = 0; q < 4; ++q) __builtin_prefetch(act_next + b * G + q * H + j0);
        __builtin_prefetch(cprev_next + b * H + j0);
        if (dy_next) __builtin_prefetch(dy_next + b * lddy + j0);
      }
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        const T ig = ai[j], fg = ai[H + j], gg = ai[2 * H + j], og = ai[3 * H + j];
        const T tc = Act<T>::tanh(cr[j]);
        const T dh = dyr[j] + dhr[j];
        const T dct = dcr[j] + dh * og * (T(1) - tc * tc);
        const T di = dct * gg * ig * (T(1) - ig);
        const T df = dct * cp[j] * fg * (T(1) - fg);
        const T dgg = dct * ig * (T(1) - gg * gg);
        const T dgo = dh * tc * og * (T(1) - og);
        dcr[j] = dct * fg;
        dgr[j] = di, dgr[H + j] = df, dgr[2 * H + j] = dgg, dgr[3 * H + j] = dgo;
        dbias[j] += di, dbias[H + j] += df, dbias[2 * H + j] += dgg, dbias[3 * H + j] += dgo;
      }
    }
  });
}

template <class T>
void copy_rows(int64_t B, int64_t H, const T* src, int64_t lds, T* dst, int64_t ldd) {
  for (int64_t b = 0; b < B; ++b) std::memcpy(dst + b * ldd, src + b * lds, (size_t)H * sizeof(T));
}

}  // namespace xlstm::lstm_impl
