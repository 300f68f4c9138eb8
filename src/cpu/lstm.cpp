#include "cpu/lstm.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "core/huge_vector.h"
#include "cpu/gemm.h"
#include "cpu/lstm_impl.h"
#include "cpu/parallel.h"
#include "cpu/packed_gemm.h"
#include "xlstm/error.h"
#include "xlstm/tensor.h"

namespace xlstm {

using namespace lstm_impl;

namespace detail {

void* lstm_alloc(size_t bytes) {
  // Fresh pages cost ~12 µs per 4 KiB here (CPU-NOTES.md): big buffers get huge pages, and all
  // are touched once now rather than inside a timed step.
  void* p = huge_aligned_alloc(bytes);
  std::memset(p, 0, bytes);
  return p;
}
void lstm_free(void* p) { std::free(p); }

// The float kernel's GEMMs against W_ih / W_hh as packed oneDNN matmuls (cpu/packed_gemm.h):
// packed once per call, so each row's result does not depend on M (one call over T == two
// over T/2). Primitives are rebuilt only when the shapes change.
struct LstmPackedGemms {
  PackedMatmul proj;  // gates (T*B, 4H)  =  x (T*B, I) · W_ih^T
  PackedMatmul fwd;   // gh (B, 4H)       =  h (B, H) · W_hh^T
  PackedMatmul bwd;   // dh (B, H)        =  dgates_t (B, 4H) · W_hh
  PackedMatmul dx;    // dx (T*B, I) (= or +=)  dgates (T*B, 4H) · W_ih
  GradMatmul dw_ih;   // dW_ih (4H, I) += dgates^T · x
  GradMatmul dw_hh;   // dW_hh (4H, H) += dgates_shifted^T · h_prev
  // Batch-split recurrence (split_rows below): thread k's fwd / bwd on its rows, W_hh packed
  // by each thread for itself.
  std::vector<PackedMatmul> fwd_rows, bwd_rows;
};

}  // namespace detail

namespace {

// ---- GEMMs against the weights ------------------------------------------------------------

enum class WGrad { Ih, Hh };

// The GEMMs against W_ih / W_hh of one call. double: OpenBLAS through gemm<double>. float:
// packed oneDNN matmuls (unless XLSTM_LSTM_PACKED=0: plain gemm<float>, for comparisons).
template <class T>
struct WeightGemms {
  const LstmCache<T>& cache;
  int64_t TT, B, I, H;
  // gates (T*B, 4H) = x (T*B, I; ldx) W_ih^T
  void proj(const T* x, int64_t ldx, const T* W_ih, T* gates) {
    gemm<T>(Trans::N, Trans::T, TT * B, 4 * H, I, T(1), x, ldx, W_ih, I, T(0), gates, 4 * H);
  }
  void prepare_fwd(int64_t, const T*) {}
  // gh (B, 4H) = h (B, H; ldh) W_hh^T
  void fwd(const T* h, int64_t ldh, const T* W_hh, T* gh) {
    gemm<T>(Trans::N, Trans::T, B, 4 * H, H, T(1), h, ldh, W_hh, H, T(0), gh, 4 * H);
  }
  void prepare_bwd(const T*) {}
  // dh (B, H) = dg (B, 4H) W_hh
  void bwd(const T* dg, const T* W_hh, T* dh) {
    gemm<T>(Trans::N, Trans::N, B, H, 4 * H, T(1), dg, 4 * H, W_hh, H, T(0), dh, H);
  }
  // dx (T*B, I; lddx) (= or +=) dg (T*B, 4H) W_ih
  void dx(const T* dg, const T* W_ih, T* dx, int64_t lddx, GradWrite mode) {
    gemm<T>(Trans::N, Trans::N, TT * B, I, 4 * H, T(1), dg, 4 * H, W_ih, I,
            mode == GradWrite::Accumulate ? T(1) : T(0), dx, lddx);
  }
  // dW (4H, N) += dg (K, 4H)^T v (K, N; ldv), K = rows; `which` names the weight
  void dw(WGrad which, int64_t K, const T* dg, const T* v, int64_t ldv, int64_t N, T* dW) {
    gemm<T>(Trans::T, Trans::N, 4 * H, N, K, T(1), dg, 4 * H, v, ldv, T(1), dW, N);
  }
};

bool use_packed() {
  static const bool on = [] {
    const char* e = std::getenv("XLSTM_LSTM_PACKED");
    return !(e && e[0] == '0');
  }();
  return on;
}

template <>
struct WeightGemms<float> {
  const LstmCache<float>& cache;
  int64_t TT, B, I, H;
  detail::LstmPackedGemms* p = init();
  detail::LstmPackedGemms* init() {
    if (!use_packed()) return nullptr;
    if (!cache.packed) cache.packed = std::make_shared<detail::LstmPackedGemms>();
    return cache.packed.get();
  }
  void proj(const float* x, int64_t ldx, const float* W_ih, float* gates) {
    if (!p)
      return gemm<float>(Trans::N, Trans::T, TT * B, 4 * H, I, 1.f, x, ldx, W_ih, I, 0.f, gates,
                         4 * H);
    p->proj.pack(TT * B, I, 4 * H, ldx, 4 * H, Trans::T, false, W_ih);
    p->proj.run(x, gates);
  }
  void prepare_fwd(int64_t ldh, const float* W_hh) {
    if (p) p->fwd.pack(B, H, 4 * H, ldh, 4 * H, Trans::T, false, W_hh);
  }
  void fwd(const float* h, int64_t ldh, const float* W_hh, float* gh) {
    if (p) return p->fwd.run(h, gh);
    gemm<float>(Trans::N, Trans::T, B, 4 * H, H, 1.f, h, ldh, W_hh, H, 0.f, gh, 4 * H);
  }
  void prepare_bwd(const float* W_hh) {
    if (p) p->bwd.pack(B, 4 * H, H, 4 * H, H, Trans::N, false, W_hh);
  }
  void bwd(const float* dg, const float* W_hh, float* dh) {
    if (p) return p->bwd.run(dg, dh);
    gemm<float>(Trans::N, Trans::N, B, H, 4 * H, 1.f, dg, 4 * H, W_hh, H, 0.f, dh, H);
  }
  void dx(const float* dg, const float* W_ih, float* dx, int64_t lddx, GradWrite mode) {
    if (!p)
      return gemm<float>(Trans::N, Trans::N, TT * B, I, 4 * H, 1.f, dg, 4 * H, W_ih, I,
                         mode == GradWrite::Accumulate ? 1.f : 0.f, dx, lddx);
    p->dx.pack(TT * B, 4 * H, I, 4 * H, lddx, Trans::N, mode == GradWrite::Accumulate, W_ih);
    p->dx.run(dg, dx);
  }
  void dw(WGrad which, int64_t K, const float* dg, const float* v, int64_t ldv, int64_t N,
          float* dW) {
    if (!p) return gemm<float>(Trans::T, Trans::N, 4 * H, N, K, 1.f, dg, 4 * H, v, ldv, 1.f, dW, N);
    (which == WGrad::Ih ? p->dw_ih : p->dw_hh).run(4 * H, K, N, dg, 4 * H, v, ldv, dW);
  }
};


// Batch-split recurrence. Batch rows are independent through the recurrence, so when one
// step's products are small (2·B·4H·H below 32 MFLOP: e.g. B 32, H 256) the float kernel gives
// each thread a block of rows for ALL steps, each with its own packed W_hh, and no thread
// waits for another until the loop ends. Per-step threading would instead pay a fork/join or a
// barrier per product and pointwise pass, which at this size cost as much as the work: B 32,
// T 128, H 256 fwd+bwd took 58 ms on 1 thread and only 44 on 2. The per-row arithmetic is the
// same as the unsplit loop's (each row's GEMM result does not depend on M), except that the
// bias gradient is summed per thread's rows and then over threads in order (deterministic for
// a thread count). Returns the number of row blocks (1 = not split).
template <class T>
int split_rows(const LstmDims& d) {
  if (!std::is_same_v<T, float> || !use_packed()) return 1;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads < 2 || d.T < 2 || d.B < 2 * threads) return 1;
  if (2.0 * (double)d.B * 4.0 * (double)d.H * (double)d.H >= 32e6) return 1;
  return threads;
}
// f(k, b0, nb) on thread k of a team of K for its rows [b0, b0 + nb) of B (nb > 0).
template <class F>
void for_row_blocks(int64_t B, int K, F f) {
#pragma omp parallel num_threads(K)
  {
    const int k = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t b0 = B * k / n, b1 = B * (k + 1) / n;
    if (b1 > b0) f(k, b0, b1 - b0);
  }
}

}  // namespace

