// layernorm and multihead_norm: both scale conventions, with and without weight/bias, vs the
// float64 spec; finite-difference gradients; accumulate semantics; dx aliasing dy.
#include <gtest/gtest.h>
#include <omp.h>

#include <string>
#include <vector>

#include "cpu/layernorm.h"
#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "ref/ops_ref.h"

using namespace xlstm;
using test::expect_close;
using test::randn;

namespace {
constexpr int64_t N = 5, NH = 3, DH = 7, C = NH * DH;
constexpr double kEps = 1e-5;
const NormScale kScales[] = {NormScale::Plain, NormScale::OnePlusWeight};
std::vector<float> to_f(const std::vector<double>& v) { return {v.begin(), v.end()}; }
std::string tag(NormScale s, bool affine) {
  return std::string(s == NormScale::Plain ? "plain" : "one_plus") + (affine ? "" : " no_affine");
}

// Runs layernorm (NH == 1 view of the C features) or multihead_norm through one signature.
enum class Kind { LayerNorm, MultiHead };
template <class T>
void fwd(Kind k, const T* x, const T* w, const T* b, NormScale s, T* y, T* mean, T* rstd) {
  if (k == Kind::LayerNorm) layernorm_forward<T>(N, C, x, w, b, kEps, s, y, mean, rstd);
  else multihead_norm_forward<T>(N, NH, DH, x, w, b, kEps, s, y, mean, rstd);
}
template <class T>
void bwd(Kind k, const T* x, const T* w, NormScale s, const T* mean, const T* rstd, const T* dy,
         T* dx, T* dw, T* db) {
  if (k == Kind::LayerNorm) layernorm_backward<T>(N, C, x, w, s, mean, rstd, dy, dx, dw, db);
  else multihead_norm_backward<T>(N, NH, DH, x, w, s, mean, rstd, dy, dx, dw, db);
}
int64_t nstats(Kind k) { return k == Kind::LayerNorm ? N : N * NH; }

void check_forward(Kind k) {
  Rng rng(1);
  // Offset mean so that the centring matters.
  auto x = randn<double>(N * C, rng, 0.7, 1.5), w = randn<double>(C, rng, 0, 0.5);
  auto b = randn<double>(C, rng);
  auto xf = to_f(x), wf = to_f(w), bf = to_f(b);
  for (NormScale s : kScales)
    for (bool affine : {true, false}) {
      const double* wp = affine ? w.data() : nullptr;
      const double* bp = affine ? b.data() : nullptr;
      std::vector<double> want(N * C), got(N * C), mean(nstats(k)), rstd(nstats(k));
      if (k == Kind::LayerNorm) ref::layernorm_ref(N, C, x.data(), wp, bp, kEps, s, want.data());
      else ref::multihead_norm_ref(N, NH, DH, x.data(), wp, bp, kEps, s, want.data());
      fwd<double>(k, x.data(), wp, bp, s, got.data(), mean.data(), rstd.data());
      expect_close("y f64 " + tag(s, affine), got.data(), want.data(), N * C, 1e-12, 1e-12);
      std::vector<float> gotf(N * C), meanf(nstats(k)), rstdf(nstats(k));
      fwd<float>(k, xf.data(), affine ? wf.data() : nullptr, affine ? bf.data() : nullptr, s,
                 gotf.data(), meanf.data(), rstdf.data());
      expect_close("y f32 " + tag(s, affine), gotf.data(), want.data(), N * C, 1e-5, 1e-5);
      expect_close("mean f32", meanf.data(), mean.data(), nstats(k), 1e-6, 1e-6);
      expect_close("rstd f32", rstdf.data(), rstd.data(), nstats(k), 1e-6, 1e-6);
    }
}

void check_grad(Kind k) {
  Rng rng(2);
  auto x = randn<double>(N * C, rng, 0.3, 1.2), w = randn<double>(C, rng, 0, 0.5);
  auto b = randn<double>(C, rng), wy = randn<double>(N * C, rng);
  for (NormScale s : kScales) {
    std::vector<double> y(N * C), mean(nstats(k)), rstd(nstats(k));
    auto loss = [&] {
      fwd<double>(k, x.data(), w.data(), b.data(), s, y.data(), mean.data(), rstd.data());
      return test::dot(y.data(), wy.data(), N * C);
    };
    loss();
    std::vector<double> dx(N * C), dw(C, 0.0), db(C, 0.0);
    bwd<double>(k, x.data(), w.data(), s, mean.data(), rstd.data(), wy.data(), dx.data(),
                dw.data(), db.data());
    test::expect_grad("dx " + tag(s, true), loss, x.data(), N * C, dx.data());
    test::expect_grad("dw " + tag(s, true), loss, w.data(), C, dw.data());
    test::expect_grad("db " + tag(s, true), loss, b.data(), C, db.data());

    // Without weight the scale is 1 (Plain) or 1 + 0 (OnePlusWeight): dx as for w = 1 / 0.
    std::vector<double> dx_null(N * C), wconst(C, s == NormScale::Plain ? 1.0 : 0.0),
        dx_const(N * C);
    loss();
    bwd<double>(k, x.data(), nullptr, s, mean.data(), rstd.data(), wy.data(), dx_null.data(),
                nullptr, nullptr);
    bwd<double>(k, x.data(), wconst.data(), s, mean.data(), rstd.data(), wy.data(),
                dx_const.data(), nullptr, nullptr);
    expect_close("dx w null", dx_null.data(), dx_const.data(), N * C, 0, 0);

    // Float kernel, from its own saved stats.
    auto xf = to_f(x), wf = to_f(w), bf = to_f(b), dyf = to_f(wy);
    std::vector<float> yf(N * C), meanf(nstats(k)), rstdf(nstats(k)), dxf(N * C), dwf(C, 0.f),
        dbf(C, 0.f);
    fwd<float>(k, xf.data(), wf.data(), bf.data(), s, yf.data(), meanf.data(), rstdf.data());
    bwd<float>(k, xf.data(), wf.data(), s, meanf.data(), rstdf.data(), dyf.data(), dxf.data(),
               dwf.data(), dbf.data());
    expect_close("dx f32", dxf.data(), dx.data(), N * C, 1e-5, 1e-4);
    expect_close("dw f32", dwf.data(), dw.data(), C, 1e-5, 1e-4);
    expect_close("db f32", dbf.data(), db.data(), C, 1e-5, 1e-4);
  }
}

void check_accumulate(Kind k) {
  Rng rng(3);
  auto x = randn<double>(N * C, rng), w = randn<double>(C, rng), dy = randn<double>(N * C, rng);
  std::vector<double> y(N * C), mean(nstats(k)), rstd(nstats(k));
  fwd<double>(k, x.data(), w.data(), nullptr, NormScale::OnePlusWeight, y.data(), mean.data(),
              rstd.data());
  std::vector<double> dx1(N * C), dw1(C, 0.0), db1(C, 0.0);
  bwd<double>(k, x.data(), w.data(), NormScale::OnePlusWeight, mean.data(), rstd.data(),
              dy.data(), dx1.data(), dw1.data(), db1.data());
  std::vector<double> dx2(N * C, 9.0), dw2(C, 0.0), db2(C, 0.0);
  for (int rep = 0; rep < 2; ++rep)
    bwd<double>(k, x.data(), w.data(), NormScale::OnePlusWeight, mean.data(), rstd.data(),
                dy.data(), dx2.data(), dw2.data(), db2.data());
  for (auto& v : dw1) v *= 2;
  for (auto& v : db1) v *= 2;
  expect_close("dx written", dx2.data(), dx1.data(), N * C, 0, 0);
  expect_close("dw doubled", dw2.data(), dw1.data(), C, 1e-14, 1e-14);
  expect_close("db doubled", db2.data(), db1.data(), C, 1e-14, 1e-14);

  // dx may alias dy; dw, db still see the original dy.
  std::vector<double> buf = dy, dw3(C, 0.0), db3(C, 0.0);
  bwd<double>(k, x.data(), w.data(), NormScale::OnePlusWeight, mean.data(), rstd.data(),
              buf.data(), buf.data(), dw3.data(), db3.data());
  for (auto& v : dw3) v *= 2;
  for (auto& v : db3) v *= 2;
  expect_close("dx in place", buf.data(), dx1.data(), N * C, 0, 0);
  expect_close("dw in place", dw3.data(), dw1.data(), C, 0, 0);
  expect_close("db in place", db3.data(), db1.data(), C, 0, 0);
}
}  // namespace

