#include "inspect/cells.h"

#include <algorithm>
#include <cmath>

#include "xlstm/error.h"

namespace xlstm::inspect_detail {

ParamTable::ParamTable(Module& m) {
  for (auto& p : m.params()) t_[p.name] = {p.value->shape(), p.value->to_f64()};
}

const Vec& ParamTable::get(const std::string& name, int64_t numel) const {
  auto it = t_.find(name);
  if (it == t_.end()) throw InternalError(str("[inspect] the model has no parameter '", name, "'"));
  if (numel >= 0 && (int64_t)it->second.second.size() != numel)
    throw InternalError(str("[inspect] parameter '", name, "' has ", it->second.second.size(),
                            " values, expected ", numel));
  return it->second.second;
}

std::map<std::string, Tensor> ParamTable::with_prefix(const std::string& prefix) const {
  std::map<std::string, Tensor> r;
  for (const auto& [name, v] : t_)
    if (name.rfind(prefix, 0) == 0) r[name.substr(prefix.size())] = Tensor::from<double>(v.first, v.second);
  return r;
}

namespace {

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double logsigmoid(double x) { return std::min(x, 0.0) - std::log1p(std::exp(-std::fabs(x))); }
double silu(double x) { return x * sigmoid(x); }

// y = xhat * (1 + w), xhat = (x - mean) / sqrt(var + eps), biased variance (the xlstm package's
// LayerNorm without bias).
void layernorm(int64_t n, const double* x, const double* w, double* y) {
  double mean = 0, var = 0;
  for (int64_t k = 0; k < n; ++k) mean += x[k];
  mean /= (double)n;
  for (int64_t k = 0; k < n; ++k) var += (x[k] - mean) * (x[k] - mean);
  var /= (double)n;
  const double r = 1.0 / std::sqrt(var + 1e-5);
  for (int64_t k = 0; k < n; ++k) y[k] = (x[k] - mean) * r * (1.0 + (w ? w[k] : 0.0));
}

// Causal depthwise conv, one step: y[f] = b[f] + sum_{k<K-1} w[f,k] state[k,f] + w[f,K-1] x[f].
void conv_step(int64_t F, int64_t K, const Vec& w, const Vec& b, const double* state,
               const double* x, double* y) {
  for (int64_t f = 0; f < F; ++f) {
    double acc = b[(size_t)f];
    for (int64_t k = 0; k + 1 < K; ++k)
      acc += w[(size_t)(f * K + k)] * (state ? state[k * F + f] : 0.0);
    y[f] = acc + w[(size_t)(f * K + K - 1)] * x[f];
  }
}

// Headwise linear: y[h*O + o] = sum_d W[h, o, d] x[h*In + d] (+ b[h*O + o]).
void headwise(int64_t NH, int64_t In, int64_t O, const double* x, const Vec& W, const Vec& b,
              double* y) {
  for (int64_t h = 0; h < NH; ++h)
    for (int64_t o = 0; o < O; ++o) {
      double acc = b.empty() ? 0.0 : b[(size_t)(h * O + o)];
      for (int64_t d = 0; d < In; ++d) acc += W[(size_t)((h * O + o) * In + d)] * x[h * In + d];
      y[h * O + o] = acc;
    }
}

// y = W x (+ b), W (O, In).
void linear(int64_t In, int64_t O, const double* x, const Vec& W, const Vec& b, double* y) {
  for (int64_t o = 0; o < O; ++o) {
    double acc = b.empty() ? 0.0 : b[(size_t)o];
    for (int64_t d = 0; d < In; ++d) acc += W[(size_t)(o * In + d)] * x[d];
    y[o] = acc;
  }
}

}  // namespace

void lstm_step(const LstmLayerParams& p, const double* x, const double* h_prev,
               const double* c_prev, LstmStep& s) {
  const int64_t H = p.H, In = p.In;
  Vec pre((size_t)(4 * H));
  for (int64_t r = 0; r < 4 * H; ++r) {
    double acc = (p.b_ih.empty() ? 0.0 : p.b_ih[(size_t)r]) + (p.b_hh.empty() ? 0.0 : p.b_hh[(size_t)r]);
    for (int64_t d = 0; d < In; ++d) acc += p.w_ih[(size_t)(r * In + d)] * x[d];
    for (int64_t d = 0; d < H; ++d) acc += p.w_hh[(size_t)(r * H + d)] * h_prev[d];
    pre[(size_t)r] = acc;
  }
  for (Vec* v : {&s.i, &s.f, &s.g, &s.o, &s.c, &s.h}) v->assign((size_t)H, 0.0);
  for (int64_t u = 0; u < H; ++u) {
    s.i[(size_t)u] = sigmoid(pre[(size_t)u]);
    s.f[(size_t)u] = sigmoid(pre[(size_t)(H + u)]);
    s.g[(size_t)u] = std::tanh(pre[(size_t)(2 * H + u)]);
    s.o[(size_t)u] = sigmoid(pre[(size_t)(3 * H + u)]);
    s.c[(size_t)u] = s.f[(size_t)u] * c_prev[u] + s.i[(size_t)u] * s.g[(size_t)u];
    s.h[(size_t)u] = s.o[(size_t)u] * std::tanh(s.c[(size_t)u]);
  }
}

void slstm_step(const SlstmLayerParams& p, const double* x, const double* conv_state,
                const double* state, SlstmStep& s) {
  const int64_t D = p.D, NH = p.NH, DH = p.DH, H = D;
  s.xn.assign((size_t)D, 0.0);
  layernorm(D, x, p.norm_w.data(), s.xn.data());
  Vec xc = s.xn;
  if (p.K > 0) {
    conv_step(D, p.K, p.conv_w, p.conv_b, conv_state, s.xn.data(), xc.data());
    for (auto& v : xc) v = silu(v);
  }
  for (Vec* v : {&s.i_raw, &s.f_raw, &s.z_raw, &s.o_raw, &s.i, &s.f, &s.z, &s.o, &s.c, &s.n, &s.m,
                 &s.h})
    v->assign((size_t)H, 0.0);
  const Vec none;
  // The official slot order (conformance README §6.1): the fgate module feeds slot i, igate f.
  headwise(NH, DH, DH, xc.data(), p.w_f, none, s.i_raw.data());
  headwise(NH, DH, DH, xc.data(), p.w_i, none, s.f_raw.data());
  headwise(NH, DH, DH, s.xn.data(), p.w_z, none, s.z_raw.data());
  headwise(NH, DH, DH, s.xn.data(), p.w_o, none, s.o_raw.data());
  const double* y0 = state ? state : nullptr;
  Vec* raw[4] = {&s.i_raw, &s.f_raw, &s.z_raw, &s.o_raw};
  for (int64_t g = 0; g < 4; ++g)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t o = 0; o < DH; ++o) {
        double acc = p.bias[(size_t)(g * H + h * DH + o)];
        if (y0)
          for (int64_t i = 0; i < DH; ++i)
            acc += p.R[(size_t)((h * 4 * DH + g * DH + o) * DH + i)] * y0[h * DH + i];
        (*raw[g])[(size_t)(h * DH + o)] += acc;
      }
  // The stabiliser starts from the raw input gate when the whole normaliser state is zero.
  bool first = true;
  for (int64_t u = 0; u < H && state; ++u) first = first && state[2 * H + u] == 0.0;
  for (int64_t u = 0; u < H; ++u) {
    const double cp = state ? state[H + u] : 0.0, np = state ? state[2 * H + u] : 0.0,
                 mp = state ? state[3 * H + u] : 0.0;
    const double ir = s.i_raw[(size_t)u], L = mp + logsigmoid(s.f_raw[(size_t)u]);
    const double m = first ? ir : std::max(ir, L);
    const double ig = std::min(std::exp(ir - m), 1.0), fg = std::min(std::exp(L - m), 1.0);
    const double z = std::tanh(s.z_raw[(size_t)u]), o = sigmoid(s.o_raw[(size_t)u]);
    const double c = fg * cp + ig * z, n = fg * np + ig;
    s.i[(size_t)u] = ig, s.f[(size_t)u] = fg, s.z[(size_t)u] = z, s.o[(size_t)u] = o;
    s.c[(size_t)u] = c, s.n[(size_t)u] = n, s.m[(size_t)u] = m, s.h[(size_t)u] = o * c / n;
  }
}