float lstm_fast_sigmoid(float x) { return fast_sigmoid(x); }
float lstm_fast_tanh(float x) { return fast_tanh(x); }

template <class T>
void lstm_forward(const LstmDims& d, LstmDirection dir, const LstmForwardArgs<T>& a,
                  LstmCache<T>& cache, LstmScratch<T>& s) {
  const int64_t TT = d.T, B = d.B, I = d.I, H = d.H, G = 4 * H;
  const bool fwd = dir == LstmDirection::Forward;
  T* gates = cache.gates.ensure(TT * B * G);
  T* cs = cache.c.ensure(TT * B * H);
  const T* zeros = s.zeros.ensure(B * H);
  T* bias = s.bias.ensure(G);
  for (int64_t j = 0; j < G; ++j)
    bias[j] = (a.b_ih ? a.b_ih[j] : T(0)) + (a.b_hh ? a.b_hh[j] : T(0));

  // Input projection of every step at once.
  WeightGemms<T> wg{cache, TT, B, I, H};
  wg.proj(a.x, a.ldx, a.W_ih, gates);

  // The recurrent part goes to a small (L2-resident) buffer and is added in the pointwise pass:
  // cheaper than a GEMM accumulating into the big gates buffer (~15% on that GEMM).
  T* gh = s.hgates.ensure(B * G);
  const int K = split_rows<T>(d);
  if constexpr (std::is_same_v<T, float>) if (K > 1) {
    detail::LstmPackedGemms& pk = *cache.packed;  // created by wg (use_packed)
    pk.fwd_rows.resize((size_t)K);
    const T* h0s = nullptr;
    if (a.h0) {
      T* buf = s.h0.ensure(B * a.ldy);
      copy_rows(B, H, a.h0, H, buf, a.ldy);
      h0s = buf;
    }
    for_row_blocks(B, K, [&](int k, int64_t b0, int64_t nb) {
      PackedMatmul& mm = pk.fwd_rows[(size_t)k];
      mm.pack(nb, H, G, a.ldy, G, Trans::T, false, a.W_hh);
      T* ghk = gh + b0 * G;
      for (int64_t step = 0; step < TT; ++step) {
        const int64_t t = fwd ? step : TT - 1 - step, tp = fwd ? t - 1 : t + 1;
        T* gt = gates + t * B * G + b0 * G;
        T* ct = cs + t * B * H + b0 * H;
        T* yt = a.y + t * B * a.ldy + b0 * a.ldy;
        const T* c0 = (a.c0 ? a.c0 : zeros) + b0 * H;
        if (step == 0 && !a.h0) {
          pointwise_forward<T, false, true>(nb, H, gt, nullptr, bias, c0, ct, yt, a.ldy);
          continue;
        }
        const T* hp = step == 0 ? h0s + b0 * a.ldy : a.y + tp * B * a.ldy + b0 * a.ldy;
        mm.run(hp, ghk);
        pointwise_forward<T, true, true>(nb, H, gt, ghk, bias,
                                         step == 0 ? c0 : cs + tp * B * H + b0 * H, ct, yt,
                                         a.ldy);
      }
    });
    const int64_t last = fwd ? TT - 1 : 0;
    if (a.h_n) copy_rows(B, H, a.y + last * B * a.ldy, a.ldy, a.h_n, H);
    if (a.c_n) std::memcpy(a.c_n, cs + last * B * H, (size_t)(B * H) * sizeof(T));
    return;
  }
  if (TT > 1 || a.h0) wg.prepare_fwd(a.ldy, a.W_hh);
  for (int64_t step = 0; step < TT; ++step) {
    const int64_t t = fwd ? step : TT - 1 - step, tp = fwd ? t - 1 : t + 1;
    T* gt = gates + t * B * G;
    T* ct = cs + t * B * H;
    T* yt = a.y + t * B * a.ldy;
    if (step == 0 && !a.h0) {
      pointwise_forward<T, false, true>(B, H, gt, nullptr, bias, a.c0 ? a.c0 : zeros, ct, yt,
                                        a.ldy);
      continue;
    }
    const T* cprev;
    if (step == 0) {
      // Same GEMM (and rounding) as every later step: h0 laid out with y's row stride, so
      // one call over T equals two calls over T/2 with the state carried, bit for bit.
      T* h0s = s.h0.ensure(B * a.ldy);
      copy_rows(B, H, a.h0, H, h0s, a.ldy);
      wg.fwd(h0s, a.ldy, a.W_hh, gh);
      cprev = a.c0 ? a.c0 : zeros;
    } else {
      wg.fwd(a.y + tp * B * a.ldy, a.ldy, a.W_hh, gh);
      cprev = cs + tp * B * H;
    }
    const bool more = step + 1 < TT;
    pointwise_forward<T, true, true>(B, H, gt, gh, bias, cprev, ct, yt, a.ldy,
                                     more ? gates + (fwd ? t + 1 : t - 1) * B * G : nullptr);
  }
  const int64_t last = fwd ? TT - 1 : 0;
  if (a.h_n) copy_rows(B, H, a.y + last * B * a.ldy, a.ldy, a.h_n, H);
  if (a.c_n) std::memcpy(a.c_n, cs + last * B * H, (size_t)(B * H) * sizeof(T));
}

