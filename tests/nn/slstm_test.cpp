// sLSTM cell and layer (cpu/slstm.h kernel through nn/slstm.h): against the float64 spec
// (ref/slstm_ref.h), finite-difference gradients of every input, parameter and initial state,
// autograd's tie rule, carried state (one call over T == two over T/2), determinism, checkpoint
// layouts, init, the step API, and errors at the door.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>

#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "nn/slstm.h"
#include "ref/slstm_ref.h"

using namespace xlstm;
using test::expect_close;

namespace {

template <class T>
Tensor randn_tensor(const Shape& s, Rng& rng, double mean = 0.0, double std = 1.0) {
  return Tensor::from<T>(s, test::randn<T>(shape_numel(s), rng, mean, std));
}

// A (4,B,H) state (y, c, n, m) with n > 0 (so that the all-zero branch is not taken).
template <class T>
Tensor random_state(int64_t B, int64_t H, Rng& rng) {
  Tensor s = randn_tensor<T>({4, B, H}, rng);
  T* n = s.data<T>() + 2 * B * H;
  for (int64_t k = 0; k < B * H; ++k) n[k] = T(0.5) + std::fabs(n[k]);
  T* m = s.data<T>() + 3 * B * H;
  for (int64_t k = 0; k < B * H; ++k) m[k] *= T(1.5);
  return s;
}

// Random parameters: std 0.4 for matrices, 0.6 for vectors (nonzero R, norm weight, biases).
void randomize(Module& m, Rng& rng) {
  for (auto& p : m.params()) {
    const double std = p.value->ndim() == 1 ? 0.6 : 0.4;
    Tensor v = Tensor::from<double>(p.value->shape(),
                                    test::randn<double>(p.value->numel(), rng, 0.0, std));
    Tensor c = v.to(p.value->dtype());
    std::memcpy(p.value->raw(), c.raw(), c.nbytes());
  }
}

template <class T>
void copy_params(Module& dst, Module& src) {
  std::map<std::string, Tensor> m;
  for (auto& p : src.params()) m[p.name] = *p.value;
  dst.load_params(m, "copy");
}

std::vector<double> f64(const Tensor& t) { return t.to_f64(); }

void expect_tensor_close(const std::string& what, const Tensor& a, const std::vector<double>& b,
                         double atol, double rtol) {
  ASSERT_EQ(a.numel(), (int64_t)b.size()) << what;
  auto av = f64(a);
  expect_close(what, av.data(), b.data(), a.numel(), atol, rtol);
}

void expect_bitwise(const std::string& what, const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.nbytes(), b.nbytes()) << what;
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << what << " differs";
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ValueError& e) {
    return e.what();
  } catch (const Error& e) {
    return std::string("WRONG TYPE: ") + e.what();
  }
  return "NO ERROR";
}

struct CellShape {
  int64_t B, T, NH, DH;
};

SLSTMCellConfig cell_cfg(int64_t NH, int64_t DH) {
  SLSTMCellConfig c;
  c.hidden_size = NH * DH;
  c.num_heads = NH;
  return c;
}

// ---- (1) cell kernel == spec --------------------------------------------------------------------

enum class StateKind { Zero, Random, PartlyZeroN };

template <class T>
void check_cell_vs_ref(const CellShape& s, StateKind sk, double atol, double rtol, double xstd) {
  Rng rng(17 + s.B * 5 + s.DH);
  const int64_t H = s.NH * s.DH;
  SLSTMCell<T> cell(cell_cfg(s.NH, s.DH));
  randomize(cell, rng);
  SLSTMCell<double> ref_cell(cell_cfg(s.NH, s.DH));  // the spec sees the same (rounded) values
  copy_params<double>(ref_cell, cell);
  Tensor x = randn_tensor<T>({s.B, s.T, 4 * H}, rng, 0.0, xstd).to(DType::F64);
  Tensor s0;
  if (sk != StateKind::Zero) s0 = random_state<T>(s.B, H, rng).to(DType::F64);
  // Some n == 0 (and c == 0, else y ~ c/n is ill-conditioned): the vanilla rule still takes the
  // max branch for every unit because not ALL n are zero.
  if (sk == StateKind::PartlyZeroN)
    for (int64_t k = 0; k < s.B * H; k += 2)
      s0.data<double>()[s.B * H + k] = s0.data<double>()[2 * s.B * H + k] = 0.0;
  std::vector<double> y((size_t)(s.B * s.T * H)), st((size_t)(4 * s.B * H));
  ref::slstm_cell_ref(s.B, s.T, s.NH, s.DH, x.data<double>(), ref_cell.R_.data<double>(),
                      ref_cell.b_.data<double>(), s0.defined() ? s0.data<double>() : nullptr,
                      y.data(), st.data());
  auto o = cell.forward(x.to(DTypeOf<T>::value),
                        s0.defined() ? s0.to(DTypeOf<T>::value) : Tensor());
  const std::string tag = std::string(sizeof(T) == 8 ? "f64" : "f32") + " B" +
                          std::to_string(s.B) + " T" + std::to_string(s.T) + " DH" +
                          std::to_string(s.DH) + " state" + std::to_string((int)sk);
  expect_tensor_close("y " + tag, o.output, y, atol, rtol);
  expect_tensor_close("state " + tag, o.state, st, atol, rtol);
}

const CellShape kShapes[] = {{3, 7, 2, 5}, {2, 4, 1, 70}, {1, 1, 3, 4}, {2, 9, 4, 16}};

TEST(SlstmCell, MatchesRefDouble) {
  for (auto& s : kShapes)
    for (StateKind sk : {StateKind::Zero, StateKind::Random, StateKind::PartlyZeroN})
      check_cell_vs_ref<double>(s, sk, 1e-12, 1e-12, 1.0);
}

