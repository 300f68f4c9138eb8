// Causal depthwise 1-D convolution over time with carried state (xlstm CausalConv1d:
// nn.Conv1d(F, F, K, groups=F, padding=K-1) with the last K-1 outputs dropped):
//   xpad = concat(state_in, x) along time          (K-1 + T steps)
//   y[b,t,f] = bias[f] + sum_{k<K} w[f,k] * xpad[b, t+k, f]
//   state_out = the last K-1 steps of xpad
#pragma once
#include <cstdint>

namespace xlstm {

// x: (B, T, F) read. w: (F, K) read (torch weight (F,1,K)). bias: (F) read, may be null.
// state_in: (B, K-1, F) read, may be null (zeros). y: (B, T, F) written.
// state_out: (B, K-1, F) written, may be null.
template <class T>
void conv1d_forward(int64_t B, int64_t Tn, int64_t F, int64_t K, const T* x, const T* w,
                    const T* bias, const T* state_in, T* y, T* state_out);

// dy: (B, T, F) read. dstate_out: (B, K-1, F) read, may be null (zero).
// dx: (B, T, F) written, or accumulated with dx_accumulate. dw: (F, K) accumulated.
// dbias: (F) accumulated, may be null. dstate_in: (B, K-1, F) written, may be null.
template <class T>
void conv1d_backward(int64_t B, int64_t Tn, int64_t F, int64_t K, const T* x, const T* w,
                     const T* state_in, const T* dy, const T* dstate_out, T* dx, T* dw, T* dbias,
                     T* dstate_in, bool dx_accumulate = false);

}  // namespace xlstm
