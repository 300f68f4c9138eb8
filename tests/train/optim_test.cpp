// Optimizers (train/optim.h) against a float64 reference written from torch.optim's documented
// update rules, over several steps with a changing learning rate and weight-decay groups; state
// export/import continues bit-identically; errors at the door.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include <unistd.h>

#include "harness/compare.h"
#include "io/safetensors.h"
#include "train/optim.h"

using namespace xlstm;

namespace {

// A small "model": parameters named like the real ones, so the decay rule is exercised.
struct Model {
  std::vector<std::string> names = {"blocks.0.proj.weight", "blocks.0.proj.bias", "norm.weight",
                                    "token_embedding.weight", "slstm_cell._recurrent_kernel_"};
  std::vector<Shape> shapes = {{4, 3}, {4}, {3}, {5, 3}, {2, 3, 3}};
  std::vector<Tensor> values, grads;
  Model(DType dt, uint64_t seed) {
    Rng rng(seed);
    for (auto& s : shapes) {
      values.push_back(Tensor::from<double>(s, test::randn<double>(shape_numel(s), rng)).to(dt));
      grads.push_back(Tensor(s, dt));
    }
  }
  std::vector<ParamRef> refs() {
    std::vector<ParamRef> r;
    for (size_t i = 0; i < names.size(); ++i) r.push_back({names[i], &values[i], &grads[i]});
    return r;
  }
  // Deterministic gradients for step t (the same for every model built with this shape list).
  void set_grads(int t) {
    Rng rng(1000 + t);
    for (auto& g : grads) {
      auto v = test::randn<double>(g.numel(), rng, 0.0, 0.5);
      Tensor c = Tensor::from<double>(g.shape(), v).to(g.dtype());
      std::memcpy(g.raw(), c.raw(), c.nbytes());
    }
  }
};

// torch.optim reference, float64, one parameter tensor at a time.
struct RefState { std::vector<double> m, v, b; };

void ref_step(const OptimConfig& c, int t, double lr, bool decay, std::vector<double>& p,
              const std::vector<double>& g_in, RefState& s) {
  const double wd = decay ? c.weight_decay : 0.0;
  const size_t n = p.size();
  if (s.m.empty()) s.m.assign(n, 0), s.v.assign(n, 0), s.b.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    double g = g_in[i];
    if (c.kind == OptimKind::SGD) {
      g += wd * p[i];
      if (c.momentum != 0) {
        s.b[i] = t > 1 ? c.momentum * s.b[i] + (1 - c.dampening) * g : g;
        g = c.nesterov == Nesterov::On ? g + c.momentum * s.b[i] : s.b[i];
      }
      p[i] -= lr * g;
      continue;
    }
    if (c.kind == OptimKind::AdamW) p[i] -= lr * wd * p[i];
    else g += wd * p[i];
    s.m[i] = c.beta1 * s.m[i] + (1 - c.beta1) * g;
    s.v[i] = c.beta2 * s.v[i] + (1 - c.beta2) * g * g;
    const double mhat = s.m[i] / (1 - std::pow(c.beta1, t));
    const double vhat = s.v[i] / (1 - std::pow(c.beta2, t));
    p[i] -= lr * mhat / (std::sqrt(vhat) + c.eps);
  }
}

double lr_at(int t) { return 0.01 * (1.0 + 0.3 * std::sin(t)); }  // changes every step

void run_against_ref(const OptimConfig& cfg, DType dt, double atol, double rtol,
                     const DecayRule& rule = DecayRule::matrices()) {
  Model m(dt, 7);
  std::vector<std::vector<double>> ref_p;
  for (auto& v : m.values) ref_p.push_back(v.to_f64());
  std::vector<RefState> ref_s(m.values.size());
  Optimizer opt(m.refs(), cfg, rule);
  for (int t = 1; t <= 8; ++t) {
    m.set_grads(t);
    opt.set_lr(lr_at(t));
    opt.step();
    for (size_t i = 0; i < m.values.size(); ++i)
      ref_step(cfg, t, lr_at(t), rule.decays(m.names[i], m.shapes[i]), ref_p[i],
               m.grads[i].to_f64(), ref_s[i]);
  }
  EXPECT_EQ(opt.step_count(), 8);
  for (size_t i = 0; i < m.values.size(); ++i) {
    auto got = m.values[i].to_f64();
    test::expect_close(m.names[i], got.data(), ref_p[i].data(), (int64_t)got.size(), atol, rtol);
  }
}

OptimConfig adamw(double wd) {
  OptimConfig c;
  c.kind = OptimKind::AdamW, c.weight_decay = wd, c.beta1 = 0.85, c.beta2 = 0.98, c.eps = 1e-6;
  return c;
}

}  // namespace

