// RMSNorm over the last dimension (xlstm_large): y = x * rsqrt(mean(x^2) + eps) * w.
// The reduction is done in at least float32 (double for T = double).
#pragma once
#include <cstdint>

namespace xlstm {

// x: (N, D) read. w: (D) read, may be null. y: (N, D) written. rstd: (N) written.
template <class T>
void rmsnorm_forward(int64_t N, int64_t D, const T* x, const T* w, double eps, T* y, T* rstd);

// dy: (N, D) read. dx: (N, D) written. dw: (D) accumulated, may be null.
template <class T>
void rmsnorm_backward(int64_t N, int64_t D, const T* x, const T* w, const T* rstd, const T* dy,
                      T* dx, T* dw);

}  // namespace xlstm