TEST(SlstmCell, MatchesRefFloat) {
  for (auto& s : kShapes)
    for (StateKind sk : {StateKind::Zero, StateKind::Random, StateKind::PartlyZeroN})
      check_cell_vs_ref<float>(s, sk, 1e-5, 1e-5, 1.0);
}

// Wide pre-activations: saturated gates, the exp clamp and both tanh branches of the float path.
TEST(SlstmCell, MatchesRefFloatWideInputs) {
  check_cell_vs_ref<float>({4, 20, 2, 70}, StateKind::Random, 2e-5, 1e-4, 4.0);
  check_cell_vs_ref<float>({4, 20, 2, 70}, StateKind::Zero, 2e-5, 1e-4, 0.1);
}

// ---- (2) finite-difference gradients (double) ---------------------------------------------------

void gradcheck_cell(const CellShape& s, bool with_state) {
  Rng rng(5 + s.DH);
  const int64_t H = s.NH * s.DH;
  SLSTMCell<double> cell(cell_cfg(s.NH, s.DH));
  randomize(cell, rng);
  Tensor x = randn_tensor<double>({s.B, s.T, 4 * H}, rng);
  Tensor s0 = with_state ? random_state<double>(s.B, H, rng) : Tensor();
  const auto wy = test::randn<double>(s.B * s.T * H, rng);
  const auto ws = test::randn<double>(4 * s.B * H, rng);
  auto loss = [&]() {
    auto o = cell.forward(x, s0);
    return test::dot(o.output.data<double>(), wy.data(), (int64_t)wy.size()) +
           test::dot(o.state.data<double>(), ws.data(), (int64_t)ws.size());
  };
  cell.forward(x, s0);
  cell.zero_grad();
  auto g = cell.backward(Tensor::from<double>({s.B, s.NH, s.T, s.DH}, wy),
                         Tensor::from<double>({4, s.B, H}, ws));
  const Tensor dR = cell.dR_.clone(), db = cell.db_.clone();
  const std::string tag = with_state ? " (state)" : " (zero state)";
  test::expect_grad("dx" + tag, loss, x.data<double>(), x.numel(), g.input.data<double>());
  test::expect_grad("dR" + tag, loss, cell.R_.data<double>(), cell.R_.numel(), dR.data<double>());
  test::expect_grad("db" + tag, loss, cell.b_.data<double>(), cell.b_.numel(), db.data<double>());
  // The zero state sits on the all-n-zero branch switch: finite differences of it are not the
  // autograd gradient there, so the initial state is only checked when n > 0.
  if (with_state)
    test::expect_grad("dstate0", loss, s0.data<double>(), s0.numel(), g.state.data<double>());
}

TEST(SlstmCell, GradcheckWithState) { gradcheck_cell({2, 5, 2, 3}, true); }
TEST(SlstmCell, GradcheckZeroState) { gradcheck_cell({2, 4, 2, 3}, false); }
TEST(SlstmCell, GradcheckOddHeadDim) { gradcheck_cell({1, 3, 1, 67}, true); }

// Exact tie i_raw == m(t-1) + logsigmoid(f_raw): torch.maximum and torch.minimum each give half
// the gradient to both arguments. Hand-derived autograd of the vanilla code for loss = y(1).
TEST(SlstmCell, TieRuleMatchesAutograd) {
  SLSTMCell<double> cell(cell_cfg(1, 1));
  cell.R_.zero();
  cell.b_.zero();
  const double ir = 1.0, fr = 40.0, zr = 0.3, orr = -0.2, c0 = 0.7, n0 = 1.3, m0 = 1.0;
  ASSERT_EQ(m0 - std::log1p(std::exp(-fr)), ir);  // the tie holds exactly in float64
  Tensor x = Tensor::from<double>({1, 1, 4}, {ir, fr, zr, orr});
  Tensor s0 = Tensor::from<double>({4, 1, 1}, {0.0, c0, n0, m0});
  auto o = cell.forward(x, s0);
  const double z = std::tanh(zr), og = 1 / (1 + std::exp(-orr));
  const double c = c0 + z, n = n0 + 1, y = og * c / n;  // i = f = 1
  EXPECT_NEAR(o.output.data<double>()[0], y, 1e-15);
  auto g = cell.backward(Tensor::from<double>({1, 1, 1, 1}, {1.0}));
  const double dct = og / n, dnt = -y / n;
  const double dfg = dct * c0 + dnt * n0, dig = dct * z + dnt;
  // i = min(exp(ir - m), 1): d(ir - m) = dig/2; f likewise; m = max(ir, L): halves.
  const double dm = -0.5 * dig - 0.5 * dfg;
  const double dir = 0.5 * dig + 0.5 * dm, dL = 0.5 * dfg + 0.5 * dm;
  const double* dx = g.input.data<double>();
  EXPECT_NEAR(dx[0], dir, 1e-15);
  EXPECT_NEAR(dx[1], dL / (1 + std::exp(fr)), 1e-30);
  EXPECT_NEAR(dx[2], dct * (1 - z * z), 1e-15);
  EXPECT_NEAR(dx[3], c / n * og * (1 - og), 1e-15);
  EXPECT_NEAR(g.state.data<double>()[3], dL, 1e-15);  // d m(0)
  EXPECT_NEAR(g.state.data<double>()[1], dct, 1e-15);  // f = 1
  EXPECT_NEAR(g.state.data<double>()[2], dnt, 1e-15);
}

// ---- (3) layer ----------------------------------------------------------------------------------

SLSTMLayerConfig layer_cfg(int64_t D, int64_t NH, int64_t K, bool gn_weight = true) {
  SLSTMLayerConfig c;
  c.embedding_dim = D;
  c.num_heads = NH;
  c.conv1d_kernel_size = K;
  c.group_norm_weight = gn_weight;
  return c;
}