TEST(DecayRule, DefaultDecaysOnlyMatrices) {
  DecayRule r;
  EXPECT_TRUE(r.decays("blocks.0.proj.weight", {4, 3}));
  EXPECT_TRUE(r.decays("weight_ih_l0", {16, 4}));
  EXPECT_TRUE(r.decays("slstm_cell._recurrent_kernel_", {2, 3, 3}));
  EXPECT_FALSE(r.decays("blocks.0.proj.bias", {4}));
  EXPECT_FALSE(r.decays("bias_ih_l0", {16}));
  EXPECT_FALSE(r.decays("blocks.0.norm.weight", {3}));
  EXPECT_FALSE(r.decays("blocks.0.xlstm_norm.weight", {3, 3}));  // "norm" in the name
  EXPECT_FALSE(r.decays("token_embedding.weight", {5, 3}));
  EXPECT_FALSE(r.decays("backbone.embeddings.weight", {5, 3}));
  EXPECT_FALSE(r.decays("scalar", {}));
  DecayRule w;
  w.require_any = {"weight"};
  EXPECT_FALSE(w.decays("slstm_cell._recurrent_kernel_", {2, 3, 3}));
  EXPECT_TRUE(w.decays("proj.weight", {2, 3}));
  EXPECT_TRUE(DecayRule::all().decays("norm.bias", {3}));
  EXPECT_FALSE(DecayRule::none().decays("proj.weight", {3, 3}));
}

TEST(Optimizer, AdamWMatchesTorchEquationsF64) { run_against_ref(adamw(0.1), DType::F64, 1e-13, 1e-11); }
TEST(Optimizer, AdamWMatchesTorchEquationsF32) { run_against_ref(adamw(0.1), DType::F32, 1e-6, 1e-5); }
TEST(Optimizer, AdamWWithoutDecay) { run_against_ref(adamw(0.0), DType::F64, 1e-13, 1e-11); }
TEST(Optimizer, AdamWDecayAll) {
  run_against_ref(adamw(0.3), DType::F64, 1e-13, 1e-11, DecayRule::all());
}

TEST(Optimizer, AdamCoupledL2) {
  OptimConfig c = adamw(0.05);
  c.kind = OptimKind::Adam;
  run_against_ref(c, DType::F64, 1e-13, 1e-11);
  run_against_ref(c, DType::F32, 1e-6, 1e-5);
}

TEST(Optimizer, SgdVariants) {
  OptimConfig c;
  c.kind = OptimKind::SGD;
  run_against_ref(c, DType::F64, 1e-14, 1e-12);  // plain
  c.momentum = 0.9, c.dampening = 0.1, c.weight_decay = 0.01;
  run_against_ref(c, DType::F64, 1e-14, 1e-12);
  c.dampening = 0, c.nesterov = Nesterov::On;
  run_against_ref(c, DType::F64, 1e-14, 1e-12);
  run_against_ref(c, DType::F32, 1e-6, 1e-5);
}

TEST(Optimizer, MarksDecayGroups) {
  Model m(DType::F32, 1);
  Optimizer opt(m.refs(), adamw(0.1));
  std::vector<bool> want = {true, false, false, false, true};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(opt.decays(i), want[i]) << m.names[i];
}

// Run 4 steps, save the state through a safetensors file, continue 4 steps in a fresh optimizer
// over copies of the parameters: bit-identical to 8 uninterrupted steps.
static void check_resume(const OptimConfig& cfg, DType dt) {
  Model a(dt, 3), b(dt, 3);
  Optimizer oa(a.refs(), cfg);
  {
    Optimizer ob(b.refs(), cfg);
    for (int t = 1; t <= 4; ++t) b.set_grads(t), ob.set_lr(lr_at(t)), ob.step();
    const std::string path =
        (std::filesystem::temp_directory_path() / ("optim_state_" + std::to_string(::getpid()) + ".safetensors")).string();
    save_safetensors(path, ob.state_dict());
    SafeTensorsFile f(path);
    std::map<std::string, Tensor> st;
    for (auto& n : f.names()) st[n] = f.get(n).clone();
    std::filesystem::remove(path);
    Model c(dt, 3);
    for (size_t i = 0; i < c.values.size(); ++i) c.values[i] = b.values[i].clone();
    Optimizer oc(c.refs(), cfg);
    oc.load_state_dict(st, path);
    EXPECT_EQ(oc.step_count(), 4);
    for (int t = 5; t <= 8; ++t) c.set_grads(t), oc.set_lr(lr_at(t)), oc.step();
    for (int t = 1; t <= 8; ++t) a.set_grads(t), oa.set_lr(lr_at(t)), oa.step();
    for (size_t i = 0; i < a.values.size(); ++i)
      EXPECT_EQ(std::memcmp(a.values[i].raw(), c.values[i].raw(), a.values[i].nbytes()), 0)
          << optim_kind_name(cfg.kind) << " " << a.names[i];
  }
}

