#include "harness/compare.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>

namespace xlstm::test {

template <class TA, class TB>
double expect_close(const std::string& what, const TA* a, const TB* b, int64_t n, double atol,
                    double rtol) {
  double maxerr = 0;
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = (double)a[i], r = (double)b[i];
    const double err = std::fabs(x - r);
    if (std::isfinite(err)) maxerr = std::max(maxerr, err);
    if (!(std::isfinite(x) && err <= atol + rtol * std::fabs(r))) {
      if (bad++ < 5) ADD_FAILURE() << what << "[" << i << "]: got " << x << " want " << r;
    }
  }
  return maxerr;
}

template double expect_close<float, float>(const std::string&, const float*, const float*, int64_t, double, double);
template double expect_close<double, double>(const std::string&, const double*, const double*, int64_t, double, double);
template double expect_close<float, double>(const std::string&, const float*, const double*, int64_t, double, double);
template double expect_close<double, float>(const std::string&, const double*, const float*, int64_t, double, double);

template <class T>
void fill_normal(T* x, int64_t n, Rng& rng, double mean, double std) {
  for (int64_t i = 0; i < n; ++i) x[i] = (T)rng.normal(mean, std);
}
template void fill_normal<float>(float*, int64_t, Rng&, double, double);
template void fill_normal<double>(double*, int64_t, Rng&, double, double);

std::string shared_dir() {
  struct stat st {};
  const char* env = std::getenv("XLSTM_SHARED_DIR");
  std::string d = env ? env : XLSTM_SHARED_DIR;
  return ::stat(d.c_str(), &st) == 0 ? d : "";
}

}  // namespace xlstm::test