template <class T>
void check_layer_vs_ref(int64_t K, bool with_state, bool gn_weight, double atol, double rtol) {
  const int64_t B = 2, S = 6, NH = 2, DH = 4, D = NH * DH;
  Rng rng(101 + K);
  SLSTMLayer<double> ref_layer(layer_cfg(D, NH, K, gn_weight));
  randomize(ref_layer, rng);
  SLSTMLayer<T> layer(layer_cfg(D, NH, K, gn_weight));
  copy_params<T>(layer, ref_layer);
  std::map<std::string, const double*> P;
  for (auto& p : ref_layer.params()) P[p.name] = p.value->data<double>();
  ref::SlstmLayerRefParams rp;
  if (K > 0) rp.conv_w = P["conv1d.conv.weight"], rp.conv_b = P["conv1d.conv.bias"];
  rp.fgate = P["fgate.weight"], rp.igate = P["igate.weight"];
  rp.zgate = P["zgate.weight"], rp.ogate = P["ogate.weight"];
  rp.R = P["slstm_cell._recurrent_kernel_"], rp.bias = P["slstm_cell._bias_"];
  rp.gn_w = gn_weight ? P["group_norm.weight"] : nullptr;
  Tensor x = randn_tensor<double>({B, S, D}, rng);
  SLSTMLayerState s0;
  if (with_state) {
    if (K > 0) s0.conv = randn_tensor<double>({B, K - 1, D}, rng);
    s0.slstm = random_state<double>(B, D, rng);
  }
  std::vector<double> out((size_t)(B * S * D)), cs((size_t)(B * std::max<int64_t>(K - 1, 0) * D)),
      ss((size_t)(4 * B * D));
  ref::slstm_layer_ref(B, S, NH, DH, K, rp, x.data<double>(),
                       s0.conv.defined() ? s0.conv.data<double>() : nullptr,
                       s0.slstm.defined() ? s0.slstm.data<double>() : nullptr, out.data(),
                       K > 0 ? cs.data() : nullptr, ss.data());
  SLSTMLayerState s0t;
  if (s0.conv.defined()) s0t.conv = s0.conv.to(DTypeOf<T>::value);
  if (s0.slstm.defined()) s0t.slstm = s0.slstm.to(DTypeOf<T>::value);
  auto o = layer.forward(x.to(DTypeOf<T>::value), s0t);
  const std::string tag = "K" + std::to_string(K) + (with_state ? " state" : "") +
                          (gn_weight ? "" : " no_gn_weight") + (sizeof(T) == 8 ? " f64" : " f32");
  expect_tensor_close("out " + tag, o.output, out, atol, rtol);
  expect_tensor_close("slstm_state " + tag, o.state.slstm, ss, atol, rtol);
  if (K > 0) expect_tensor_close("conv_state " + tag, o.state.conv, cs, atol, rtol);
  else EXPECT_FALSE(o.state.conv.defined());
}

TEST(SlstmLayer, MatchesRef) {
  for (int64_t K : {0, 4})
    for (bool st : {false, true})
      for (bool gw : {true, false}) {
        check_layer_vs_ref<double>(K, st, gw, 1e-12, 1e-12);
        check_layer_vs_ref<float>(K, st, gw, 2e-5, 1e-4);
      }
}

void gradcheck_layer(int64_t K) {
  const int64_t B = 2, S = 5, NH = 2, DH = 4, D = NH * DH;
  Rng rng(77 + K);
  SLSTMLayer<double> layer(layer_cfg(D, NH, K));
  randomize(layer, rng);
  Tensor x = randn_tensor<double>({B, S, D}, rng);
  SLSTMLayerState s0;
  if (K > 0) s0.conv = randn_tensor<double>({B, K - 1, D}, rng);
  s0.slstm = random_state<double>(B, D, rng);
  const auto wo = test::randn<double>(B * S * D, rng), ws = test::randn<double>(4 * B * D, rng);
  const auto wc = test::randn<double>(B * std::max<int64_t>(K - 1, 0) * D, rng);
  auto loss = [&]() {
    auto o = layer.forward(x, s0);
    double l = test::dot(o.output.data<double>(), wo.data(), (int64_t)wo.size()) +
               test::dot(o.state.slstm.data<double>(), ws.data(), (int64_t)ws.size());
    if (K > 0) l += test::dot(o.state.conv.data<double>(), wc.data(), (int64_t)wc.size());
    return l;
  };
  layer.forward(x, s0);
  layer.zero_grad();
  SLSTMLayerState ds;
  ds.slstm = Tensor::from<double>({4, B, D}, ws);
  if (K > 0) ds.conv = Tensor::from<double>({B, K - 1, D}, wc);
  auto g = layer.backward(Tensor::from<double>({B, S, D}, wo), ds);
  const std::string tag = " K" + std::to_string(K);
  test::expect_grad("dx" + tag, loss, x.data<double>(), x.numel(), g.input.data<double>());
  test::expect_grad("dslstm_state0" + tag, loss, s0.slstm.data<double>(), s0.slstm.numel(),
                    g.state.slstm.data<double>());
  if (K > 0)
    test::expect_grad("dconv_state0" + tag, loss, s0.conv.data<double>(), s0.conv.numel(),
                      g.state.conv.data<double>());
  for (auto& p : layer.params()) {
    const Tensor an = p.grad->clone();
    test::expect_grad("d" + p.name + tag, loss, p.value->data<double>(), p.value->numel(),
                      an.data<double>());
  }
}

TEST(SlstmLayer, GradcheckConv4) { gradcheck_layer(4); }
TEST(SlstmLayer, GradcheckConv0) { gradcheck_layer(0); }

// ---- (4) one call over T == two calls over T/2 with carried state -------------------------------

