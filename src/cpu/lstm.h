// Classic LSTM (torch.nn.LSTM semantics), ONE layer and ONE direction over a whole sequence.
//
//   pre_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh          (B, 4H), gate order [i, f, g, o]
//   i = σ(pre_i)  f = σ(pre_f)  g = tanh(pre_g)  o = σ(pre_o)
//   c_t = f ⊙ c_{t-1} + i ⊙ g          h_t = o ⊙ tanh(c_t)
//
// Reverse direction: the same recurrence with t running from T-1 down to 0 (h_{t+1} feeds t).
//
// Layout: every sequence buffer is TIME-MAJOR, row (t, b) at index t*B + b, each row holding
// the row's features at stride `ld*` >= its width. Time-major keeps each step's (B, ·) slice
// contiguous for the per-step GEMMs; the module (nn/lstm.h) transposes at its boundary.
//
// Work split (what makes it fast; CPU-NOTES.md):
//   forward:  ONE GEMM for the input projection of all steps (M = T*B) into `gates`; per step a
//             GEMM h_prev W_hh^T (M = B) into a small buffer and one fused pointwise pass
//             (sum, bias, activations, c, h).
//   backward: per step one fused pointwise pass (also accumulating the bias gradient) and
//             dh_prev = dgates_t W_hh (M = B); after the loop dx, dW_ih, dW_hh as ONE GEMM each
//             over all steps (K = T*B), never per step.
//   float:    the GEMMs against W_ih / W_hh are oneDNN matmuls with the weights packed once per
//             call (XLSTM_LSTM_PACKED=0 falls back to plain sgemm, for comparisons); their rows
//             do not depend on M, so one call over T equals two over T/2 bit for bit. The
//             weight-gradient GEMMs are sgemm. double: OpenBLAS throughout.
// Determinism: for a fixed thread count results are bitwise reproducible (static schedules,
// fixed reduction orders; the bias gradient's order does not even depend on the thread count).
// Write modes: activation gradients `=` (dx: `=` or `+=` by GradWrite), parameter grads `+=`.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace xlstm {

enum class LstmDirection { Forward, Reverse };
// How a kernel stores an activation gradient: overwrite, or add to what is there (the second
// direction of a bidirectional layer adds its dx to the first one's).
enum class GradWrite { Overwrite, Accumulate };

namespace detail {
// 64-byte aligned allocation, pre-touched (zeroed); large ones ask for transparent huge pages.
void* lstm_alloc(size_t bytes);
void lstm_free(void* p);
struct LstmPackedGemms;  // oneDNN primitives + packed W_hh (float only), defined in lstm.cpp
}  // namespace detail

