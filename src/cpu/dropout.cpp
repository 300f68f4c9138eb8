#include "cpu/dropout.h"

#include <algorithm>

#include "cpu/parallel.h"
#include "xlstm/error.h"

namespace xlstm {

// The mask is drawn serially (one uniform per element, keep when u >= p) so it depends only on
// the Rng state, never on the thread count. p == 0 draws nothing.
template <class T>
void dropout_forward(int64_t n, double p, Rng& rng, const T* x, T* y, T* mask) {
  XLSTM_CHECK(p >= 0.0 && p < 1.0, ValueError, "[dropout_forward] p must be in [0, 1), got ", p,
              "; hint: p is the drop probability");
  if (p == 0.0) {
    std::fill(mask, mask + n, T(1));
    if (x != y) std::copy(x, x + n, y);
    return;
  }
  const T keep = (T)(1.0 / (1.0 - p));
  for (int64_t i = 0; i < n; ++i) mask[i] = rng.uniform() >= p ? keep : T(0);
  parallel_for(n, n > (1 << 15), [&](int64_t i) { y[i] = x[i] * mask[i]; });
}

template <class T>
void dropout_backward(int64_t n, const T* mask, const T* dy, T* dx) {
  parallel_for(n, n > (1 << 15), [&](int64_t i) { dx[i] = dy[i] * mask[i]; });
}

template void dropout_forward<float>(int64_t, double, Rng&, const float*, float*, float*);
template void dropout_forward<double>(int64_t, double, Rng&, const double*, double*, double*);
template void dropout_backward<float>(int64_t, const float*, const float*, float*);
template void dropout_backward<double>(int64_t, const double*, const double*, double*);

}  // namespace xlstm
