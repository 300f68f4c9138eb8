#include "cpu/linear.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu/embedding.h"
#include "cpu/gemm.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"

namespace xlstm {

namespace {

// db[o] += sum_n dy[n, o]. Parallel over column blocks, each summing its rows in order, so the
// result does not depend on the thread count. Sums in double, rounded once into db.
template <class T>
void add_column_sums(int64_t N, int64_t O, const T* dy, T* db) {
  constexpr int64_t kBlock = 64;
  const int64_t nblocks = (O + kBlock - 1) / kBlock;
  parallel_for(nblocks, N * O > 16384, [&](int64_t blk) {
    const int64_t o0 = blk * kBlock, o1 = std::min(O, o0 + kBlock);
    double acc[kBlock] = {};
    for (int64_t n = 0; n < N; ++n) {
      const T* row = dy + n * O;
      for (int64_t o = o0; o < o1; ++o) acc[o - o0] += (double)row[o];
    }
    for (int64_t o = o0; o < o1; ++o) db[o] += (T)acc[o - o0];
  });
}

}  // namespace

template <class T>
void linear_forward(int64_t N, int64_t I, int64_t O, const T* x, const T* W, const T* b, T* y) {
  gemm<T>(Trans::N, Trans::T, N, O, I, T(1), x, I, W, I, T(0), y, O);
  if (!b) return;
  parallel_for(N, N * O > 16384, [&](int64_t n) {
    T* row = y + n * O;
    for (int64_t o = 0; o < O; ++o) row[o] += b[o];
  });
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

// Rows [o0, o1) of y[n, o] (+)= sum_i x[n, i] W[o, i] + b[o] for n < NN <= kLinearGemvRows, on
// the calling thread. Each output is one fixed-order dot product (two 16-lane accumulator chains
// over alternate 16-element blocks, a tree sum of the lanes, the scalar tail), the same for
// every NN and every row range, so results depend neither on the batch size nor on how callers
// split the rows among threads.
#if defined(__AVX512F__)

// The 16 floats at r + i for r = a + MIS, a 64-byte aligned: two aligned loads (lo at a + i,
// hi at a + i + 16) joined by valignd. Mapped checkpoints place tensors at any 8-byte offset
// (safetensors pads its header to 8 only); unaligned 64-byte loads split a cache line each and
// halve the f32 GEMV's streaming rate on this CPU (CPU-NOTES; docs/perf.md), aligned loads do
// not. Loads never leave the 64-byte lines that hold the row's own elements.
template <int MIS>
inline __m512 join16(__m512 lo, __m512 hi) {
  if constexpr (MIS == 0) {
    (void)hi;
    return lo;
  } else {
    return _mm512_castsi512_ps(
        _mm512_maskz_alignr_epi32(0xFFFF, _mm512_castps_si512(hi), _mm512_castps_si512(lo), MIS));
  }
}

// acc[n] = the dot product of one f32 row with x[n] in gemv_kernel's order; r = a + MIS.
template <int NN, int MIS>
int64_t dot_f32_aligned(int64_t I, const float* r, const float* x, float* acc) {
  const float* a = r - MIS;
  __m512 va[NN][2];
  for (int n = 0; n < NN; ++n) va[n][0] = va[n][1] = _mm512_setzero_ps();
  int64_t i = 0;
  auto fma2 = [&](__m512 w0, __m512 w1) {
    for (int n = 0; n < NN; ++n) {
      va[n][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + n * I + i), va[n][0]);
      va[n][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + n * I + i + 16), va[n][1]);
    }
  };
  if constexpr (MIS == 0) {
    for (; i + 32 <= I; i += 32) fma2(_mm512_load_ps(a + i), _mm512_load_ps(a + i + 16));
    if (i + 16 <= I) {
      const __m512 w0 = _mm512_load_ps(a + i);
      for (int n = 0; n < NN; ++n)
        va[n][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + n * I + i), va[n][0]);
      i += 16;
    }
  } else {
    // lo holds a[i, i+16), which contains r[i]; a[i+16k] <= r[i+16k-1] for k >= 1, so each
    // load below holds an element of the row.
    __m512 lo = _mm512_load_ps(a);
    for (; i + 32 <= I; i += 32) {
      const __m512 mid = _mm512_load_ps(a + i + 16), hi = _mm512_load_ps(a + i + 32);
      fma2(join16<MIS>(lo, mid), join16<MIS>(mid, hi));
      lo = hi;
    }
    if (i + 16 <= I) {
      const __m512 w0 = join16<MIS>(lo, _mm512_load_ps(a + i + 16));
      for (int n = 0; n < NN; ++n)
        va[n][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + n * I + i), va[n][0]);
      i += 16;
    }
  }
  for (int n = 0; n < NN; ++n) acc[n] = hsum16(_mm512_add_ps(va[n][0], va[n][1]));
  return i;
}

template <int NN, int... M>
int64_t dot_f32_row(int64_t I, const float* r, const float* x, float* acc,
                    std::integer_sequence<int, M...>) {
  const int mis = (int)((reinterpret_cast<uintptr_t>(r) % 64) / sizeof(float));
  int64_t done = 0;
  ((mis == M ? (done = dot_f32_aligned<NN, M>(I, r, x, acc), true) : false) || ...);
  return done;
}
#endif

