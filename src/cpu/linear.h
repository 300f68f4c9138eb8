// Linear layer: y = x W^T + b (torch.nn.Linear layout). Kernels for T = float, double.
#pragma once
#include <cstdint>

namespace xlstm {

// x: (N, I) read. W: (O, I) read. b: (O) read, may be null. y: (N, O) written.
template <class T>
void linear_forward(int64_t N, int64_t I, int64_t O, const T* x, const T* W, const T* b, T* y);

// dy: (N, O) read. dx: (N, I) written, may be null. dW: (O, I) accumulated (+=).
// db: (O) accumulated (+=), may be null.
template <class T>
void linear_backward(int64_t N, int64_t I, int64_t O, const T* x, const T* W, const T* dy, T* dx,
                     T* dW, T* db);

}  // namespace xlstm
