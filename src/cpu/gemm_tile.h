// The register-tiled AVX-512 micro-kernel of gemm_tn (weight gradients, long K), kept general
// (either orientation of A, alpha, beta) for other products. Internal to src/cpu.
// (A small-GEMM driver on it for the chunkwise mLSTM's 64 x 64 x 64 products ran at the speed
// of oneDNN's sgemm there, ~150 GFLOP/s, so those stay on gemm<T>.)
//
// One call computes a tile of C of MR rows (one broadcast of A each per k) and 16*NV columns
// (NV vectors of a packed row of op(B) per k):
//   C[r, :] = alpha * sum_k a(r, k) Bp[k, :] + beta * C[r, :]   (C not read when beta == 0)
// with a(r, k) = A[r * ars + k * aks]: ars = 1 reads A transposed (rows of A are k), aks = 1 reads
// it as stored (rows of A are r). The last vector of a row is masked by `last`.
// Tile shapes measured on this CPU (M 512, N 64, K 512, hot caches): 6 x 64 and 12 x 32 both
// ~200 GFLOP/s; 8 x 48 and 4 x 96 far less.
#pragma once
#if defined(__AVX512F__)
#include <immintrin.h>

#include <cstdint>
#include <vector>

namespace xlstm::detail {

constexpr int64_t kTileMR = 6;   // rows of C per tile
constexpr int64_t kTileNR = 64;  // columns of C per tile: four 16-float vectors

// Bp: (K, kTileNR) packed, zero-padded, 64-byte aligned. With PF, each k also prefetches
// A + pf + k * aks (to L2): the caller's next block of A.
template <int MR, int NV, bool PF>
inline void gemm_tile(int64_t K, const float* A, int64_t ars, int64_t aks, const float* Bp,
                      float* C, int64_t ldc, __mmask16 last, float alpha, float beta,
                      int64_t pf) {
  __m512 acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* a = A + k * aks;
    const float* b = Bp + k * kTileNR;
    if (PF) _mm_prefetch((const char*)(a + pf), _MM_HINT_T1);
    __m512 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * ars]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  const __m512 al = _mm512_set1_ps(alpha), be = _mm512_set1_ps(beta);
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      float* c = C + r * ldc + 16 * v;
      const __mmask16 m = v + 1 < NV ? (__mmask16)0xFFFF : last;
      __m512 x = alpha == 1.0f ? acc[r][v] : _mm512_mul_ps(al, acc[r][v]);
      if (beta == 1.0f) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, c));
      else if (beta != 0.0f) x = _mm512_fmadd_ps(be, _mm512_maskz_loadu_ps(m, c), x);
      _mm512_mask_storeu_ps(c, m, x);
    }
}

using GemmTileFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, float*,
                            int64_t, __mmask16, float, float, int64_t);

template <bool PF, int MR, int NV = 1>
GemmTileFn pick_tile_nv(int nv) {
  if constexpr (NV == kTileNR / 16) return gemm_tile<MR, NV, PF>;
  else return nv == NV ? gemm_tile<MR, NV, PF> : pick_tile_nv<PF, MR, NV + 1>(nv);
}

// The kernel for a tile of mr <= kTileMR rows and nv <= 4 vectors.
template <bool PF, int MR = 1>
GemmTileFn pick_tile(int mr, int nv) {
  if constexpr (MR == kTileMR) return pick_tile_nv<PF, MR>(nv);
  else return mr == MR ? pick_tile_nv<PF, MR>(nv) : pick_tile<PF, MR + 1>(mr, nv);
}

// The mask of the last vector of nc columns (nc in [1, 64]).
inline __mmask16 last_mask(int64_t nc) {
  return (__mmask16)(nc % 16 == 0 ? 0xFFFF : (1u << (nc % 16)) - 1);
}

// Packs rows k0..k0+kc of a row-major (K, N) matrix (row stride ld), columns j0..j0+nc, into
// a (kc, kTileNR) zero-padded panel.
inline void pack_rows(const float* B, int64_t ld, int64_t kc, int64_t j0, int64_t nc,
                      float* panel) {
  for (int64_t k = 0; k < kc; ++k) {
    const float* src = B + k * ld + j0;
    float* dst = panel + k * kTileNR;
    for (int64_t v = 0; v < kTileNR; v += 16) {
      const int64_t left = nc - v;
      const __mmask16 m =
          left >= 16 ? (__mmask16)0xFFFF : (__mmask16)(left > 0 ? (1u << left) - 1 : 0);
      _mm512_store_ps(dst + v, _mm512_maskz_loadu_ps(m, src + v));
    }
  }
}

// Per-thread buffers, grown only; the returned pointer is 64-byte aligned.
inline float* grow_aligned(std::vector<float>& v, size_t n) {
  if (v.size() < n + 16) v.resize(n + 16);
  float* p = v.data();
  return p + (16 - ((uintptr_t)p / 4) % 16) % 16;
}

}  // namespace xlstm::detail
#endif
