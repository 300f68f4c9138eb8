#include "harness/gradcheck.h"

#include <gtest/gtest.h>

#include <cmath>

namespace xlstm::test {

std::vector<double> numeric_grad(const std::function<double()>& loss, double* x, int64_t n,
                                 double h) {
  std::vector<double> g((size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double lp = loss();
    x[i] = x0 - h;
    const double lm = loss();
    x[i] = x0;
    g[(size_t)i] = (lp - lm) / (2 * h);
  }
  return g;
}

void expect_grad(const std::string& what, const std::function<double()>& loss, double* x,
                 int64_t n, const double* analytic, double atol, double rtol, double h) {
  auto g = numeric_grad(loss, x, n, h);
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 5; ++i) {
    const double a = analytic[i], e = g[(size_t)i];
    if (!(std::fabs(a - e) <= atol + rtol * std::fabs(e))) {
      ADD_FAILURE() << what << "[" << i << "]: analytic " << a << " numeric " << e;
      ++bad;
    }
  }
}

double dot(const double* a, const double* w, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * w[i];
  return s;
}

}  // namespace xlstm::test
