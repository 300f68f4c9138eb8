// LSTM (cpu/lstm.h kernel through nn/lstm.h): against the float64 spec (ref/lstm_ref.h),
// finite-difference gradients, carried state, determinism, and errors at the door.
#include "nn/lstm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "ref/lstm_ref.h"

using namespace xlstm;

namespace {

struct Cfg {
  int64_t B, T, I, H, L;
  bool bidir, bias, state;
};

LSTMConfig make_cfg(const Cfg& c, double dropout = 0.0) {
  LSTMConfig m;
  m.input_size = c.I, m.hidden_size = c.H, m.num_layers = c.L, m.bias = c.bias;
  m.bidirectional = c.bidir, m.dropout = dropout;
  return m;
}

template <class T>
Tensor randn_tensor(const Shape& s, Rng& rng, double std = 1.0) {
  return Tensor::from<T>(s, test::randn<T>(shape_numel(s), rng, 0.0, std));
}

// Parameters of `m` by name, as float64 tensors.
template <class T>
std::map<std::string, Tensor> param_map(LSTM<T>& m) {
  std::map<std::string, Tensor> r;
  for (auto& p : m.params()) r[p.name] = p.value->to(DType::F64);
  return r;
}

// The float64 spec on the parameters of `m`.
void run_ref(const Cfg& c, std::map<std::string, Tensor>& P, const Tensor& x, const Tensor& h0,
             const Tensor& c0, std::vector<double>& y, std::vector<double>& hn,
             std::vector<double>& cn) {
  const int64_t D = c.bidir ? 2 : 1;
  ref::LstmRefParams rp;
  for (int64_t l = 0; l < c.L; ++l)
    for (int64_t d = 0; d < D; ++d) {
      const std::string sfx = "_l" + std::to_string(l) + (d ? "_reverse" : "");
      rp.w_ih.push_back(P["weight_ih" + sfx].data<double>());
      rp.w_hh.push_back(P["weight_hh" + sfx].data<double>());
      rp.b_ih.push_back(c.bias ? P["bias_ih" + sfx].data<double>() : nullptr);
      rp.b_hh.push_back(c.bias ? P["bias_hh" + sfx].data<double>() : nullptr);
    }
  y.assign((size_t)(c.B * c.T * D * c.H), 0.0);
  hn.assign((size_t)(c.L * D * c.B * c.H), 0.0);
  cn = hn;
  ref::lstm_stack_ref(c.B, c.T, c.I, c.H, c.L, D, rp, x.data<double>(),
                      h0.defined() ? h0.data<double>() : nullptr,
                      c0.defined() ? c0.data<double>() : nullptr, y.data(), hn.data(), cn.data());
}

// ---- (1) kernel == spec ------------------------------------------------------------------

class LstmVsRef : public ::testing::TestWithParam<Cfg> {};

template <class T>
void check_vs_ref(const Cfg& c, double atol, double rtol) {
  Rng rng(1234 + c.B * 7 + c.H);
  LSTM<double> m64(make_cfg(c), 99);
  LSTM<T> m(make_cfg(c), 5);
  auto P = param_map(m64);
  m.load_params(P, "test");
  const int64_t D = c.bidir ? 2 : 1;
  Tensor x = randn_tensor<double>({c.B, c.T, c.I}, rng);
  Tensor h0, c0;
  if (c.state) {
    h0 = randn_tensor<double>({c.L * D, c.B, c.H}, rng, 0.5);
    c0 = randn_tensor<double>({c.L * D, c.B, c.H}, rng, 0.5);
  }
  std::vector<double> y, hn, cn;
  run_ref(c, P, x, h0, c0, y, hn, cn);
  const DType dt = DTypeOf<T>::value;
  auto o = m.forward(x.to(dt), c.state ? h0.to(dt) : Tensor(), c.state ? c0.to(dt) : Tensor());
  test::expect_close("output", o.output.template data<T>(), y.data(), (int64_t)y.size(), atol,
                     rtol);
  test::expect_close("h_n", o.h_n.template data<T>(), hn.data(), (int64_t)hn.size(), atol, rtol);
  test::expect_close("c_n", o.c_n.template data<T>(), cn.data(), (int64_t)cn.size(), atol, rtol);
}

TEST_P(LstmVsRef, Double) { check_vs_ref<double>(GetParam(), 1e-12, 1e-12); }
TEST_P(LstmVsRef, Float) { check_vs_ref<float>(GetParam(), 1e-5, 1e-5); }

INSTANTIATE_TEST_SUITE_P(
    Shapes, LstmVsRef,
    ::testing::Values(Cfg{3, 7, 5, 6, 1, false, true, false},    // the conformance shape
                      Cfg{3, 7, 5, 6, 1, false, true, true},     // given (h0, c0)
                      Cfg{1, 1, 3, 17, 1, false, true, true},    // B = 1, T = 1
                      Cfg{1, 1, 4, 5, 2, true, true, false},     // T = 1, stacked bidirectional
                      Cfg{2, 9, 33, 19, 2, true, true, true},    // odd sizes, 2 layers, bidir
                      Cfg{5, 4, 8, 40, 1, true, false, false},   // no bias
                      Cfg{4, 5, 7, 3, 3, false, true, true},     // 3 layers, H < vector width
                      Cfg{16, 3, 7, 520, 1, true, true, true}),  // B*H large: threaded pointwise
    [](const ::testing::TestParamInfo<Cfg>& i) {
      const Cfg& c = i.param;
      return "B" + std::to_string(c.B) + "_T" + std::to_string(c.T) + "_I" + std::to_string(c.I) +
             "_H" + std::to_string(c.H) + "_L" + std::to_string(c.L) + (c.bidir ? "_bidir" : "") +
             (c.bias ? "" : "_nobias") + (c.state ? "_state" : "");
    });

TEST(LstmActivations, FastFloatFormsAreAccurate) {
  double worst_sig = 0, worst_tanh = 0, worst_tanh_rel = 0;
  for (double v = -30.0; v <= 30.0; v += 1.0 / 1024) {
    const float f = (float)v;
    const double s = 1.0 / (1.0 + std::exp(-(double)f)), t = std::tanh((double)f);
    worst_sig = std::max(worst_sig, std::fabs(lstm_fast_sigmoid(f) - s));
    worst_tanh = std::max(worst_tanh, std::fabs(lstm_fast_tanh(f) - t));
    if (t != 0)
      worst_tanh_rel = std::max(worst_tanh_rel, std::fabs(lstm_fast_tanh(f) - t) / std::fabs(t));
  }
  EXPECT_LT(worst_sig, 2e-7);
  EXPECT_LT(worst_tanh, 2e-7);
  EXPECT_LT(worst_tanh_rel, 1e-6);
  EXPECT_EQ(lstm_fast_tanh(1e-30f), 1e-30f);
  EXPECT_EQ(lstm_fast_sigmoid(-200.f) >= 0.f && lstm_fast_sigmoid(-200.f) < 1e-30f, true);
  EXPECT_EQ(lstm_fast_sigmoid(200.f), 1.f);
  EXPECT_EQ(lstm_fast_tanh(200.f), 1.f);
  EXPECT_EQ(lstm_fast_tanh(-200.f), -1.f);
  EXPECT_TRUE(std::isnan(lstm_fast_sigmoid(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(lstm_fast_tanh(std::numeric_limits<float>::quiet_NaN())));
}

TEST(Lstm, ParameterNamesAreTorchs) {
  LSTM<double> m(make_cfg({1, 1, 5, 6, 2, true, true, false}));
  std::vector<std::string> names;
  for (auto& p : m.params()) names.push_back(p.name + shape_str(p.value->shape()));
  const std::vector<std::string> want = {"weight_ih_l0(24,5)",
                                         "weight_hh_l0(24,6)",
                                         "bias_ih_l0(24)",
                                         "bias_hh_l0(24)",
                                         "weight_ih_l0_reverse(24,5)",
                                         "weight_hh_l0_reverse(24,6)",
                                         "bias_ih_l0_reverse(24)",
                                         "bias_hh_l0_reverse(24)",
                                         "weight_ih_l1(24,12)",
                                         "weight_hh_l1(24,6)",
                                         "bias_ih_l1(24)",
                                         "bias_hh_l1(24)",
                                         "weight_ih_l1_reverse(24,12)",
                                         "weight_hh_l1_reverse(24,6)",
                                         "bias_ih_l1_reverse(24)",
                                         "bias_hh_l1_reverse(24)"};
  EXPECT_EQ(names, want);
  LSTM<double> nb(make_cfg({1, 1, 5, 6, 1, false, false, false}));
  EXPECT_EQ(nb.params().size(), 2u);
}

// ---- (2) finite-difference gradients -------------------------------------------------------

void gradcheck(const Cfg& c, double dropout = 0.0) {
  const int64_t D = c.bidir ? 2 : 1, LD = c.L * D;
  Rng rng(77 + c.L * 10 + D);
  LSTM<double> m(make_cfg(c, dropout), 3);
  const LstmMode mode = dropout > 0 ? LstmMode::Train : LstmMode::Eval;
  Tensor x = randn_tensor<double>({c.B, c.T, c.I}, rng);
  Tensor h0, c0;
  if (c.state) {
    h0 = randn_tensor<double>({LD, c.B, c.H}, rng, 0.5);
    c0 = randn_tensor<double>({LD, c.B, c.H}, rng, 0.5);
  }
  Tensor w1 = randn_tensor<double>({c.B, c.T, D * c.H}, rng);
  Tensor w2 = randn_tensor<double>({LD, c.B, c.H}, rng);
  Tensor w3 = randn_tensor<double>({LD, c.B, c.H}, rng);
  Rng drop_rng(0);
  auto loss = [&] {
    drop_rng.reseed(42);  // the same dropout mask at every evaluation
    auto o = m.forward(x, h0, c0, mode, &drop_rng);
    return test::dot(o.output.data<double>(), w1.data<double>(), w1.numel()) +
           test::dot(o.h_n.data<double>(), w2.data<double>(), w2.numel()) +
           test::dot(o.c_n.data<double>(), w3.data<double>(), w3.numel());
  };
  m.zero_grad();
  loss();
  auto g = m.backward(w1, w2, w3);
  // Copies: the FD loop re-runs forward, and grads must not be touched by it.
  std::vector<std::pair<std::string, std::vector<double>>> pg;
  for (auto& p : m.params()) {
    const double* d = p.grad->data<double>();
    pg.push_back({p.name, std::vector<double>(d, d + p.grad->numel())});
  }
  test::expect_grad("dx", loss, x.data<double>(), x.numel(), g.dx.data<double>());
  if (c.state) {
    test::expect_grad("dh0", loss, h0.data<double>(), h0.numel(), g.dh0.data<double>());
    test::expect_grad("dc0", loss, c0.data<double>(), c0.numel(), g.dc0.data<double>());
  }
  auto ps = m.params();
  for (size_t k = 0; k < ps.size(); ++k)
    test::expect_grad("d" + ps[k].name, loss, ps[k].value->data<double>(), ps[k].value->numel(),
                      pg[k].second.data());
}

TEST(LstmGrad, OneLayer) { gradcheck({2, 4, 3, 4, 1, false, true, true}); }
TEST(LstmGrad, OneLayerZeroState) { gradcheck({2, 3, 3, 5, 1, false, true, false}); }
TEST(LstmGrad, OneLayerBidirectional) { gradcheck({2, 4, 3, 4, 1, true, true, true}); }
TEST(LstmGrad, TwoLayersBidirectional) { gradcheck({2, 4, 3, 4, 2, true, true, true}); }
TEST(LstmGrad, TwoLayersNoBiasTimeOne) { gradcheck({3, 1, 2, 3, 2, true, false, true}); }
TEST(LstmGrad, TwoLayersDropout) { gradcheck({2, 4, 3, 4, 2, false, true, true}, 0.4); }

// Parameter gradients accumulate (+=): two backward passes give twice the gradient.
TEST(LstmGrad, ParamGradsAccumulate) {
  const Cfg c{2, 3, 3, 4, 2, true, true, true};
  Rng rng(5);
  LSTM<double> m(make_cfg(c), 1);
  Tensor x = randn_tensor<double>({c.B, c.T, c.I}, rng);
  Tensor h0 = randn_tensor<double>({4, c.B, c.H}, rng),
         c0 = randn_tensor<double>({4, c.B, c.H}, rng);
  auto o = m.forward(x, h0, c0);
  Tensor dy = randn_tensor<double>(o.output.shape(), rng);
  m.zero_grad();
  m.backward(dy);
  std::vector<std::vector<double>> once;
  for (auto& p : m.params()) once.push_back(p.grad->to_f64());
  m.backward(dy);
  auto ps = m.params();
  for (size_t k = 0; k < ps.size(); ++k) {
    std::vector<double> twice = once[k];
    for (auto& v : twice) v *= 2;
    test::expect_close(ps[k].name, ps[k].grad->data<double>(), twice.data(), (int64_t)twice.size(),
                       1e-14, 1e-13);
  }
}

// The float path (packed oneDNN matmuls, accumulate modes, threaded pointwise) against the
// double path on every gradient, at sizes where the GEMMs block and the pointwise is threaded.
TEST(LstmGrad, FloatMatchesDouble) {
  const Cfg c{32, 5, 72, 264, 2, true, true, true};
  Rng rng(8);
  LSTM<double> m64(make_cfg(c), 6);
  LSTM<float> m32(make_cfg(c), 0);
  auto P = param_map(m64);
  m32.load_params(P, "test");
  Tensor x = randn_tensor<double>({c.B, c.T, c.I}, rng);
  Tensor h0 = randn_tensor<double>({4, c.B, c.H}, rng, 0.5);
  Tensor c0 = randn_tensor<double>({4, c.B, c.H}, rng, 0.5);
  auto o64 = m64.forward(x, h0, c0);
  auto o32 = m32.forward(x.to(DType::F32), h0.to(DType::F32), c0.to(DType::F32));
  test::expect_close("output", o32.output.data<float>(), o64.output.data<double>(),
                     o64.output.numel(), 1e-5, 1e-4);
  Tensor dy = randn_tensor<double>(o64.output.shape(), rng);
  Tensor dhn = randn_tensor<double>(o64.h_n.shape(), rng);
  Tensor dcn = randn_tensor<double>(o64.c_n.shape(), rng);
  m64.zero_grad();
  m32.zero_grad();
  auto g64 = m64.backward(dy, dhn, dcn);
  auto g32 = m32.backward(dy.to(DType::F32), dhn.to(DType::F32), dcn.to(DType::F32));
  test::expect_close("dx", g32.dx.data<float>(), g64.dx.data<double>(), g64.dx.numel(), 1e-4, 1e-3);
  test::expect_close("dh0", g32.dh0.data<float>(), g64.dh0.data<double>(), g64.dh0.numel(), 1e-4,
                     1e-3);
  test::expect_close("dc0", g32.dc0.data<float>(), g64.dc0.data<double>(), g64.dc0.numel(), 1e-4,
                     1e-3);
  auto p32 = m32.params(), p64 = m64.params();
  for (size_t k = 0; k < p64.size(); ++k)
    test::expect_close("d" + p64[k].name, p32[k].grad->data<float>(), p64[k].grad->data<double>(),
                       p64[k].grad->numel(), 1e-3, 1e-3);
}

// ---- (3) one call over T == two calls over T/2 with carried state -------------------------

template <class T>
void check_split(int64_t B, int64_t TT, int64_t I, int64_t H, int64_t L) {
  Rng rng(11);
  const DType dt = DTypeOf<T>::value;
  LSTM<T> m(make_cfg({B, TT, I, H, L, false, true, true}), 8);
  Tensor x = randn_tensor<double>({B, TT, I}, rng).to(dt);
  Tensor h0 = randn_tensor<double>({L, B, H}, rng, 0.5).to(dt);
  Tensor c0 = randn_tensor<double>({L, B, H}, rng, 0.5).to(dt);
  auto full = m.forward(x, h0, c0);
  const int64_t T1 = TT / 2, T2 = TT - T1;
  Tensor x1({B, T1, I}, dt), x2({B, T2, I}, dt);
  for (int64_t b = 0; b < B; ++b) {
    std::memcpy(x1.template data<T>() + b * T1 * I, x.template data<T>() + b * TT * I,
                sizeof(T) * T1 * I);
    std::memcpy(x2.template data<T>() + b * T2 * I, x.template data<T>() + (b * TT + T1) * I,
                sizeof(T) * T2 * I);
  }
  auto a = m.forward(x1, h0, c0);
  auto bb = m.forward(x2, a.h_n, a.c_n);
  for (int64_t b = 0; b < B; ++b) {
    EXPECT_EQ(0, std::memcmp(a.output.template data<T>() + b * T1 * H,
                             full.output.template data<T>() + b * TT * H, sizeof(T) * T1 * H))
        << "first half, batch row " << b;
    EXPECT_EQ(0,
              std::memcmp(bb.output.template data<T>() + b * T2 * H,
                          full.output.template data<T>() + (b * TT + T1) * H, sizeof(T) * T2 * H))
        << "second half, batch row " << b;
  }
  EXPECT_EQ(0,
            std::memcmp(bb.h_n.template data<T>(), full.h_n.template data<T>(), full.h_n.nbytes()));
  EXPECT_EQ(0,
            std::memcmp(bb.c_n.template data<T>(), full.c_n.template data<T>(), full.c_n.nbytes()));

  // The streaming step API agrees with the sequence forward (same math, other GEMM order).
  Tensor h = h0.clone(), c = c0.clone(), xt({B, I}, dt);
  const double tol = sizeof(T) == 8 ? 1e-13 : 2e-6;
  for (int64_t t = 0; t < TT; ++t) {
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(xt.template data<T>() + b * I, x.template data<T>() + (b * TT + t) * I,
                  sizeof(T) * I);
    m.step(xt, h, c);
    std::vector<double> want((size_t)(B * H));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < H; ++j)
        want[(size_t)(b * H + j)] = full.output.template data<T>()[(b * TT + t) * H + j];
    test::expect_close("step h t=" + std::to_string(t), h.template data<T>() + (L - 1) * B * H,
                       want.data(), B * H, tol, tol);
  }
  test::expect_close("step c_n", c.template data<T>(), full.c_n.template data<T>(), c.numel(), tol,
                     tol);
}

TEST(LstmCarry, SplitEqualsFullDouble) { check_split<double>(3, 10, 5, 7, 2); }
TEST(LstmCarry, SplitEqualsFullFloat) { check_split<float>(3, 10, 5, 7, 2); }
TEST(LstmCarry, SplitEqualsFullFloatThreaded) { check_split<float>(20, 6, 16, 512, 1); }
// The decode kernel (B <= 4) with full 32-column blocks and masked tails (I 37, H 70).
TEST(LstmCarry, SplitEqualsFullFloatDecodeBlocks) { check_split<float>(2, 6, 37, 70, 2); }

// ---- (4) backward twice is bitwise identical -------------------------------------------------

template <class T>
void check_backward_twice(const Cfg& c) {
  Rng rng(21);
  const DType dt = DTypeOf<T>::value;
  const int64_t D = c.bidir ? 2 : 1;
  LSTM<T> m(make_cfg(c), 4);
  Tensor x = randn_tensor<double>({c.B, c.T, c.I}, rng).to(dt);
  Tensor h0 = randn_tensor<double>({c.L * D, c.B, c.H}, rng).to(dt);
  Tensor c0 = randn_tensor<double>({c.L * D, c.B, c.H}, rng).to(dt);
  auto o = m.forward(x, h0, c0);
  Tensor dy = randn_tensor<double>(o.output.shape(), rng).to(dt);
  Tensor dhn = randn_tensor<double>(o.h_n.shape(), rng).to(dt);
  Tensor dcn = randn_tensor<double>(o.c_n.shape(), rng).to(dt);
  std::vector<Tensor> first;
  for (int rep = 0; rep < 2; ++rep) {
    m.zero_grad();
    auto g = m.backward(dy, dhn, dcn);
    std::vector<Tensor> all = {g.dx, g.dh0, g.dc0};
    for (auto& p : m.params()) all.push_back(p.grad->clone());
    if (rep == 0) {
      first = all;
      continue;
    }
    for (size_t k = 0; k < all.size(); ++k)
      EXPECT_EQ(0, std::memcmp(all[k].raw(), first[k].raw(), all[k].nbytes())) << "tensor " << k;
  }
}

TEST(LstmDeterminism, BackwardTwiceDouble) {
  check_backward_twice<double>({3, 6, 5, 7, 2, true, true, true});
}
TEST(LstmDeterminism, BackwardTwiceFloat) {
  check_backward_twice<float>({3, 6, 5, 7, 2, true, true, true});
}
TEST(LstmDeterminism, BackwardTwiceFloatThreaded) {
  check_backward_twice<float>({24, 5, 32, 512, 1, true, true, true});
}

// ---- bf16 decode weights -----------------------------------------------------------------------

// step() with bf16 weight copies equals step() of the same model whose float weights were
// rounded to bf16 (bf16 widens exactly; with AVX512_BF16 the activations enter the products as
// two bf16 halves, ~1e-5 relative), over several steps, 1 and 2 threads, B 1, 3 and 4 (the
// kernel takes batch rows in pairs and a single one alone), sizes with 32-column chunk tails
// and an odd number of chunks per unit (I 40 + H 72 -> 2 + 3 chunks); off again = the float
// weights; double refuses.
TEST(LstmStep, Bf16WeightsEqualRoundedFloatWeights) {
  const int nt = omp_get_max_threads();
  const Cfg c{4, 5, 69, 72, 2, false, true, false};
  for (const Cfg& cc : {c, Cfg{4, 3, 40, 72, 1, false, false, false}}) {
    LSTM<float> m(make_cfg(cc), 3), r(make_cfg(cc), 3);
    for (auto& p : r.params()) {
      float* v = p.value->data<float>();
      if (p.value->ndim() == 2)
        for (int64_t k = 0; k < p.value->numel(); ++k) v[k] = bf16_to_f32(f32_to_bf16(v[k]));
    }
    m.set_step_bf16(true);
    EXPECT_TRUE(m.step_bf16());
    Rng rng(5);
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      for (int64_t B : {1, 3, 4}) {
        Tensor hm({cc.L, B, cc.H}, DType::F32), cm({cc.L, B, cc.H}, DType::F32);
        Tensor hr = hm.clone(), cr = cm.clone();
        for (int64_t t = 0; t < cc.T; ++t) {
          Tensor x = randn_tensor<float>({B, cc.I}, rng);
          m.step(x, hm, cm);
          r.step(x, hr, cr);
          test::expect_close("h", hm.data<float>(), hr.data<float>(), hm.numel(), 2e-5, 2e-5);
          test::expect_close("c", cm.data<float>(), cr.data<float>(), cm.numel(), 2e-5, 2e-5);
        }
      }
    }
  }
  omp_set_num_threads(nt);
  // off again: bitwise the model that never had bf16 weights; on: differs from it
  LSTM<float> m(make_cfg(c), 3), f(make_cfg(c), 3), b(make_cfg(c), 3);
  m.set_step_bf16(true);
  m.set_step_bf16(false);
  EXPECT_FALSE(m.step_bf16());
  b.set_step_bf16(true);
  Rng rng(7);
  Tensor x = randn_tensor<float>({1, c.I}, rng);
  Tensor h1({c.L, 1, c.H}, DType::F32), c1({c.L, 1, c.H}, DType::F32);
  Tensor h2 = h1.clone(), c2 = c1.clone(), h3 = h1.clone(), c3 = c1.clone();
  m.step(x, h1, c1);
  f.step(x, h2, c2);
  b.step(x, h3, c3);
  EXPECT_EQ(0, std::memcmp(h1.raw(), h2.raw(), h1.nbytes()));
  EXPECT_NE(0, std::memcmp(h1.raw(), h3.raw(), h1.nbytes()));
  LSTM<double> d(make_cfg(c), 3);
  EXPECT_THROW(d.set_step_bf16(true), TypeError);
}

// ---- batch-split recurrence (2 threads, small steps) -----------------------------------------

// On 2+ threads a float LSTM whose per-step products are small runs each thread's block of
// batch rows through all steps (cpu/lstm.cpp split_rows). Against the float64 spec on 2
// threads (forward, odd B so that the blocks differ in size), and forward and backward against
// the unsplit loop on 1 thread: outputs and states bit for bit, gradients to rounding (the
// bias gradient is summed per block).
TEST(LstmThreads, BatchSplitMatchesOneThreadAndSpec) {
  const int nt = omp_get_max_threads();
  const Cfg c{7, 6, 5, 16, 2, true, true, true};
  omp_set_num_threads(2);
  check_vs_ref<float>(c, 1e-5, 1e-5);
  Rng rng(33);
  const int64_t D = 2;
  LSTM<float> m(make_cfg(c), 8);
  Tensor x = randn_tensor<float>({c.B, c.T, c.I}, rng);
  Tensor h0 = randn_tensor<float>({c.L * D, c.B, c.H}, rng, 0.5);
  Tensor c0 = randn_tensor<float>({c.L * D, c.B, c.H}, rng, 0.5);
  Tensor dy = randn_tensor<float>({c.B, c.T, D * c.H}, rng);
  Tensor dhn = randn_tensor<float>({c.L * D, c.B, c.H}, rng);
  Tensor dcn = randn_tensor<float>({c.L * D, c.B, c.H}, rng);
  std::vector<Tensor> got[2];
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    auto o = m.forward(x, h0, c0);
    m.zero_grad();
    auto g = m.backward(dy, dhn, dcn);
    std::vector<Tensor> all = {o.output.clone(), o.h_n.clone(), o.c_n.clone(), g.dx, g.dh0, g.dc0};
    for (auto& p : m.params()) all.push_back(p.grad->clone());
    got[threads - 1] = all;
  }
  omp_set_num_threads(nt);
  for (size_t k = 0; k < got[0].size(); ++k) {
    const Tensor &a = got[0][k], &b = got[1][k];
    ASSERT_EQ(a.numel(), b.numel());
    if (k < 3) {
      EXPECT_EQ(0, std::memcmp(a.raw(), b.raw(), a.nbytes())) << "forward tensor " << k;
    } else {
      auto av = a.to_f64(), bv = b.to_f64();
      test::expect_close("gradient " + std::to_string(k), bv.data(), av.data(), a.numel(), 1e-6,
                         1e-6);
    }
  }
}

