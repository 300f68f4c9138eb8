#include "train/optim.h"

#include <cmath>
#include <cstring>
#include <set>

#include "cpu/parallel.h"

namespace xlstm {

OptimKind parse_optim_kind(const std::string& s) {
  if (s == "sgd") return OptimKind::SGD;
  if (s == "adam") return OptimKind::Adam;
  if (s == "adamw") return OptimKind::AdamW;
  throw ValueError(str("[optimizer] unknown optimizer '", s, "'; choose sgd, adam or adamw"));
}

const char* optim_kind_name(OptimKind k) {
  switch (k) {
    case OptimKind::SGD: return "sgd";
    case OptimKind::Adam: return "adam";
    case OptimKind::AdamW: return "adamw";
  }
  return "?";
}

bool DecayRule::decays(const std::string& name, const Shape& shape) const {
  if (custom) return custom(name, shape);
  if ((int)shape.size() < min_ndim) return false;
  for (auto& s : exclude)
    if (name.find(s) != std::string::npos) return false;
  if (require_any.empty()) return true;
  for (auto& s : require_any)
    if (name.find(s) != std::string::npos) return true;
  return false;
}

DecayRule DecayRule::all() {
  DecayRule r;
  r.min_ndim = 0;
  r.exclude.clear();
  return r;
}

DecayRule DecayRule::none() {
  DecayRule r;
  r.custom = [](const std::string&, const Shape&) { return false; };
  return r;
}

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // smaller tensors: threads cost more than they save

void check_hparams(const OptimConfig& c) {
  auto finite_nonneg = [](double x) { return std::isfinite(x) && x >= 0; };
  XLSTM_CHECK(finite_nonneg(c.lr), ValueError, "[optimizer] lr must be >= 0, got ", c.lr);
  XLSTM_CHECK(finite_nonneg(c.weight_decay), ValueError,
              "[optimizer] weight_decay must be >= 0, got ", c.weight_decay);
  if (c.kind == OptimKind::SGD) {
    XLSTM_CHECK(finite_nonneg(c.momentum), ValueError, "[optimizer] momentum must be >= 0, got ",
                c.momentum);
    XLSTM_CHECK(std::isfinite(c.dampening), ValueError, "[optimizer] dampening must be finite");
    XLSTM_CHECK(c.nesterov == Nesterov::Off || (c.momentum > 0 && c.dampening == 0), ValueError,
                "[optimizer] Nesterov momentum requires momentum > 0 and dampening == 0");
  } else {
    XLSTM_CHECK(c.beta1 >= 0 && c.beta1 < 1, ValueError, "[optimizer] beta1 must be in [0, 1), got ",
                c.beta1);
    XLSTM_CHECK(c.beta2 >= 0 && c.beta2 < 1, ValueError, "[optimizer] beta2 must be in [0, 1), got ",
                c.beta2);
    XLSTM_CHECK(finite_nonneg(c.eps), ValueError, "[optimizer] eps must be >= 0, got ", c.eps);
  }
}

// Scalars of one update, computed once per step in double.
struct Coef {
  double lr, wd, b1, b2, eps, step_size, bc2_sqrt, mu, damp;
  bool nesterov, has_momentum, first;
};

template <class T>
void adam_update(T* p, const T* g, T* m, T* v, int64_t n, const Coef& c, OptimKind kind) {
  const double decoupled = 1.0 - c.lr * c.wd;
  parallel_for(n, n > kParallelMin, [&](int64_t i) {
    double pi = (double)p[i], gi = (double)g[i];
    if (kind == OptimKind::AdamW) pi *= decoupled;
    else gi += c.wd * pi;
    const double mi = c.b1 * (double)m[i] + (1.0 - c.b1) * gi;
    const double vi = c.b2 * (double)v[i] + (1.0 - c.b2) * gi * gi;
    m[i] = (T)mi;
    v[i] = (T)vi;
    // Use the stored (rounded) moments so that a resumed run sees the same values.
    const double denom = std::sqrt((double)v[i]) / c.bc2_sqrt + c.eps;
    p[i] = (T)(pi - c.step_size * (double)m[i] / denom);
  });
}

template <class T>
void sgd_update(T* p, const T* g, T* b, int64_t n, const Coef& c) {
  parallel_for(n, n > kParallelMin, [&](int64_t i) {
    const double pi = (double)p[i];
    double gi = (double)g[i] + c.wd * pi;
    if (c.has_momentum) {
      const double bi = c.first ? gi : c.mu * (double)b[i] + (1.0 - c.damp) * gi;
      b[i] = (T)bi;
      gi = c.nesterov ? gi + c.mu * (double)b[i] : (double)b[i];
    }
    p[i] = (T)(pi - c.lr * gi);
  });
}

}  // namespace

