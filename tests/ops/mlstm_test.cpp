// mLSTM kernel (src/cpu/mlstm.h): the three forms against the float64 spec (tests/ref),
// finite-difference gradient checks of every gradient of every form (double), cross-form
// agreement (up to the eps*e^m effects of conformance README §6.6), state carrying, the two
// scale conventions, determinism, extreme gates, a long sequence in float, and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cpu/mlstm.h"
#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "ref/mlstm_ref.h"

using namespace xlstm;
using Vec = std::vector<double>;

namespace {

struct Problem {
  MlstmDims d;
  Vec q, k, v, i, f, c0, n0, m0;  // c0 empty: no initial state
  bool has_state() const { return !c0.empty(); }
};

struct Gates {
  double i_mean = 0, i_std = 2, f_mean = 1.5, f_std = 2;
};

Problem make_problem(uint64_t seed, MlstmDims d, bool state, Gates g = {}) {
  Rng rng(seed);
  Problem p;
  p.d = d;
  const int64_t BH = d.B * d.NH, S = d.S;
  p.q = test::randn<double>(BH * S * d.DHQK, rng);
  p.k = test::randn<double>(BH * S * d.DHQK, rng);
  p.v = test::randn<double>(BH * S * d.DHV, rng);
  p.i = test::randn<double>(BH * S, rng, g.i_mean, g.i_std);
  p.f = test::randn<double>(BH * S, rng, g.f_mean, g.f_std);
  if (state) {
    p.c0 = test::randn<double>(BH * d.DHQK * d.DHV, rng);
    p.n0 = test::randn<double>(BH * d.DHQK, rng);
    p.m0 = test::randn<double>(BH, rng);
  }
  return p;
}

// Makes |den| < e^-m at some positions (the normaliser's floor branch) by shrinking q rows.
void shrink_some_q(Problem& p) {
  for (int64_t r = 0; r < p.d.B * p.d.NH * p.d.S; r += 3)
    for (int64_t x = 0; x < p.d.DHQK; ++x) p.q[(size_t)(r * p.d.DHQK + x)] *= 1e-3;
}

struct Weights {
  Vec h, c, n, m;
};
Weights make_weights(uint64_t seed, const MlstmDims& d) {
  Rng rng(seed);
  const int64_t BH = d.B * d.NH;
  return {test::randn<double>(BH * d.S * d.DHV, rng), test::randn<double>(BH * d.DHQK * d.DHV, rng),
          test::randn<double>(BH * d.DHQK, rng), test::randn<double>(BH, rng)};
}

struct Result {
  Vec h, c, n, m;
  Vec dq, dk, dv, di, df, dc0, dn0, dm0;
  int floor_hits = 0;  // positions with N = e^-m
};

template <class T>
Tensor tens(const Shape& s, const Vec& v) {
  return Tensor::from<double>(s, v).to(DTypeOf<T>::value);
}

// Forward (and backward when w is given: dh = w.h and, with states out, dstate = w.c/n/m).
template <class T>
Result run(MlstmForm form, const Problem& p, const MlstmOptions& o, const Weights* w,
           bool state_out, MlstmWorkspace* ws = nullptr) {
  const MlstmDims& d = p.d;
  const Shape sq{d.B, d.NH, d.S, d.DHQK}, sv{d.B, d.NH, d.S, d.DHV}, sg{d.B, d.NH, d.S};
  const Shape sc{d.B, d.NH, d.DHQK, d.DHV}, sn{d.B, d.NH, d.DHQK}, sm{d.B, d.NH};
  MlstmState sin, sout;
  if (p.has_state()) sin = {tens<T>(sc, p.c0), tens<T>(sn, p.n0), tens<T>(sm, p.m0)};
  MlstmContext ctx;
  Tensor h = mlstm_forward(form, tens<T>(sq, p.q), tens<T>(sq, p.k), tens<T>(sv, p.v),
                           tens<T>(sg, p.i), tens<T>(sg, p.f), o, p.has_state() ? &sin : nullptr,
                           state_out ? &sout : nullptr, &ctx, ws);
  Result r;
  r.h = h.to_f64();
  if (state_out) r.c = sout.c.to_f64(), r.n = sout.n.to_f64(), r.m = sout.m.to_f64();
  const auto& cache = ctx.cache_d;
  for (size_t x = 0; x < cache.den.size(); ++x)
    r.floor_hits += std::fabs(cache.den[x]) < std::exp(-cache.m[x]);
  if (!w) return r;
  MlstmState dso;
  if (state_out) dso = {tens<T>(sc, w->c), tens<T>(sn, w->n), tens<T>(sm, w->m)};
  MlstmTensorGrads g = mlstm_backward(ctx, tens<T>(sv, w->h), state_out ? &dso : nullptr, ws);
  r.dq = g.dq.to_f64(), r.dk = g.dk.to_f64(), r.dv = g.dv.to_f64();
  r.di = g.di.to_f64(), r.df = g.df.to_f64();
  if (g.dstate_in.c.defined())
    r.dc0 = g.dstate_in.c.to_f64(), r.dn0 = g.dstate_in.n.to_f64(), r.dm0 = g.dstate_in.m.to_f64();
  return r;
}

double loss_of(const Result& r, const Weights& w) {
  double s = test::dot(r.h.data(), w.h.data(), (int64_t)r.h.size());
  if (!r.c.empty()) {
    s += test::dot(r.c.data(), w.c.data(), (int64_t)r.c.size());
    s += test::dot(r.n.data(), w.n.data(), (int64_t)r.n.size());
    s += test::dot(r.m.data(), w.m.data(), (int64_t)r.m.size());
  }
  return s;
}

double max_abs(const Vec& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

void close(const std::string& what, const Vec& a, const Vec& b, double atol, double rtol) {
  ASSERT_EQ(a.size(), b.size()) << what;
  test::expect_close(what, a.data(), b.data(), (int64_t)a.size(), atol, rtol);
}

void close_grads(const std::string& tag, const Result& a, const Result& b, double atol, double rtol) {
  close(tag + " dq", a.dq, b.dq, atol, rtol);
  close(tag + " dk", a.dk, b.dk, atol, rtol);
  close(tag + " dv", a.dv, b.dv, atol, rtol);
  close(tag + " di", a.di, b.di, atol, rtol);
  close(tag + " df", a.df, b.df, atol, rtol);
  if (!a.dc0.empty() || !b.dc0.empty()) {
    close(tag + " dc0", a.dc0, b.dc0, atol, rtol);
    close(tag + " dn0", a.dn0, b.dn0, atol, rtol);
    close(tag + " dm0", a.dm0, b.dm0, atol, rtol);
  }
}

MlstmOptions opts(int64_t chunk, ScaleOn s = ScaleOn::Q, double eps = 1e-6) {
  MlstmOptions o;
  o.chunk_size = chunk;
  o.scale_on = s;
  o.eps = eps;
  return o;
}

// Finite differences of the double forward against the analytic backward, every input.
// Five-point stencil with a step relative to |x|: the gates make the loss strongly curved
// (e^m terms, and 1/den near the floor branch where q is tiny), so a plain central difference
// small enough for the truncation error drowns the small entries in round-off.
Vec fd_grad(const std::function<double()>& L, Vec& x) {
  Vec g(x.size());
  for (size_t j = 0; j < x.size(); ++j) {
    const double x0 = x[j], h = 3e-5 * std::clamp(std::fabs(x0), 1e-2, 1.0);
    auto at = [&](double dx) {
      x[j] = x0 + dx;
      const double v = L();
      x[j] = x0;
      return v;
    };
    g[j] = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h);
  }
  return g;
}

void gradcheck(MlstmForm form, Problem p, const MlstmOptions& o, const std::string& tag) {
  const bool st = form != MlstmForm::Parallel;
  const Weights w = make_weights(77, p.d);
  const Result an = run<double>(form, p, o, &w, st);
  auto L = [&]() { return loss_of(run<double>(form, p, o, nullptr, st), w); };
  auto check = [&](const char* name, Vec& x, const Vec& g) {
    close(tag + " " + name, g, fd_grad(L, x), 1e-8, 1e-7);
  };
  check("dq", p.q, an.dq);
  check("dk", p.k, an.dk);
  check("dv", p.v, an.dv);
  check("di", p.i, an.di);
  check("df", p.f, an.df);
  if (p.has_state()) {
    check("dc0", p.c0, an.dc0);
    check("dn0", p.n0, an.dn0);
    check("dm0", p.m0, an.dm0);
  }
}

const MlstmDims kSmall{2, 1, 7, 3, 4};

}  // namespace

