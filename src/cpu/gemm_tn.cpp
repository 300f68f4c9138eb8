#include "cpu/gemm_tn.h"

#include <algorithm>
#include <vector>

#include <omp.h>

#include "cpu/gemm.h"
#include "cpu/gemm_tile.h"
#include "cpu/parallel.h"

namespace xlstm {

namespace {

// B is packed per block (its rows are often 2-8 KiB apart, which maps a block's rows onto a few
// L1 sets); A is read in place (packing it cost ~25%: one broadcast per row of C and k is all
// the kernel needs of it).
constexpr int64_t kKC = 128;  // k per block: a 128 x 64 panel of B (32 KiB) stays in L1 while
                              // the tiles of one thread's rows walk over it

}  // namespace

void gemm_tn(int64_t M, int64_t N, int64_t K, const float* A0, int64_t lda, const float* B0,
             int64_t ldb, float beta, float* C0, int64_t ldc, double* colsum,
             const TnLayout& lay) {
  if (M <= 0 || N <= 0 || lay.groups <= 0) return;
  const int64_t S = lay.segments > 0 ? lay.segments : 0;
  if (S == 0) K = 0;
#if defined(__AVX512F__)
  using namespace detail;
  // Row tiles of C: tpg per group, `tiles` in all.
  const int64_t tpg = (M + kTileMR - 1) / kTileMR, tiles = tpg * lay.groups;
  if (K <= 0) {
    if (beta != 1.0f)
      for (int64_t q = 0; q < lay.groups; ++q)
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            float& c = C0[q * lay.c_grp + i * ldc + j];
            c = beta == 0.0f ? 0.0f : beta * c;
          }
    return;
  }
  const double flops = 2.0 * (double)M * (double)lay.groups * (double)N * (double)K * (double)S;
  parallel_region(flops > 4e6 && tiles > 1, [&](int th, int nth) {
    // Each thread owns a contiguous range of row tiles of C (over all groups) for all of K.
    // (Splitting the column panels too, when row tiles are few, was slower: every thread then
    // reads all of A.)
    const int64_t t0 = tiles * th / nth, t1 = tiles * (th + 1) / nth;
    const int64_t jtiles = (N + kTileNR - 1) / kTileNR;
    const int64_t nblk = (K + kKC - 1) / kKC;  // blocks per segment
    // B's block: jtiles panels of (kKC, kTileNR), 64-byte aligned; the column sums of A's block.
    thread_local std::vector<float> bbuf, sbuf;
    float* Bp = grow_aligned(bbuf, (size_t)(jtiles * kKC * kTileNR));
    float* sums = grow_aligned(sbuf, (size_t)((t1 - t0) * kTileMR + 1));
    for (int64_t blk = 0; blk < S * nblk && t0 < t1; ++blk) {
      const int64_t sg = blk / nblk, k0 = (blk % nblk) * kKC, kc = std::min(kKC, K - k0);
      const float beta_blk = blk == 0 ? beta : 1.0f;  // the first block applies beta
      const float* A = A0 + sg * lay.a_seg;
      const float* B = B0 + sg * lay.b_seg;
      for (int64_t jt = 0; jt < jtiles; ++jt) {
        const int64_t j0 = jt * kTileNR;
        pack_rows(B + k0 * ldb, ldb, kc, j0, std::min(kTileNR, N - j0), Bp + jt * kKC * kTileNR);
      }
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t q = t / tpg, i0 = (t % tpg) * kTileMR;
        const int mr = (int)std::min(kTileMR, M - i0);
        const float* Aq = A + q * lay.a_grp;
        float* Cq = C0 + q * lay.c_grp;
        for (int64_t jt = 0; jt < jtiles; ++jt) {
          const int64_t j0 = jt * kTileNR, nc = std::min(kTileNR, N - j0);
          // A's rows are usually far apart (no hardware prefetch across them): the tile also
          // prefetches its rows of the next block to L2 (they arrive long before use).
          pick_tile<true>(mr, (int)((nc + 15) / 16))(
              kc, Aq + k0 * lda + i0, 1, lda, Bp + jt * kKC * kTileNR, Cq + i0 * ldc + j0, ldc,
              last_mask(nc), 1.0f, beta_blk, kKC * lda);
        }
      }
      if (colsum)  // this block of A, this thread's columns (per group): in L2 now, read in order
        for (int64_t q = t0 / tpg; q * tpg < t1; ++q) {
          const int64_t i_begin = std::max(t0 - q * tpg, int64_t{0}) * kTileMR,
                        i_end = std::min(M, std::min(t1 - q * tpg, tpg) * kTileMR);
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
  });
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
