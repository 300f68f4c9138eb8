// Internals of models/xlstm_large.cpp shared with models/xlstm_large_decode.cpp.
#pragma once
#include <algorithm>

#include "cpu/activations.h"
#include "cpu/parallel.h"
#include "models/xlstm_large.h"

namespace xlstm {
namespace xlstm_large_detail {

// Per-block parameters, in the order of kNames (xlstm_large.cpp).
enum P {
  kNormM, kNormMB, kQ, kQB, kK, kKB, kV, kVB, kO, kOB, kI, kIB, kF, kFB, kMH, kMHB, kOut, kOutB,
  kNormF, kNormFB, kGate, kGateB, kUp, kUpB, kDown, kDownB, kNumP
};

template <class T>
const T* ptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// cap(z; c) = c tanh(z / c) in place (c <= 0: identity). tanh is the vectorised one of
// act_forward (cpu/activations.h; float: PwMath, ~1e-7 relative).
template <class T>
void soft_cap(int64_t n, T* z, double c) {
  if (c <= 0) return;
  const T cc = (T)c, inv = T(1) / cc;
  constexpr int64_t kBlock = 16384;
  parallel_for((n + kBlock - 1) / kBlock, n > 4 * kBlock, [&](int64_t blk) {
    const int64_t j0 = blk * kBlock, m = std::min(kBlock, n - j0);
    T* p = z + j0;
    for (int64_t j = 0; j < m; ++j) p[j] *= inv;
    act_forward<T>(Act::Tanh, m, p, p);
    for (int64_t j = 0; j < m; ++j) p[j] *= cc;
  });
}
}  // namespace xlstm_large_detail

template <class T>
struct XLSTMLarge<T>::Block {
  Tensor w[xlstm_large_detail::kNumP], g[xlstm_large_detail::kNumP];
  std::unique_ptr<Saved> saved;  // Mode::Train activations
};

// Buffers of decode_step (F32, 64-byte aligned; reallocated only when B or the thread count
// changes). Shapes: x (B,H) the residual stream; u (threads,B,H) each thread's normalised input;
// q,k (B,QK); v,o,p (B,VD); ig,fg (B,NH); a,c (B,U); num (threads,DHV); state (C,n,m per
// block, used when the caller keeps no state); logits: two (B,1,V) outputs, each handed out
// and reused only when the caller no longer holds it.
template <class T>
struct XLSTMLarge<T>::Decode {
  int64_t B = 0, threads = 0;
  Tensor x, u, q, k, v, o, ig, fg, p, a, c, num, logits[2];
  int next_logits = 0;
  std::vector<MlstmState> state;
};

}  // namespace xlstm