template <class T>
void check_cell_split() {
  const int64_t B = 3, S = 8, NH = 2, DH = 5, H = NH * DH, h = S / 2;
  Rng rng(9);
  SLSTMCell<T> full(cell_cfg(NH, DH)), a(cell_cfg(NH, DH)), b(cell_cfg(NH, DH));
  randomize(full, rng);
  copy_params<T>(a, full);
  copy_params<T>(b, full);
  Tensor x = randn_tensor<T>({B, S, 4 * H}, rng);
  Tensor x1({B, h, 4 * H}, DTypeOf<T>::value), x2({B, h, 4 * H}, DTypeOf<T>::value);
  for (int64_t bb = 0; bb < B; ++bb) {
    std::memcpy(x1.data<T>() + bb * h * 4 * H, x.data<T>() + bb * S * 4 * H, sizeof(T) * h * 4 * H);
    std::memcpy(x2.data<T>() + bb * h * 4 * H, x.data<T>() + (bb * S + h) * 4 * H,
                sizeof(T) * h * 4 * H);
  }
  auto of = full.forward(x);  // zero state: the first half takes the all-n-zero branch
  auto o1 = a.forward(x1);
  auto o2 = b.forward(x2, o1.state);
  expect_bitwise("final state", of.state, o2.state);
  const Tensor yft = of.output, y1t = o1.output, y2t = o2.output;
  const T* yf = yft.data<T>();
  for (int64_t bb = 0; bb < B; ++bb)
    for (int64_t hh = 0; hh < NH; ++hh)
      for (int64_t t = 0; t < S; ++t) {
        const T* yp = t < h ? y1t.data<T>() + ((bb * NH + hh) * h + t) * DH
                            : y2t.data<T>() + ((bb * NH + hh) * h + t - h) * DH;
        ASSERT_EQ(std::memcmp(yf + ((bb * NH + hh) * S + t) * DH, yp, sizeof(T) * DH), 0);
      }
  // Backward: full vs second half then first half with the carried state gradient.
  Tensor dy = randn_tensor<T>({B, NH, S, DH}, rng), dsf = randn_tensor<T>({4, B, H}, rng);
  Tensor dy1({B, NH, h, DH}, DTypeOf<T>::value), dy2({B, NH, h, DH}, DTypeOf<T>::value);
  for (int64_t r = 0; r < B * NH; ++r) {
    std::memcpy(dy1.data<T>() + r * h * DH, dy.data<T>() + r * S * DH, sizeof(T) * h * DH);
    std::memcpy(dy2.data<T>() + r * h * DH, dy.data<T>() + (r * S + h) * DH, sizeof(T) * h * DH);
  }
  full.zero_grad(), a.zero_grad(), b.zero_grad();
  auto gf = full.backward(dy, dsf);
  auto g2 = b.backward(dy2, dsf);
  auto g1 = a.backward(dy1, g2.state);
  const double tol = sizeof(T) == 8 ? 1e-12 : 1e-5;
  expect_tensor_close("dstate0", g1.state, f64(gf.state), tol, tol);
  std::vector<double> dx_full = f64(gf.input), d1 = f64(g1.input), d2 = f64(g2.input), dx_split;
  for (int64_t bb = 0; bb < B; ++bb) {
    dx_split.insert(dx_split.end(), d1.begin() + bb * h * 4 * H, d1.begin() + (bb + 1) * h * 4 * H);
    dx_split.insert(dx_split.end(), d2.begin() + bb * h * 4 * H, d2.begin() + (bb + 1) * h * 4 * H);
  }
  expect_close("dx", dx_split.data(), dx_full.data(), (int64_t)dx_full.size(), tol, tol);
  auto pf = full.params(), pa = a.params(), pb = b.params();
  for (size_t k = 0; k < pf.size(); ++k) {
    std::vector<double> sum = f64(*pa[k].grad), gb = f64(*pb[k].grad);
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += gb[i];
    expect_tensor_close("d" + pf[k].name, *pf[k].grad, sum, tol, tol);
  }
}

TEST(SlstmCell, SplitEqualsFull) {
  check_cell_split<double>();
  check_cell_split<float>();
}

template <class T>
void check_layer_split(int64_t K) {
  const int64_t B = 2, S = 8, NH = 2, DH = 4, D = NH * DH, h = S / 2;
  Rng rng(19 + K);
  SLSTMLayer<T> full(layer_cfg(D, NH, K)), a(layer_cfg(D, NH, K)), b(layer_cfg(D, NH, K));
  randomize(full, rng);
  copy_params<T>(a, full);
  copy_params<T>(b, full);
  Tensor x = randn_tensor<T>({B, S, D}, rng);
  Tensor x1({B, h, D}, DTypeOf<T>::value), x2({B, h, D}, DTypeOf<T>::value);
  for (int64_t bb = 0; bb < B; ++bb) {
    std::memcpy(x1.data<T>() + bb * h * D, x.data<T>() + bb * S * D, sizeof(T) * h * D);
    std::memcpy(x2.data<T>() + bb * h * D, x.data<T>() + (bb * S + h) * D, sizeof(T) * h * D);
  }
  auto of = full.forward(x);
  auto o1 = a.forward(x1);
  auto o2 = b.forward(x2, o1.state);
  // float: the headwise GEMMs over B*S vs B*S/2 rows may round differently (oneDNN kernels).
  const double ftol = sizeof(T) == 8 ? 0.0 : 1e-5;
  expect_tensor_close("slstm state", o2.state.slstm, f64(of.state.slstm), ftol, ftol);
  if (K > 0) expect_bitwise("conv state", of.state.conv, o2.state.conv);
  std::vector<double> yf = f64(of.output), y1 = f64(o1.output), y2 = f64(o2.output), ys;
  for (int64_t bb = 0; bb < B; ++bb) {
    ys.insert(ys.end(), y1.begin() + bb * h * D, y1.begin() + (bb + 1) * h * D);
    ys.insert(ys.end(), y2.begin() + bb * h * D, y2.begin() + (bb + 1) * h * D);
  }
  expect_close("out K" + std::to_string(K), ys.data(), yf.data(), (int64_t)yf.size(), ftol, ftol);
  Tensor dy = randn_tensor<T>({B, S, D}, rng);
  Tensor dy1({B, h, D}, DTypeOf<T>::value), dy2({B, h, D}, DTypeOf<T>::value);
  for (int64_t bb = 0; bb < B; ++bb) {
    std::memcpy(dy1.data<T>() + bb * h * D, dy.data<T>() + bb * S * D, sizeof(T) * h * D);
    std::memcpy(dy2.data<T>() + bb * h * D, dy.data<T>() + (bb * S + h) * D, sizeof(T) * h * D);
  }
  full.zero_grad(), a.zero_grad(), b.zero_grad();
  auto gf = full.backward(dy);
  auto g2 = b.backward(dy2);
  auto g1 = a.backward(dy1, g2.state);
  const double tol = sizeof(T) == 8 ? 1e-12 : 2e-5;
  expect_tensor_close("dslstm0", g1.state.slstm, f64(gf.state.slstm), tol, tol);
  if (K > 0) expect_tensor_close("dconv0", g1.state.conv, f64(gf.state.conv), tol, tol);
  std::vector<double> dxf = f64(gf.input), d1 = f64(g1.input), d2 = f64(g2.input), dxs;
  for (int64_t bb = 0; bb < B; ++bb) {
    dxs.insert(dxs.end(), d1.begin() + bb * h * D, d1.begin() + (bb + 1) * h * D);
    dxs.insert(dxs.end(), d2.begin() + bb * h * D, d2.begin() + (bb + 1) * h * D);
  }
  expect_close("dx", dxs.data(), dxf.data(), (int64_t)dxf.size(), tol, tol);
  auto pf = full.params(), pa = a.params(), pb = b.params();
  for (size_t k = 0; k < pf.size(); ++k) {
    std::vector<double> sum = f64(*pa[k].grad), gb = f64(*pb[k].grad);
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += gb[i];
    expect_tensor_close("d" + pf[k].name, *pf[k].grad, sum, tol, tol);
  }
}