// ---- the spec: the three reference forms agree up to eps effects ----

TEST(MlstmRef, FormsAgree) {
  const MlstmDims d{2, 2, 19, 4, 5};
  const Problem p = make_problem(1, d, false);
  Vec hr(p.v.size()), hp(p.v.size()), hc(p.v.size());
  ref::mlstm_recurrent_ref(d, 1e-6, ScaleOn::Q, p.q.data(), p.k.data(), p.v.data(), p.i.data(),
                           p.f.data(), nullptr, nullptr, nullptr, hr.data(), nullptr, nullptr, nullptr);
  ref::mlstm_parallel_ref(d, 1e-6, p.q.data(), p.k.data(), p.v.data(), p.i.data(), p.f.data(), hp.data());
  ref::mlstm_chunkwise_ref(d, 1e-6, 6, ScaleOn::Q, p.q.data(), p.k.data(), p.v.data(), p.i.data(),
                           p.f.data(), nullptr, nullptr, nullptr, hc.data(), nullptr, nullptr, nullptr);
  close("parallel vs recurrent", hp, hr, 2e-6, 1e-6);
  close("chunkwise vs recurrent", hc, hr, 2e-6, 1e-6);
}

// ---- each kernel against its reference form (same stabilisers: round-off only) ----

TEST(MlstmKernel, MatchesReference) {
  const MlstmDims d{2, 3, 23, 5, 6};
  for (ScaleOn sc : {ScaleOn::Q, ScaleOn::K}) {
    const Problem p = make_problem(2, d, true);
    const Problem p0 = make_problem(2, d, false);
    const size_t nh = p.v.size(), nc = p.c0.size(), nn = p.n0.size(), nm = p.m0.size();
    Vec h(nh), c(nc), n(nn), m(nm);
    const std::string tag = sc == ScaleOn::Q ? "scale q: " : "scale k: ";

    ref::mlstm_parallel_ref(d, 1e-6, p0.q.data(), p0.k.data(), p0.v.data(), p0.i.data(), p0.f.data(), h.data());
    Result rp = run<double>(MlstmForm::Parallel, p0, opts(64, sc), nullptr, false);
    close(tag + "parallel h", rp.h, h, 1e-13, 1e-11);
    Result rpf = run<float>(MlstmForm::Parallel, p0, opts(64, sc), nullptr, false);
    close(tag + "parallel h f32", rpf.h, h, 2e-5, 1e-4);

    ref::mlstm_chunkwise_ref(d, 1e-6, 5, sc, p.q.data(), p.k.data(), p.v.data(), p.i.data(), p.f.data(),
                             p.c0.data(), p.n0.data(), p.m0.data(), h.data(), c.data(), n.data(), m.data());
    for (auto* fn : {&run<double>, &run<float>}) {
      const bool f32 = fn == &run<float>;
      const double at = f32 ? 2e-5 : 1e-13, rt = f32 ? 1e-4 : 1e-11;
      Result r = (*fn)(MlstmForm::Chunkwise, p, opts(5, sc), nullptr, true, nullptr);
      close(tag + "chunkwise h", r.h, h, at, rt);
      close(tag + "chunkwise c", r.c, c, at, rt);
      close(tag + "chunkwise n", r.n, n, at, rt);
      close(tag + "chunkwise m", r.m, m, at, rt);
    }
    ref::mlstm_recurrent_ref(d, 1e-6, sc, p.q.data(), p.k.data(), p.v.data(), p.i.data(), p.f.data(),
                             p.c0.data(), p.n0.data(), p.m0.data(), h.data(), c.data(), n.data(), m.data());
    for (auto* fn : {&run<double>, &run<float>}) {
      const bool f32 = fn == &run<float>;
      const double at = f32 ? 2e-5 : 1e-13, rt = f32 ? 1e-4 : 1e-11;
      Result r = (*fn)(MlstmForm::Recurrent, p, opts(4, sc), nullptr, true, nullptr);
      close(tag + "recurrent h", r.h, h, at, rt);
      close(tag + "recurrent c", r.c, c, at, rt);
      close(tag + "recurrent n", r.n, n, at, rt);
      close(tag + "recurrent m", r.m, m, at, rt);
    }
  }
}

