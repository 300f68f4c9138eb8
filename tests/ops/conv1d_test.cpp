// conv1d: causal depthwise conv with carried state vs float64 spec (K = 1, 2, 4; with and
// without state and bias), finite-difference gradients of every output, accumulate semantics,
// and one call over T == two calls over T/2 with the state carried.
#include <gtest/gtest.h>
#include <omp.h>

#include <string>
#include <vector>

#include "cpu/conv1d.h"
#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "ref/ops_ref.h"

using namespace xlstm;
using test::expect_close;
using test::randn;

namespace {
constexpr int64_t B = 2, F = 5;
std::vector<float> to_f(const std::vector<double>& v) { return {v.begin(), v.end()}; }
}  // namespace

TEST(Conv1d, ForwardMatchesRef) {
  Rng rng(1);
  // T < K-1 (T = 2, K = 4) makes state_out mix state_in and x.
  for (int64_t K : {1, 2, 4})
    for (int64_t Tn : {2, 7})
      for (bool with_state : {true, false}) {
        const std::string tag = "K=" + std::to_string(K) + " T=" + std::to_string(Tn) +
                                (with_state ? " state" : " no state");
        const int64_t S = K - 1;
        auto x = randn<double>(B * Tn * F, rng), w = randn<double>(F * K, rng);
        auto bias = randn<double>(F, rng), st = randn<double>(B * S * F, rng);
        const double* sp = with_state ? st.data() : nullptr;
        const double* bp = with_state ? bias.data() : nullptr;  // vary the bias with the state
        std::vector<double> want(B * Tn * F), wso(B * S * F), got(B * Tn * F), gso(B * S * F);
        ref::conv1d_ref(B, Tn, F, K, x.data(), w.data(), bp, sp, want.data(), wso.data());
        conv1d_forward<double>(B, Tn, F, K, x.data(), w.data(), bp, sp, got.data(), gso.data());
        expect_close("y f64 " + tag, got.data(), want.data(), B * Tn * F, 1e-12, 1e-12);
        expect_close("state_out f64 " + tag, gso.data(), wso.data(), B * S * F, 0, 0);
        auto xf = to_f(x), wf = to_f(w), bf = to_f(bias), sf = to_f(st);
        std::vector<float> gotf(B * Tn * F), gsof(B * S * F);
        conv1d_forward<float>(B, Tn, F, K, xf.data(), wf.data(), bp ? bf.data() : nullptr,
                              sp ? sf.data() : nullptr, gotf.data(), gsof.data());
        expect_close("y f32 " + tag, gotf.data(), want.data(), B * Tn * F, 1e-5, 1e-5);
        expect_close("state_out f32 " + tag, gsof.data(), wso.data(), B * S * F, 1e-6, 1e-6);
        // state_out may be null.
        conv1d_forward<double>(B, Tn, F, K, x.data(), w.data(), bp, sp, got.data(), nullptr);
        expect_close("y (state_out null) " + tag, got.data(), want.data(), B * Tn * F, 1e-12, 1e-12);
      }
}