TEST(SlstmLayer, SplitEqualsFull) {
  for (int64_t K : {0, 4}) {
    check_layer_split<double>(K);
    check_layer_split<float>(K);
  }
}

// ---- (5) step API == forward ---------------------------------------------------------------------

TEST(SlstmLayer, StepEqualsForward) {
  for (int64_t K : {0, 4}) {
    const int64_t B = 2, S = 6, NH = 2, DH = 4, D = NH * DH;
    Rng rng(31 + K);
    SLSTMLayer<double> layer(layer_cfg(D, NH, K));
    randomize(layer, rng);
    Tensor x = randn_tensor<double>({B, S, D}, rng);
    SLSTMLayerState s0;
    if (K > 0) s0.conv = randn_tensor<double>({B, K - 1, D}, rng);
    s0.slstm = random_state<double>(B, D, rng);
    auto o = layer.forward(x, s0);
    SLSTMLayerState st = s0;
    for (int64_t t = 0; t < S; ++t) {
      Tensor xt({B, D}, DType::F64);
      for (int64_t b = 0; b < B; ++b)
        std::memcpy(xt.data<double>() + b * D, x.data<double>() + (b * S + t) * D, 8 * D);
      Tensor yt = layer.step(xt, st);
      for (int64_t b = 0; b < B; ++b)
        expect_close("step out", yt.data<double>() + b * D,
                     o.output.data<double>() + (b * S + t) * D, D, 1e-14, 1e-13);
    }
    expect_tensor_close("step slstm state", st.slstm, f64(o.state.slstm), 1e-14, 1e-13);
    if (K > 0) expect_tensor_close("step conv state", st.conv, f64(o.state.conv), 0, 0);
    // step() overwrote the forward cache: backward must refuse.
    EXPECT_NE(error_of([&] { layer.backward(Tensor()); }).find("no forward"), std::string::npos);
  }
}

// ---- (6) determinism: backward twice is bitwise identical ---------------------------------------

template <class T>
void check_backward_twice() {
  const int64_t B = 4, S = 7, NH = 2, DH = 80, D = NH * DH;
  Rng rng(3);
  SLSTMLayer<T> layer(layer_cfg(D, NH, 4));
  randomize(layer, rng);
  Tensor x = randn_tensor<T>({B, S, D}, rng), dy = randn_tensor<T>({B, S, D}, rng);
  layer.forward(x);
  layer.zero_grad();
  auto g1 = layer.backward(dy);
  std::vector<Tensor> p1;
  for (auto& p : layer.params()) p1.push_back(p.grad->clone());
  layer.zero_grad();
  auto g2 = layer.backward(dy);
  expect_bitwise("dx", g1.input, g2.input);
  expect_bitwise("dslstm0", g1.state.slstm, g2.state.slstm);
  expect_bitwise("dconv0", g1.state.conv, g2.state.conv);
  auto ps = layer.params();
  for (size_t k = 0; k < ps.size(); ++k) expect_bitwise("d" + ps[k].name, p1[k], *ps[k].grad);
}

TEST(SlstmLayer, BackwardTwiceBitwise) {
  check_backward_twice<float>();
  check_backward_twice<double>();
}

// Large enough for the OpenMP pointwise (B*H >= 4096): same bits on every run, and the same
// bits with one thread as with several.
TEST(SlstmCell, ParallelDeterministic) {
  const int64_t B = 8, S = 5, NH = 4, DH = 128, H = NH * DH;
  Rng rng(8);
  SLSTMCell<float> cell(cell_cfg(NH, DH));
  randomize(cell, rng);
  Tensor x = randn_tensor<float>({B, S, 4 * H}, rng), dy = randn_tensor<float>({B, NH, S, DH}, rng);
  auto o1 = cell.forward(x);
  cell.zero_grad();
  auto g1 = cell.backward(dy);
  const Tensor dR1 = cell.dR_.clone(), db1 = cell.db_.clone();
  auto o2 = cell.forward(x);
  cell.zero_grad();
  auto g2 = cell.backward(dy);
  expect_bitwise("y", o1.output, o2.output);
  expect_bitwise("dx", g1.input, g2.input);
  expect_bitwise("dR", dR1, cell.dR_);
  expect_bitwise("db", db1, cell.db_);
  const int nt = omp_get_max_threads();
  omp_set_num_threads(1);
  auto o3 = cell.forward(x);
  cell.zero_grad();
  auto g3 = cell.backward(dy);
  omp_set_num_threads(nt);
  expect_bitwise("y 1 thread", o1.output, o3.output);
  expect_bitwise("dx 1 thread", g1.input, g3.input);
  expect_bitwise("dR 1 thread", dR1, cell.dR_);
}

