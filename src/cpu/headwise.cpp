#include "cpu/headwise.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include <omp.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "cpu/gemm.h"
#include "cpu/gemm_tn.h"
#include "cpu/parallel.h"

namespace xlstm {

// One strided GEMM per head: head h reads columns [h*I, (h+1)*I) of x and writes columns
// [h*O, (h+1)*O) of y; W[h] is the (O, I) block. Except for 4 x 4 blocks in float (the mLSTM
// layer's q/k/v projections, qkv_proj_blocksize 4): there a GEMM call per head costs far more
// than its 32 flops per row, so one pass over the rows does all heads, four heads per 16-float
// vector (below).

namespace {

#if defined(__AVX512F__)
// 16 floats = 4 heads x 4. lane(v, j) broadcasts element j of each head's four (within each
// 128-bit lane).
template <int J>
inline __m512 lane(__m512 v) {
  return _mm512_shuffle_ps(v, v, J * 0x55);
}

// W (NH, 4, 4) -> per group of 4 heads and j: the 16 floats w[hl*4 + r] = W[h, r, j] (forward:
// y[., h, r] += x[., h, j] w) or, transposed, W[h, j, r] (dx[., h, r] += dy[., h, j] w).
inline void pack_w44(int64_t NH, const float* W, bool transposed, float* out) {
  for (int64_t g = 0; g < NH / 4; ++g)
    for (int j = 0; j < 4; ++j)
      for (int hl = 0; hl < 4; ++hl)
        for (int r = 0; r < 4; ++r) {
          const float* Wh = W + (g * 4 + hl) * 16;
          out[(g * 4 + j) * 16 + hl * 4 + r] = transposed ? Wh[j * 4 + r] : Wh[r * 4 + j];
        }
}

// out (N, NH*4) (=/+=) per head: out[., h, r] = sum_j in[., h, j] * Wg[j][h][r], rows in
// parallel (each row on its own: results independent of the thread count).
inline void apply44(int64_t N, int64_t NH, const float* in, const float* Wp, float* out,
                    bool accumulate) {
  const int64_t C = NH * 4, G = NH / 4;
  parallel_for(N, N * C > 16384, [&](int64_t n) {
    const float* xr = in + n * C;
    float* yr = out + n * C;
    for (int64_t g = 0; g < G; ++g) {
      const __m512 v = _mm512_loadu_ps(xr + g * 16);
      const float* w = Wp + g * 64;
      __m512 acc = accumulate ? _mm512_loadu_ps(yr + g * 16) : _mm512_setzero_ps();
      acc = _mm512_fmadd_ps(lane<0>(v), _mm512_loadu_ps(w), acc);
      acc = _mm512_fmadd_ps(lane<1>(v), _mm512_loadu_ps(w + 16), acc);
      acc = _mm512_fmadd_ps(lane<2>(v), _mm512_loadu_ps(w + 32), acc);
      acc = _mm512_fmadd_ps(lane<3>(v), _mm512_loadu_ps(w + 48), acc);
      _mm512_storeu_ps(yr + g * 16, acc);
    }
  });
}

// dW[h, o, i] += sum_n dy[n, h, o] x[n, h, i]; db[h*4 + o] += sum_n dy[n, h, o]. Threads take
// contiguous ranges of head groups over all rows (rows summed in order per element:
// deterministic); up to 4 groups per pass over the rows.
inline void dw44(int64_t N, int64_t NH, const float* x, const float* dy, float* dW, float* db) {
  const int64_t C = NH * 4, G = NH / 4;
  parallel_region(N * C > 16384, [&](int th, int nth) {
    const int64_t g0 = G * th / nth, g1 = G * (th + 1) / nth;
    for (int64_t gb = g0; gb < g1; gb += 4) {
      const int ng = (int)std::min<int64_t>(4, g1 - gb);
      __m512 acc[4][4], sum[4];
      for (int q = 0; q < 4; ++q) {
        sum[q] = _mm512_setzero_ps();
        for (int o = 0; o < 4; ++o) acc[q][o] = _mm512_setzero_ps();
      }
      for (int64_t n = 0; n < N; ++n) {
        const float* xr = x + n * C + gb * 16;
        const float* dr = dy + n * C + gb * 16;
        for (int q = 0; q < ng; ++q) {
          const __m512 xv = _mm512_loadu_ps(xr + q * 16), dv = _mm512_loadu_ps(dr + q * 16);
          acc[q][0] = _mm512_fmadd_ps(lane<0>(dv), xv, acc[q][0]);
          acc[q][1] = _mm512_fmadd_ps(lane<1>(dv), xv, acc[q][1]);
          acc[q][2] = _mm512_fmadd_ps(lane<2>(dv), xv, acc[q][2]);
          acc[q][3] = _mm512_fmadd_ps(lane<3>(dv), xv, acc[q][3]);
          sum[q] = _mm512_add_ps(sum[q], dv);
        }
      }
      for (int q = 0; q < ng; ++q) {
        alignas(64) float a[4][16], sm[16];
        for (int o = 0; o < 4; ++o) _mm512_store_ps(a[o], acc[q][o]);
        _mm512_store_ps(sm, sum[q]);
        for (int hl = 0; hl < 4; ++hl) {
          const int64_t h = (gb + q) * 4 + hl;
          for (int o = 0; o < 4; ++o)
            for (int i = 0; i < 4; ++i) dW[h * 16 + o * 4 + i] += a[o][hl * 4 + i];
          if (db)
            for (int o = 0; o < 4; ++o) db[h * 4 + o] += sm[hl * 4 + o];
        }
      }
    }
  });
}
#endif

template <class T>
bool small44(int64_t NH, int64_t I, int64_t O) {
#if defined(__AVX512F__)
  return std::is_same_v<T, float> && I == 4 && O == 4 && NH % 4 == 0;
#else
  (void)NH, (void)I, (void)O;
  return false;
#endif
}

}  // namespace

template <class T>
void headwise_forward(int64_t N, int64_t NH, int64_t I, int64_t O, const T* x, const T* W,
                      const T* b, T* y) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    if (small44<T>(NH, I, O)) {
      thread_local std::vector<float> wp;
      wp.resize((size_t)(NH * 16));
      pack_w44(NH, W, false, wp.data());
      apply44(N, NH, x, wp.data(), y, false);
      if (b) {
        const int64_t C = NH * O;
        parallel_for(N, N * C > 16384, [&](int64_t n) {
          for (int64_t c = 0; c < C; ++c) y[n * C + c] += b[c];
        });
      }
      return;
    }
  }
