#include "cpu/xent.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/parallel.h"
#include "xlstm/error.h"

namespace xlstm {

// Per row: loss = logsumexp(z) - z[target], with the max subtracted before exp. exp is taken
// in T, the sums in double. Row losses are summed serially in row order (deterministic).
template <class T>
double xent_forward_backward(int64_t N, int64_t V, const T* logits, const int64_t* targets,
                             int64_t ignore_index, T* dlogits, double dloss, int64_t* count) {
  int64_t cnt = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = targets[n];
    if (t == ignore_index) continue;
    XLSTM_CHECK(t >= 0 && t < V, ValueError, "[xent] target ", t, " at row ", n,
                " is outside [0, ", V, "); hint: targets must be token ids or ignore_index (",
                ignore_index, ")");
    ++cnt;
  }
  if (count) *count = cnt;
  std::vector<double> row_loss((size_t)N, 0.0);
  const double g = cnt > 0 ? dloss / (double)cnt : 0.0;
  parallel_for(N, N * V > 32768, [&](int64_t n) {
    const T* z = logits + n * V;
    T* dz = dlogits ? dlogits + n * V : nullptr;
    const int64_t t = targets[n];
    if (t == ignore_index) {
      if (dz) std::fill(dz, dz + V, T(0));
      return;
    }
    T mx = z[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, z[v]);
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += (double)std::exp(z[v] - mx);
    const double lse = (double)mx + std::log(s);
    row_loss[(size_t)n] = lse - (double)z[t];
    if (dz) {
      const double inv = g / s;
      for (int64_t v = 0; v < V; ++v)
        dz[v] = (T)((double)std::exp(z[v] - mx) * inv - (v == t ? g : 0.0));
    }
  });
  if (cnt == 0) return 0.0;
  double total = 0;
  for (int64_t n = 0; n < N; ++n) total += row_loss[(size_t)n];
  return total / (double)cnt;
}

template double xent_forward_backward<float>(int64_t, int64_t, const float*, const int64_t*,
                                             int64_t, float*, double, int64_t*);
template double xent_forward_backward<double>(int64_t, int64_t, const double*, const int64_t*,
                                              int64_t, double*, double, int64_t*);

}  // namespace xlstm
