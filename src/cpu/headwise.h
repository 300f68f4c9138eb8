// Headwise (block-diagonal) linear layer, xlstm LinearHeadwiseExpand:
//   y[n, h, o] = sum_d x[n, h, d] * W[h, o, d] + b[h*O + o]
#pragma once
#include <cstdint>

namespace xlstm {

// x: (N, NH*I) read. W: (NH, O, I) read. b: (NH*O) read, may be null. y: (N, NH*O) written.
template <class T>
void headwise_forward(int64_t N, int64_t NH, int64_t I, int64_t O, const T* x, const T* W,
                      const T* b, T* y);

// dy: (N, NH*O) read. dx: (N, NH*I) written, may be null. dW: (NH, O, I) accumulated.
// db: (NH*O) accumulated, may be null.
template <class T>
void headwise_backward(int64_t N, int64_t NH, int64_t I, int64_t O, const T* x, const T* W,
                       const T* dy, T* dx, T* dW, T* db);

}  // namespace xlstm