// ---- finite-difference gradient checks (double), every gradient of every form ----

TEST(MlstmGradcheck, Parallel) {
  Problem p = make_problem(3, kSmall, false, {2, 3, 1.5, 2});
  shrink_some_q(p);
  EXPECT_GT(run<double>(MlstmForm::Parallel, p, opts(64), nullptr, false).floor_hits, 0);
  gradcheck(MlstmForm::Parallel, p, opts(64), "parallel");
  gradcheck(MlstmForm::Parallel, p, opts(64, ScaleOn::K, 1e-2), "parallel eps=1e-2");
}

TEST(MlstmGradcheck, ChunkwiseWithStates) {
  for (int64_t L : {3, 7, 2}) {  // ragged last chunk, one chunk, many chunks
    Problem p = make_problem(4 + L, kSmall, true, {2, 3, 1.5, 2});
    shrink_some_q(p);
    EXPECT_GT(run<double>(MlstmForm::Chunkwise, p, opts(L), nullptr, true).floor_hits, 0);
    gradcheck(MlstmForm::Chunkwise, p, opts(L), "chunkwise L=" + std::to_string(L));
  }
  Problem p = make_problem(9, kSmall, true);
  gradcheck(MlstmForm::Chunkwise, p, opts(3, ScaleOn::K, 1e-2), "chunkwise K eps=1e-2");
}

