// LayerNorm over the last dimension, and the per-head variant (MultiHeadLayerNorm = group norm
// with one group per head over NH*DH features). Two scale conventions:
//  - NormScale::Plain:          y = xhat * w + b          (torch LayerNorm, xlstm_large norms)
//  - NormScale::OnePlusWeight:  y = xhat * (1 + w) + b    (xlstm package's LayerNorm and
//                                                          MultiHeadLayerNorm, weight init 0)
// xhat = (x - mean) / sqrt(var + eps), biased variance.
#pragma once
#include <cstdint>

namespace xlstm {

enum class NormScale { Plain, OnePlusWeight };

// x: (N, D) read. w: (D) read, may be null (scale 1). b: (D) read, may be null.
// y: (N, D) written. mean, rstd: (N) written (saved for backward).
template <class T>
void layernorm_forward(int64_t N, int64_t D, const T* x, const T* w, const T* b, double eps,
                       NormScale scale, T* y, T* mean, T* rstd);

// dy: (N, D) read. dx: (N, D) written (may alias dy). dw, db: (D) accumulated, may be null.
template <class T>
void layernorm_backward(int64_t N, int64_t D, const T* x, const T* w, NormScale scale,
                        const T* mean, const T* rstd, const T* dy, T* dx, T* dw, T* db);

// Per-head LayerNorm: x is (N, NH*DH); each (n, head) row of DH values is normalised on its
// own; w, b are (NH*DH) (may be null). mean, rstd: (N*NH) written.
template <class T>
void multihead_norm_forward(int64_t N, int64_t NH, int64_t DH, const T* x, const T* w, const T* b,
                            double eps, NormScale scale, T* y, T* mean, T* rstd);
// dx: (N, NH*DH) written. dw, db: (NH*DH) accumulated, may be null.
template <class T>
void multihead_norm_backward(int64_t N, int64_t NH, int64_t DH, const T* x, const T* w,
                             NormScale scale, const T* mean, const T* rstd, const T* dy, T* dx,
                             T* dw, T* db);

}  // namespace xlstm