#endif
  for (int64_t h = 0; h < NH; ++h)
    gemm<T>(Trans::N, Trans::T, N, O, I, T(1), x + h * I, NH * I, W + h * O * I, I, T(0), y + h * O,
            NH * O);
  if (!b) return;
  const int64_t C = NH * O;
  parallel_for(N, N * C > 16384, [&](int64_t n) {
    for (int64_t c = 0; c < C; ++c) y[n * C + c] += b[c];
  });
}

template <class T>
void headwise_backward(int64_t N, int64_t NH, int64_t I, int64_t O, const T* x, const T* W,
                       const T* dy, T* dx, T* dW, T* db, bool dx_accumulate) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    if (small44<T>(NH, I, O)) {
      if (dx) {
        thread_local std::vector<float> wp;
        wp.resize((size_t)(NH * 16));
        pack_w44(NH, W, true, wp.data());
        apply44(N, NH, dy, wp.data(), dx, dx_accumulate);
      }
      dw44(N, NH, x, dy, dW, db);
      return;
    }
  }
#endif
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
  parallel_for(nblocks, N * C > 16384, [&](int64_t blk) {
    const int64_t c0 = blk * kBlock, c1 = std::min(C, c0 + kBlock);
    double acc[kBlock] = {};
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += (double)dy[n * C + c];
    for (int64_t c = c0; c < c1; ++c) db[c] += (T)acc[c - c0];
  });
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
