// rmsnorm: vs float64 spec (with and without weight), finite-difference gradients,
// accumulate semantics, dx aliasing dy.
#include <gtest/gtest.h>
#include <omp.h>

#include <vector>

#include "cpu/rmsnorm.h"
#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "ref/ops_ref.h"

using namespace xlstm;
using test::expect_close;
using test::randn;

namespace {
constexpr int64_t N = 7, D = 19;
constexpr double kEps = 1e-6;
std::vector<float> to_f(const std::vector<double>& v) { return {v.begin(), v.end()}; }
}  // namespace

TEST(RmsNorm, ForwardMatchesRef) {
  Rng rng(1);
  auto x = randn<double>(N * D, rng, 0.2, 1.3), w = randn<double>(D, rng, 1, 0.3);
  auto xf = to_f(x), wf = to_f(w);
  for (bool weighted : {true, false}) {
    const double* wp = weighted ? w.data() : nullptr;
    std::vector<double> want(N * D), got(N * D), rstd(N);
    ref::rmsnorm_ref(N, D, x.data(), wp, kEps, want.data());
    rmsnorm_forward<double>(N, D, x.data(), wp, kEps, got.data(), rstd.data());
    expect_close("y f64", got.data(), want.data(), N * D, 1e-12, 1e-12);
    std::vector<float> gotf(N * D), rstdf(N);
    rmsnorm_forward<float>(N, D, xf.data(), weighted ? wf.data() : nullptr, kEps, gotf.data(),
                           rstdf.data());
    expect_close("y f32", gotf.data(), want.data(), N * D, 1e-5, 1e-5);
    expect_close("rstd f32", rstdf.data(), rstd.data(), N, 1e-6, 1e-6);
  }
}

TEST(RmsNorm, GradCheck) {
  Rng rng(2);
  auto x = randn<double>(N * D, rng, 0.2, 1.3), w = randn<double>(D, rng, 1, 0.3);
  auto wy = randn<double>(N * D, rng);
  std::vector<double> y(N * D), rstd(N);
  auto loss = [&] {
    rmsnorm_forward<double>(N, D, x.data(), w.data(), kEps, y.data(), rstd.data());
    return test::dot(y.data(), wy.data(), N * D);
  };
  loss();
  std::vector<double> dx(N * D), dw(D, 0.0);
  rmsnorm_backward<double>(N, D, x.data(), w.data(), rstd.data(), wy.data(), dx.data(), dw.data());
  test::expect_grad("dx", loss, x.data(), N * D, dx.data());
  test::expect_grad("dw", loss, w.data(), D, dw.data());

  // Weightless: gradient of sum(x * rstd * wy).
  auto loss_nw = [&] {
    rmsnorm_forward<double>(N, D, x.data(), nullptr, kEps, y.data(), rstd.data());
    return test::dot(y.data(), wy.data(), N * D);
  };
  loss_nw();
  std::vector<double> dx_nw(N * D);
  rmsnorm_backward<double>(N, D, x.data(), nullptr, rstd.data(), wy.data(), dx_nw.data(), nullptr);
  test::expect_grad("dx (w null)", loss_nw, x.data(), N * D, dx_nw.data());

  auto xf = to_f(x), wf = to_f(w), dyf = to_f(wy);
  std::vector<float> yf(N * D), rstdf(N), dxf(N * D), dwf(D, 0.f);
  rmsnorm_forward<float>(N, D, xf.data(), wf.data(), kEps, yf.data(), rstdf.data());
  rmsnorm_backward<float>(N, D, xf.data(), wf.data(), rstdf.data(), dyf.data(), dxf.data(),
                          dwf.data());
  expect_close("dx f32", dxf.data(), dx.data(), N * D, 1e-5, 1e-4);
  expect_close("dw f32", dwf.data(), dw.data(), D, 1e-5, 1e-4);
}

TEST(RmsNorm, BackwardAccumulatesParamGrads) {
  Rng rng(3);
  auto x = randn<double>(N * D, rng), w = randn<double>(D, rng), dy = randn<double>(N * D, rng);
  std::vector<double> y(N * D), rstd(N);
  rmsnorm_forward<double>(N, D, x.data(), w.data(), kEps, y.data(), rstd.data());
  std::vector<double> dx1(N * D), dw1(D, 0.0);
  rmsnorm_backward<double>(N, D, x.data(), w.data(), rstd.data(), dy.data(), dx1.data(), dw1.data());
  std::vector<double> dx2(N * D, 5.0), dw2(D, 0.0);
  for (int rep = 0; rep < 2; ++rep)
    rmsnorm_backward<double>(N, D, x.data(), w.data(), rstd.data(), dy.data(), dx2.data(),
                             dw2.data());
  for (auto& v : dw1) v *= 2;
  expect_close("dx written", dx2.data(), dx1.data(), N * D, 0, 0);
  expect_close("dw doubled", dw2.data(), dw1.data(), D, 1e-14, 1e-14);

  std::vector<double> buf = dy, dw3(D, 0.0);
  rmsnorm_backward<double>(N, D, x.data(), w.data(), rstd.data(), buf.data(), buf.data(),
                           dw3.data());
  for (auto& v : dw3) v *= 2;
  expect_close("dx in place", buf.data(), dx1.data(), N * D, 0, 0);
  expect_close("dw in place", dw3.data(), dw1.data(), D, 0, 0);
}

// Sizes above the OpenMP thresholds and over several 64-feature blocks: the parallel paths.
TEST(RmsNorm, LargeParallelPath) {
  constexpr int64_t n = 257, d = 69;
  Rng rng(7);
  auto x = randn<double>(n * d, rng), w = randn<double>(d, rng, 1, 0.3);
  auto wy = randn<double>(n * d, rng);
  std::vector<double> want(n * d), y(n * d), rstd(n);
  auto fwd = [&] {
    rmsnorm_forward<double>(n, d, x.data(), w.data(), kEps, y.data(), rstd.data());
    return test::dot(y.data(), wy.data(), n * d);
  };
  fwd();
  ref::rmsnorm_ref(n, d, x.data(), w.data(), kEps, want.data());
  expect_close("y", y.data(), want.data(), n * d, 1e-12, 1e-12);
  std::vector<double> dx(n * d), dw(d, 0.0);
  rmsnorm_backward<double>(n, d, x.data(), w.data(), rstd.data(), wy.data(), dx.data(), dw.data());
  test::expect_grad("dw", fwd, w.data(), d, dw.data(), 1e-6, 1e-6);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<double> dx1(n * d), dw1(d, 0.0);
  rmsnorm_backward<double>(n, d, x.data(), w.data(), rstd.data(), wy.data(), dx1.data(), dw1.data());
  omp_set_num_threads(threads);
  expect_close("dx 1 thread", dx1.data(), dx.data(), n * d, 0, 0);
  expect_close("dw 1 thread", dw1.data(), dw.data(), d, 0, 0);
}
