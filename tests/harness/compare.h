// Elementwise closeness with GoogleTest reporting, and random fill helpers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "xlstm/rng.h"
#include "xlstm/tensor.h"

namespace xlstm::test {

// |a - b| <= atol + rtol*|b| elementwise (b is the reference); NaN/Inf fail. Reports up to 5
// mismatches with `what`. Returns the max abs error.
template <class TA, class TB>
double expect_close(const std::string& what, const TA* a, const TB* b, int64_t n, double atol,
                    double rtol);

// Fills with N(mean, std) from rng.
template <class T>
void fill_normal(T* x, int64_t n, Rng& rng, double mean = 0, double std = 1);
template <class T>
std::vector<T> randn(int64_t n, Rng& rng, double mean = 0, double std = 1) {
  std::vector<T> v((size_t)n);
  fill_normal(v.data(), n, rng, mean, std);
  return v;
}

// Path of the shared folder (../shared beside the checkout), "" if absent.
std::string shared_dir();

}  // namespace xlstm::test
