// headwise (block-diagonal linear): vs float64 spec, finite-difference gradients,
// accumulate semantics, and equality with a dense linear on the block-diagonal weight.
#include <gtest/gtest.h>
#include <omp.h>

#include <vector>

#include "cpu/headwise.h"
#include "cpu/linear.h"
#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "ref/ops_ref.h"

using namespace xlstm;
using test::expect_close;
using test::randn;

namespace {
constexpr int64_t N = 7, NH = 3, I = 5, O = 9;
constexpr int64_t NX = N * NH * I, NW = NH * O * I, NB = NH * O, NY = N * NH * O;
std::vector<float> to_f(const std::vector<double>& v) { return {v.begin(), v.end()}; }
}  // namespace

TEST(Headwise, ForwardMatchesRef) {
  Rng rng(1);
  auto x = randn<double>(NX, rng), W = randn<double>(NW, rng), b = randn<double>(NB, rng);
  auto xf = to_f(x), Wf = to_f(W), bf = to_f(b);
  for (bool with_bias : {true, false}) {
    const double* bp = with_bias ? b.data() : nullptr;
    std::vector<double> want(NY), got(NY);
    ref::headwise_ref(N, NH, I, O, x.data(), W.data(), bp, want.data());
    headwise_forward<double>(N, NH, I, O, x.data(), W.data(), bp, got.data());
    expect_close("y f64", got.data(), want.data(), NY, 1e-12, 1e-12);
    std::vector<float> gotf(NY);
    headwise_forward<float>(N, NH, I, O, xf.data(), Wf.data(), with_bias ? bf.data() : nullptr,
                            gotf.data());
    expect_close("y f32", gotf.data(), want.data(), NY, 1e-5, 1e-4);
  }
}

TEST(Headwise, EqualsDenseBlockDiagonalLinear) {
  Rng rng(4);
  auto x = randn<double>(NX, rng), W = randn<double>(NW, rng), b = randn<double>(NB, rng);
  std::vector<double> dense((NH * O) * (NH * I), 0.0);
  for (int64_t h = 0; h < NH; ++h)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t d = 0; d < I; ++d) dense[(h * O + o) * (NH * I) + h * I + d] = W[(h * O + o) * I + d];
  std::vector<double> y1(NY), y2(NY);
  headwise_forward<double>(N, NH, I, O, x.data(), W.data(), b.data(), y1.data());
  linear_forward<double>(N, NH * I, NH * O, x.data(), dense.data(), b.data(), y2.data());
  expect_close("y", y1.data(), y2.data(), NY, 1e-12, 1e-12);
}

TEST(Headwise, GradCheck) {
  Rng rng(2);
  auto x = randn<double>(NX, rng), W = randn<double>(NW, rng), b = randn<double>(NB, rng);
  auto wy = randn<double>(NY, rng);
  std::vector<double> y(NY);
  auto loss = [&] {
    headwise_forward<double>(N, NH, I, O, x.data(), W.data(), b.data(), y.data());
    return test::dot(y.data(), wy.data(), NY);
  };
  std::vector<double> dx(NX), dW(NW, 0.0), db(NB, 0.0);
  headwise_backward<double>(N, NH, I, O, x.data(), W.data(), wy.data(), dx.data(), dW.data(),
                            db.data());
  test::expect_grad("dx", loss, x.data(), NX, dx.data());
  test::expect_grad("dW", loss, W.data(), NW, dW.data());
  test::expect_grad("db", loss, b.data(), NB, db.data());

  auto xf = to_f(x), Wf = to_f(W), dyf = to_f(wy);
  std::vector<float> dxf(NX), dWf(NW, 0.f), dbf(NB, 0.f);
  headwise_backward<float>(N, NH, I, O, xf.data(), Wf.data(), dyf.data(), dxf.data(), dWf.data(),
                           dbf.data());
  expect_close("dx f32", dxf.data(), dx.data(), NX, 1e-5, 1e-4);
  expect_close("dW f32", dWf.data(), dW.data(), NW, 1e-5, 1e-4);
  expect_close("db f32", dbf.data(), db.data(), NB, 1e-5, 1e-4);
}

TEST(Headwise, BackwardAccumulatesParamGrads) {
  Rng rng(3);
  auto x = randn<double>(NX, rng), W = randn<double>(NW, rng), dy = randn<double>(NY, rng);
  std::vector<double> dx1(NX), dW1(NW, 0.0), db1(NB, 0.0);
  headwise_backward<double>(N, NH, I, O, x.data(), W.data(), dy.data(), dx1.data(), dW1.data(),
                            db1.data());
  std::vector<double> dx2(NX, 3.0), dW2(NW, 0.0), db2(NB, 0.0);
  for (int rep = 0; rep < 2; ++rep)
    headwise_backward<double>(N, NH, I, O, x.data(), W.data(), dy.data(), dx2.data(), dW2.data(),
                              db2.data());
  for (auto& v : dW1) v *= 2;
  for (auto& v : db1) v *= 2;
  expect_close("dx written", dx2.data(), dx1.data(), NX, 1e-14, 1e-14);
  expect_close("dW doubled", dW2.data(), dW1.data(), NW, 1e-13, 1e-13);
  expect_close("db doubled", db2.data(), db1.data(), NB, 1e-13, 1e-13);

  std::vector<double> dW3(NW, 0.0);
  headwise_backward<double>(N, NH, I, O, x.data(), W.data(), dy.data(), nullptr, dW3.data(),
                            nullptr);
  for (auto& v : dW3) v *= 2;
  expect_close("dW (dx, db null)", dW3.data(), dW1.data(), NW, 1e-13, 1e-13);

  // dx_accumulate: dx += the input gradient (float too: the GEMM's beta = 1 path).
  std::vector<double> dx4(NX), want(NX);
  for (int64_t k = 0; k < NX; ++k) dx4[k] = 0.5 * (double)k, want[k] = dx4[k] + dx1[k];
  std::vector<double> dW4(NW, 0.0);
  headwise_backward<double>(N, NH, I, O, x.data(), W.data(), dy.data(), dx4.data(), dW4.data(),
                            nullptr, true);
  expect_close("dx accumulated", dx4.data(), want.data(), NX, 1e-13, 1e-13);
  std::vector<float> xf(x.begin(), x.end()), Wf(W.begin(), W.end()), dyf(dy.begin(), dy.end()),
      dxf(NX), dWf(NW, 0.0f);
  for (int64_t k = 0; k < NX; ++k) dxf[k] = 0.5f * (float)k;
  headwise_backward<float>(N, NH, I, O, xf.data(), Wf.data(), dyf.data(), dxf.data(), dWf.data(),
                           nullptr, true);
  expect_close("dx accumulated f32", dxf.data(), want.data(), NX, 1e-5, 1e-5);
}

