// Elementwise activations. Forward: y (n) written from x (n). Backward: dx (n) written from the
// forward input x and dy (dx may alias dy). GELU is the exact erf form.
#pragma once
#include <cmath>
#include <cstdint>

namespace xlstm {

enum class Act { Identity, Sigmoid, Tanh, SiLU, GELU, ReLU };

template <class T> void act_forward(Act a, int64_t n, const T* x, T* y);
template <class T> void act_backward(Act a, int64_t n, const T* x, const T* dy, T* dx);

// Scalar helpers shared by the recurrent kernels.
template <class T> inline T sigmoid(T x) {
  return x >= T(0) ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
}
// log(sigmoid(x)) without overflow.
template <class T> inline T logsigmoid(T x) {
  return x >= T(0) ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x));
}

}  // namespace xlstm