// A grow-only buffer: ensure(n) reallocates only when n exceeds the capacity, so repeated calls
// with the same (or smaller) shapes never allocate or fault pages. Contents after a growth are
// zero; otherwise whatever the last user left.
template <class T>
class LstmBuffer {
 public:
  LstmBuffer() = default;
  LstmBuffer(const LstmBuffer&) = delete;
  LstmBuffer& operator=(const LstmBuffer&) = delete;
  LstmBuffer(LstmBuffer&& o) noexcept : p_(o.p_), cap_(o.cap_) {
    o.p_ = nullptr;
    o.cap_ = 0;
  }
  LstmBuffer& operator=(LstmBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(cap_, o.cap_);
    return *this;
  }
  ~LstmBuffer() { detail::lstm_free(p_); }
  T* ensure(int64_t n) {
    if (n > cap_) {
      detail::lstm_free(p_);
      p_ = nullptr;
      cap_ = 0;
      p_ = static_cast<T*>(detail::lstm_alloc((size_t)n * sizeof(T)));
      cap_ = n;
    }
    return p_;
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  int64_t capacity() const { return cap_; }

 private:
  T* p_ = nullptr;
  int64_t cap_ = 0;
};

// Sizes of one layer-direction: T steps, B batch rows, I input features, H hidden units.
struct LstmDims {
  int64_t T, B, I, H;
};

// What forward saves for backward; one per layer-direction, owned by the caller and reused.
// Written by lstm_forward, read by lstm_backward (which leaves it intact: backward may run
// again on the same cache and gives bitwise-identical results).
template <class T>
struct LstmCache {
  LstmBuffer<T> gates;  // (T, B, 4H) gate activations [i, f, g, o] of every step
  LstmBuffer<T> c;      // (T, B, H) cell state after every step
  // float only: this layer-direction's oneDNN primitives and packed copies of W_ih / W_hh,
  // rebuilt only when the shapes change and re-packed once per call (the weights may have
  // changed in between). Created by lstm_forward; null until then.
  mutable std::shared_ptr<detail::LstmPackedGemms> packed;
};

// Per-call temporaries; one may be shared by all layer-directions of a module (it is only used
// within one call).
template <class T>
struct LstmScratch {
  LstmBuffer<T> dgates;  // (T, B, 4H) pre-activation gradients (backward)
  LstmBuffer<T> dh;      // (B, H) recurrent dh flowing to the previous step (backward)
  LstmBuffer<T> dc;      // (B, H) dc flowing to the previous step (backward)
  LstmBuffer<T> zeros;   // (B, H) zeros: the default h0 / c0 / dy
  LstmBuffer<T> hgates;  // (B, 4H) recurrent part h_prev W_hh^T of one step (forward)
  LstmBuffer<T> bias;    // (4H) b_ih + b_hh, zeros without bias (forward)
  LstmBuffer<T> h0;      // (B, ldy) h0 with the row stride of y (forward)
  LstmBuffer<T> dbias;   // (4H) bias gradient of one call (backward)
  LstmBuffer<T> dbias_rows;  // (threads, 4H) per-thread bias gradient (batch-split backward)
};

// Pointers of one layer-direction. Rows are time-major (index t*B + b) unless said otherwise.
template <class T>
struct LstmForwardArgs {
  const T* x = nullptr;  // (T, B, I) row stride ldx, read
  int64_t ldx = 0;
  const T* W_ih = nullptr;  // (4H, I) read
  const T* W_hh = nullptr;  // (4H, H) read
  const T* b_ih = nullptr;  // (4H) read; null = no bias
  const T* b_hh = nullptr;  // (4H) read; null = no bias
  const T* h0 = nullptr;    // (B, H) read; null = zeros
  const T* c0 = nullptr;    // (B, H) read; null = zeros
  T* y = nullptr;           // (T, B, H) row stride ldy, written: h_t of every step
  int64_t ldy = 0;
  T* h_n = nullptr;  // (B, H) written (h after the last step in time order); may be null
  T* c_n = nullptr;  // (B, H) written; may be null
};

template <class T>
struct LstmBackwardArgs {
  // The forward's inputs and output, unchanged since lstm_forward filled `cache`.
  const T* x = nullptr;  // (T, B, I) row stride ldx, read
  int64_t ldx = 0;
  const T* W_ih = nullptr;  // (4H, I) read
  const T* W_hh = nullptr;  // (4H, H) read
  const T* h0 = nullptr;    // (B, H) read; null = zeros
  const T* c0 = nullptr;    // (B, H) read; null = zeros
  const T* y = nullptr;     // (T, B, H) row stride ldy, read (the forward's output)
  int64_t ldy = 0;
  // Incoming gradients.
  const T* dy = nullptr;  // (T, B, H) row stride lddy, read; null = zeros
  int64_t lddy = 0;
  const T* dh_n = nullptr;  // (B, H) read; null = zeros
  const T* dc_n = nullptr;  // (B, H) read; null = zeros
  // Outgoing gradients.
  T* dx = nullptr;  // (T, B, I) row stride lddx, written or accumulated (dx_mode); may be null
  int64_t lddx = 0;
  GradWrite dx_mode = GradWrite::Overwrite;
  T* dh0 = nullptr;    // (B, H) written; may be null
  T* dc0 = nullptr;    // (B, H) written; may be null
  T* dW_ih = nullptr;  // (4H, I) accumulated (+=)
  T* dW_hh = nullptr;  // (4H, H) accumulated (+=)
  T* db_ih = nullptr;  // (4H) accumulated (+=); may be null
  T* db_hh = nullptr;  // (4H) accumulated (+=); may be null
};

// Runs the layer-direction over all T steps and fills `cache`. Trusts its arguments (the module
// validates): T, B, I, H >= 1, no aliasing between outputs and inputs.
template <class T>
void lstm_forward(const LstmDims& d, LstmDirection dir, const LstmForwardArgs<T>& a,
                  LstmCache<T>& cache, LstmScratch<T>& scratch);

// Gradients of sum(y*dy) + sum(h_n*dh_n) + sum(c_n*dc_n) through the forward that filled
// `cache` (same dims, direction and pointers).
template <class T>
void lstm_backward(const LstmDims& d, LstmDirection dir, const LstmBackwardArgs<T>& a,
                   const LstmCache<T>& cache, LstmScratch<T>& scratch);

// One time step for inference, nothing saved: gates (B, 4H) is scratch (overwritten);
// x: (B, I) row stride ldx, read; h, c: (B, H) read and updated in place (h has row stride ldh).
// b_ih / b_hh may be null. B <= 4 (decode) takes one fused pass over the weights (memory-bound:
// each weight row read once, gates never stored); larger B two GEMMs and the pointwise pass.
// Deterministic; agrees with lstm_forward to rounding (another summation order).
template <class T>
void lstm_step(int64_t B, int64_t I, int64_t H, const T* x, int64_t ldx, const T* W_ih,
               const T* W_hh, const T* b_ih, const T* b_hh, T* h, int64_t ldh, T* c, T* gates);

// lstm_step's decode case (B <= 4) with bf16 weights (uint16_t: the top 16 bits of a float,
// widened exactly; products and sums in float): half the bytes per step. The weights come
// packed by lstm_step_bf16_pack, one contiguous block per hidden unit (a thread streams its
// units' blocks in order). Wp (lstm_step_bf16_packed_size(I, H)) read; hnew (B, H) scratch;
// the rest as lstm_step. Throws ValueError for B > 4. Deterministic for any thread count.
void lstm_step_bf16(int64_t B, int64_t I, int64_t H, const float* x, int64_t ldx,
                    const uint16_t* Wp, const float* b_ih, const float* b_hh, float* h,
                    int64_t ldh, float* c, float* hnew);

// Elements of the packed bf16 step weights: 4H * (I + H), I and H rounded up to 32.
int64_t lstm_step_bf16_packed_size(int64_t I, int64_t H);

// W_ih (4H, I) and W_hh (4H, H) read (torch layout, gates i, f, g, o), rounded to bf16 (nearest
// even) into out (lstm_step_bf16_packed_size(I, H)) written: for each unit j, for W_ih then W_hh,
// chunks of 32 columns holding the rows i, f, g, o of unit j (columns past I / H zero).
void lstm_step_bf16_pack(int64_t I, int64_t H, const float* W_ih, const float* W_hh,
                         uint16_t* out);

// The float kernels' sigmoid / tanh (vectorisable polynomial forms, about 1e-7 absolute error),
// exposed for tests. The double kernels use std::exp / std::tanh.
float lstm_fast_sigmoid(float x);
float lstm_fast_tanh(float x);

}  // namespace xlstm
