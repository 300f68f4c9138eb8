// Inverted dropout: y = x * mask / (1 - p), mask ~ Bernoulli(1 - p) drawn from `rng`.
#pragma once
#include <cstdint>

#include "xlstm/rng.h"

namespace xlstm {

// x: (n) read. y: (n) written (may alias x). mask: (n) written, 0 or 1/(1-p).
template <class T>
void dropout_forward(int64_t n, double p, Rng& rng, const T* x, T* y, T* mask);
// dy: (n) read. dx: (n) written (may alias dy).
template <class T>
void dropout_backward(int64_t n, const T* mask, const T* dy, T* dx);

}  // namespace xlstm
