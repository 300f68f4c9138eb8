// The LSTM decode step (lstm_step, lstm_step_bf16): one fused pass over the weights for small
// batches, float and packed bf16 weights. Declared in cpu/lstm.h.
#include <omp.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/lstm.h"
#include "cpu/lstm_impl.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"
#include "xlstm/error.h"
#include "xlstm/tensor.h"

namespace xlstm {

using namespace lstm_impl;

namespace {

// Small-batch decode: the step is a pass over the weights (memory-bound), so each hidden unit j
// reads its four gate rows of W_ih and W_hh once, dots them with every batch row (four
// independent accumulators keep the FMA pipes busy), and applies the pointwise step at once:
// one parallel pass, no gates round trip, no library call overhead. hnew: (B, H) scratch (h
// is read by every j, so the new h lands there first).
constexpr int64_t kDecodeMaxB = 4;

// Weights as stored: T itself, or bf16 (uint16_t, the top half of a float) widened exactly.
template <class T>
inline T wval(T w) {
  return w;
}
inline float wval(uint16_t w) {
  const uint32_t u = (uint32_t)w << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

template <class T, class W>
inline void dot4(int64_t n, const T* v, const W* w0, const W* w1, const W* w2, const W* w3, T& s0,
                 T& s1, T& s2, T& s3) {
  T a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
  for (int64_t k = 0; k < n; ++k) {
    const T vk = v[k];
    a0 += wval(w0[k]) * vk, a1 += wval(w1[k]) * vk, a2 += wval(w2[k]) * vk, a3 += wval(w3[k]) * vk;
  }
  s0 += a0, s1 += a1, s2 += a2, s3 += a3;
}

#if defined(__AVX512F__)
// Float weights: 32 columns per iteration in two independent sets of four chains (8 FMA chains
// cover the FMA latency), and each row's stream prefetched 2 KiB ahead: the rows of unit j + 1
// follow those of unit j, so the prefetch runs on into the next unit's rows.
inline void dot4(int64_t n, const float* v, const float* w0, const float* w1, const float* w2,
                 const float* w3, float& s0, float& s1, float& s2, float& s3) {
  constexpr int64_t kAhead = 512;  // floats
  const float* w[4] = {w0, w1, w2, w3};
  __m512 a[2][4];
  for (int u = 0; u < 2; ++u)
    for (int g = 0; g < 4; ++g) a[u][g] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= n; k += 32)
    for (int u = 0; u < 2; ++u) {
      const __m512 x = _mm512_loadu_ps(v + k + 16 * u);
      for (int g = 0; g < 4; ++g) {
        _mm_prefetch((const char*)(w[g] + k + 16 * u + kAhead), _MM_HINT_T0);
        a[u][g] = _mm512_fmadd_ps(_mm512_loadu_ps(w[g] + k + 16 * u), x, a[u][g]);
      }
    }
  for (; k < n; k += 16) {
    const __mmask16 m = n - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - k)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(m, v + k);
    for (int g = 0; g < 4; ++g)
      a[0][g] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w[g] + k), x, a[0][g]);
  }
  s0 += hsum16(_mm512_add_ps(a[0][0], a[1][0])), s1 += hsum16(_mm512_add_ps(a[0][1], a[1][1]));
  s2 += hsum16(_mm512_add_ps(a[0][2], a[1][2])), s3 += hsum16(_mm512_add_ps(a[0][3], a[1][3]));
}
#endif

template <class T, class W>
void step_fused(int64_t B, int64_t I, int64_t H, const T* x, int64_t ldx, const W* W_ih,
                const W* W_hh, const T* b_ih, const T* b_hh, T* h, int64_t ldh, T* c, T* hnew) {
  parallel_for(H, H * (I + H) >= (1 << 16), [&](int64_t j) {
    const int64_t r[4] = {j, H + j, 2 * H + j, 3 * H + j};
    for (int64_t b = 0; b < B; ++b) {
      T p[4];
      for (int g = 0; g < 4; ++g) p[g] = (b_ih ? b_ih[r[g]] : T(0)) + (b_hh ? b_hh[r[g]] : T(0));
      dot4(I, x + b * ldx, W_ih + r[0] * I, W_ih + r[1] * I, W_ih + r[2] * I, W_ih + r[3] * I, p[0],
           p[1], p[2], p[3]);
      dot4(H, h + b * ldh, W_hh + r[0] * H, W_hh + r[1] * H, W_hh + r[2] * H, W_hh + r[3] * H, p[0],
           p[1], p[2], p[3]);
      const T ai = Act<T>::sig(p[0]), af = Act<T>::sig(p[1]), ag = Act<T>::tanh(p[2]),
              ao = Act<T>::sig(p[3]);
      const T cn = af * c[b * H + j] + ai * ag;
      c[b * H + j] = cn;
      hnew[b * H + j] = ao * Act<T>::tanh(cn);
    }
  });
  copy_rows(B, H, hnew, H, h, ldh);
}

}  // namespace