// On 2+ threads the float kernel runs head-major (each thread whole heads through all steps),
// on 1 thread step-major: forward against the float64 spec on 2 threads, and forward and
// backward (dx, dR, dbias, dstate0) of the two loop orders against each other.
TEST(SlstmCell, HeadMajorMatchesStepMajor) {
  const int nt = omp_get_max_threads();
  const int64_t B = 3, T = 9, NH = 4, DH = 16, H = NH * DH;
  omp_set_num_threads(2);
  for (StateKind sk : {StateKind::Zero, StateKind::Random})
    check_cell_vs_ref<float>({B, T, NH, DH}, sk, 1e-5, 1e-5, 1.0);
  Rng rng(21);
  SLSTMCell<float> cell(cell_cfg(NH, DH));
  randomize(cell, rng);
  Tensor x = randn_tensor<float>({B, T, 4 * H}, rng), dy = randn_tensor<float>({B, NH, T, DH}, rng);
  Tensor s0 = random_state<float>(B, H, rng), ds = randn_tensor<float>({4, B, H}, rng);
  std::vector<Tensor> got[2];
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    auto o = cell.forward(x, s0);
    cell.zero_grad();
    auto g = cell.backward(dy, ds);
    got[threads - 1] = {o.output, o.state, g.input, g.state, cell.dR_.clone(), cell.db_.clone()};
  }
  omp_set_num_threads(nt);
  const char* names[] = {"y", "state", "dx", "dstate0", "dR", "dbias"};
  for (int k = 0; k < 6; ++k) {
    auto a = got[0][(size_t)k].to_f64(), b = got[1][(size_t)k].to_f64();
    expect_close(std::string(names[k]) + " 2 threads vs 1", b.data(), a.data(), (int64_t)a.size(),
                 1e-6, 1e-6);
  }
}

// The float kernel runs head-major (each thread whole heads through all steps) and applies the
// vanilla "all n zero -> m = i" rule itself only at step 0. A zero n after step 0 needs a state
// with negative n; then the kernel must recompute step-major with the global rule. Here n = -1,
// c = 1, m = 1 and i = m + logsigmoid(f) exactly make n = 0 for every unit after step 0, so
// y(0) = +inf, and a recurrent R with a negative i row gives i(1) = -inf: the rule sets
// m = i = -inf and exp(i - m) = NaN (y(1) NaN, as PyTorch computes it), where "not first" would
// give m = 1, i gate 0 and y(1) = +inf. Checked against the float64 spec, non-finite values by
// class, on 1 and 2 threads, with as many heads as threads and fewer.
TEST(SlstmCell, ZeroNAfterStepZeroTakesTheGlobalRule) {
  const int nt = omp_get_max_threads();
  for (int64_t NH : {1, 2}) {
    const int64_t B = 2, T = 4, DH = 1, H = NH * DH;
    SLSTMCell<float> cell(cell_cfg(NH, DH));
    for (int64_t k = 0; k < cell.b_.numel(); ++k) cell.b_.data<float>()[k] = 0.f;
    for (int64_t h = 0; h < NH; ++h) {  // R[h, g] for DH = 1: i, f, z, o
      const float r[4] = {-1.f, 1.f, 1.f, 1.f};
      for (int g = 0; g < 4; ++g) cell.R_.data<float>()[h * 4 + g] = r[g];
    }
    Tensor x({B, T, 4 * H}, DType::F32);  // step 0: i = 1, f = 100, z = 0.5, o = 0; then zeros
    for (int64_t b = 0; b < B; ++b)
      for (int64_t u = 0; u < H; ++u) {
        float* xr = x.data<float>() + b * T * 4 * H;
        xr[0 * H + u] = 1.f;
        xr[1 * H + u] = 100.f;
        xr[2 * H + u] = 0.5f;
      }
    Tensor s0({4, B, H}, DType::F32);  // y 0, c 1, n -1, m 1
    for (int64_t k = 0; k < B * H; ++k) {
      s0.data<float>()[B * H + k] = 1.f;
      s0.data<float>()[2 * B * H + k] = -1.f;
      s0.data<float>()[3 * B * H + k] = 1.f;
    }
    SLSTMCell<double> ref_cell(cell_cfg(NH, DH));
    copy_params<double>(ref_cell, cell);
    std::vector<double> y((size_t)(B * T * H)), st((size_t)(4 * B * H));
    Tensor x64 = x.to(DType::F64), s064 = s0.to(DType::F64);
    ref::slstm_cell_ref(B, T, NH, DH, x64.data<double>(), ref_cell.R_.data<double>(),
                        ref_cell.b_.data<double>(), s064.data<double>(), y.data(), st.data());
    ASSERT_TRUE(std::isinf(y[0]) && std::isnan(y[1]))
        << "the construction no longer holds: y " << y[0] << " " << y[1] << " " << y[2];
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      auto o = cell.forward(x, s0);
      auto cmp = [&](const std::string& what, const Tensor& a, const std::vector<double>& b) {
        auto av = a.to_f64();
        ASSERT_EQ(av.size(), b.size());
        for (size_t k = 0; k < b.size(); ++k) {
          if (std::isfinite(b[k])) EXPECT_NEAR(av[k], b[k], 1e-5 + 1e-5 * std::fabs(b[k])) << what << k;
          else if (std::isnan(b[k])) EXPECT_TRUE(std::isnan(av[k])) << what << k;
          else EXPECT_EQ(av[k], b[k]) << what << k;
        }
      };
      SCOPED_TRACE("NH " + std::to_string(NH) + ", " + std::to_string(threads) + " threads");
      cmp("y ", o.output, y);
      cmp("state ", o.state, st);
    }
  }
  omp_set_num_threads(nt);
}

