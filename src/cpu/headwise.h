// Headwise (block-diagonal) linear layer, xlstm LinearHeadwiseExpand:
//   y[n, h, o] = sum_d x[n, h, d] * W[h, o, d] + b[h*O + o]
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/parallel.h"

namespace xlstm {

// x: (N, NH*I) read. W: (NH, O, I) read. b: (NH*O) read, may be null. y: (N, NH*O) written.
template <class T>
void headwise_forward(int64_t N, int64_t NH, int64_t I, int64_t O, const T* x, const T* W,
                      const T* b, T* y);

// dy: (N, NH*O) read. dx: (N, NH*I) written, or accumulated with dx_accumulate; may be null.
// dW: (NH, O, I) accumulated. db: (NH*O) accumulated, may be null.
template <class T>
void headwise_backward(int64_t N, int64_t NH, int64_t I, int64_t O, const T* x, const T* W,
                       const T* dy, T* dx, T* dW, T* db, bool dx_accumulate = false);

// Head-major <-> token-major layouts of per-head features, used around the mLSTM kernel:
// src (B, S, NH, DH) read -> dst (B, NH, S, DH) written, and back. Batch rows in parallel.
template <class T>
void bsnd_to_bnsd(int64_t B, int64_t S, int64_t NH, int64_t DH, const T* src, T* dst) {
  parallel_for(B, B * S * NH * DH >= (1 << 18), [&](int64_t b) {
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < NH; ++h)
        std::memcpy(dst + ((b * NH + h) * S + s) * DH, src + ((b * S + s) * NH + h) * DH,
                    sizeof(T) * DH);
  });
}
template <class T>
void bnsd_to_bsnd(int64_t B, int64_t S, int64_t NH, int64_t DH, const T* src, T* dst) {
  parallel_for(B, B * S * NH * DH >= (1 << 18), [&](int64_t b) {
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < NH; ++h)
        std::memcpy(dst + ((b * S + s) * NH + h) * DH, src + ((b * NH + h) * S + s) * DH,
                    sizeof(T) * DH);
  });
}

}  // namespace xlstm
