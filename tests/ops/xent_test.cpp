// xent: loss vs float64 spec (with ignored rows), dlogits by finite differences of the spec,
// dloss scaling, count, all-ignored rows, extreme logits, bad targets rejected.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "cpu/xent.h"
#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "ref/ops_ref.h"
#include "xlstm/error.h"

using namespace xlstm;
using test::expect_close;
using test::randn;

namespace {
constexpr int64_t N = 7, V = 13, kIgnore = -100;
// Row 2 and row 5 are ignored; targets at both ends of the vocabulary.
const std::vector<int64_t> kTargets = {4, 0, kIgnore, 12, 7, kIgnore, 12};
}  // namespace

TEST(Xent, LossMatchesRef) {
  Rng rng(1);
  auto z = randn<double>(N * V, rng, 0, 3);
  const double want = ref::xent_ref(N, V, z.data(), kTargets.data(), kIgnore);
  int64_t count = -1;
  const double got = xent_forward_backward<double>(N, V, z.data(), kTargets.data(), kIgnore,
                                                   nullptr, 1.0, &count);
  EXPECT_NEAR(got, want, 1e-12 * std::fabs(want));
  EXPECT_EQ(count, 5);
  std::vector<float> zf(z.begin(), z.end());
  const double gotf = xent_forward_backward<float>(N, V, zf.data(), kTargets.data(), kIgnore,
                                                   nullptr);
  EXPECT_NEAR(gotf, want, 1e-5 * std::fabs(want));
}

TEST(Xent, GradCheck) {
  Rng rng(2);
  auto z = randn<double>(N * V, rng, 0, 2);
  const double dloss = 0.7;
  std::vector<double> dz(N * V, 99.0);
  xent_forward_backward<double>(N, V, z.data(), kTargets.data(), kIgnore, dz.data(), dloss);
  auto loss = [&] { return dloss * ref::xent_ref(N, V, z.data(), kTargets.data(), kIgnore); };
  test::expect_grad("dlogits", loss, z.data(), N * V, dz.data());
  for (int64_t v = 0; v < V; ++v) EXPECT_EQ(dz[2 * V + v], 0.0);  // ignored row written as 0

  std::vector<float> zf(z.begin(), z.end()), dzf(N * V);
  xent_forward_backward<float>(N, V, zf.data(), kTargets.data(), kIgnore, dzf.data(), dloss);
  expect_close("dlogits f32", dzf.data(), dz.data(), N * V, 1e-7, 1e-5);
}

TEST(Xent, IgnoreIndexInsideVocabAndAllIgnored) {
  Rng rng(3);
  auto z = randn<double>(N * V, rng);
  // ignore_index 0 is a valid token id: rows with target 0 are skipped.
  const std::vector<int64_t> t = {0, 3, 0, 5, 1, 0, 2};
  int64_t count = -1;
  const double got =
      xent_forward_backward<double>(N, V, z.data(), t.data(), 0, nullptr, 1.0, &count);
  EXPECT_EQ(count, 4);
  EXPECT_NEAR(got, ref::xent_ref(N, V, z.data(), t.data(), 0), 1e-12);

  const std::vector<int64_t> all(N, kIgnore);
  std::vector<double> dz(N * V, 5.0);
  EXPECT_EQ(xent_forward_backward<double>(N, V, z.data(), all.data(), kIgnore, dz.data(), 1.0,
                                          &count),
            0.0);
  EXPECT_EQ(count, 0);
  for (double v : dz) ASSERT_EQ(v, 0.0);
}

TEST(Xent, ExtremeLogitsStayFinite) {
  std::vector<float> z(2 * V, 0.f);
  z[3] = 1e4f;            // row 0: confident and right
  z[V + 5] = 1e4f;        // row 1: confident and wrong (target 6)
  z[V + 6] = -1e4f;
  const std::vector<int64_t> t = {3, 6};
  std::vector<float> dz(2 * V);
  const double loss = xent_forward_backward<float>(2, V, z.data(), t.data(), kIgnore, dz.data());
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_NEAR(loss, 0.5 * 2e4, 1.0);
  for (float v : dz) ASSERT_TRUE(std::isfinite(v));
}

TEST(Xent, BadTargetThrows) {
  std::vector<double> z(N * V, 0.0);
  for (int64_t bad : {V, int64_t(-1), int64_t(57)}) {
    auto t = kTargets;
    t[3] = bad;
    EXPECT_THROW(xent_forward_backward<double>(N, V, z.data(), t.data(), kIgnore, nullptr),
                 ValueError)
        << bad;
  }
  auto t = kTargets;
  t[3] = 57;
  try {
    xent_forward_backward<double>(N, V, z.data(), t.data(), kIgnore, nullptr);
    FAIL() << "no throw";
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[xent] target 57 at row 3 is outside [0, 13)"), std::string::npos) << msg;
  }
}

// Sizes above the OpenMP threshold: the parallel path, bitwise equal for 1 and n threads.
TEST(Xent, LargeParallelPath) {
  constexpr int64_t n = 129, v = 263;
  Rng rng(10);
  auto z = randn<double>(n * v, rng, 0, 2);
  std::vector<int64_t> t(n);
  for (auto& x : t) x = rng.uniform() < 0.1 ? kIgnore : (int64_t)rng.below(v);
  std::vector<double> dz(n * v), dz1(n * v);
  const double loss = xent_forward_backward<double>(n, v, z.data(), t.data(), kIgnore, dz.data());
  EXPECT_NEAR(loss, ref::xent_ref(n, v, z.data(), t.data(), kIgnore), 1e-12);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double loss1 = xent_forward_backward<double>(n, v, z.data(), t.data(), kIgnore, dz1.data());
  omp_set_num_threads(threads);
  EXPECT_EQ(loss1, loss);
  expect_close("dlogits 1 thread", dz1.data(), dz.data(), n * v, 0, 0);
}
