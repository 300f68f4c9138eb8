// activations: every Act vs float64 spec (double and float), derivative by finite
// differences, dx aliasing dy, and the scalar sigmoid/logsigmoid helpers at extremes.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "cpu/activations.h"
#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "ref/ops_ref.h"

using namespace xlstm;
using test::expect_close;
using test::randn;

namespace {
constexpr int64_t kN = 37;
const Act kActs[] = {Act::Identity, Act::Sigmoid, Act::Tanh, Act::SiLU, Act::GELU, Act::ReLU};
const char* name(Act a) {
  switch (a) {
    case Act::Identity: return "identity";
    case Act::Sigmoid: return "sigmoid";
    case Act::Tanh: return "tanh";
    case Act::SiLU: return "silu";
    case Act::GELU: return "gelu";
    case Act::ReLU: return "relu";
  }
  return "?";
}
// N(0, 2) inputs pushed away from 0 so ReLU's kink is not straddled by the finite difference.
std::vector<double> inputs(Rng& rng) {
  auto x = randn<double>(kN, rng, 0, 2);
  for (auto& v : x)
    if (std::fabs(v) < 1e-3) v = 0.5;
  x[0] = 30;  // saturating tails
  x[1] = -30;
  return x;
}
}  // namespace

TEST(Activations, ForwardMatchesRef) {
  Rng rng(1);
  auto x = inputs(rng);
  std::vector<float> xf(x.begin(), x.end());
  for (Act a : kActs) {
    std::vector<double> want(kN), got(kN);
    ref::act_ref(a, kN, x.data(), want.data());
    act_forward<double>(a, kN, x.data(), got.data());
    expect_close(std::string(name(a)) + " f64", got.data(), want.data(), kN, 1e-15, 1e-13);
    std::vector<float> gotf(kN);
    act_forward<float>(a, kN, xf.data(), gotf.data());
    expect_close(std::string(name(a)) + " f32", gotf.data(), want.data(), kN, 1e-6, 1e-6);
  }
}

TEST(Activations, GradCheck) {
  Rng rng(2);
  auto x = inputs(rng), wy = randn<double>(kN, rng);
  for (Act a : kActs) {
    std::vector<double> y(kN), dx(kN);
    auto loss = [&] {
      act_forward<double>(a, kN, x.data(), y.data());
      return test::dot(y.data(), wy.data(), kN);
    };
    act_backward<double>(a, kN, x.data(), wy.data(), dx.data());
    test::expect_grad(std::string("dx ") + name(a), loss, x.data(), kN, dx.data());

    // In place (dx aliases dy) gives the same, and so does float.
    std::vector<double> inplace = wy;
    act_backward<double>(a, kN, x.data(), inplace.data(), inplace.data());
    expect_close(std::string("dx in place ") + name(a), inplace.data(), dx.data(), kN, 0, 0);
    std::vector<float> xf(x.begin(), x.end()), dyf(wy.begin(), wy.end()), dxf(kN);
    act_backward<float>(a, kN, xf.data(), dyf.data(), dxf.data());
    expect_close(std::string("dx f32 ") + name(a), dxf.data(), dx.data(), kN, 1e-6, 1e-5);
  }
}

TEST(Activations, ScalarHelpersStable) {
  for (double v : {-800.0, -30.0, -1.0, 0.0, 1.0, 30.0, 800.0}) {
    const double s = sigmoid(v);
    EXPECT_TRUE(std::isfinite(s)) << v;
    EXPECT_NEAR(s, 1.0 / (1.0 + std::exp(-v)), 1e-15) << v;
    const double ls = logsigmoid(v);
    EXPECT_TRUE(std::isfinite(ls)) << v;
    const double want = v < -30 ? v : -std::log1p(std::exp(-v));
    EXPECT_NEAR(ls, want, 1e-12 * (1 + std::fabs(want))) << v;
    EXPECT_TRUE(std::isfinite(sigmoid((float)v))) << v;
    EXPECT_TRUE(std::isfinite(logsigmoid((float)v))) << v;
  }
}

// Above the OpenMP threshold: the parallel path gives the spec too.
TEST(Activations, LargeParallelPath) {
  constexpr int64_t n = 40009;
  Rng rng(3);
  auto x = randn<double>(n, rng, 0, 2), dy = randn<double>(n, rng);
  std::vector<double> dx_small(kN);
  for (Act a : kActs) {
    std::vector<double> want(n), y(n), dx(n);
    ref::act_ref(a, n, x.data(), want.data());
    act_forward<double>(a, n, x.data(), y.data());
    expect_close(std::string("y ") + name(a), y.data(), want.data(), n, 1e-15, 1e-13);
    // The parallel backward equals the (gradient-checked) serial one elementwise.
    act_backward<double>(a, n, x.data(), dy.data(), dx.data());
    act_backward<double>(a, kN, x.data() + 12345, dy.data() + 12345, dx_small.data());
    expect_close(std::string("dx ") + name(a), dx.data() + 12345, dx_small.data(), kN, 0, 0);
  }
}

// The float GELU takes 1 + erf from a polynomial erfc (no libm call): over a dense grid from
// the far negative tail (where 1 + erf is tiny and must keep its relative accuracy) to large
// positive arguments, forward and derivative against the double formulas.
TEST(Activations, GeluFloatTailsAndGrid) {
  std::vector<float> xs;
  for (double v = -14.0; v <= 14.0; v += 0.0137) xs.push_back((float)v);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-5f, -1e-5f, 100.0f, -100.0f}) xs.push_back(v);
  const int64_t n = (int64_t)xs.size();
  std::vector<float> y(n), dx(n), ones(n, 1.0f);
  act_forward<float>(Act::GELU, n, xs.data(), y.data());
  act_backward<float>(Act::GELU, n, xs.data(), ones.data(), dx.data());
  for (int64_t k = 0; k < n; ++k) {
    // The kernel (as torch's float GELU) forms u = x / sqrt(2) in float; the tail of erfc is
    // ill-conditioned in u (relative 2u^2 per relative error of u), so compare at that u.
    const float uf = xs[k] * 0.70710678118654752440f;
    const double v = xs[k], u = uf;
    const double want = 0.5 * v * std::erfc(-u);  // 0.5 v (1 + erf(u)), accurate in the tail
    const double dwant = 0.5 * std::erfc(-u) + v * std::exp(-u * u) / std::sqrt(2 * M_PI);
    EXPECT_NEAR(y[k], want, 1e-6 * std::fabs(want) + 1e-37) << "x " << v;
    EXPECT_NEAR(dx[k], dwant, 1e-6 * std::fabs(dwant) + 2e-7) << "x " << v;
  }
}
