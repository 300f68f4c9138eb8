#include "cpu/linear.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <algorithm>
#include <vector>

#include "cpu/embedding.h"
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

// ---- mixed-precision inference (linear.h) ----

namespace xlstm {

namespace {

inline float widen(const float* w, int64_t i) { return w[i]; }
inline float widen(const uint16_t* w, int64_t i) { return bf16_to_f32(w[i]); }

#if defined(__AVX512F__)
inline __m512 load16(const float* w) { return _mm512_loadu_ps(w); }
inline __m512 load16(const uint16_t* w) {
  __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
  // maskz forms: GCC 12 warns about the undefined vectors inside the plain intrinsics.
  return _mm512_castsi512_ps(
      _mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
}
#endif

// y[n, o] = sum_i x[n, i] W[o, i] for n < N <= kLinearGemvRows. Each output is one thread's
// fixed-order dot product, so the result does not depend on the thread count.
template <class W>
void gemv_rows(int64_t N, int64_t I, int64_t O, const float* x, const W* w, const float* b,
               float* y) {
  constexpr int64_t kRowsPerTask = 16;
  const int64_t tasks = (O + kRowsPerTask - 1) / kRowsPerTask;
#pragma omp parallel for schedule(static) if (O * I > 65536)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o1 = std::min(O, (t + 1) * kRowsPerTask);
    for (int64_t o = t * kRowsPerTask; o < o1; ++o) {
      const W* row = w + o * I;
      float acc[kLinearGemvRows];
#if defined(__AVX512F__)
      __m512 va[kLinearGemvRows][2];
      for (int64_t n = 0; n < kLinearGemvRows; ++n) va[n][0] = va[n][1] = _mm512_setzero_ps();
      int64_t i = 0;
      for (; i + 32 <= I; i += 32) {
        const __m512 w0 = load16(row + i), w1 = load16(row + i + 16);
        for (int64_t n = 0; n < N; ++n) {
          va[n][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + n * I + i), va[n][0]);
          va[n][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + n * I + i + 16), va[n][1]);
        }
      }
      for (; i + 16 <= I; i += 16) {
        const __m512 w0 = load16(row + i);
        for (int64_t n = 0; n < N; ++n)
          va[n][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + n * I + i), va[n][0]);
      }
      for (int64_t n = 0; n < N; ++n) {
        alignas(64) float lanes[16];
        _mm512_store_ps(lanes, _mm512_add_ps(va[n][0], va[n][1]));
        float sum = 0.f;
        for (float l : lanes) sum += l;
        acc[n] = sum;
      }
#else
      int64_t i = 0;
      for (int64_t n = 0; n < N; ++n) acc[n] = 0.f;
#endif
      for (; i < I; ++i) {
        const float wi = widen(row, i);
        for (int64_t n = 0; n < N; ++n) acc[n] += wi * x[n * I + i];
      }
      for (int64_t n = 0; n < N; ++n) y[n * O + o] = acc[n] + (b ? b[o] : 0.f);
    }
  }
}

}  // namespace

void linear_forward_mixed(int64_t N, int64_t I, int64_t O, const float* x, const void* W,
                          DType wdt, const float* b, float* y) {
  XLSTM_CHECK(wdt == DType::F32 || wdt == DType::BF16, TypeError,
              "[linear_forward_mixed] weights must be F32 or BF16, got ", dtype_name(wdt));
  if (N <= kLinearGemvRows) {
    if (wdt == DType::F32) gemv_rows(N, I, O, x, static_cast<const float*>(W), b, y);
    else gemv_rows(N, I, O, x, static_cast<const uint16_t*>(W), b, y);
    return;
  }
  if (wdt == DType::F32) {
    linear_forward<float>(N, I, O, x, static_cast<const float*>(W), b, y);
    return;
  }
  // BF16 weights, many rows: widen a panel of weight rows, multiply it, next panel.
  constexpr int64_t kPanel = 256;
  // The caller's scratch; the OpenMP workers below write through a plain pointer (a
  // thread_local named inside the parallel region would be each worker's own, empty copy).
  static thread_local std::vector<float> panel;
  panel.resize((size_t)(std::min(O, kPanel) * I));
  float* pw = panel.data();
  const uint16_t* w = static_cast<const uint16_t*>(W);
  for (int64_t o0 = 0; o0 < O; o0 += kPanel) {
    const int64_t rows = std::min(kPanel, O - o0);
    const uint16_t* src = w + o0 * I;
#pragma omp parallel for schedule(static) if (rows * I > 65536)
    for (int64_t j = 0; j < rows * I; ++j) pw[j] = bf16_to_f32(src[j]);
    gemm<float>(Trans::N, Trans::T, N, rows, I, 1.f, x, I, pw, I, 0.f, y + o0, O);
  }
  if (!b) return;
#pragma omp parallel for schedule(static) if (N * O > 16384)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) y[n * O + o] += b[o];
}

void embedding_forward_mixed(int64_t N, int64_t V, int64_t D, const int64_t* ids, const void* W,
                             DType wdt, float* y) {
  if (wdt == DType::F32) {
    embedding_forward<float>(N, V, D, ids, static_cast<const float*>(W), y);
    return;
  }
  XLSTM_CHECK(wdt == DType::BF16, TypeError,
              "[embedding_forward_mixed] weights must be F32 or BF16, got ", dtype_name(wdt));
  for (int64_t n = 0; n < N; ++n)
    XLSTM_CHECK(ids[n] >= 0 && ids[n] < V, ValueError, "[embedding_forward_mixed] id ", ids[n],
                " at row ", n, " is outside [0, ", V, ")");
  const uint16_t* w = static_cast<const uint16_t*>(W);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) y[n * D + d] = bf16_to_f32(w[ids[n] * D + d]);
}

}  // namespace xlstm