// ---- dropout ---------------------------------------------------------------------------------

TEST(LstmDropout, OnlyBetweenLayersAndOnlyInTrain) {
  Rng rng(3);
  LSTM<double> m(make_cfg({2, 5, 3, 4, 2, false, true, false}, 0.5), 2);
  Tensor x = randn_tensor<double>({2, 5, 3}, rng);
  auto eval = m.forward(x);
  Rng r1(9);
  auto train = m.forward(x, Tensor(), Tensor(), LstmMode::Train, &r1);
  double diff = 0;
  for (int64_t i = 0; i < eval.output.numel(); ++i)
    diff += std::fabs(eval.output.data<double>()[i] - train.output.data<double>()[i]);
  EXPECT_GT(diff, 1e-6);
  // One layer: there is no "between", so Train == Eval.
  LSTM<double> one(make_cfg({2, 5, 3, 4, 1, false, true, false}, 0.5), 2);
  auto e1 = one.forward(x);
  auto t1 = one.forward(x, Tensor(), Tensor(), LstmMode::Train, &r1);
  EXPECT_EQ(0, std::memcmp(e1.output.raw(), t1.output.raw(), e1.output.nbytes()));
}

// ---- (5) errors at the door -----------------------------------------------------------------

TEST(LstmErrors, BadShapesThrowValueError) {
  LSTM<double> m(make_cfg({3, 7, 5, 6, 2, true, true, false}));
  Tensor x({3, 7, 4}, DType::F64);
  try {
    m.forward(x);
    ADD_FAILURE() << "no throw";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("[lstm_forward] x must be (B,T,I)=(?,?,5), got (3,7,4)"),
              std::string::npos)
        << e.what();
  }
  Tensor good({3, 7, 5}, DType::F64);
  EXPECT_THROW(m.forward(Tensor({3, 7}, DType::F64)), ValueError);
  EXPECT_THROW(m.forward(Tensor({0, 7, 5}, DType::F64)), ValueError);
  EXPECT_THROW(m.forward(Tensor({3, 0, 5}, DType::F64)), ValueError);
  EXPECT_THROW(m.forward(Tensor()), ValueError);
  EXPECT_THROW(m.backward(Tensor({3, 7, 12}, DType::F64)), ValueError);      // before forward
  EXPECT_THROW(m.forward(good, Tensor({4, 3, 6}, DType::F64)), ValueError);  // h0 without c0
  EXPECT_THROW(m.forward(good, Tensor({2, 3, 6}, DType::F64), Tensor({2, 3, 6}, DType::F64)),
               ValueError);  // L*D = 4
  EXPECT_THROW(m.forward(good, Tensor({4, 2, 6}, DType::F64), Tensor({4, 2, 6}, DType::F64)),
               ValueError);  // B = 3
  EXPECT_THROW(m.forward(good.to(DType::F32)), TypeError);
  m.forward(good);
  EXPECT_THROW(m.backward(Tensor({3, 7, 6}, DType::F64)), ValueError);
  EXPECT_THROW(m.backward(Tensor({3, 7, 12}, DType::F64), Tensor({4, 3, 5}, DType::F64)),
               ValueError);
  Tensor out({3, 7, 11}, DType::F64), hn({4, 3, 6}, DType::F64), cn({4, 3, 6}, DType::F64);
  EXPECT_THROW(m.forward_into(good, Tensor(), Tensor(), LstmMode::Eval, nullptr, out, hn, cn),
               ValueError);
  // Bidirectional has no step; step shapes are checked.
  Tensor h({4, 3, 6}, DType::F64), c({4, 3, 6}, DType::F64);
  EXPECT_THROW(m.step(Tensor({3, 5}, DType::F64), h, c), ValueError);
  LSTM<double> uni(make_cfg({3, 7, 5, 6, 2, false, true, false}));
  Tensor hu({2, 3, 6}, DType::F64), cu({2, 3, 6}, DType::F64);
  EXPECT_NO_THROW(uni.step(Tensor({3, 5}, DType::F64), hu, cu));
  EXPECT_THROW(uni.step(Tensor({3, 4}, DType::F64), hu, cu), ValueError);
  EXPECT_THROW(uni.step(Tensor({2, 5}, DType::F64), hu, cu), ValueError);
}

TEST(LstmErrors, BadConfig) {
  LSTMConfig c = make_cfg({1, 1, 5, 6, 2, false, true, false});
  c.proj_size = 3;
  EXPECT_THROW(LSTM<float>{c}, NotImplementedError);
  c.proj_size = 0, c.batch_first = false;
  EXPECT_THROW(LSTM<float>{c}, NotImplementedError);
  c.batch_first = true, c.dropout = 1.0;
  EXPECT_THROW(LSTM<float>{c}, ValueError);
  c.dropout = 0, c.hidden_size = 0;
  EXPECT_THROW(LSTM<float>{c}, ValueError);
  c.hidden_size = 6, c.dropout = 0.2;
  LSTM<float> m(c);
  Tensor x({1, 2, 5}, DType::F32);
  EXPECT_THROW(m.forward(x, Tensor(), Tensor(), LstmMode::Train, nullptr), ValueError);
  EXPECT_NO_THROW(m.forward(x, Tensor(), Tensor(), LstmMode::Eval, nullptr));
}

}  // namespace
