// Linear layer: y = x W^T + b (torch.nn.Linear layout). Kernels for T = float, double.
#pragma once
#include <cstdint>

#include "xlstm/tensor.h"

namespace xlstm {

// x: (N, I) read. W: (O, I) read. b: (O) read, may be null. y: (N, O) written.
template <class T>
void linear_forward(int64_t N, int64_t I, int64_t O, const T* x, const T* W, const T* b, T* y);

// dy: (N, O) read. dx: (N, I) written, may be null. dW: (O, I) accumulated (+=).
// db: (O) accumulated (+=), may be null.
template <class T>
void linear_backward(int64_t N, int64_t I, int64_t O, const T* x, const T* W, const T* dy, T* dx,
                     T* dW, T* db);

// Inference with weights kept in their stored type (a checkpoint mapped from disk): x, b, y
// float; W (O, I) read, dtype F32 or BF16 (bf16 is widened exactly to f32, products and sums in
// f32). N <= kLinearGemvRows runs a bandwidth-bound matrix-vector kernel parallel over O (the
// decode path); larger N runs gemm (BF16 weights are widened in panels of rows into a per-thread
// scratch first). Results do not depend on the thread count. b: (O) read, may be null.
// y: (N, O) written.
constexpr int64_t kLinearGemvRows = 4;
void linear_forward_mixed(int64_t N, int64_t I, int64_t O, const float* x, const void* W,
                          DType wdt, const float* b, float* y);

// Rows [o0, o1) of the N <= kLinearGemvRows case above on the calling thread alone, for callers
// that split the rows among their own threads (models/xlstm_large_decode.cpp): the same
// fixed-order dot products, so y does not depend on the split. x (N, I) read; W (O, I) F32/BF16
// read (rows o0..o1 only); b (O) read, may be null; y (N, ldy): y[n, o] for o in [o0, o1)
// written, or accumulated (+=) when `accumulate`.
void linear_gemv_rows(int64_t N, int64_t I, int64_t o0, int64_t o1, const float* x, const void* W,
                      DType wdt, const float* b, float* y, int64_t ldy, bool accumulate = false);

// Embedding rows in their stored type: ids (N) in [0, V) read; W (V, D) F32 or BF16 read;
// y (N, D) float written.
void embedding_forward_mixed(int64_t N, int64_t V, int64_t D, const int64_t* ids, const void* W,
                             DType wdt, float* y);

}  // namespace xlstm