TEST(MlstmGradcheck, ChunkwiseZeroState) {
  Problem p = make_problem(10, kSmall, false, {2, 3, 1.5, 2});
  gradcheck(MlstmForm::Chunkwise, p, opts(4), "chunkwise zero state");
}

TEST(MlstmGradcheck, RecurrentWithStates) {
  for (int64_t P : {3, 64}) {  // backward checkpoint segments
    Problem p = make_problem(11 + P, kSmall, true, {2, 3, 1.5, 2});
    shrink_some_q(p);
    EXPECT_GT(run<double>(MlstmForm::Recurrent, p, opts(P), nullptr, true).floor_hits, 0);
    gradcheck(MlstmForm::Recurrent, p, opts(P), "recurrent P=" + std::to_string(P));
  }
  Problem p = make_problem(12, kSmall, true);
  gradcheck(MlstmForm::Recurrent, p, opts(2, ScaleOn::K, 1e-2), "recurrent K eps=1e-2");
}

TEST(MlstmGradcheck, SingleStep) {
  Problem p = make_problem(13, {2, 2, 1, 4, 3}, true);
  gradcheck(MlstmForm::Recurrent, p, opts(1), "step");
  gradcheck(MlstmForm::Recurrent, p, opts(1, ScaleOn::K), "step K");
}

// ---- the forms agree (kernels) ----

TEST(MlstmForms, AgreeOnRandomInputs) {
  const MlstmDims d{2, 2, 37, 5, 6};
  const Problem p = make_problem(14, d, false);
  const Weights w = make_weights(15, d);
  const Result par = run<double>(MlstmForm::Parallel, p, opts(64), &w, false);
  const Result rec = run<double>(MlstmForm::Recurrent, p, opts(8), &w, false);
  close("recurrent vs parallel h", rec.h, par.h, 2e-6, 1e-6);
  close_grads("recurrent vs parallel", rec, par, 2e-5, 1e-5);
  for (int64_t L : {1, 4, 7, 16, 37, 64}) {
    const Result ch = run<double>(MlstmForm::Chunkwise, p, opts(L), &w, false);
    const std::string tag = "chunkwise L=" + std::to_string(L);
    close(tag + " vs parallel h", ch.h, par.h, 2e-6, 1e-6);
    close(tag + " vs recurrent h", ch.h, rec.h, 2e-6, 1e-6);
    close_grads(tag + " vs recurrent", ch, rec, 2e-5, 1e-5);
  }
}

// The float instantiation's backward against the double one (all gradients, with states).
TEST(MlstmKernel, FloatBackwardMatchesDouble) {
  const MlstmDims d{2, 2, 29, 8, 12};
  for (MlstmForm form : {MlstmForm::Parallel, MlstmForm::Chunkwise, MlstmForm::Recurrent}) {
    const bool st = form != MlstmForm::Parallel;
    const Problem p = make_problem(30, d, st);
    const Weights w = make_weights(31, d);
    const Result a = run<double>(form, p, opts(8), &w, st), b = run<float>(form, p, opts(8), &w, st);
    const double gs = std::max({max_abs(a.dq), max_abs(a.dk), max_abs(a.dv), max_abs(a.di), max_abs(a.df)});
    close(std::string(mlstm_form_name(form)) + " f32 h", b.h, a.h, 1e-5 * max_abs(a.h), 1e-4);
    close_grads(std::string(mlstm_form_name(form)) + " f32", b, a, 1e-5 * gs, 1e-3);
  }
}

TEST(MlstmForms, EdgeShapes) {
  for (MlstmDims d : {MlstmDims{1, 1, 1, 1, 1}, MlstmDims{1, 1, 1, 3, 2}, MlstmDims{1, 2, 2, 1, 3}}) {
    const Problem p = make_problem(16, d, false);
    const Weights w = make_weights(17, d);
    const Result par = run<double>(MlstmForm::Parallel, p, opts(64), &w, false);
    const Result ch = run<double>(MlstmForm::Chunkwise, p, opts(1), &w, false);
    const Result rec = run<double>(MlstmForm::Recurrent, p, opts(5), &w, false);
    close("edge chunkwise h", ch.h, par.h, 2e-6, 1e-6);
    close("edge recurrent h", rec.h, par.h, 2e-6, 1e-6);
    close_grads("edge chunkwise vs recurrent", ch, rec, 2e-5, 1e-5);
  }
}