TEST(LayerNorm, ForwardMatchesRef) { check_forward(Kind::LayerNorm); }
TEST(LayerNorm, GradCheck) { check_grad(Kind::LayerNorm); }
TEST(LayerNorm, BackwardAccumulatesParamGrads) { check_accumulate(Kind::LayerNorm); }
TEST(MultiHeadNorm, ForwardMatchesRef) { check_forward(Kind::MultiHead); }
TEST(MultiHeadNorm, GradCheck) { check_grad(Kind::MultiHead); }
TEST(MultiHeadNorm, BackwardAccumulatesParamGrads) { check_accumulate(Kind::MultiHead); }

// multihead_norm with one head is layernorm.
TEST(MultiHeadNorm, OneHeadIsLayerNorm) {
  Rng rng(4);
  auto x = randn<double>(N * C, rng), w = randn<double>(C, rng), b = randn<double>(C, rng);
  std::vector<double> y1(N * C), y2(N * C), m(N), r(N);
  layernorm_forward<double>(N, C, x.data(), w.data(), b.data(), kEps, NormScale::Plain, y1.data(),
                            m.data(), r.data());
  multihead_norm_forward<double>(N, 1, C, x.data(), w.data(), b.data(), kEps, NormScale::Plain,
                                 y2.data(), m.data(), r.data());
  expect_close("y", y2.data(), y1.data(), N * C, 0, 0);
}