// Sizes above the OpenMP thresholds and over several 64-column blocks: the parallel paths.
TEST(Headwise, LargeParallelPath) {
  constexpr int64_t n = 257, nh = 4, i = 6, o = 17, ny = n * nh * o;
  Rng rng(9);
  auto x = randn<double>(n * nh * i, rng), W = randn<double>(nh * o * i, rng);
  auto b = randn<double>(nh * o, rng), wy = randn<double>(ny, rng);
  std::vector<double> want(ny), y(ny);
  ref::headwise_ref(n, nh, i, o, x.data(), W.data(), b.data(), want.data());
  auto fwd = [&] {
    headwise_forward<double>(n, nh, i, o, x.data(), W.data(), b.data(), y.data());
    return test::dot(y.data(), wy.data(), ny);
  };
  fwd();
  expect_close("y", y.data(), want.data(), ny, 1e-12, 1e-12);
  std::vector<double> dx(n * nh * i), dW(nh * o * i, 0.0), db(nh * o, 0.0);
  headwise_backward<double>(n, nh, i, o, x.data(), W.data(), wy.data(), dx.data(), dW.data(),
                            db.data());
  test::expect_grad("dW", fwd, W.data(), nh * o * i, dW.data(), 1e-6, 1e-6);
  test::expect_grad("db", fwd, b.data(), nh * o, db.data(), 1e-6, 1e-6);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<double> db1(nh * o, 0.0), dW1(nh * o * i, 0.0);
  headwise_backward<double>(n, nh, i, o, x.data(), W.data(), wy.data(), nullptr, dW1.data(),
                            db1.data());
  omp_set_num_threads(threads);
  expect_close("db 1 thread", db1.data(), db.data(), nh * o, 0, 0);
}

// 4 x 4 blocks in float take a kernel of their own (four heads per vector, one pass over the
// rows): forward, dx (written and accumulated), dW and db against the double path, which runs
// the plain per-head products; and the same bits on 1 and 2 threads.
TEST(Headwise, FourByFourBlocksMatchDouble) {
  constexpr int64_t n = 400, nh = 12, io = 4, nx = n * nh * io, nw = nh * io * io, nb = nh * io;
  Rng rng(9);
  auto x = randn<double>(nx, rng), W = randn<double>(nw, rng), b = randn<double>(nb, rng);
  auto dy = randn<double>(nx, rng), dx0 = randn<double>(nx, rng);
  std::vector<double> y(nx), dx(nx), dxa = dx0, dW(nw, 0.0), db(nb, 0.0);
  headwise_forward<double>(n, nh, io, io, x.data(), W.data(), b.data(), y.data());
  headwise_backward<double>(n, nh, io, io, x.data(), W.data(), dy.data(), dx.data(), dW.data(),
                            db.data());
  for (int64_t k = 0; k < nx; ++k) dxa[k] += dx[k];
  const auto xf = to_f(x), Wf = to_f(W), bf = to_f(b), dyf = to_f(dy), dx0f = to_f(dx0);
  std::vector<float> out[2][5];
  for (int threads : {1, 2}) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<float> yf(nx), dxf(nx), dxaf = dx0f, dWf(nw, 0.f), dbf(nb, 0.f);
    headwise_forward<float>(n, nh, io, io, xf.data(), Wf.data(), bf.data(), yf.data());
    headwise_backward<float>(n, nh, io, io, xf.data(), Wf.data(), dyf.data(), dxf.data(),
                             dWf.data(), dbf.data());
    std::vector<float> dW2(nw, 0.f);
    headwise_backward<float>(n, nh, io, io, xf.data(), Wf.data(), dyf.data(), dxaf.data(),
                             dW2.data(), nullptr, true);
    omp_set_num_threads(saved);
    expect_close("y 4x4", yf.data(), y.data(), nx, 1e-5, 1e-5);
    expect_close("dx 4x4", dxf.data(), dx.data(), nx, 1e-5, 1e-5);
    expect_close("dx accumulated 4x4", dxaf.data(), dxa.data(), nx, 1e-5, 1e-5);
    expect_close("dW 4x4", dWf.data(), dW.data(), nw, 1e-4, 1e-5);
    expect_close("db 4x4", dbf.data(), db.data(), nb, 1e-4, 1e-5);
    out[threads - 1][0] = yf, out[threads - 1][1] = dxf, out[threads - 1][2] = dxaf;
    out[threads - 1][3] = dWf, out[threads - 1][4] = dbf;
  }
  for (int k = 0; k < 5; ++k) EXPECT_EQ(out[0][k], out[1][k]) << "output " << k;
}