// Gate pre-activations up to +-50: finite everywhere, and the forms still agree. The input
// gates are distinct values: with f = +50, logsigmoid(f) vanishes against m in double, so
// equal input gates would tie exactly in the max, where the forms may legitimately route
// the (sub)gradient differently (torch.maximum splits, torch.max(dim) picks one index).
TEST(MlstmForms, ExtremeGates) {
  const MlstmDims d{1, 2, 40, 4, 4};
  Problem p = make_problem(18, d, false);
  Rng rng(19);
  for (auto& x : p.i) x = rng.uniform(-50, 50);
  for (auto& x : p.f) x = rng.uniform() < 0.5 ? (rng.uniform() < 0.5 ? 50.0 : -50.0) : rng.uniform(-50, 50);
  p.i[3] = 50, p.i[7] = -50, p.i[45] = 50, p.i[50] = -50;
  const Weights w = make_weights(20, d);
  Result rec64;
  for (bool f32 : {false, true}) {
    // Loss on h only, so that every form has the same loss; states compared separately.
    auto R = [&](MlstmForm form, int64_t L, bool st) {
      return f32 ? run<float>(form, p, opts(L), st ? nullptr : &w, st)
                 : run<double>(form, p, opts(L), st ? nullptr : &w, st);
    };
    const Result par = R(MlstmForm::Parallel, 64, false), rec = R(MlstmForm::Recurrent, 8, false);
    const Result ch = R(MlstmForm::Chunkwise, 7, false);
    const Result chs = R(MlstmForm::Chunkwise, 7, true), recs = R(MlstmForm::Recurrent, 8, true);
    for (const Result* r : {&par, &rec, &ch, &chs, &recs})
      for (const Vec* v : {&r->h, &r->dq, &r->dk, &r->dv, &r->di, &r->df, &r->c, &r->n, &r->m})
        for (double x : *v) ASSERT_TRUE(std::isfinite(x)) << (f32 ? "f32" : "f64");
    const double hs = max_abs(par.h), tol = f32 ? 1e-4 : 1e-6;
    close("extreme chunkwise h", ch.h, par.h, tol * hs, tol);
    close("extreme recurrent h", rec.h, par.h, tol * hs, tol);
    close("extreme states c", chs.c, recs.c, tol * max_abs(recs.c), tol);
    close("extreme states n", chs.n, recs.n, tol * max_abs(recs.n), tol);
    close("extreme states m", chs.m, recs.m, tol * max_abs(recs.m), tol);
    if (!f32) {
      rec64 = rec;
      const double gs = std::max({max_abs(rec.dq), max_abs(rec.dk), max_abs(rec.dv), max_abs(rec.di)});
      close_grads("extreme f64 chunkwise vs recurrent", ch, rec, 1e-6 * gs, 1e-6);
      close_grads("extreme f64 parallel vs recurrent", par, rec, 1e-6 * gs, 1e-6);
    } else {
      // float32 against float64: where |q.n| nearly cancels, dq and dk are differences of
      // large terms (h is homogeneous of degree 0 in q), so a state held in float loses
      // digits there (measured ~4e-3 of max|grad|; the parallel form ~2e-6).
      const double gs = std::max({max_abs(rec64.dq), max_abs(rec64.dk), max_abs(rec64.dv), max_abs(rec64.di)});
      for (const Result* r : {&par, &ch, &rec}) close_grads("extreme f32 vs f64", *r, rec64, 2e-2 * gs, 1e-3);
    }
  }
}

// T = 4096 in float: chunkwise, recurrent and parallel against the double chunkwise. The
// float32 error grows like sqrt(T)*2^-24 relative in the accumulated state; the forms differ
// by at most ~eps = 1e-6 relative (README §6.6), hence ~1e-5 relative of max|h|.
TEST(MlstmForms, LongSequenceFloat) {
  const MlstmDims d{1, 2, 4096, 16, 16};
  const Problem p = make_problem(21, d, false, {0, 1, 3, 1});
  const Result ref64 = run<double>(MlstmForm::Chunkwise, p, opts(64), nullptr, true);
  const double hs = max_abs(ref64.h);
  const Result ch = run<float>(MlstmForm::Chunkwise, p, opts(64), nullptr, true);
  const Result rec = run<float>(MlstmForm::Recurrent, p, opts(64), nullptr, true);
  const Result par = run<float>(MlstmForm::Parallel, p, opts(64), nullptr, false);
  close("long chunkwise f32", ch.h, ref64.h, 1e-5 * hs, 1e-5);
  close("long recurrent f32", rec.h, ref64.h, 1e-5 * hs, 1e-5);
  close("long parallel f32", par.h, ref64.h, 1e-5 * hs, 1e-5);
  close("long state c f32", ch.c, ref64.c, 1e-5 * max_abs(ref64.c), 1e-5);
  close("long state c rec f32", rec.c, ref64.c, 1e-5 * max_abs(ref64.c), 1e-5);
}

