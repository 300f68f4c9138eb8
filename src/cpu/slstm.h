// sLSTM cell over a sequence: forward and exact backward (PyTorch autograd of the official
// vanilla backend, xlstm/blocks/slstm/src/vanilla/slstm.py; spec §1.1, conformance README §6.4).
//
// Per step t, head h, unit d (all pre-activations "raw", gates in the order i, f, z, o):
//   raw_g = x_g(t) + (R_h · y(t-1))_g + b_g
//   L     = m(t-1) + logsigmoid(f_raw)
//   m(t)  = i_raw                 if every n(t-1) over the whole (B, H) state is 0
//         = max(i_raw, L)         otherwise
//   i = min(exp(i_raw - m(t)), 1)      f = min(exp(L - m(t)), 1)
//   c(t) = f c(t-1) + i tanh(z_raw)    n(t) = f n(t-1) + i    y(t) = sigmoid(o_raw) c(t) / n(t)
// The backward differentiates through m (max and the all-zero branch) and the min(.,1) clamps
// with autograd's tie rule: torch.maximum / torch.minimum give each argument half the gradient
// when both are equal (this happens at every step: i = min(exp(0), 1) when m(t) == i_raw).
//
// Parameters are in the official VANILLA internal layout:
//   R    (NH, 4*DH, DH): R[h, g*DH + o, i]; (R_h · y)_g[o] = sum_i R[h, g*DH+o, i] y[h*DH+i]
//   bias (4*H) ordered [gate][head][dh]
// States are (4, B, H) ordered (y, c, n, m), H = NH*DH head-major.
//
// Internal layout (the cache): states_all (4, T+1, B, H) like the official `all_states`; per
// step the gate values (i, f, tanh z, sigmoid o) head-major (B, NH, 4, DH) so that one head's
// four gates are contiguous for the per-head GEMMs (M = B); sigmoid(-f_raw) and one byte of tie
// weights per unit. The backward reads them (no recomputation); it writes d raw into dx and
// into one step's head-major scratch (what the per-step GEMM reads), and dR is one GEMM per head
// over all steps reading dx (K = B*T; float through gemm_tn, cpu/gemm_tn.h, which also
// sums the columns for the bias gradient in the same pass). Writing d raw once per step instead
// of twice (dx and a (T, B, ...) copy) halves the backward's largest write stream.
// float computes the pointwise with vectorisable polynomial exp/log1p/tanh (~1e-7 relative);
// double uses libm. Deterministic: fixed loop order, no atomics, results independent of the
// thread count (threads split the (b, h) rows of a step).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace xlstm {

struct SlstmShape {
  int64_t B = 0, T = 0, NH = 0, DH = 0;
  int64_t H() const { return NH * DH; }
};

// Element strides of the sequence tensors (unit d always contiguous).
//   x / dx: gate g, head h, unit d of (b, t) at  b*x_b + t*x_t + g*x_g + h*DH + d
//   y / dy: head h, unit d of (b, t)         at  b*y_b + t*y_t + h*y_h + d
struct SlstmLayout {
  int64_t x_b = 0, x_t = 0, x_g = 0;
  int64_t y_b = 0, y_t = 0, y_h = 0;
  // The official cell: x (B, T, 4H) ordered [gate][head][dh]; y (B, NH, T, DH).
  static SlstmLayout cell(const SlstmShape& s) {
    const int64_t H = s.H();
    return {s.T * 4 * H, 4 * H, H, s.NH * s.T * s.DH, s.DH, s.T * s.DH};
  }
};

// What the forward keeps for the backward, plus the backward's workspaces. Owned by the caller
// and reused across calls: buffers only grow (no per-step and, at a fixed shape, no per-call
// allocation).
namespace detail {
struct SlstmPacked;  // float: per-head packed R (cpu/packed_gemm.h), defined in slstm.cpp
}

template <class T>
struct SlstmCache {
  SlstmShape shape;
  std::vector<T> states;         // (4, T+1, B, H): y, c, n, m; slot 0 = initial state
  std::vector<T> gates;          // (T, B, NH, 4, DH): i, f (after min(., 1)), tanh z, sigmoid o
  std::vector<T> sgf;            // (T, B, H): sigmoid(-f_raw) = d logsigmoid(f_raw) / d f_raw
  std::vector<uint8_t> code;     // (T, B, H): autograd tie weights (see slstm.cpp tie_code)
  std::vector<T> raw;            // (B, NH, 4, DH) forward scratch: one step's pre-activations
  std::vector<T> draw;           // (B, NH, 4, DH) backward: d raw of the current step
  std::vector<T> carry;          // (4, B, H) backward: running dy_rec, dc, dn, dm
  std::vector<double> colsum;    // (NH, 4, DH) backward: the bias gradient in double
  bool valid = false;            // a forward has filled states/raw/first for `shape`
  // float only: one oneDNN matmul per head and direction with R_h packed once per call;
  // created by slstm_forward (shared so that a copied cache shares it).
  std::shared_ptr<detail::SlstmPacked> packed;
};

// x: read, layout L. R: (NH,4DH,DH) read. bias: (4H) read. state0: (4,B,H) read, may be null
// (zero state). y: written, layout L. state_out: (4,B,H) written, may be null.
// Requires B, T, NH, DH >= 1 (validated by the caller).
template <class T>
void slstm_forward(const SlstmShape& s, const SlstmLayout& L, const T* x, const T* R,
                   const T* bias, const T* state0, T* y, T* state_out, SlstmCache<T>& cache);

// Backward of the last slstm_forward on `cache` (which it does not modify except for the
// workspaces draw/carry, so it may be called repeatedly with bitwise identical results).
// dy: layout L, read, may be null (zero). dstate_out: (4,B,H) read, may be null (zero).
// dx: layout L, written. dR: (NH,4DH,DH) accumulated. dbias: (4H) accumulated.
// dstate0: (4,B,H) written, may be null.
template <class T>
void slstm_backward(const SlstmShape& s, const SlstmLayout& L, const T* R, const T* dy,
                    const T* dstate_out, T* dx, T* dR, T* dbias, T* dstate0,
                    SlstmCache<T>& cache);

}  // namespace xlstm