TEST(Conv1d, GradCheck) {
  Rng rng(2);
  for (int64_t K : {1, 2, 4})
    for (int64_t Tn : {2, 6}) {
      const std::string tag = " K=" + std::to_string(K) + " T=" + std::to_string(Tn);
      const int64_t S = K - 1, NY = B * Tn * F, NS = B * S * F;
      auto x = randn<double>(NY, rng), w = randn<double>(F * K, rng), bias = randn<double>(F, rng);
      auto st = randn<double>(NS, rng), wy = randn<double>(NY, rng), ws = randn<double>(NS, rng);
      std::vector<double> y(NY), so(NS);
      auto loss = [&] {
        conv1d_forward<double>(B, Tn, F, K, x.data(), w.data(), bias.data(), st.data(), y.data(),
                               so.data());
        return test::dot(y.data(), wy.data(), NY) + test::dot(so.data(), ws.data(), NS);
      };
      std::vector<double> dx(NY), dw(F * K, 0.0), db(F, 0.0), dst(NS);
      conv1d_backward<double>(B, Tn, F, K, x.data(), w.data(), st.data(), wy.data(), ws.data(),
                              dx.data(), dw.data(), db.data(), dst.data());
      test::expect_grad("dx" + tag, loss, x.data(), NY, dx.data());
      test::expect_grad("dw" + tag, loss, w.data(), F * K, dw.data());
      test::expect_grad("dbias" + tag, loss, bias.data(), F, db.data());
      test::expect_grad("dstate_in" + tag, loss, st.data(), NS, dst.data());

      // dstate_out null == zeros; state_in null == zeros.
      std::vector<double> zeros(NS, 0.0), a(NY), b(NY), dwa(F * K, 0.0), dwb(F * K, 0.0);
      conv1d_backward<double>(B, Tn, F, K, x.data(), w.data(), nullptr, wy.data(), nullptr,
                              a.data(), dwa.data(), nullptr, nullptr);
      conv1d_backward<double>(B, Tn, F, K, x.data(), w.data(), zeros.data(), wy.data(),
                              zeros.data(), b.data(), dwb.data(), nullptr, nullptr);
      expect_close("dx nulls" + tag, a.data(), b.data(), NY, 0, 0);
      expect_close("dw nulls" + tag, dwa.data(), dwb.data(), F * K, 0, 0);

      auto xf = to_f(x), wf = to_f(w), sf = to_f(st), dyf = to_f(wy), dsf = to_f(ws);
      std::vector<float> dxf(NY), dwf(F * K, 0.f), dbf(F, 0.f), dstf(NS);
      conv1d_backward<float>(B, Tn, F, K, xf.data(), wf.data(), sf.data(), dyf.data(), dsf.data(),
                             dxf.data(), dwf.data(), dbf.data(), dstf.data());
      expect_close("dx f32" + tag, dxf.data(), dx.data(), NY, 1e-5, 1e-4);
      expect_close("dw f32" + tag, dwf.data(), dw.data(), F * K, 1e-5, 1e-4);
      expect_close("dbias f32" + tag, dbf.data(), db.data(), F, 1e-5, 1e-4);
      expect_close("dstate_in f32" + tag, dstf.data(), dst.data(), NS, 1e-5, 1e-4);
    }
}

TEST(Conv1d, BackwardAccumulatesParamGrads) {
  Rng rng(3);
  constexpr int64_t K = 4, Tn = 7, S = K - 1, NY = B * Tn * F, NS = B * S * F;
  auto x = randn<double>(NY, rng), w = randn<double>(F * K, rng), st = randn<double>(NS, rng);
  auto dy = randn<double>(NY, rng), dso = randn<double>(NS, rng);
  std::vector<double> dx1(NY), dw1(F * K, 0.0), db1(F, 0.0), ds1(NS);
  conv1d_backward<double>(B, Tn, F, K, x.data(), w.data(), st.data(), dy.data(), dso.data(),
                          dx1.data(), dw1.data(), db1.data(), ds1.data());
  std::vector<double> dx2(NY, 7.0), dw2(F * K, 0.0), db2(F, 0.0), ds2(NS, 7.0);
  for (int rep = 0; rep < 2; ++rep)
    conv1d_backward<double>(B, Tn, F, K, x.data(), w.data(), st.data(), dy.data(), dso.data(),
                            dx2.data(), dw2.data(), db2.data(), ds2.data());
  for (auto& v : dw1) v *= 2;
  for (auto& v : db1) v *= 2;
  expect_close("dx written", dx2.data(), dx1.data(), NY, 0, 0);
  expect_close("dstate_in written", ds2.data(), ds1.data(), NS, 0, 0);
  expect_close("dw doubled", dw2.data(), dw1.data(), F * K, 1e-14, 1e-14);
  expect_close("dbias doubled", db2.data(), db1.data(), F, 1e-14, 1e-14);

  // dx_accumulate: dx += the input gradient; dstate_in is still written.
  std::vector<double> dx3(NY), want(NY), dw3(F * K, 0.0), ds3(NS, 7.0);
  for (int64_t k = 0; k < NY; ++k) dx3[k] = 0.25 * (double)k, want[k] = dx3[k] + dx1[k];
  conv1d_backward<double>(B, Tn, F, K, x.data(), w.data(), st.data(), dy.data(), dso.data(),
                          dx3.data(), dw3.data(), nullptr, ds3.data(), true);
  expect_close("dx accumulated", dx3.data(), want.data(), NY, 1e-13, 1e-13);
  expect_close("dstate_in written (accumulate)", ds3.data(), ds1.data(), NS, 0, 0);
}

