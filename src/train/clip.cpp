#include "train/clip.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/parallel.h"
#include "xlstm/error.h"

namespace xlstm {

namespace {

// Sum of squares in fixed blocks, blocks summed in order: the result does not depend on the
// number of threads.
template <class T>
double sum_sq(const T* g, int64_t n) {
  constexpr int64_t kBlock = 8192;
  const int64_t nb = (n + kBlock - 1) / kBlock;
  std::vector<double> part((size_t)nb, 0.0);
  parallel_for(nb, nb > 4, [&](int64_t b) {
    const int64_t lo = b * kBlock, hi = std::min(n, lo + kBlock);
    double s = 0;
    for (int64_t i = lo; i < hi; ++i) s += (double)g[i] * (double)g[i];
    part[(size_t)b] = s;
  });
  double s = 0;
  for (double p : part) s += p;
  return s;
}

double param_sum_sq(const ParamRef& p) {
  const Tensor& g = *p.grad;
  if (g.dtype() == DType::F32) return sum_sq(g.data<float>(), g.numel());
  if (g.dtype() == DType::F64) return sum_sq(g.data<double>(), g.numel());
  throw TypeError(str("[clip_grad_norm] gradient of '", p.name, "' must be F32 or F64, got ",
                      dtype_name(g.dtype())));
}

template <class T>
void scale(T* g, int64_t n, double s) {
  parallel_for(n, n > (1 << 15), [&](int64_t i) { g[i] = (T)((double)g[i] * s); });
}

}  // namespace

double grad_global_norm(const std::vector<ParamRef>& params) {
  double s = 0;
  for (auto& p : params) s += param_sum_sq(p);
  return std::sqrt(s);
}

ClipResult clip_grad_norm(const std::vector<ParamRef>& params, double max_norm) {
  ClipResult r;
  double s = 0;
  for (auto& p : params) {
    const double ps = param_sum_sq(p);
    if (!std::isfinite(ps) && r.bad_param.empty()) r.bad_param = p.name;
    s += ps;
  }
  r.norm = std::sqrt(s);
  r.finite = std::isfinite(r.norm);
  if (!r.finite || !(max_norm > 0) || r.norm <= max_norm) return r;
  const double coef = max_norm / (r.norm + 1e-6);
  for (auto& p : params) {
    Tensor& g = *p.grad;
    if (g.dtype() == DType::F32) scale(g.data<float>(), g.numel(), coef);
    else scale(g.data<double>(), g.numel(), coef);
  }
  r.clipped = true;
  return r;
}

}  // namespace xlstm
