// Weight-gradient GEMM: C (M, N) = beta * C + A^T B with A stored (K, M) and B stored (K, N),
// row-major, K long (the rows of a batch x time sequence) and M, N small (a weight's shape).
// oneDNN's sgemm runs this transposed-A shape at ~145-160 GFLOP/s on one core here (the sLSTM
// dR shape, M 512 N 128 K 4096, A rows 8 KiB apart); this kernel ~190 (docs/perf.md): a 6 x 64
// tile of C in registers, per k one broadcast of A per row and four vectors of B, B packed per
// block of 128 k. AVX-512 only; elsewhere it calls gemm<float>.
//
// Deterministic: each element of C is one fixed-order sum over K (blocks in order, k ascending
// within a block), whatever the thread count. Threads split the rows of C.
// Also returns, when colsum is given, sum over k of A[k, i] (accumulated in double into
// colsum[i]): the bias gradient that goes with a weight gradient, in the same pass over A.
#pragma once
#include <cstdint>

namespace xlstm {

// Where the operands lie when they are not one plain matrix each:
//  - K in `segments` segments of K rows: segment s's rows start at A + s * a_seg and
//    B + s * b_seg (a (B, T) sequence whose two operands order batch and time differently);
//    the sum runs over the segments in order.
//  - M in `groups` groups of M rows of C: group q's columns of A start at A + q * a_grp, its
//    rows of C at C + q * c_grp, its column sums at colsum + q * M (the four gates of a head
//    kept in separate slabs); B is shared and packed once for all groups.
struct TnLayout {
  int64_t segments = 1, a_seg = 0, b_seg = 0;
  int64_t groups = 1, a_grp = 0, c_grp = 0;
};

// A: (K, M) per segment and group, read, row stride lda >= M. B: (K, N) per segment, read, row
// stride ldb >= N. C: (M, N) per group, row stride ldc >= N, written (beta = 0, not read) or
// scaled by beta and accumulated. colsum: (groups * M) accumulated, may be null.
void gemm_tn(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
             int64_t ldb, float beta, float* C, int64_t ldc, double* colsum = nullptr,
             const TnLayout& lay = {});

}  // namespace xlstm
