// gemm_tn (weight-gradient GEMM, C (+)= A^T B): vs the double-precision gemm_ref at shapes that
// hit every edge tile (M not a multiple of 6, N not a multiple of 16 or 64, K not a multiple of
// the 128-row block, strided A and C), beta 0, 1 and 0.5, the column sums of A vs a double sum,
// and bitwise the same result on 1 and 2 threads; K in segments and M in groups (TnLayout).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/gemm_tn.h"
#include "harness/compare.h"

using namespace xlstm;
using test::expect_close;

namespace {

struct TnShape {
  int64_t M, N, K, lda, ldb, ldc;
};

std::vector<float> rnd(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = (float)r.normal(0, 1);
  return v;
}

const TnShape kShapes[] = {
    {1, 1, 1, 1, 1, 1},       {6, 64, 128, 6, 64, 64},     {7, 17, 129, 9, 20, 18},
    {13, 65, 300, 13, 65, 70}, {512, 128, 700, 2048, 512, 128}, {35, 130, 257, 40, 131, 133},
    {128, 128, 1000, 512, 512, 128}, {5, 3, 0, 5, 3, 3},
};

}  // namespace

TEST(GemmTn, MatchesDoubleReference) {
  for (const TnShape& s : kShapes)
    for (float beta : {0.0f, 1.0f, 0.5f}) {
      SCOPED_TRACE(testing::Message() << "M " << s.M << " N " << s.N << " K " << s.K << " beta "
                                      << beta);
      const auto A = rnd((size_t)std::max<int64_t>(1, s.K * s.lda), 1);
      const auto B = rnd((size_t)std::max<int64_t>(1, s.K * s.ldb), 2);
      auto C = rnd((size_t)(s.M * s.ldc), 3);
      std::vector<double> Ad(A.begin(), A.end()), Bd(B.begin(), B.end()), want(C.begin(), C.end());
      gemm_ref<double>(Trans::T, Trans::N, s.M, s.N, s.K, 1.0, Ad.data(), s.lda, Bd.data(), s.ldb,
                       (double)beta, want.data(), s.ldc);
      std::vector<double> cs(s.M, 0.5), cs_want(s.M, 0.5);
      for (int64_t k = 0; k < s.K; ++k)
        for (int64_t i = 0; i < s.M; ++i) cs_want[i] += Ad[k * s.lda + i];
      const std::vector<float> C0 = C;
      gemm_tn(s.M, s.N, s.K, A.data(), s.lda, B.data(), s.ldb, beta, C.data(), s.ldc, cs.data());
      // Float sums over K terms of size ~1: error ~ sqrt(K) * 6e-8 * |terms|.
      const double tol = 1e-5 * std::sqrt((double)s.K + 1);
      for (int64_t i = 0; i < s.M; ++i) {
        expect_close("C row", C.data() + i * s.ldc, want.data() + i * s.ldc, s.N, tol, 1e-4);
        for (int64_t j = s.N; j < s.ldc; ++j)  // padding columns untouched
          ASSERT_EQ(C[i * s.ldc + j], C0[i * s.ldc + j]) << "row " << i << " col " << j;
      }
      expect_close("colsum", cs.data(), cs_want.data(), s.M, tol, 1e-5);
    }
}

// K in segments and M in groups (TnLayout): the sum of plain products over segments, per group.
TEST(GemmTn, SegmentsAndGroupsMatchDoubleReference) {
  const int64_t M = 20, N = 70, K = 150, lda = 37, ldb = 75, ldc = 71;
  const int64_t S = 3, G = 4, a_seg = K * 200, b_seg = K * ldb + 5, a_grp = 41, c_grp = M * ldc + 3;
  for (float beta : {0.0f, 1.0f, 0.5f}) {
    SCOPED_TRACE(testing::Message() << "beta " << beta);
    const auto A = rnd((size_t)(S * a_seg), 6), B = rnd((size_t)(S * b_seg), 7);
    auto C = rnd((size_t)(G * c_grp), 8);
    std::vector<double> want(C.begin(), C.end()), cs(G * M, 0.25), cs_want(G * M, 0.25);
    for (int64_t q = 0; q < G; ++q)
      for (int64_t sg = 0; sg < S; ++sg) {
        std::vector<double> Ad(K * lda), Bd(K * ldb);
        for (int64_t k = 0; k < K; ++k) {
          for (int64_t i = 0; i < M; ++i) {
            Ad[k * lda + i] = A[sg * a_seg + q * a_grp + k * lda + i];
            cs_want[q * M + i] += Ad[k * lda + i];
          }
          for (int64_t j = 0; j < N; ++j) Bd[k * ldb + j] = B[sg * b_seg + k * ldb + j];
        }
        gemm_ref<double>(Trans::T, Trans::N, M, N, K, 1.0, Ad.data(), lda, Bd.data(), ldb,
                         sg == 0 ? (double)beta : 1.0, want.data() + q * c_grp, ldc);
      }
    gemm_tn(M, N, K, A.data(), lda, B.data(), ldb, beta, C.data(), ldc, cs.data(),
            {S, a_seg, b_seg, G, a_grp, c_grp});
    const double tol = 1e-5 * std::sqrt((double)(S * K));
    for (int64_t q = 0; q < G; ++q)
      for (int64_t i = 0; i < M; ++i)
        expect_close("C row", C.data() + q * c_grp + i * ldc, want.data() + q * c_grp + i * ldc, N,
                     tol, 1e-4);
    expect_close("colsum", cs.data(), cs_want.data(), G * M, tol, 1e-5);
  }
}

TEST(GemmTn, SameBitsOnOneAndTwoThreads) {
  // Plain, and with segments and groups (a group boundary inside a thread's range of tiles).
  const TnLayout lays[] = {{}, {2, 1000 * 130 + 7, 1000 * 100 + 3, 3, 11, 100 * 97 + 1}};
  for (const TnLayout& lay : lays) {
    const TnShape s{100, 96, 1000, 130, 100, 97};
    const auto A = rnd(lay.segments * (s.K * s.lda + 7) + 40, 4);
    const auto B = rnd(lay.segments * (s.K * s.ldb + 3), 5);
    std::vector<float> C1(lay.groups * (s.M * s.ldc + 1), 0.0f), C2 = C1;
    std::vector<double> cs1(lay.groups * s.M, 0.0), cs2 = cs1;
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    gemm_tn(s.M, s.N, s.K, A.data(), s.lda, B.data(), s.ldb, 0.0f, C1.data(), s.ldc, cs1.data(),
            lay);
    omp_set_num_threads(2);
    gemm_tn(s.M, s.N, s.K, A.data(), s.lda, B.data(), s.ldb, 0.0f, C2.data(), s.ldc, cs2.data(),
            lay);
    omp_set_num_threads(saved);
    EXPECT_EQ(C1, C2);
    EXPECT_EQ(cs1, cs2);
  }
}