template <class T>
void lstm_step(int64_t B, int64_t I, int64_t H, const T* x, int64_t ldx, const T* W_ih,
               const T* W_hh, const T* b_ih, const T* b_hh, T* h, int64_t ldh, T* c, T* gates) {
  if (B <= kDecodeMaxB)
    return step_fused(B, I, H, x, ldx, W_ih, W_hh, b_ih, b_hh, h, ldh, c, gates);
  const int64_t G = 4 * H;
  const bool has_bias = b_ih || b_hh;
  if (has_bias)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < G; ++j)
        gates[b * G + j] = (b_ih ? b_ih[j] : T(0)) + (b_hh ? b_hh[j] : T(0));
  gemm<T>(Trans::N, Trans::T, B, G, I, T(1), x, ldx, W_ih, I, has_bias ? T(1) : T(0), gates, G);
  gemm<T>(Trans::N, Trans::T, B, G, H, T(1), h, ldh, W_hh, H, T(1), gates, G);
  pointwise_forward<T, false, false>(B, H, gates, nullptr, nullptr, c, c, h, ldh);
}

// ---- bf16 decode step --------------------------------------------------------------------------
//
// The packed layout (lstm_step_bf16_pack): unit j's block holds its four gate rows of W_ih, then
// of W_hh, 32 columns at a time ([i 0..31][f 0..31][g 0..31][o 0..31][i 32..63]...), columns
// zero-padded to a multiple of 32. With a static split of the units a thread reads one
// contiguous stream, prefetched 8 KiB ahead; the row-major matrices made each unit read eight
// 2 KiB runs in two alternating groups, which kept the read stream ~30% below the bandwidth this
// step needs (docs/perf.md).

namespace {

constexpr int64_t kStepChunk = 32;  // bf16 columns per gate row in a chunk (one 64-byte line)

inline int64_t pad_chunk(int64_t n) { return (n + kStepChunk - 1) / kStepChunk * kStepChunk; }

}  // namespace

int64_t lstm_step_bf16_packed_size(int64_t I, int64_t H) {
  return 4 * H * (pad_chunk(I) + pad_chunk(H));
}

void lstm_step_bf16_pack(int64_t I, int64_t H, const float* W_ih, const float* W_hh,
                         uint16_t* out) {
  const int64_t Ip = pad_chunk(I), Hp = pad_chunk(H);
  parallel_for(H, H * (I + H) >= (1 << 16), [&](int64_t j) {
    uint16_t* o = out + j * 4 * (Ip + Hp);
    for (int part = 0; part < 2; ++part) {
      const int64_t K = part ? H : I, Kp = part ? Hp : Ip;
      const float* W = part ? W_hh : W_ih;
      for (int64_t q = 0; q < Kp; q += kStepChunk)
        for (int64_t g = 0; g < 4; ++g, o += kStepChunk)
          for (int64_t e = 0; e < kStepChunk; ++e)
            o[e] = q + e < K ? f32_to_bf16(W[(g * H + j) * K + q + e]) : uint16_t{0};
    }
  });
}

namespace {

#if defined(__AVX512BF16__)
// v (n) -> hi, lo (n) bf16 with hi + lo = v to ~2^-17 relative (hi = RNE(v), lo = RNE(v - hi);
// v - hi is exact in float). vcvtneps2bf16 reads denormal inputs as zero: a lo below 1e-38 is
// dropped, far below the 2^-17. (GCC 12's intrinsics headers warn about their own
// placeholder operand inside this function: silenced here.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
void split_bf16(int64_t n, const float* v, uint16_t* hi, uint16_t* lo) {
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m512 x = _mm512_loadu_ps(v + k);
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(x);
    const __m512 hf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    _mm256_storeu_si256((__m256i*)(hi + k), h);
    _mm256_storeu_si256((__m256i*)(lo + k), (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(x, hf)));
  }
  for (; k < n; ++k) {
    hi[k] = f32_to_bf16(v[k]);
    lo[k] = f32_to_bf16(v[k] - bf16_to_f32(hi[k]));
  }
}
#pragma GCC diagnostic pop