Optimizer::Optimizer(std::vector<ParamRef> params, const OptimConfig& cfg, const DecayRule& rule)
    : params_(std::move(params)), cfg_(cfg) {
  check_hparams(cfg_);
  std::set<std::string> seen;
  for (auto& p : params_) {
    XLSTM_CHECK(p.value && p.grad && p.value->defined() && p.grad->defined(), ValueError,
                "[optimizer] parameter '", p.name, "' has no value or gradient tensor");
    XLSTM_CHECK(seen.insert(p.name).second, ValueError, "[optimizer] duplicate parameter name '",
                p.name, "'");
    const DType dt = p.value->dtype();
    XLSTM_CHECK(dt == DType::F32 || dt == DType::F64, TypeError, "[optimizer] parameter '", p.name,
                "' must be F32 or F64, got ", dtype_name(dt));
    XLSTM_CHECK(p.value->device() == Device::CPU && p.grad->device() == Device::CPU, TypeError,
                "[optimizer] parameter '", p.name, "' must be on the CPU");
    XLSTM_CHECK(p.grad->shape() == p.value->shape() && p.grad->dtype() == dt, ValueError,
                "[optimizer] gradient of '", p.name, "' must be ", dtype_name(dt),
                shape_str(p.value->shape()), ", got ", dtype_name(p.grad->dtype()),
                shape_str(p.grad->shape()));
    decay_.push_back(rule.decays(p.name, p.value->shape()) ? 1 : 0);
    const bool adam = cfg_.kind != OptimKind::SGD;
    m_.push_back(adam || cfg_.momentum > 0 ? Tensor(p.value->shape(), dt) : Tensor());
    v_.push_back(adam ? Tensor(p.value->shape(), dt) : Tensor());
  }
}

void Optimizer::set_lr(double lr) {
  XLSTM_CHECK(std::isfinite(lr) && lr >= 0, ValueError, "[optimizer] lr must be >= 0, got ", lr);
  cfg_.lr = lr;
}

void Optimizer::zero_grad() {
  for (auto& p : params_) p.grad->zero();
}

void Optimizer::step() {
  ++step_;
  Coef c{};
  c.lr = cfg_.lr;
  c.b1 = cfg_.beta1, c.b2 = cfg_.beta2, c.eps = cfg_.eps;
  c.step_size = cfg_.lr / (1.0 - std::pow(cfg_.beta1, (double)step_));
  c.bc2_sqrt = std::sqrt(1.0 - std::pow(cfg_.beta2, (double)step_));
  c.mu = cfg_.momentum, c.damp = cfg_.dampening;
  c.nesterov = cfg_.nesterov == Nesterov::On;
  c.has_momentum = cfg_.momentum > 0;
  c.first = step_ == 1;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = *params_[i].value;
    const Tensor& g = *params_[i].grad;
    c.wd = decay_[i] ? cfg_.weight_decay : 0.0;
    const int64_t n = p.numel();
    if (p.dtype() == DType::F32) {
      if (cfg_.kind == OptimKind::SGD)
        sgd_update(p.data<float>(), g.data<float>(), c.has_momentum ? m_[i].data<float>() : nullptr,
                   n, c);
      else
        adam_update(p.data<float>(), g.data<float>(), m_[i].data<float>(), v_[i].data<float>(), n,
                    c, cfg_.kind);
    } else {
      if (cfg_.kind == OptimKind::SGD)
        sgd_update(p.data<double>(), g.data<double>(),
                   c.has_momentum ? m_[i].data<double>() : nullptr, n, c);
      else
        adam_update(p.data<double>(), g.data<double>(), m_[i].data<double>(),
                    v_[i].data<double>(), n, c, cfg_.kind);
    }
  }
}

