// mLSTM kernel (XLSTM-SPEC §2) in its three forms, forward and exact backward, float and double.
//
//   parallel   : stabilised quadratic form (mlstm_kernels parallel--native_autograd, and xlstm's
//                parallel_stabilized_simple); no state in or out.
//   chunkwise  : mlstm_kernels chunkwise--native_autograd (spec §2.3) with initial and final
//                (C, n, m); chunk size L need not divide S (the last chunk is then shorter; the
//                math is the official one whenever L divides S).
//   recurrent  : a loop of recurrent steps (spec §2.1; mlstm_kernels step "native" and
//                native_sequence, xlstm recurrent_step_stabilized_simple). One step is S = 1.
//
// Per (batch, head): q, k (S, DHQK), v (S, DHV), i, f (S) raw gate pre-activations (forget gate
// logsigmoid(f), input gate exp(i) in log space), eps added after the max:
//   h_t = (q~_t C_t) / (max(|q~_t . n_t|, exp(-m_t)) + eps)
// with the form's own stabiliser m. Forms agree up to eps*e^m effects (conformance README §6.6).
//
// Scale convention (ScaleOn, README §6.7): ScaleOn::Q (mlstm_kernels) multiplies q by
// DHQK^-1/2 and keeps unscaled k in C and n; ScaleOn::K (xlstm backends) keeps k/sqrt(DHQK) in
// C and n. h is the same; C and n differ by sqrt(DHQK). The parallel form has no state, so the
// convention does not change it.
//
// GRADIENTS ARE EXACT: backward returns the true derivative of the function the forward
// computes (PyTorch autograd of the official native code = conformance `expected.grad.*`),
// including the paths through the normaliser max(|den|, e^-m) and through every stabiliser m
// (argmax routing; torch.maximum's 1/2 split at exact ties is reproduced). Why not the
// official hand-written backward (`native_custbw`, Triton; `expected.grad_custbw.*`)? It holds
// the normaliser and m constant, which is O(1) wrong at kernel level (README §6.5) and gives
// zero gradients to n_initial / m_initial; it is only nearly right behind a per-head norm.
// The exact gradient is right for any loss, and finite differences check it. It costs one
// extra O(S) pass: in every form h_t = NUM_t / (max(|DEN_t|, 1) + eps*e^{m_t}) with
// unstabilised sums NUM, DEN, so the exact gradient is the gradient with every m held fixed
// plus dL/dm_t = eps * dL/dN_t = -eps/(N_t+eps) * (dh_t . h_t) (and, for a returned state,
// dL/dm_out - sum(dC_out*C_out) - sum(dn_out*n_out)), routed back through the max chain that
// defines m (down to m_initial, which also gets sum(dC0*C0) + sum(dn0*n0)).
//
// Buffers are row-major and contiguous. Layouts (B batch, NH heads, S time):
//   q, k (B,NH,S,DHQK)   v, h (B,NH,S,DHV)   i, f (B,NH,S)
//   state c (B,NH,DHQK,DHV)   n (B,NH,DHQK)   m (B,NH)
// Write modes: outputs and all gradients (activation gradients) are written (=), never
// accumulated. Work is parallelised over B*NH with OpenMP (a call too small to pay for a
// parallel region runs serially); each head is computed by one thread in a fixed order, so
// repeated calls are bitwise identical. Log-space gate arithmetic (cumsums of
// logsigmoid(f), stabilisers) runs in double in both instantiations; the matrices run in T
// through gemm<T>. Ties: torch.max(dim) (the row / chunk maxima) routes the gradient to the
// first maximal index, torch.maximum (inter vs intra, the step's max, the normaliser) splits
// it in halves; both are reproduced.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "xlstm/tensor.h"

namespace xlstm {

enum class ScaleOn { Q, K };
enum class MlstmForm { Parallel, Chunkwise, Recurrent };

struct MlstmDims {
  int64_t B = 1, NH = 1, S = 1, DHQK = 1, DHV = 1;
};

struct MlstmOptions {
  double eps = 1e-6;
  ScaleOn scale_on = ScaleOn::Q;
  // Chunkwise: chunk size L. Recurrent: the backward recomputes the per-step states from
  // checkpoints saved every chunk_size steps. Parallel: unused.
  int64_t chunk_size = 64;
};

// Kernel inputs (read). c0, n0, m0: initial state; all null = zero state (m0 = 0); the
// parallel form takes none.
template <class T>
struct MlstmInputs {
  const T *q = nullptr, *k = nullptr, *v = nullptr, *i = nullptr, *f = nullptr;
  const T *c0 = nullptr, *n0 = nullptr, *m0 = nullptr;
};

// Kernel outputs (written). c, n, m: the final state, written when non-null (not parallel).
// The recurrent form also accepts c, n, m equal to the inputs' c0, n0, m0 (state updated in
// place); no other overlap.
template <class T>
struct MlstmOutputs {
  T* h = nullptr;
  T *c = nullptr, *n = nullptr, *m = nullptr;
};

// Gradients of the loss w.r.t. the outputs (read). dc, dn, dm: of the final state, null = 0.
template <class T>
struct MlstmOutputGrads {
  const T* dh = nullptr;
  const T *dc = nullptr, *dn = nullptr, *dm = nullptr;
};

// Gradients w.r.t. the inputs (written). dc0, dn0, dm0: written when non-null and the forward
// had an initial state.
template <class T>
struct MlstmGrads {
  T *dq = nullptr, *dk = nullptr, *dv = nullptr, *di = nullptr, *df = nullptr;
  T *dc0 = nullptr, *dn0 = nullptr, *dm0 = nullptr;
};

// What forward saves for backward (caller keeps it between the two; reused across calls,
// grows on demand). Contents depend on the form:
//   m, den   (B,NH,S)   per-position stabiliser and signed denominator (N = max(|den|, e^-m))
//   c, n, ms (B,NH,K+1,…) chunkwise: states before every chunk and the last (K = #chunks);
//                         recurrent: checkpoints every chunk_size steps and the last.
template <class T>
struct MlstmCache {
  std::vector<double> m, den, ms;
  std::vector<T> c, n;
};

// Per-thread scratch memory, kept by the caller so that calls do not allocate (it only grows).
// One workspace may serve float and double calls, but not two calls at the same time.
class MlstmWorkspace {
 public:
  // Makes room for `threads` slices of at least `bytes` each.
  void reserve(int threads, size_t bytes);
  unsigned char* slice(int t) { return base_ + (size_t)t * stride_; }