TEST(Conv1d, CarriedStateSplitsTime) {
  Rng rng(4);
  constexpr int64_t K = 4, Tn = 8, S = K - 1, H = Tn / 2;
  auto x = randn<double>(B * Tn * F, rng), w = randn<double>(F * K, rng);
  auto bias = randn<double>(F, rng);
  std::vector<double> y(B * Tn * F), so(B * S * F);
  conv1d_forward<double>(B, Tn, F, K, x.data(), w.data(), bias.data(), nullptr, y.data(), so.data());
  // Halves: x[:, :H] and x[:, H:] as separate (B, H, F) buffers.
  std::vector<double> x1(B * H * F), x2(B * H * F), y1(B * H * F), y2(B * H * F), s1(B * S * F),
      s2(B * S * F);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < H; ++t)
      for (int64_t f = 0; f < F; ++f) {
        x1[(b * H + t) * F + f] = x[(b * Tn + t) * F + f];
        x2[(b * H + t) * F + f] = x[(b * Tn + H + t) * F + f];
      }
  conv1d_forward<double>(B, H, F, K, x1.data(), w.data(), bias.data(), nullptr, y1.data(), s1.data());
  conv1d_forward<double>(B, H, F, K, x2.data(), w.data(), bias.data(), s1.data(), y2.data(), s2.data());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < H; ++t)
      for (int64_t f = 0; f < F; ++f) {
        EXPECT_EQ(y1[(b * H + t) * F + f], y[(b * Tn + t) * F + f]);
        EXPECT_EQ(y2[(b * H + t) * F + f], y[(b * Tn + H + t) * F + f]);
      }
  expect_close("state_out", s2.data(), so.data(), B * S * F, 0, 0);
}

// Sizes above the OpenMP thresholds and over several 64-feature blocks: the parallel paths.
TEST(Conv1d, LargeParallelPath) {
  constexpr int64_t b = 3, tn = 67, f = 71, k = 4, s = k - 1, ny = b * tn * f, ns = b * s * f;
  Rng rng(8);
  auto x = randn<double>(ny, rng), w = randn<double>(f * k, rng), bias = randn<double>(f, rng);
  auto st = randn<double>(ns, rng), wy = randn<double>(ny, rng), ws = randn<double>(ns, rng);
  std::vector<double> want(ny), wso(ns), y(ny), so(ns);
  ref::conv1d_ref(b, tn, f, k, x.data(), w.data(), bias.data(), st.data(), want.data(), wso.data());
  auto fwd = [&] {
    conv1d_forward<double>(b, tn, f, k, x.data(), w.data(), bias.data(), st.data(), y.data(),
                           so.data());
    return test::dot(y.data(), wy.data(), ny) + test::dot(so.data(), ws.data(), ns);
  };
  fwd();
  expect_close("y", y.data(), want.data(), ny, 1e-12, 1e-12);
  expect_close("state_out", so.data(), wso.data(), ns, 0, 0);
  std::vector<double> dx(ny), dw(f * k, 0.0), db(f, 0.0), dst(ns);
  conv1d_backward<double>(b, tn, f, k, x.data(), w.data(), st.data(), wy.data(), ws.data(),
                          dx.data(), dw.data(), db.data(), dst.data());
  test::expect_grad("dw", fwd, w.data(), f * k, dw.data(), 1e-6, 1e-6);
  test::expect_grad("dbias", fwd, bias.data(), f, db.data(), 1e-6, 1e-6);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<double> dx1(ny), dw1(f * k, 0.0), db1(f, 0.0), dst1(ns);
  conv1d_backward<double>(b, tn, f, k, x.data(), w.data(), st.data(), wy.data(), ws.data(),
                          dx1.data(), dw1.data(), db1.data(), dst1.data());
  omp_set_num_threads(threads);
  expect_close("dx 1 thread", dx1.data(), dx.data(), ny, 0, 0);
  expect_close("dw 1 thread", dw1.data(), dw.data(), f * k, 0, 0);
  expect_close("dbias 1 thread", db1.data(), db.data(), f, 0, 0);
  expect_close("dstate_in 1 thread", dst1.data(), dst.data(), ns, 0, 0);
}