// ---- (7) checkpoint layouts (README §6.3) --------------------------------------------------------

TEST(SlstmLayouts, ConvertCudaAndExt) {
  const int64_t NH = 3, DH = 4, H = NH * DH;
  Rng rng(4);
  Tensor Re = randn_tensor<double>({NH, DH, 4, DH}, rng), be = randn_tensor<double>({NH, 4, DH}, rng);
  std::vector<double> Rv((size_t)(NH * 4 * DH * DH)), bv((size_t)(4 * H));
  for (int64_t h = 0; h < NH; ++h)
    for (int64_t i = 0; i < DH; ++i)
      for (int64_t g = 0; g < 4; ++g)
        for (int64_t o = 0; o < DH; ++o) {
          Rv[(size_t)((h * 4 * DH + g * DH + o) * DH + i)] =
              Re.data<double>()[((h * DH + i) * 4 + g) * DH + o];
          bv[(size_t)(g * H + h * DH + o)] = be.data<double>()[(h * 4 + g) * DH + o];
        }
  EXPECT_EQ(slstm_param_layout(Re.shape()), SlstmParamLayout::Ext);
  const Tensor Rc = Re.reshape({NH, DH, 4 * DH}).clone(), bc = be.reshape({4 * H}).clone();
  EXPECT_EQ(slstm_param_layout(Rc.shape()), SlstmParamLayout::Cuda);
  std::map<std::string, Tensor> sd{{"blocks.1.slstm_cell._recurrent_kernel_", Rc},
                                   {"blocks.1.slstm_cell._bias_", bc},
                                   {"cell.recurrent_kernel", Re.clone()},
                                   {"cell.bias", be.clone()},
                                   {"other.weight", Tensor({2}, DType::F64)}};
  EXPECT_EQ(slstm_convert_state_dict(sd), 2);
  expect_tensor_close("cuda R", sd.at("blocks.1.slstm_cell._recurrent_kernel_"), Rv, 0, 0);
  expect_tensor_close("cuda b", sd.at("blocks.1.slstm_cell._bias_"), bv, 0, 0);
  expect_tensor_close("ext R", sd.at("cell._recurrent_kernel_"), Rv, 0, 0);
  expect_tensor_close("ext b", sd.at("cell._bias_"), bv, 0, 0);
  EXPECT_EQ(sd.count("cell.recurrent_kernel"), 0u);
  EXPECT_EQ(sd.size(), 5u);
  EXPECT_EQ(slstm_convert_state_dict(sd), 0);  // already vanilla: untouched
  // Loading the converted dict into a cell works and gives the vanilla parameters.
  SLSTMCell<float> cell(cell_cfg(NH, DH));
  cell.load_params({{"_recurrent_kernel_", sd.at("cell._recurrent_kernel_")},
                    {"_bias_", sd.at("cell._bias_")}},
                   "test");
  expect_tensor_close("loaded R", cell.R_, Rv, 1e-6, 1e-6);
  EXPECT_NE(error_of([] { slstm_param_layout({3, 5, 7}); }).find("(NH,4DH,DH)"), std::string::npos);
}

// ---- (8) initialisation (spec §1.4, §3.1) -------------------------------------------------------

TEST(SlstmInit, PowerlawForgetBiasAndZeroRecurrent) {
  const int64_t NH = 2, DH = 8, H = NH * DH;
  for (int64_t blk : {0, 1, 2}) {
    SLSTMCellConfig c = cell_cfg(NH, DH);
    c.block_idx = blk;
    c.num_blocks = 3;
    SLSTMCell<double> cell(c);
    for (int64_t k = 0; k < cell.R_.numel(); ++k) ASSERT_EQ(cell.R_.data<double>()[k], 0.0);
    const double* b = cell.b_.data<double>();
    const double r = blk / 2.0;
    for (int64_t g = 0; g < 4; ++g)
      for (int64_t h = 0; h < NH; ++h)
        for (int64_t d = 0; d < DH; ++d) {
          const double want =
              g == 1 ? -(-5.0 + 12.0 * std::pow(d / (DH - 1.0), 0.3 + 1.3 * r)) : 0.0;
          EXPECT_NEAR(b[g * H + h * DH + d], want, 1e-12) << g << " " << h << " " << d;
        }
    EXPECT_NEAR(b[H], 5.0, 1e-12);
    EXPECT_NEAR(b[2 * H - 1], -7.0, 1e-12);
  }
  SLSTMLayer<double> layer(layer_cfg(32, 4, 4));
  double ss = 0;
  for (int64_t k = 0; k < layer.Wz_.numel(); ++k) ss += std::pow(layer.Wz_.data<double>()[k], 2);
  const double std = std::sqrt(ss / layer.Wz_.numel());
  EXPECT_NEAR(std, std::sqrt(2.0 / (5.0 * 32)), 0.05);  // small_init with dim = D
  for (int64_t k = 0; k < layer.gn_w_.numel(); ++k) EXPECT_EQ(layer.gn_w_.data<double>()[k], 0.0);
  std::vector<std::string> names;
  for (auto& p : layer.params()) names.push_back(p.name);
  const std::vector<std::string> want = {
      "conv1d.conv.weight", "conv1d.conv.bias", "fgate.weight", "igate.weight", "zgate.weight",
      "ogate.weight", "slstm_cell._recurrent_kernel_", "slstm_cell._bias_", "group_norm.weight"};
  EXPECT_EQ(names, want);
  EXPECT_EQ(layer.conv_w_.shape(), (Shape{32, 1, 4}));
  EXPECT_EQ(layer.cell().R_.shape(), (Shape{4, 32, 8}));
}