void mlstm_step(const MlstmLayerParams& p, const double* x, const double* conv_state,
                const double* C0, const double* n0, const double* m0, MlstmStep& s) {
  const int64_t D = p.D, I = p.I, NH = p.NH, DH = p.DH;
  Vec xn((size_t)D), up((size_t)(2 * I));
  layernorm(D, x, p.norm_w.data(), xn.data());
  linear(D, 2 * I, xn.data(), p.up_w, p.up_b, up.data());
  s.xm.assign(up.begin(), up.begin() + I);
  const Vec z(up.begin() + I, up.end());
  Vec xc((size_t)I);
  conv_step(I, p.K, p.conv_w, p.conv_b, conv_state, s.xm.data(), xc.data());
  for (auto& v : xc) v = silu(v);
  Vec qkv((size_t)(3 * I));
  double *q = qkv.data(), *k = q + I, *v = q + 2 * I;
  headwise(I / p.BS, p.BS, p.BS, xc.data(), p.q_w, p.q_b, q);
  headwise(I / p.BS, p.BS, p.BS, xc.data(), p.k_w, p.k_b, k);
  headwise(I / p.BS, p.BS, p.BS, s.xm.data(), p.v_w, p.v_b, v);
  for (Vec* w : {&s.i_raw, &s.f_raw, &s.i, &s.f, &s.m, &s.C_norm, &s.qn, &s.den})
    w->assign((size_t)NH, 0.0);
  linear(3 * I, NH, qkv.data(), p.ig_w, p.ig_b, s.i_raw.data());
  linear(3 * I, NH, qkv.data(), p.fg_w, p.fg_b, s.f_raw.data());
  s.h.assign((size_t)I, 0.0);
  s.o.assign((size_t)I, 0.0);
  s.C.assign((size_t)(NH * DH * DH), 0.0);
  s.n.assign((size_t)(NH * DH), 0.0);
  const double sk = 1.0 / std::sqrt((double)DH);  // k / sqrt(DH) goes into the state
  for (int64_t h = 0; h < NH; ++h) {
    const double mp = m0 ? m0[h] : 0.0, lf = logsigmoid(s.f_raw[(size_t)h]);
    const double mt = std::max(lf + mp, s.i_raw[(size_t)h]);
    const double fa = std::exp(lf + mp - mt), ia = std::exp(s.i_raw[(size_t)h] - mt);
    double* C = &s.C[(size_t)(h * DH * DH)];
    double* n = &s.n[(size_t)(h * DH)];
    const double *qh = q + h * DH, *kh = k + h * DH, *vh = v + h * DH;
    double qn = 0, cn = 0;
    for (int64_t a = 0; a < DH; ++a) {
      const double ks = kh[a] * sk;
      for (int64_t b = 0; b < DH; ++b) {
        C[a * DH + b] = fa * (C0 ? C0[(h * DH + a) * DH + b] : 0.0) + ia * ks * vh[b];
        cn += C[a * DH + b] * C[a * DH + b];
      }
      n[a] = fa * (n0 ? n0[h * DH + a] : 0.0) + ia * ks;
      qn += qh[a] * n[a];
    }
    const double den = std::max(std::fabs(qn), std::exp(-mt)) + p.eps;
    for (int64_t b = 0; b < DH; ++b) {
      double num = 0;
      for (int64_t a = 0; a < DH; ++a) num += qh[a] * C[a * DH + b];
      s.h[(size_t)(h * DH + b)] = num / den;
    }
    s.i[(size_t)h] = ia, s.f[(size_t)h] = fa, s.m[(size_t)h] = mt;
    s.C_norm[(size_t)h] = std::sqrt(cn), s.qn[(size_t)h] = qn, s.den[(size_t)h] = den;
  }
  // The rest of the layer, for the check against the block's output.
  Vec pre((size_t)I);
  for (int64_t h = 0; h < NH; ++h) layernorm(DH, &s.h[(size_t)(h * DH)], &p.outnorm_w[(size_t)(h * DH)],
                                             &pre[(size_t)(h * DH)]);
  for (int64_t j = 0; j < I; ++j) {
    s.o[(size_t)j] = silu(z[(size_t)j]);
    pre[(size_t)j] = (pre[(size_t)j] + p.skip[(size_t)j] * xc[(size_t)j]) * s.o[(size_t)j];
  }
  s.out.assign((size_t)D, 0.0);
  linear(I, D, pre.data(), p.down_w, p.down_b, s.out.data());
  for (int64_t d = 0; d < D; ++d) s.out[(size_t)d] += x[d];
}

}  // namespace xlstm::inspect_detail