constexpr int64_t kStepPrefetch = 32 * 4 * kStepChunk;  // bf16 elements ahead: 32 chunks, 8 KiB

// p[r][g] += sum_k w_g[k] (vh[r][k] + vl[r][k]) over n columns (a multiple of 32) of a packed
// block w (chunks of 4 gate rows x 32), for NB activation rows. vdpbf16ps multiplies pairs of
// bf16 exactly and adds them in float; hi and lo products go to separate accumulators and U
// chunks are in flight at once, so that U * NB * 8 >= 16 independent chains cover the
// instruction's latency (6 cycles, 2 per cycle).
template <int NB, int U>
inline void unit_dot(int64_t n, const uint16_t* w, const uint16_t* const* vh,
                     const uint16_t* const* vl, float (*p)[4]) {
  __m512 a[U][NB][4], c[U][NB][4];
  for (int u = 0; u < U; ++u)
    for (int r = 0; r < NB; ++r)
      for (int g = 0; g < 4; ++g) a[u][r][g] = c[u][r][g] = _mm512_setzero_ps();
  const auto chunk = [&](int u, int64_t k, const uint16_t* wk) __attribute__((always_inline)) {
    for (int g = 0; g < 4; ++g)
      _mm_prefetch((const char*)(wk + kStepPrefetch + g * kStepChunk), _MM_HINT_T0);
    __m512bh xh[NB], xl[NB];
    for (int r = 0; r < NB; ++r) {
      xh[r] = (__m512bh)_mm512_loadu_si512(vh[r] + k);
      xl[r] = (__m512bh)_mm512_loadu_si512(vl[r] + k);
    }
    for (int g = 0; g < 4; ++g) {
      const __m512bh b = (__m512bh)_mm512_loadu_si512(wk + g * kStepChunk);
      for (int r = 0; r < NB; ++r) {
        a[u][r][g] = _mm512_dpbf16_ps(a[u][r][g], b, xh[r]);
        c[u][r][g] = _mm512_dpbf16_ps(c[u][r][g], b, xl[r]);
      }
    }
  };
  int64_t k = 0;
  for (; k + U * kStepChunk <= n; k += U * kStepChunk, w += U * 4 * kStepChunk)
    for (int u = 0; u < U; ++u) chunk(u, k + u * kStepChunk, w + u * 4 * kStepChunk);
  for (; k < n; k += kStepChunk, w += 4 * kStepChunk) chunk(0, k, w);
  for (int r = 0; r < NB; ++r)
    for (int g = 0; g < 4; ++g) {
      __m512 s = _mm512_add_ps(a[0][r][g], c[0][r][g]);
      for (int u = 1; u < U; ++u) s = _mm512_add_ps(s, _mm512_add_ps(a[u][r][g], c[u][r][g]));
      p[r][g] += hsum16(s);
    }
}
#else
// Without AVX512_BF16: the weights widened exactly, products and sums in float. v: n floats
// (zero-padded to the chunk).
inline void unit_dot_widen(int64_t n, const uint16_t* w, const float* v, float* p) {
  for (int64_t k = 0; k < n; k += kStepChunk, w += 4 * kStepChunk)
    for (int g = 0; g < 4; ++g) {
      float s = 0;
      const uint16_t* wg = w + g * kStepChunk;
#pragma omp simd reduction(+ : s)
      for (int64_t e = 0; e < kStepChunk; ++e) s += wval(wg[e]) * v[k + e];
      p[g] += s;
    }
}
#endif

}  // namespace

