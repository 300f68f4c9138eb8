#include "cpu/activations.h"

#include <algorithm>
#include <cmath>

#include "cpu/fastmath.h"

namespace xlstm {

namespace {

constexpr int64_t kParallelMin = 1 << 15;

// d/dx of the exact GELU: Phi(x) + x * phi(x).
template <class T>
inline T gelu_grad(T x) {
  const T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
  const T pdf = T(0.39894228040143267794) * std::exp(T(-0.5) * x * x);
  return cdf + x * pdf;
}

// One loop per activation so that each inner loop is a straight elementwise map.
template <class T, class F>
void map(int64_t n, F f) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace

template <class T>
void act_forward(Act a, int64_t n, const T* x, T* y) {
  switch (a) {
    case Act::Identity:
      if (x != y) std::copy(x, x + n, y);
      return;
    case Act::Sigmoid: map<T>(n, [&](int64_t i) { y[i] = PwMath<T>::sigmoid(x[i]); }); return;
    case Act::Tanh: map<T>(n, [&](int64_t i) { y[i] = PwMath<T>::tanh(x[i]); }); return;
    case Act::SiLU: map<T>(n, [&](int64_t i) { y[i] = x[i] * PwMath<T>::sigmoid(x[i]); }); return;
    case Act::GELU:
      map<T>(n, [&](int64_t i) {
        y[i] = T(0.5) * x[i] * (T(1) + std::erf(x[i] * T(0.70710678118654752440)));
      });
      return;
    case Act::ReLU: map<T>(n, [&](int64_t i) { y[i] = x[i] > T(0) ? x[i] : T(0); }); return;
  }
}

template <class T>
void act_backward(Act a, int64_t n, const T* x, const T* dy, T* dx) {
  switch (a) {
    case Act::Identity:
      if (dy != dx) std::copy(dy, dy + n, dx);
      return;
    case Act::Sigmoid:
      map<T>(n, [&](int64_t i) {
        const T s = PwMath<T>::sigmoid(x[i]);
        dx[i] = dy[i] * s * (T(1) - s);
      });
      return;
    case Act::Tanh:
      map<T>(n, [&](int64_t i) {
        const T t = std::tanh(x[i]);
        dx[i] = dy[i] * (T(1) - t * t);
      });
      return;
    case Act::SiLU:
      map<T>(n, [&](int64_t i) {
        const T s = PwMath<T>::sigmoid(x[i]);
        dx[i] = dy[i] * s * (T(1) + x[i] * (T(1) - s));
      });
      return;
    case Act::GELU: map<T>(n, [&](int64_t i) { dx[i] = dy[i] * gelu_grad(x[i]); }); return;
    // Subgradient 0 at x == 0, as torch.
    case Act::ReLU: map<T>(n, [&](int64_t i) { dx[i] = x[i] > T(0) ? dy[i] : T(0); }); return;
  }
}

template void act_forward<float>(Act, int64_t, const float*, float*);
template void act_forward<double>(Act, int64_t, const double*, double*);
template void act_backward<float>(Act, int64_t, const float*, const float*, float*);
template void act_backward<double>(Act, int64_t, const double*, const double*, double*);

}  // namespace xlstm