// ---- state carrying: one call over T == two calls over T/2 (forward and gradients) ----

namespace {
Problem slice(const Problem& p, int64_t t0, int64_t t1) {
  Problem s;
  s.d = p.d;
  s.d.S = t1 - t0;
  auto cut = [&](const Vec& v, int64_t w) {
    Vec o;
    for (int64_t bh = 0; bh < p.d.B * p.d.NH; ++bh)
      o.insert(o.end(), v.begin() + (bh * p.d.S + t0) * w, v.begin() + (bh * p.d.S + t1) * w);
    return o;
  };
  s.q = cut(p.q, p.d.DHQK), s.k = cut(p.k, p.d.DHQK), s.v = cut(p.v, p.d.DHV);
  s.i = cut(p.i, 1), s.f = cut(p.f, 1);
  return s;
}
Vec join(const Vec& a, const Vec& b, int64_t BH) {  // per-head concatenation along time
  Vec o;
  const size_t na = a.size() / BH, nb = b.size() / BH;
  for (int64_t bh = 0; bh < BH; ++bh) {
    o.insert(o.end(), a.begin() + bh * na, a.begin() + (bh + 1) * na);
    o.insert(o.end(), b.begin() + bh * nb, b.begin() + (bh + 1) * nb);
  }
  return o;
}
}  // namespace

TEST(MlstmState, SplitCallsEqualOneCall) {
  const MlstmDims d{2, 2, 32, 4, 5};
  for (MlstmForm form : {MlstmForm::Chunkwise, MlstmForm::Recurrent}) {
    for (int64_t L : {8, 6}) {  // chunk boundaries aligned with the split, or not
      const Problem p = make_problem(22, d, true);
      const Weights w = make_weights(23, d);
      const Result one = run<double>(form, p, opts(L), &w, true);
      Problem a = slice(p, 0, 16), b = slice(p, 16, 32);
      a.c0 = p.c0, a.n0 = p.n0, a.m0 = p.m0;
      const Result ra = run<double>(form, a, opts(L), nullptr, true);
      b.c0 = ra.c, b.n0 = ra.n, b.m0 = ra.m;
      Weights wa = make_weights(23, d), wb = wa;
      const int64_t BH = d.B * d.NH;
      const Vec wh = w.h;
      wa.h.assign(wh.size() / 2, 0), wb.h.assign(wh.size() / 2, 0);
      for (int64_t bh = 0; bh < BH; ++bh)
        for (int64_t x = 0; x < 16 * d.DHV; ++x) {
          wa.h[bh * 16 * d.DHV + x] = wh[bh * 32 * d.DHV + x];
          wb.h[bh * 16 * d.DHV + x] = wh[bh * 32 * d.DHV + 16 * d.DHV + x];
        }
      const Result rb = run<double>(form, b, opts(L), &wb, true);
      wa.c = rb.dc0, wa.n = rb.dn0, wa.m = rb.dm0;  // the second call's state gradient
      const Result ga = run<double>(form, a, opts(L), &wa, true);
      const bool tight = form == MlstmForm::Recurrent || 16 % L == 0;
      const double at = tight ? 1e-12 : 2e-6, rt = tight ? 1e-10 : 1e-6;
      const std::string tag = std::string(mlstm_form_name(form)) + " L=" + std::to_string(L);
      close(tag + " h", join(ra.h, rb.h, BH), one.h, at, rt);
      close(tag + " c", rb.c, one.c, at, rt);
      close(tag + " n", rb.n, one.n, at, rt);
      close(tag + " m", rb.m, one.m, at, rt);
      Result two;
      two.dq = join(ga.dq, rb.dq, BH), two.dk = join(ga.dk, rb.dk, BH), two.dv = join(ga.dv, rb.dv, BH);
      two.di = join(ga.di, rb.di, BH), two.df = join(ga.df, rb.df, BH);
      two.dc0 = ga.dc0, two.dn0 = ga.dn0, two.dm0 = ga.dm0;
      close_grads(tag + " grads", two, one, tight ? 1e-11 : 2e-5, tight ? 1e-9 : 1e-5);
    }
  }
}