void lstm_step_bf16(int64_t B, int64_t I, int64_t H, const float* x, int64_t ldx,
                    const uint16_t* Wp, const float* b_ih, const float* b_hh, float* h,
                    int64_t ldh, float* c, float* hnew) {
  XLSTM_CHECK(B >= 1 && B <= kDecodeMaxB, ValueError, "[lstm_step_bf16] B must be in [1, ",
              kDecodeMaxB, "], got ", B);
  const int64_t Ip = pad_chunk(I), Hp = pad_chunk(H), K = Ip + Hp;
  // Per batch row, the activations [x | h] zero-padded to [Ip | Hp]: with AVX512_BF16 as two
  // bf16 halves (hi rows, then lo rows), so that the products keep ~16 bits of them (error
  // ~1e-5 relative, far below the bf16 rounding of the weights); else as floats.
#if defined(__AVX512BF16__)
  thread_local std::vector<uint16_t> act;
  act.assign((size_t)(2 * B * K), 0);
  for (int64_t b = 0; b < B; ++b) {
    uint16_t* hi = act.data() + b * K;
    uint16_t* lo = hi + B * K;
    split_bf16(I, x + b * ldx, hi, lo);
    split_bf16(H, h + b * ldh, hi + Ip, lo + Ip);
  }
#else
  thread_local std::vector<float> act;
  act.assign((size_t)(B * K), 0.f);
  for (int64_t b = 0; b < B; ++b) {
    std::copy(x + b * ldx, x + b * ldx + I, act.data() + b * K);
    std::copy(h + b * ldh, h + b * ldh + H, act.data() + b * K + Ip);
  }
#endif
  const auto* av = act.data();
  // Units in blocks of 16: the dot products of a block land in pre, whose pointwise step then
  // runs as one vector pass (scalar, it cost ~10% of a step).
  constexpr int64_t kUnits = 16;
  const int64_t nblk = (H + kUnits - 1) / kUnits;
  parallel_for(nblk, H * (I + H) >= (1 << 16), [&](int64_t blk) {
    const int64_t j0 = blk * kUnits, nu = std::min(kUnits, H - j0);
    alignas(64) float pre[kDecodeMaxB][4][kUnits];
    for (int64_t u = 0; u < nu; ++u) {
      const int64_t j = j0 + u;
      const uint16_t* w = Wp + j * 4 * K;
      float p[kDecodeMaxB][4];
      for (int64_t b = 0; b < B; ++b)
        for (int g = 0; g < 4; ++g)
          p[b][g] = (b_ih ? b_ih[g * H + j] : 0.f) + (b_hh ? b_hh[g * H + j] : 0.f);
#if defined(__AVX512BF16__)
      // Two batch rows per pass over the block (it stays in L1/L2 for the next pair).
      for (int64_t b = 0; b < B; b += 2) {
        const uint16_t* vh[2] = {av + b * K, av + (b + 1) * K};
        const uint16_t* vl[2] = {av + (B + b) * K, av + (B + b + 1) * K};
        if (b + 1 < B) unit_dot<2, 1>(K, w, vh, vl, p + b);
        else unit_dot<1, 2>(K, w, vh, vl, p + b);
      }
#else
      for (int64_t b = 0; b < B; ++b) unit_dot_widen(K, w, av + b * K, p[b]);
#endif
      for (int64_t b = 0; b < B; ++b)
        for (int g = 0; g < 4; ++g) pre[b][g][u] = p[b][g];
    }
    for (int64_t b = 0; b < B; ++b) {
      float* cb = c + b * H + j0;
      float* hb = hnew + b * H + j0;
#pragma omp simd
      for (int64_t u = 0; u < nu; ++u) {
        const float ai = Act<float>::sig(pre[b][0][u]), af = Act<float>::sig(pre[b][1][u]),
                    ag = Act<float>::tanh(pre[b][2][u]), ao = Act<float>::sig(pre[b][3][u]);
        const float cn = af * cb[u] + ai * ag;
        cb[u] = cn;
        hb[u] = ao * Act<float>::tanh(cn);
      }
    }
  });
  copy_rows(B, H, hnew, H, h, ldh);
}

template void lstm_step<float>(int64_t, int64_t, int64_t, const float*, int64_t, const float*,
                               const float*, const float*, const float*, float*, int64_t, float*,
                               float*);
template void lstm_step<double>(int64_t, int64_t, int64_t, const double*, int64_t, const double*,
                                const double*, const double*, const double*, double*, int64_t,
                                double*, double*);

}  // namespace xlstm