// ---- (9) errors at the door ---------------------------------------------------------------------

TEST(SlstmErrors, BadShapesAndTypes) {
  SLSTMCell<double> cell(cell_cfg(2, 4));  // H = 8
  std::string e = error_of([&] { cell.forward(Tensor({2, 5, 12}, DType::F64)); });
  EXPECT_NE(e.find("slstm_cell.forward"), std::string::npos) << e;
  EXPECT_NE(e.find("(B,S,32)"), std::string::npos) << e;
  EXPECT_NE(e.find("(2,5,12)"), std::string::npos) << e;
  e = error_of([&] { cell.forward(Tensor({2, 5, 32}, DType::F64), Tensor({4, 2, 7}, DType::F64)); });
  EXPECT_NE(e.find("(4,2,8)"), std::string::npos) << e;
  EXPECT_NE(e.find("(4,2,7)"), std::string::npos) << e;
  EXPECT_THROW(cell.forward(Tensor({2, 5, 32}, DType::F32)), TypeError);
  EXPECT_THROW(cell.forward(Tensor({0, 5, 32}, DType::F64)), ValueError);
  SLSTMCell<double> fresh(cell_cfg(2, 4));
  EXPECT_NE(error_of([&] { fresh.backward(Tensor({1, 2, 1, 4}, DType::F64)); }).find("no forward"),
            std::string::npos);
  cell.forward(Tensor({2, 5, 32}, DType::F64));
  e = error_of([&] { cell.backward(Tensor({2, 2, 4, 4}, DType::F64)); });
  EXPECT_NE(e.find("slstm_cell.backward"), std::string::npos) << e;
  EXPECT_NE(e.find("(2,2,5,4)"), std::string::npos) << e;
  EXPECT_THROW(SLSTMCell<float> c(cell_cfg(0, 4)), ValueError);
  SLSTMCellConfig bad = cell_cfg(4, 2);
  bad.hidden_size = 10;
  EXPECT_THROW(SLSTMCell<float> c(bad), ValueError);
  bad = cell_cfg(2, 2);
  bad.bias_init = "nope";
  EXPECT_THROW(SLSTMCell<float> c(bad), ValueError);

  SLSTMLayer<float> layer(layer_cfg(8, 2, 4));
  e = error_of([&] { layer.forward(Tensor({2, 5, 7}, DType::F32)); });
  EXPECT_NE(e.find("slstm_layer.forward"), std::string::npos) << e;
  EXPECT_NE(e.find("(B,S,8)"), std::string::npos) << e;
  EXPECT_NE(e.find("(2,5,7)"), std::string::npos) << e;
  SLSTMLayerState st;
  st.conv = Tensor({2, 4, 8}, DType::F32);
  e = error_of([&] { layer.forward(Tensor({2, 5, 8}, DType::F32), st); });
  EXPECT_NE(e.find("(2,3,8)"), std::string::npos) << e;
  EXPECT_NE(e.find("(2,4,8)"), std::string::npos) << e;
  SLSTMLayer<float> layer0(layer_cfg(8, 2, 0));
  st.conv = Tensor({2, 1, 8}, DType::F32);
  EXPECT_THROW(layer0.forward(Tensor({2, 5, 8}, DType::F32), st), ValueError);
  SLSTMLayerState st2;
  e = error_of([&] { layer.step(Tensor({2, 1, 8}, DType::F32), st2); });
  EXPECT_NE(e.find("slstm_layer.step"), std::string::npos) << e;
  layer.forward(Tensor({2, 5, 8}, DType::F32));
  e = error_of([&] { layer.backward(Tensor({2, 4, 8}, DType::F32)); });
  EXPECT_NE(e.find("(2,5,8)"), std::string::npos) << e;
  SLSTMLayerConfig lc = layer_cfg(8, 2, 4);
  lc.dropout = 1.0;
  EXPECT_THROW(SLSTMLayer<float> l(lc), ValueError);
  lc = layer_cfg(8, 3, 4);
  EXPECT_THROW(SLSTMLayer<float> l(lc), ValueError);
}

// ---- (10) dropout (train mode) is applied and differentiated consistently -----------------------

TEST(SlstmLayer, DropoutTrainAndEval) {
  const int64_t B = 2, S = 4, NH = 2, DH = 4, D = NH * DH;
  SLSTMLayerConfig c = layer_cfg(D, NH, 4);
  c.dropout = 0.5;
  SLSTMLayer<double> layer(c, 42);
  Rng rng(12);
  randomize(layer, rng);
  Tensor x = randn_tensor<double>({B, S, D}, rng);
  layer.set_mode(SLSTMLayer<double>::Mode::Eval);
  auto oe = layer.forward(x);
  SLSTMLayer<double> nodrop(layer_cfg(D, NH, 4));
  copy_params<double>(nodrop, layer);
  expect_bitwise("eval == no dropout", oe.output, nodrop.forward(x).output);
  layer.set_mode(SLSTMLayer<double>::Mode::Train);
  auto ot = layer.forward(x);
  auto wo = test::randn<double>(B * S * D, rng);
  layer.zero_grad();
  auto g = layer.backward(Tensor::from<double>({B, S, D}, wo));
  // Finite differences with the mask fixed: re-seed the dropout Rng for each evaluation.
  auto loss = [&]() {
    SLSTMLayer<double> l2(c, 42);
    copy_params<double>(l2, layer);
    return test::dot(l2.forward(x).output.data<double>(), wo.data(), (int64_t)wo.size());
  };
  EXPECT_NEAR(loss(), test::dot(ot.output.data<double>(), wo.data(), (int64_t)wo.size()), 1e-12);
  test::expect_grad("dx dropout", loss, x.data<double>(), x.numel(), g.input.data<double>());
}

}  // namespace
