#include "cpu/gemm_tn.h"

#include <algorithm>
#include <vector>

#include <omp.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "cpu/gemm.h"

namespace xlstm {

namespace {

// Tile shapes measured on this CPU (M 512, N 64, K 512, hot caches): 6 x 64 and 12 x 32 both
// ~200 GFLOP/s; 8 x 48 and 4 x 96 far less. B is packed per block (its rows are often 2-8 KiB
// apart, which maps a block's rows onto a few L1 sets); A is read in place (packing it cost
// ~25%: one broadcast per row of C and k is all the kernel needs of it).
constexpr int64_t kMR = 6;    // rows of C per tile (one broadcast of A each per k)
constexpr int64_t kNR = 64;   // columns of C per tile (four 16-float vectors of B per k)
constexpr int64_t kKC = 128;  // k per block: a 128 x 64 panel of B (32 KiB) stays in L1 while
                              // the tiles of one thread's rows walk over it

#if defined(__AVX512F__)
// C tile (MR, 16*NV; last vector masked by `last`) (+)= A^T B over k in [0, K).
// A: (K, MR) rows lda apart; Bp: (K, kNR) packed, zero-padded columns of B.
template <int MR, int NV>
void tile(int64_t K, const float* A, int64_t lda, const float* Bp, float* C, int64_t ldc,
          __mmask16 last, bool overwrite) {
  __m512 acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* a = A + k * lda;
    const float* b = Bp + k * kNR;
    // A's rows are usually far apart (no hardware prefetch across them): this tile's rows of the
    // next block go to L2 now (the whole block arrives long before it is used).
    _mm_prefetch((const char*)(a + kKC * lda), _MM_HINT_T1);
    __m512 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      float* c = C + r * ldc + 16 * v;
      const __mmask16 m = v + 1 < NV ? (__mmask16)0xFFFF : last;
      __m512 x = acc[r][v];
      if (!overwrite) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, c));
      _mm512_mask_storeu_ps(c, m, x);
    }
}

using TileFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, __mmask16,
                        bool);

// Per-thread packing buffers, grown only.
float* grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

template <int MR, int NV = 1>
TileFn pick_nv(int nv) {
  if constexpr (NV == kNR / 16) return tile<MR, NV>;
  else return nv == NV ? tile<MR, NV> : pick_nv<MR, NV + 1>(nv);
}

template <int MR = 1>
TileFn pick(int mr, int nv) {
  if constexpr (MR == kMR) return pick_nv<MR>(nv);
  else return mr == MR ? pick_nv<MR>(nv) : pick<MR + 1>(mr, nv);
}
#endif

}  // namespace