TEST(Optimizer, StateRoundTripContinuesBitIdentically) {
  check_resume(adamw(0.1), DType::F32);
  check_resume(adamw(0.1), DType::F64);
  OptimConfig adam = adamw(0.1);
  adam.kind = OptimKind::Adam;
  check_resume(adam, DType::F32);
  OptimConfig sgd;
  sgd.kind = OptimKind::SGD, sgd.momentum = 0.9, sgd.nesterov = Nesterov::On;
  check_resume(sgd, DType::F32);
}

TEST(Optimizer, StateDictNames) {
  Model m(DType::F32, 1);
  Optimizer opt(m.refs(), adamw(0.1));
  auto st = opt.state_dict();
  EXPECT_EQ(st.size(), 1 + 2 * m.names.size());
  EXPECT_EQ(st.at("step").data<int64_t>()[0], 0);
  EXPECT_EQ(st.at("exp_avg.norm.weight").shape(), (Shape{3}));
  EXPECT_EQ(st.at("exp_avg_sq.token_embedding.weight").shape(), (Shape{5, 3}));
  OptimConfig sgd;
  sgd.kind = OptimKind::SGD, sgd.momentum = 0.5;
  Optimizer os(m.refs(), sgd);
  EXPECT_EQ(os.state_dict().size(), 1u);  // no momentum buffers before the first step
  m.set_grads(1);
  os.step();
  EXPECT_EQ(os.state_dict().count("momentum_buffer.norm.weight"), 1u);
}

TEST(Optimizer, LoadStateValidates) {
  Model m(DType::F32, 1);
  Optimizer opt(m.refs(), adamw(0.1));
  m.set_grads(1);
  opt.step();
  const auto good = opt.state_dict();
  auto expect_msg = [&](auto mutate, const char* needle, bool io) {
    auto st = good;
    mutate(st);
    try {
      opt.load_state_dict(st, "ckpt.safetensors");
      ADD_FAILURE() << "no error for " << needle;
    } catch (const IoError& e) {
      EXPECT_TRUE(io) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    } catch (const ValueError& e) {
      EXPECT_FALSE(io) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  using M = std::map<std::string, Tensor>;
  expect_msg([](M& s) { s.erase("exp_avg_sq.norm.weight"); }, "exp_avg_sq.norm.weight", true);
  expect_msg([](M& s) { s.erase("step"); }, "'step'", true);
  expect_msg([](M& s) { s["exp_avg.norm.weight"] = Tensor({4}, DType::F32); }, "exp_avg.norm.weight", false);
  expect_msg([](M& s) { s["exp_avg.extra"] = Tensor({4}, DType::F32); }, "exp_avg.extra", false);
  expect_msg([](M& s) { s["step"] = Tensor::from<int64_t>({1}, {-3}); }, "step", false);
  // Failed loads changed nothing.
  EXPECT_EQ(opt.step_count(), 1);
  auto now = opt.state_dict();
  for (auto& kv : good)
    EXPECT_EQ(std::memcmp(kv.second.raw(), now.at(kv.first).raw(), kv.second.nbytes()), 0);
}

TEST(Optimizer, RejectsBadConfigAndParams) {
  Model m(DType::F32, 1);
  auto throws = [&](OptimConfig c) { EXPECT_THROW(Optimizer(m.refs(), c), ValueError); };
  OptimConfig c = adamw(0.1);
  c.lr = -1, throws(c);
  c = adamw(0.1), c.beta1 = 1.0, throws(c);
  c = adamw(0.1), c.beta2 = -0.1, throws(c);
  c = adamw(-0.1), throws(c);
  c = OptimConfig(), c.kind = OptimKind::SGD, c.nesterov = Nesterov::On, throws(c);
  c.momentum = 0.9, c.dampening = 0.5, throws(c);
  Tensor wrong({2}, DType::F32);
  auto refs = m.refs();
  refs[0].grad = &wrong;
  EXPECT_THROW(Optimizer(refs, adamw(0)), ValueError);
  refs = m.refs();
  refs[1].name = refs[0].name;
  EXPECT_THROW(Optimizer(refs, adamw(0)), ValueError);
  Tensor i32({3}, DType::I32), gi32({3}, DType::I32);
  EXPECT_THROW(Optimizer({{"x", &i32, &gi32}}, adamw(0)), TypeError);
  Optimizer ok(m.refs(), adamw(0));
  EXPECT_THROW(ok.set_lr(NAN), ValueError);
  EXPECT_EQ(parse_optim_kind("adamw"), OptimKind::AdamW);
  EXPECT_THROW(parse_optim_kind("Adam"), ValueError);
}

TEST(Optimizer, ZeroGrad) {
  Model m(DType::F32, 1);
  m.set_grads(1);
  Optimizer opt(m.refs(), adamw(0));
  opt.zero_grad();
  for (auto& g : m.grads)
    for (double v : g.to_f64()) EXPECT_EQ(v, 0.0);
}