template <class T>
void lstm_backward(const LstmDims& d, LstmDirection dir, const LstmBackwardArgs<T>& a,
                   const LstmCache<T>& cache, LstmScratch<T>& s) {
  const int64_t TT = d.T, B = d.B, I = d.I, H = d.H, G = 4 * H;
  const bool fwd = dir == LstmDirection::Forward;
  const T* gates = cache.gates.data();
  const T* cs = cache.c.data();
  T* dg = s.dgates.ensure(TT * B * G);
  T* dh = s.dh.ensure(B * H);
  T* dc = s.dc.ensure(B * H);
  T* db = s.dbias.ensure(G);
  const T* zeros = s.zeros.ensure(B * H);
  if (a.dh_n)
    std::memcpy(dh, a.dh_n, (size_t)(B * H) * sizeof(T));
  else
    std::fill(dh, dh + B * H, T(0));
  if (a.dc_n)
    std::memcpy(dc, a.dc_n, (size_t)(B * H) * sizeof(T));
  else
    std::fill(dc, dc + B * H, T(0));
  std::fill(db, db + G, T(0));

  WeightGemms<T> wg{cache, TT, B, I, H};
  const int K = split_rows<T>(d);
  bool split = false;
  if constexpr (std::is_same_v<T, float>) if (K > 1) {  // see split_rows
    split = true;
    detail::LstmPackedGemms& pk = *cache.packed;
    pk.bwd_rows.resize((size_t)K);
    T* dbk = s.dbias_rows.ensure(K * G);
    std::fill(dbk, dbk + K * G, T(0));
    for_row_blocks(B, K, [&](int k, int64_t b0, int64_t nb) {
      PackedMatmul& mm = pk.bwd_rows[(size_t)k];
      mm.pack(nb, G, H, G, H, Trans::N, false, a.W_hh);
      for (int64_t step = 0; step < TT; ++step) {
        const int64_t t = fwd ? TT - 1 - step : step, tp = fwd ? t - 1 : t + 1;
        const bool first = step == TT - 1;
        const T* cprev = (first ? (a.c0 ? a.c0 : zeros) : cs + tp * B * H) + b0 * H;
        const T* dyt = a.dy ? a.dy + t * B * a.lddy + b0 * a.lddy : zeros + b0 * H;
        const int64_t lddy = a.dy ? a.lddy : H;
        T* dgt = dg + t * B * G + b0 * G;
        pointwise_backward(nb, H, gates + t * B * G + b0 * G, cs + t * B * H + b0 * H, cprev,
                           dyt, lddy, dh + b0 * H, dc + b0 * H, dgt, dbk + k * G);
        if (!first || a.dh0)
          mm.run(dgt, dh + b0 * H);
      }
    });
    for (int k = 0; k < K; ++k)
      for (int64_t j = 0; j < G; ++j) db[j] += dbk[k * G + j];
  }
  if (!split) {
    if (TT > 1 || a.dh0) wg.prepare_bwd(a.W_hh);
    for (int64_t step = 0; step < TT; ++step) {
      const int64_t t = fwd ? TT - 1 - step : step, tp = fwd ? t - 1 : t + 1;
      const bool first = step == TT - 1;  // the first step in forward order
      const T* cprev = first ? (a.c0 ? a.c0 : zeros) : cs + tp * B * H;
      const T* dyt = a.dy ? a.dy + t * B * a.lddy : zeros;
      const int64_t lddy = a.dy ? a.lddy : H;
      T* dgt = dg + t * B * G;
      // The next step (in backward order) is tp; it reads cs at tp's predecessor.
      const bool more = !first;
      const int64_t tpp = fwd ? tp - 1 : tp + 1;
      const T* cprev_next =
          !more ? nullptr : (step + 1 == TT - 1 ? (a.c0 ? a.c0 : zeros) : cs + tpp * B * H);
      pointwise_backward(B, H, gates + t * B * G, cs + t * B * H, cprev, dyt, lddy, dh, dc, dgt, db,
                         more ? gates + tp * B * G : nullptr, cprev_next,
                         more && a.dy ? a.dy + tp * B * a.lddy : nullptr);
      if (!first || a.dh0) wg.bwd(dgt, a.W_hh, dh);
    }
  }
  if (a.dh0) std::memcpy(a.dh0, dh, (size_t)(B * H) * sizeof(T));
  if (a.dc0) std::memcpy(a.dc0, dc, (size_t)(B * H) * sizeof(T));

  // Everything that does not feed the recurrence: one GEMM each over all T*B rows.
  if (a.dx) wg.dx(dg, a.W_ih, a.dx, a.lddx, a.dx_mode);
  wg.dw(WGrad::Ih, TT * B, dg, a.x, a.ldx, I, a.dW_ih);
  if (TT > 1) {
    // Step t pairs with h_{t-1} (forward) or h_{t+1} (reverse): rows shifted by one step.
    const T* dgs = fwd ? dg + B * G : dg;
    const T* hs = fwd ? a.y : a.y + B * a.ldy;
    wg.dw(WGrad::Hh, (TT - 1) * B, dgs, hs, a.ldy, H, a.dW_hh);
  }
  if (a.h0) {
    const int64_t t0 = fwd ? 0 : TT - 1;
    gemm<T>(Trans::T, Trans::N, G, H, B, T(1), dg + t0 * B * G, G, a.h0, H, T(1), a.dW_hh, H);
  }
  for (int64_t j = 0; j < G; ++j) {
    if (a.db_ih) a.db_ih[j] += db[j];
    if (a.db_hh) a.db_hh[j] += db[j];
  }
}

template void lstm_forward<float>(const LstmDims&, LstmDirection, const LstmForwardArgs<float>&,
                                  LstmCache<float>&, LstmScratch<float>&);
template void lstm_forward<double>(const LstmDims&, LstmDirection, const LstmForwardArgs<double>&,
                                   LstmCache<double>&, LstmScratch<double>&);
template void lstm_backward<float>(const LstmDims&, LstmDirection, const LstmBackwardArgs<float>&,
                                   const LstmCache<float>&, LstmScratch<float>&);
template void lstm_backward<double>(const LstmDims&, LstmDirection, const LstmBackwardArgs<double>&,
                                    const LstmCache<double>&, LstmScratch<double>&);
}  // namespace xlstm
