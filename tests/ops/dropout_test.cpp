// dropout: mask values and rate, reproducibility from the Rng, p = 0 draws nothing,
// backward by finite differences (fixed mask), in place, bad p rejected.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "cpu/dropout.h"
#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "xlstm/error.h"

using namespace xlstm;
using test::expect_close;
using test::randn;

namespace {
constexpr int64_t kN = 4099;
}

TEST(Dropout, MaskValuesAndRate) {
  Rng rng(1);
  auto x = randn<double>(kN, rng);
  const double p = 0.3, keep = 1.0 / (1.0 - p);
  std::vector<double> y(kN), mask(kN);
  Rng r1(7);
  dropout_forward<double>(kN, p, r1, x.data(), y.data(), mask.data());
  int64_t kept = 0;
  for (int64_t i = 0; i < kN; ++i) {
    ASSERT_TRUE(mask[i] == 0.0 || mask[i] == keep) << i << ": " << mask[i];
    EXPECT_EQ(y[i], x[i] * mask[i]);
    kept += mask[i] != 0.0;
  }
  // Binomial(kN, 0.7): std ~ 29; 6 sigma.
  EXPECT_NEAR((double)kept, 0.7 * kN, 180.0);

  // Same seed -> same mask, in float too (the mask depends only on the Rng stream).
  std::vector<float> xf(x.begin(), x.end()), yf(kN), maskf(kN);
  Rng r2(7);
  dropout_forward<float>(kN, p, r2, xf.data(), yf.data(), maskf.data());
  for (int64_t i = 0; i < kN; ++i) ASSERT_EQ(maskf[i] != 0.f, mask[i] != 0.0) << i;
  expect_close("mask f32", maskf.data(), mask.data(), kN, 0, 1e-7);
  // Both advanced the Rng by kN draws.
  EXPECT_EQ(r1.next_u64(), r2.next_u64());

  // In place (y aliases x).
  std::vector<double> buf = x, mask3(kN);
  Rng r3(7);
  dropout_forward<double>(kN, p, r3, buf.data(), buf.data(), mask3.data());
  expect_close("y in place", buf.data(), y.data(), kN, 0, 0);
}

TEST(Dropout, ZeroRateIsIdentityAndDrawsNothing) {
  Rng rng(2);
  auto x = randn<double>(kN, rng);
  std::vector<double> y(kN), mask(kN, -1.0);
  Rng r(11), untouched(11);
  dropout_forward<double>(kN, 0.0, r, x.data(), y.data(), mask.data());
  expect_close("y", y.data(), x.data(), kN, 0, 0);
  for (int64_t i = 0; i < kN; ++i) ASSERT_EQ(mask[i], 1.0);
  EXPECT_EQ(r.next_u64(), untouched.next_u64());
}

TEST(Dropout, GradCheck) {
  Rng rng(3);
  constexpr int64_t n = 31;
  auto x = randn<double>(n, rng), wy = randn<double>(n, rng);
  std::vector<double> y(n), mask(n);
  // Reseed every call so the mask is fixed while x moves.
  auto loss = [&] {
    Rng r(5);
    dropout_forward<double>(n, 0.4, r, x.data(), y.data(), mask.data());
    return test::dot(y.data(), wy.data(), n);
  };
  loss();
  std::vector<double> dx(n);
  dropout_backward<double>(n, mask.data(), wy.data(), dx.data());
  test::expect_grad("dx", loss, x.data(), n, dx.data());

  std::vector<double> buf = wy;
  dropout_backward<double>(n, mask.data(), buf.data(), buf.data());
  expect_close("dx in place", buf.data(), dx.data(), n, 0, 0);
  std::vector<float> maskf(mask.begin(), mask.end()), dyf(wy.begin(), wy.end()), dxf(n);
  dropout_backward<float>(n, maskf.data(), dyf.data(), dxf.data());
  expect_close("dx f32", dxf.data(), dx.data(), n, 1e-6, 1e-6);
}

TEST(Dropout, BadRateThrows) {
  std::vector<double> x(8, 1.0), y(8), mask(8);
  Rng r(1);
  for (double p : {-0.1, 1.0, 1.5, std::numeric_limits<double>::quiet_NaN()})
    EXPECT_THROW(dropout_forward<double>(8, p, r, x.data(), y.data(), mask.data()), ValueError)
        << p;
}

// Above the OpenMP threshold: same mask and output for 1 and n threads.
TEST(Dropout, LargeParallelPath) {
  constexpr int64_t n = 40009;
  Rng rng(4);
  auto x = randn<double>(n, rng);
  std::vector<double> y(n), mask(n), y1(n), mask1(n), dx(n);
  Rng r(3), r1(3);
  dropout_forward<double>(n, 0.25, r, x.data(), y.data(), mask.data());
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  dropout_forward<double>(n, 0.25, r1, x.data(), y1.data(), mask1.data());
  omp_set_num_threads(threads);
  expect_close("mask", mask1.data(), mask.data(), n, 0, 0);
  expect_close("y", y1.data(), y.data(), n, 0, 0);
  dropout_backward<double>(n, mask.data(), x.data(), dx.data());
  expect_close("dx", dx.data(), y.data(), n, 0, 0);
}