 private:
  std::vector<unsigned char> buf_;
  unsigned char* base_ = nullptr;
  size_t stride_ = 0;
};

// ---- Raw-pointer kernels: trust their arguments (validate with the Tensor API below). ----

// Parallel form. `cache` (may be null for inference) is written for backward.
template <class T>
void mlstm_parallel_forward(const MlstmDims& d, const MlstmOptions& o, const MlstmInputs<T>& in,
                            T* h, MlstmCache<T>* cache, MlstmWorkspace& ws);
// `h` is the forward output (read).
template <class T>
void mlstm_parallel_backward(const MlstmDims& d, const MlstmOptions& o, const MlstmInputs<T>& in,
                             const T* h, const T* dh, const MlstmCache<T>& cache,
                             const MlstmGrads<T>& g, MlstmWorkspace& ws);

// Chunkwise form (chunk size o.chunk_size).
template <class T>
void mlstm_chunkwise_forward(const MlstmDims& d, const MlstmOptions& o, const MlstmInputs<T>& in,
                             const MlstmOutputs<T>& out, MlstmCache<T>* cache, MlstmWorkspace& ws);
// `h` is the forward output (read); `in` must be the forward's inputs.
template <class T>
void mlstm_chunkwise_backward(const MlstmDims& d, const MlstmOptions& o, const MlstmInputs<T>& in,
                              const T* h, const MlstmOutputGrads<T>& dout,
                              const MlstmCache<T>& cache, const MlstmGrads<T>& g,
                              MlstmWorkspace& ws);

// Recurrent form: S steps of spec §2.1. A single step (inference) is S = 1 with cache null.
template <class T>
void mlstm_recurrent_forward(const MlstmDims& d, const MlstmOptions& o, const MlstmInputs<T>& in,
                             const MlstmOutputs<T>& out, MlstmCache<T>* cache, MlstmWorkspace& ws);
template <class T>
void mlstm_recurrent_backward(const MlstmDims& d, const MlstmOptions& o, const MlstmInputs<T>& in,
                              const T* h, const MlstmOutputGrads<T>& dout,
                              const MlstmCache<T>& cache, const MlstmGrads<T>& g,
                              MlstmWorkspace& ws);

// ---- Tensor API: validates shapes and dtypes at the door, allocates, dispatches. ----

// State tensors: c (B,NH,DHQK,DHV), n (B,NH,DHQK), m (B,NH). All undefined = zero state.
struct MlstmState {
  Tensor c, n, m;
};

// What mlstm_forward keeps for mlstm_backward.
struct MlstmContext {
  MlstmForm form = MlstmForm::Chunkwise;
  MlstmOptions opt;
  MlstmDims dims;
  Tensor q, k, v, i, f, h;
  MlstmState state_in;
  MlstmCache<float> cache_f;
  MlstmCache<double> cache_d;
};

struct MlstmTensorGrads {
  Tensor dq, dk, dv, di, df;
  MlstmState dstate_in;  // defined only when the forward had an initial state
};

// q, k (B,NH,S,DHQK), v (B,NH,S,DHV), i, f (B,NH,S); all F32 or all F64 on the CPU; S >= 1.
// state_in: initial state (null or all undefined = zeros). state_out: receives the final
// state when non-null. Parallel takes neither. ctx: filled for backward when non-null.
// ws: scratch (null = a thread-local one). Returns h (B,NH,S,DHV). Throws ValueError /
// TypeError naming the op, the expected and the actual shape.
Tensor mlstm_forward(MlstmForm form, const Tensor& q, const Tensor& k, const Tensor& v,
                     const Tensor& i, const Tensor& f, const MlstmOptions& opt,
                     const MlstmState* state_in = nullptr, MlstmState* state_out = nullptr,
                     MlstmContext* ctx = nullptr, MlstmWorkspace* ws = nullptr);

// dh (B,NH,S,DHV); dstate_out: gradients of the final state (null or undefined = zero).
MlstmTensorGrads mlstm_backward(const MlstmContext& ctx, const Tensor& dh,
                                const MlstmState* dstate_out = nullptr,
                                MlstmWorkspace* ws = nullptr);

const char* mlstm_form_name(MlstmForm form);

}  // namespace xlstm
