#include "nn/init.h"

namespace xlstm {

namespace {
template <class F>
void fill(Tensor& t, F draw) {
  if (t.dtype() == DType::F64) {
    double* p = t.data<double>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = draw();
  } else {
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = (float)draw();
  }
}
}  // namespace

void init_normal(Tensor& t, Rng& rng, double std) {
  fill(t, [&] { return rng.normal(0.0, std); });
}

void init_uniform(Tensor& t, Rng& rng, double lo, double hi) {
  fill(t, [&] { return rng.uniform(lo, hi); });
}

}  // namespace xlstm