namespace {
// (state name, index into params, which buffer: 0 = m_, 1 = v_)
struct Slot { std::string name; size_t param; int buf; };

std::vector<Slot> slots(const std::vector<ParamRef>& params, const OptimConfig& cfg,
                        int64_t step) {
  std::vector<Slot> r;
  for (size_t i = 0; i < params.size(); ++i) {
    if (cfg.kind == OptimKind::SGD) {
      if (cfg.momentum > 0 && step > 0) r.push_back({"momentum_buffer." + params[i].name, i, 0});
    } else {
      r.push_back({"exp_avg." + params[i].name, i, 0});
      r.push_back({"exp_avg_sq." + params[i].name, i, 1});
    }
  }
  return r;
}
}  // namespace

std::map<std::string, Tensor> Optimizer::state_dict() const {
  std::map<std::string, Tensor> r;
  r["step"] = Tensor::from<int64_t>({1}, {step_});
  for (auto& s : slots(params_, cfg_, step_))
    r[s.name] = (s.buf == 0 ? m_ : v_)[s.param].clone();
  return r;
}

void Optimizer::load_state_dict(const std::map<std::string, Tensor>& state,
                                const std::string& where) {
  auto it = state.find("step");
  XLSTM_CHECK(it != state.end(), IoError, where, ": optimizer state tensor 'step' is missing");
  const Tensor& st = it->second;
  XLSTM_CHECK(st.numel() == 1 && (st.dtype() == DType::I64 || st.dtype() == DType::I32), ValueError,
              where, ": optimizer state 'step' must be one integer, got ", dtype_name(st.dtype()),
              shape_str(st.shape()));
  const int64_t step = (int64_t)st.to_f64()[0];
  XLSTM_CHECK(step >= 0, ValueError, where, ": optimizer state 'step' must be >= 0, got ", step);

  const std::vector<Slot> want = slots(params_, cfg_, step);
  std::set<std::string> known = {"step"};
  for (auto& s : want) {
    known.insert(s.name);
    auto jt = state.find(s.name);
    const Shape& shape = params_[s.param].value->shape();
    XLSTM_CHECK(jt != state.end(), IoError, where, ": optimizer state tensor '", s.name,
                "' is missing (expected shape ", shape_str(shape), ")");
    XLSTM_CHECK(jt->second.shape() == shape, ValueError, where, ": optimizer state tensor '",
                s.name, "' must have shape ", shape_str(shape), ", got ",
                shape_str(jt->second.shape()));
    const DType dt = jt->second.dtype();
    XLSTM_CHECK(dt == DType::F32 || dt == DType::F64 || dt == DType::BF16, ValueError, where,
                ": optimizer state tensor '", s.name, "' must be floating point, got ",
                dtype_name(dt));
  }
  for (auto& kv : state)
    XLSTM_CHECK(known.count(kv.first), ValueError, where, ": unexpected optimizer state tensor '",
                kv.first, "' (no such parameter, or saved by a different optimizer)");

  // Validated: now copy.
  for (auto& m : m_)
    if (m.defined()) m.zero();
  for (auto& v : v_)
    if (v.defined()) v.zero();
  for (auto& s : want) {
    Tensor& dst = (s.buf == 0 ? m_ : v_)[s.param];
    Tensor c = state.at(s.name).to(dst.dtype());
    std::memcpy(dst.raw(), c.raw(), c.nbytes());
  }
  step_ = step;
}

}  // namespace xlstm
