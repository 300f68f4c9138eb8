#include "tune/halving.h"

#include "xlstm/error.h"

namespace xlstm {

std::vector<Rung> halving_schedule(int64_t n, int64_t R, int64_t eta, int64_t r_min) {
  XLSTM_CHECK(n >= 1, ValueError, "--trials must be >= 1, got ", n);
  XLSTM_CHECK(R >= 1, ValueError, "--budget-steps must be >= 1, got ", R);
  XLSTM_CHECK(eta >= 2, ValueError, "--eta must be >= 2, got ", eta);
  XLSTM_CHECK(r_min >= 1 && r_min <= R, ValueError, "--min-steps must be in [1, --budget-steps = ",
              R, "], got ", r_min);
  // Integer arithmetic only: p = eta^k, stopping before it overflows or breaks a bound.
  int64_t K = 0, p = 1;
  while (p <= n / eta && p <= R / eta && R / (p * eta) >= r_min) {
    p *= eta;
    ++K;
  }
  std::vector<Rung> r((size_t)(K + 1));
  int64_t div = p, keep = n;
  for (int64_t k = 0; k <= K; ++k) {
    r[(size_t)k] = {R / div, keep};
    div /= eta;
    keep /= eta;
  }
  return r;
}

}  // namespace xlstm
