// Finite-difference gradient checks in float64.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace xlstm::test {

// Central differences of `loss` with respect to x[0..n): perturbs each element by ±h, calls
// loss(), restores it. Returns the numerical gradient.
std::vector<double> numeric_grad(const std::function<double()>& loss, double* x, int64_t n,
                                 double h = 1e-6);

// Checks analytic[0..n) against central differences: |a - g| <= atol + rtol*|g| elementwise.
// Reports the first failures through GoogleTest with `what` in the message.
void expect_grad(const std::string& what, const std::function<double()>& loss, double* x,
                 int64_t n, const double* analytic, double atol = 1e-7, double rtol = 1e-5,
                 double h = 1e-6);

// sum(a[i] * w[i]): the scalar loss used by gradient checks (w random, fixed).
double dot(const double* a, const double* w, int64_t n);

}  // namespace xlstm::test