void gemm_tn(int64_t M, int64_t N, int64_t K, const float* A0, int64_t lda, const float* B0,
             int64_t ldb, float beta, float* C0, int64_t ldc, double* colsum,
             const TnLayout& lay) {
  if (M <= 0 || N <= 0 || lay.groups <= 0) return;
  const int64_t S = lay.segments > 0 ? lay.segments : 0;
  if (S == 0) K = 0;
#if defined(__AVX512F__)
  const int64_t tpg = (M + kMR - 1) / kMR, tiles = tpg * lay.groups;  // row tiles per group, all
  const bool overwrite0 = beta == 0.0f;
  if (K <= 0) {
    if (overwrite0)
      for (int64_t q = 0; q < lay.groups; ++q)
        for (int64_t i = 0; i < M; ++i)
          std::fill(C0 + q * lay.c_grp + i * ldc, C0 + q * lay.c_grp + i * ldc + N, 0.0f);
    return;
  }
  const double flops = 2.0 * (double)M * (double)lay.groups * (double)N * (double)K * (double)S;
#pragma omp parallel if (flops > 4e6 && tiles > 1)
  {
    // Each thread owns a contiguous range of row tiles of C (over all groups) for all of K.
    // (Splitting the column panels too, when row tiles are few, was slower: every thread then
    // reads all of A.)
    const int nth = omp_get_num_threads(), th = omp_get_thread_num();
    const int64_t t0 = tiles * th / nth, t1 = tiles * (th + 1) / nth;
    const int64_t jtiles = (N + kNR - 1) / kNR;
    const int64_t nblk = (K + kKC - 1) / kKC;  // blocks per segment
    // B's block: jtiles panels of (kKC, kNR), 64-byte aligned; the column sums of A's block.
    thread_local std::vector<float> bbuf, sbuf;
    float* Bp = grow(bbuf, (size_t)(jtiles * kKC * kNR + 16));
    Bp += (16 - ((uintptr_t)Bp / 4) % 16) % 16;
    float* sums = grow(sbuf, (size_t)((t1 - t0) * kMR + 1));
    for (int64_t blk = 0; blk < S * nblk && t0 < t1; ++blk) {
      const int64_t sg = blk / nblk, k0 = (blk % nblk) * kKC, kc = std::min(kKC, K - k0);
      const bool overwrite = overwrite0 && blk == 0;
      const float* A = A0 + sg * lay.a_seg;
      const float* B = B0 + sg * lay.b_seg;
      for (int64_t jt = 0; jt < jtiles; ++jt) {
        const int64_t j0 = jt * kNR, nc = std::min(kNR, N - j0);
        float* panel = Bp + jt * kKC * kNR;
        for (int64_t k = 0; k < kc; ++k) {  // 4 vectors per row (a memmove call cost more)
          const float* src = B + (k0 + k) * ldb + j0;
          float* dst = panel + k * kNR;
          for (int64_t v = 0; v < kNR; v += 16) {
            const int64_t left = nc - v;
            const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF
                                           : (__mmask16)(left > 0 ? (1u << left) - 1 : 0);
            _mm512_store_ps(dst + v, _mm512_maskz_loadu_ps(m, src + v));
          }
        }
      }
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t q = t / tpg, i0 = (t % tpg) * kMR;
        const int mr = (int)std::min(kMR, M - i0);
        const float* Aq = A + q * lay.a_grp;
        float* Cq = C0 + q * lay.c_grp;
        for (int64_t jt = 0; jt < jtiles; ++jt) {
          const int64_t j0 = jt * kNR, nc = std::min(kNR, N - j0);
          const int nv = (int)((nc + 15) / 16);
          const __mmask16 last = (__mmask16)(nc % 16 == 0 ? 0xFFFF : (1u << (nc % 16)) - 1);
          pick(mr, nv)(kc, Aq + k0 * lda + i0, lda, Bp + jt * kKC * kNR, Cq + i0 * ldc + j0, ldc,
                       last, overwrite);
        }
      }
      if (colsum)  // this block of A, this thread's columns (per group): in L2 now, read in order
        for (int64_t q = t0 / tpg; q * tpg < t1; ++q) {
          const int64_t i_begin = std::max(t0 - q * tpg, int64_t{0}) * kMR,
                        i_end = std::min(M, std::min(t1 - q * tpg, tpg) * kMR);
          const float* Aq = A + q * lay.a_grp;
          for (int64_t i = i_begin; i < i_end; ++i) sums[i - i_begin] = 0.0f;
          for (int64_t k = 0; k < kc; ++k) {
            const float* src = Aq + (k0 + k) * lda;
#pragma omp simd
            for (int64_t i = i_begin; i < i_end; ++i) sums[i - i_begin] += src[i];
          }
          for (int64_t i = i_begin; i < i_end; ++i) colsum[q * M + i] += (double)sums[i - i_begin];
        }
    }
  }
#else
  for (int64_t q = 0; q < lay.groups; ++q)
    for (int64_t sg = 0; sg < std::max<int64_t>(1, S); ++sg) {
      const float* A = A0 + sg * lay.a_seg + q * lay.a_grp;
      const float* B = B0 + sg * lay.b_seg;
      gemm<float>(Trans::T, Trans::N, M, N, K, 1.0f, A, lda, B, ldb, sg == 0 ? beta : 1.0f,
                  C0 + q * lay.c_grp, ldc);
      if (colsum)
        for (int64_t k = 0; k < K; ++k)
          for (int64_t i = 0; i < M; ++i) colsum[q * M + i] += (double)A[k * lda + i];
    }
#endif
}

}  // namespace xlstm