// ---- ScaleOn::Q vs ScaleOn::K: same h and gradients, states differ by sqrt(DHQK) ----

TEST(MlstmState, ScaleConventions) {
  const MlstmDims d{2, 2, 13, 9, 5};
  const double r = 3.0;  // sqrt(DHQK)
  for (MlstmForm form : {MlstmForm::Chunkwise, MlstmForm::Recurrent}) {
    Problem pq = make_problem(24, d, true), pk = pq;
    for (auto& x : pk.c0) x /= r;
    for (auto& x : pk.n0) x /= r;
    Weights wq = make_weights(25, d), wk = wq;
    for (auto& x : wk.c) x *= r;  // the same loss on the K-convention state
    for (auto& x : wk.n) x *= r;
    const Result a = run<double>(form, pq, opts(4, ScaleOn::Q), &wq, true);
    const Result b = run<double>(form, pk, opts(4, ScaleOn::K), &wk, true);
    const std::string tag = mlstm_form_name(form);
    close(tag + " h", b.h, a.h, 1e-13, 1e-11);
    Vec c = b.c, n = b.n;
    for (auto& x : c) x *= r;
    for (auto& x : n) x *= r;
    close(tag + " c*sqrt(d)", c, a.c, 1e-13, 1e-11);
    close(tag + " n*sqrt(d)", n, a.n, 1e-13, 1e-11);
    close(tag + " m", b.m, a.m, 1e-13, 1e-11);
    Result bs = b;
    for (auto& x : bs.dc0) x /= r;
    for (auto& x : bs.dn0) x /= r;
    close_grads(tag + " grads", bs, a, 1e-12, 1e-10);
  }
}

// ---- determinism ----

TEST(MlstmKernel, BackwardTwiceIsBitwiseIdentical) {
  const MlstmDims d{2, 3, 45, 8, 6};
  const Problem p = make_problem(26, d, true);
  const Weights w = make_weights(27, d);
  MlstmWorkspace ws;
  for (MlstmForm form : {MlstmForm::Parallel, MlstmForm::Chunkwise, MlstmForm::Recurrent}) {
    const bool st = form != MlstmForm::Parallel;
    Problem pp = p;
    if (!st) pp.c0.clear(), pp.n0.clear(), pp.m0.clear();
    for (bool f32 : {false, true}) {
      const Result a = f32 ? run<float>(form, pp, opts(16), &w, st, &ws) : run<double>(form, pp, opts(16), &w, st, &ws);
      const Result b = f32 ? run<float>(form, pp, opts(16), &w, st, &ws) : run<double>(form, pp, opts(16), &w, st);
      for (auto m : {&Result::h, &Result::dq, &Result::dk, &Result::dv, &Result::di, &Result::df, &Result::dc0,
                     &Result::dn0, &Result::dm0}) {
        ASSERT_EQ((a.*m).size(), (b.*m).size());
        if ((a.*m).empty()) continue;
        EXPECT_EQ(0, std::memcmp((a.*m).data(), (b.*m).data(), (a.*m).size() * sizeof(double)))
            << mlstm_form_name(form) << (f32 ? " f32" : " f64");
      }
    }
  }
}

// ---- bad input is rejected with the op, the expected and the actual shape ----