// Rows [o0, o1) of y[n, o] (+)= sum_i x[n, i] W[o, i] + b[o] for n < NN <= kLinearGemvRows, on
// the calling thread. Each output is one fixed-order dot product (two 16-lane accumulator chains
// over alternate 16-element blocks, a tree sum of the lanes, the scalar tail), the same for
// every NN, row range and weight alignment, so results depend neither on the batch size nor on
// how callers split the rows among threads.
template <class W, int NN>
void gemv_kernel(int64_t I, int64_t o0, int64_t o1, const float* x, const W* w, const float* b,
                 float* y, int64_t ldy, bool accumulate) {
  for (int64_t o = o0; o < o1; ++o) {
    const W* row = w + o * I;
    float acc[NN];
#if defined(__AVX512F__)
    int64_t i = 0;
    if constexpr (std::is_same_v<W, float>) {
      if (reinterpret_cast<uintptr_t>(row) % sizeof(float) == 0)
        i = dot_f32_row<NN>(I, row, x, acc, std::make_integer_sequence<int, 16>{});
    }
    if (i == 0) {
      __m512 va[NN][2];
      for (int n = 0; n < NN; ++n) va[n][0] = va[n][1] = _mm512_setzero_ps();
      for (; i + 32 <= I; i += 32) {
        const __m512 w0 = load16(row + i), w1 = load16(row + i + 16);
        for (int n = 0; n < NN; ++n) {
          va[n][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + n * I + i), va[n][0]);
          va[n][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + n * I + i + 16), va[n][1]);
        }
      }
      if (i + 16 <= I) {
        const __m512 w0 = load16(row + i);
        for (int n = 0; n < NN; ++n)
          va[n][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + n * I + i), va[n][0]);
        i += 16;
      }
      for (int n = 0; n < NN; ++n)
        acc[n] = hsum16(_mm512_add_ps(va[n][0], va[n][1]));
    }
#else
    int64_t i = 0;
    for (int n = 0; n < NN; ++n) acc[n] = 0.f;
#endif
    for (; i < I; ++i) {
      const float wi = widen(row, i);
      for (int n = 0; n < NN; ++n) acc[n] += wi * x[n * I + i];
    }
    const float bo = b ? b[o] : 0.f;
    for (int n = 0; n < NN; ++n) {
      float& out = y[n * ldy + o];
      out = accumulate ? out + (acc[n] + bo) : acc[n] + bo;
    }
  }
}

template <class W>
void gemv_dispatch(int64_t N, int64_t I, int64_t o0, int64_t o1, const float* x, const W* w,
                   const float* b, float* y, int64_t ldy, bool accumulate) {
  static_assert(kLinearGemvRows == 4, "gemv_dispatch covers N = 1..4");
  switch (N) {
    case 1: gemv_kernel<W, 1>(I, o0, o1, x, w, b, y, ldy, accumulate); break;
    case 2: gemv_kernel<W, 2>(I, o0, o1, x, w, b, y, ldy, accumulate); break;
    case 3: gemv_kernel<W, 3>(I, o0, o1, x, w, b, y, ldy, accumulate); break;
    default: gemv_kernel<W, 4>(I, o0, o1, x, w, b, y, ldy, accumulate); break;
  }
}

// y = x W^T + b for N <= kLinearGemvRows, parallel over tasks of 16 rows.
template <class W>
void gemv_rows(int64_t N, int64_t I, int64_t O, const float* x, const W* w, const float* b,
               float* y) {
  constexpr int64_t kRowsPerTask = 16;
  const int64_t tasks = (O + kRowsPerTask - 1) / kRowsPerTask;
  parallel_for(tasks, O * I > 65536, [&](int64_t t) {
    gemv_dispatch(N, I, t * kRowsPerTask, std::min(O, (t + 1) * kRowsPerTask), x, w, b, y, O,
                  false);
  });
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
    parallel_for(rows * I, rows * I > 65536, [&](int64_t j) { pw[j] = bf16_to_f32(src[j]); });
    gemm<float>(Trans::N, Trans::T, N, rows, I, 1.f, x, I, pw, I, 0.f, y + o0, O);
  }
  if (!b) return;
  parallel_for(N, N * O > 16384, [&](int64_t n) {
    for (int64_t o = 0; o < O; ++o) y[n * O + o] += b[o];
  });
}

void linear_gemv_rows(int64_t N, int64_t I, int64_t o0, int64_t o1, const float* x, const void* W,
                      DType wdt, const float* b, float* y, int64_t ldy, bool accumulate) {
  XLSTM_CHECK(N >= 1 && N <= kLinearGemvRows, ValueError, "[linear_gemv_rows] N must be in [1, ",
              kLinearGemvRows, "], got ", N);
  XLSTM_CHECK(wdt == DType::F32 || wdt == DType::BF16, TypeError,
              "[linear_gemv_rows] weights must be F32 or BF16, got ", dtype_name(wdt));
  if (wdt == DType::F32)
    gemv_dispatch(N, I, o0, o1, x, static_cast<const float*>(W), b, y, ldy, accumulate);
  else
    gemv_dispatch(N, I, o0, o1, x, static_cast<const uint16_t*>(W), b, y, ldy, accumulate);
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
