// Token embedding lookup (torch.nn.Embedding layout).
#pragma once
#include <cstdint>

namespace xlstm {

// ids: (N) read, each in [0, V) (throws ValueError naming the bad id otherwise).
// W: (V, D) read. y: (N, D) written.
template <class T>
void embedding_forward(int64_t N, int64_t V, int64_t D, const int64_t* ids, const T* W, T* y);

// dy: (N, D) read. dW: (V, D) accumulated (+=).
template <class T>
void embedding_backward(int64_t N, int64_t V, int64_t D, const int64_t* ids, const T* dy, T* dW);

}  // namespace xlstm