// Sizes above the OpenMP thresholds and over several 64-feature blocks: the parallel paths.
// Parameter gradients by finite differences; every output bitwise equal for 1 and n threads.
TEST(MultiHeadNorm, LargeParallelPath) {
  constexpr int64_t n = 257, nh = 3, dh = 23, c = nh * dh;
  Rng rng(6);
  auto x = randn<double>(n * c, rng, 0.5, 1), w = randn<double>(c, rng, 0, 0.3);
  auto b = randn<double>(c, rng), wy = randn<double>(n * c, rng);
  for (int64_t heads : {int64_t(1), nh}) {
    const int64_t rows = n * heads, d = c / heads;
    std::vector<double> want(n * c), y(n * c), mean(rows), rstd(rows);
    auto fwd = [&] {
      multihead_norm_forward<double>(n, heads, d, x.data(), w.data(), b.data(), kEps,
                                     NormScale::OnePlusWeight, y.data(), mean.data(), rstd.data());
      return test::dot(y.data(), wy.data(), n * c);
    };
    fwd();
    ref::multihead_norm_ref(n, heads, d, x.data(), w.data(), b.data(), kEps,
                            NormScale::OnePlusWeight, want.data());
    expect_close("y", y.data(), want.data(), n * c, 1e-12, 1e-12);
    std::vector<double> dx(n * c), dw(c, 0.0), db(c, 0.0);
    multihead_norm_backward<double>(n, heads, d, x.data(), w.data(), NormScale::OnePlusWeight,
                                    mean.data(), rstd.data(), wy.data(), dx.data(), dw.data(),
                                    db.data());
    test::expect_grad("dw", fwd, w.data(), c, dw.data(), 1e-6, 1e-6);
    test::expect_grad("db", fwd, b.data(), c, db.data(), 1e-6, 1e-6);
    fwd();  // the finite differences left y from a perturbed input
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    std::vector<double> y1(n * c), mean1(rows), rstd1(rows), dx1(n * c), dw1(c, 0.0), db1(c, 0.0);
    multihead_norm_forward<double>(n, heads, d, x.data(), w.data(), b.data(), kEps,
                                   NormScale::OnePlusWeight, y1.data(), mean1.data(), rstd1.data());
    multihead_norm_backward<double>(n, heads, d, x.data(), w.data(), NormScale::OnePlusWeight,
                                    mean.data(), rstd.data(), wy.data(), dx1.data(), dw1.data(),
                                    db1.data());
    omp_set_num_threads(threads);
    expect_close("y 1 thread", y1.data(), y.data(), n * c, 0, 0);
    expect_close("dx 1 thread", dx1.data(), dx.data(), n * c, 0, 0);
    expect_close("dw 1 thread", dw1.data(), dw.data(), c, 0, 0);
    expect_close("db 1 thread", db1.data(), db.data(), c, 0, 0);
  }
}