TEST(MlstmKernel, BadShapesThrow) {
  const Shape s4{2, 3, 5, 4}, s3{2, 3, 5};
  Tensor q(s4, DType::F64), k(s4, DType::F64), v({2, 3, 5, 6}, DType::F64), i(s3, DType::F64),
      f(s3, DType::F64);
  auto expect_msg = [](auto fn, const std::vector<std::string>& parts) {
    try {
      fn();
      ADD_FAILURE() << "no throw";
    } catch (const ValueError& e) {
      for (auto& s : parts) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
    }
  };
  const MlstmOptions o;
  expect_msg([&] { mlstm_forward(MlstmForm::Chunkwise, q, Tensor({2, 3, 5, 3}, DType::F64), v, i, f, o); },
             {"[mlstm_forward]", "k must be (B,NH,S,DHQK)=(2,3,5,4)", "got (2,3,5,3)"});
  expect_msg([&] { mlstm_forward(MlstmForm::Parallel, q, k, v, Tensor({2, 3, 5, 1}, DType::F64), f, o); },
             {"[mlstm_forward]", "i must be (B,NH,S)=(2,3,5)", "got (2,3,5,1)"});
  expect_msg([&] { mlstm_forward(MlstmForm::Parallel, q, k, Tensor({2, 3, 4, 6}, DType::F64), i, f, o); },
             {"v must be (B,NH,S,DHV)=(2,3,5,6)", "got (2,3,4,6)"});
  MlstmState st{Tensor({2, 3, 4, 6}, DType::F64), Tensor({2, 3, 4}, DType::F64), Tensor({2, 3, 1}, DType::F64)};
  expect_msg([&] { mlstm_forward(MlstmForm::Chunkwise, q, k, v, i, f, o, &st); },
             {"state_in.m must be (B,NH)=(2,3)", "got (2,3,1)"});
  st.m = Tensor({2, 3}, DType::F64);
  expect_msg([&] { mlstm_forward(MlstmForm::Parallel, q, k, v, i, f, o, &st); }, {"parallel form takes no"});
  Tensor e4({2, 3, 0, 4}, DType::F64), e6({2, 3, 0, 6}, DType::F64), e3({2, 3, 0}, DType::F64);
  expect_msg([&] { mlstm_forward(MlstmForm::Recurrent, e4, e4, e6, e3, e3, o); }, {"must be >= 1"});
  MlstmOptions bad;
  bad.chunk_size = 0;
  expect_msg([&] { mlstm_forward(MlstmForm::Chunkwise, q, k, v, i, f, bad); }, {"chunk_size must be >= 1"});
  MlstmContext ctx;
  mlstm_forward(MlstmForm::Chunkwise, q, k, v, i, f, o, &st, nullptr, &ctx);
  expect_msg([&] { mlstm_backward(ctx, Tensor({2, 3, 5, 4}, DType::F64)); },
             {"[mlstm_backward]", "dh must be (B,NH,S,DHV)=(2,3,5,6)", "got (2,3,5,4)"});
  EXPECT_THROW(mlstm_forward(MlstmForm::Chunkwise, q, k.to(DType::F32), v, i, f, o), TypeError);
}

// ---- the recurrent form updating the state in place (decode) --------------------------------

// Output state == input state buffers (the kernel then keeps the running state there) gives
// bitwise the same h and final state as separate buffers, step after step.
TEST(MlstmState, RecurrentInPlaceEqualsSeparate) {
  const MlstmDims d{2, 3, 1, 8, 6};
  const int64_t BH = d.B * d.NH, CS = d.DHQK * d.DHV;
  Rng rng(41);
  auto f32 = [](const Vec& v) { return std::vector<float>(v.begin(), v.end()); };
  std::vector<float> c = f32(test::randn<double>(BH * CS, rng)),
                     n = f32(test::randn<double>(BH * d.DHQK, rng)),
                     m = f32(test::randn<double>(BH, rng));
  std::vector<float> c2 = c, n2 = n, m2 = m;  // in-place copy of the state
  MlstmWorkspace ws;
  for (int step = 0; step < 4; ++step) {
    const auto q = f32(test::randn<double>(BH * d.DHQK, rng)),
               k = f32(test::randn<double>(BH * d.DHQK, rng)),
               v = f32(test::randn<double>(BH * d.DHV, rng)), ig = f32(test::randn<double>(BH, rng)),
               fg = f32(test::randn<double>(BH, rng));
    MlstmInputs<float> in{q.data(), k.data(), v.data(), ig.data(), fg.data(),
                          c.data(), n.data(), m.data()};
    std::vector<float> h(BH * d.DHV), co(BH * CS), no(BH * d.DHQK), mo(BH);
    mlstm_recurrent_forward<float>(d, MlstmOptions{}, in, {h.data(), co.data(), no.data(), mo.data()},
                                   nullptr, ws);
    MlstmInputs<float> in2 = in;
    in2.c0 = c2.data(), in2.n0 = n2.data(), in2.m0 = m2.data();
    std::vector<float> h2(BH * d.DHV);
    mlstm_recurrent_forward<float>(d, MlstmOptions{}, in2, {h2.data(), c2.data(), n2.data(), m2.data()},
                                   nullptr, ws);
    EXPECT_EQ(0, std::memcmp(h.data(), h2.data(), h.size() * sizeof(float))) << "step " << step;
    EXPECT_EQ(0, std::memcmp(co.data(), c2.data(), co.size() * sizeof(float))) << "step " << step;
    EXPECT_EQ(0, std::memcmp(no.data(), n2.data(), no.size() * sizeof(float))) << "step " << step;
    EXPECT_EQ(0, std::memcmp(mo.data(), m2.data(), mo.size() * sizeof(float))) << "step " << step;
    c = co, n = no, m = mo;
  }
}
