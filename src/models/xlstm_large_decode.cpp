// XLSTMLarge<float>::decode_step: one token per batch row, the whole model in one OpenMP
// parallel region.
//
// Why: batch-1 decode is a stream of ~10 matrix-vector products per block over weights that
// are read once per token; anything between them is overhead against the memory-bandwidth
// bound (docs/perf.md). The general forward opens 20+ parallel regions per block (each GEMV,
// norm, transpose, the mLSTM kernel), allocates its mLSTM tensors per call and hands each
// GEMV to the OpenMP runtime, whose fork/join and barriers follow OMP_WAIT_POLICY: with
// "passive" (recommended on shared machines) every one is a futex sleep and wake-up of
// 10-50 us. Here the threads enter once per token, split every GEMV's rows among themselves
// (each output one fixed-order dot product, linear_gemv_rows, so results do not depend on the
// thread count), and meet at 5 spin barriers per block (SpinBarrier below: the threads of one
// team spin briefly, then yield), so the cost between GEMVs is ~1 us.
//
// Per block, thread t of T (x is the residual stream, u_t thread t's private copy of the
// normalised input, computed redundantly by every thread: cheaper than a barrier):
//   A  u_t = RMSNorm(x)                                              (no barrier needed)
//   B  rows of q, k, v, o, i, f = W u_t + b, split over the 2QK+2VD+2NH rows     | barrier
//   C  heads (b, h) split: gates capped, mLSTM step on the state (in place when the caller's
//      state is not shared), per-head norm, p = sigmoid(o) * norm(h)             | barrier
//   D  rows of x += W_out p + b_out                                              | barrier
//   E  u_t = RMSNorm(x); rows of a = W_gate u_t, c = W_up u_t, a = SiLU(a) c     | barrier
//   F  rows of x += W_down a + b_down                                            | barrier
// then the out norm and the head's rows, soft-capped by the thread that wrote them.
//
// The mLSTM step is mlstm_step.cpp's (spec §2.1) with float products instead of double: the
// state update is elementwise, so the difference is ~1e-7 relative (tests compare it with the
// chunkwise forward).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "cpu/activations.h"
#include "cpu/embedding.h"
#include "cpu/layernorm.h"
#include "cpu/linear.h"
#include "cpu/rmsnorm.h"
#include "models/xlstm_large.h"
#include "models/xlstm_large_impl.h"

namespace xlstm {

using namespace xlstm_large_detail;

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Barrier for the n threads of one OpenMP team: spins (pause) for up to kSpin, then yields, so
// an oversubscribed machine still makes progress. The last thread to arrive resets the count
// before it publishes the new generation.
class SpinBarrier {
 public:
  static constexpr std::chrono::microseconds kSpin{200};
  void set_threads(int n) { n_.store(n, std::memory_order_relaxed); }
  void wait() {
    const int n = n_.load(std::memory_order_relaxed);
    if (n == 1) return;
    const unsigned g = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.store(g + 1, std::memory_order_release);
      return;
    }
    bool spin = true;
    const auto t0 = std::chrono::steady_clock::now();
    for (unsigned spins = 1; gen_.load(std::memory_order_acquire) == g; ++spins) {
      if (!spin) {
        std::this_thread::yield();
      } else {
        cpu_relax();
        if (spins % 256 == 0) spin = std::chrono::steady_clock::now() - t0 < kSpin;
      }
    }
  }

 private:
  alignas(64) std::atomic<int> count_{0};
  alignas(64) std::atomic<unsigned> gen_{0};
  std::atomic<int> n_{1};
};

// Rows [r0, r1) of a job of `total` rows for thread t of T: contiguous, in multiples of 16
// (whole cache lines of the output), the last thread taking the remainder.
inline void split_rows(int64_t total, int t, int T, int64_t& r0, int64_t& r1) {
  const int64_t blocks = (total + 15) / 16, per = (blocks + T - 1) / T;
  r0 = std::min(total, (int64_t)t * per * 16);
  r1 = std::min(total, r0 + per * 16);
}

// y (B, D) = RMSNorm(x (B, D)) * w (+ bias), B <= kLinearGemvRows, on the calling thread (the
// forward's rmsnorm_forward and bias add; its parallel loop stays on one thread for B * D this
// small, and inside this region anyway).
void rms_rows(int64_t B, int64_t D, const float* x, const Tensor& w, const Tensor& bias,
              double eps, float* y) {
  float rstd[kLinearGemvRows];
  rmsnorm_forward<float>(B, D, x, ptr<float>(w), eps, y, rstd);
  if (const float* bb = ptr<float>(bias))
    for (int64_t n = 0; n < B; ++n)
      for (int64_t d = 0; d < D; ++d) y[n * D + d] += bb[d];
}

// Rows [r0, r1) of the concatenation of `n` matrices that all read x (B, I).
struct Seg {
  const Tensor* W;
  const float* b;
  float* y;  // (B, O)
  int64_t O;
};
void gemv_segments(int64_t B, int64_t I, const float* x, const Seg* segs, int n, int64_t r0,
                   int64_t r1) {
  int64_t off = 0;
  for (int s = 0; s < n; ++s) {
    const Seg& g = segs[s];
    const int64_t lo = std::max(r0, off), hi = std::min(r1, off + g.O);
    if (lo < hi)
      linear_gemv_rows(B, I, lo - off, hi - off, x, g.W->raw(), g.W->dtype(), g.b, g.y, g.O);
    off += g.O;
  }
}

// One mLSTM step of one head (mlstm_step.cpp's step_forward with float products):
//   m = max(logsigmoid(f) + m_prev, i), C' = fa C + ia k~ v^T, n' = fa n + ia k~,
//   h = (q~ C') / (max(|q~ . n'|, e^-m) + eps).
// C, n may alias Cn, nn. num: (DV) scratch. Returns m.
double head_step(int64_t DQK, int64_t DV, double sq, double sk, double eps, const float* q,
                 const float* k, const float* v, double ig, double f, const float* C,
                 const float* n, double mp, float* Cn, float* nn, float* h, float* num) {
  const double lf = logsigmoid<double>(f);
  const double mt = std::max(lf + mp, ig);
  const float fa = (float)std::exp((lf + mp) - mt), ia = (float)std::exp(ig - mt);
  std::fill(num, num + DV, 0.f);
  double den = 0;
  for (int64_t x = 0; x < DQK; ++x) {
    const float ik = ia * (float)(sk * (double)k[x]), qs = (float)(sq * (double)q[x]);
    const float* crow = C + x * DV;
    float* cnrow = Cn + x * DV;
#pragma omp simd
    for (int64_t y = 0; y < DV; ++y) {
      const float c = fa * crow[y] + ik * v[y];
      cnrow[y] = c;
      num[y] += qs * c;
    }
    const float nx = fa * n[x] + ik;
    nn[x] = nx;
    den += (double)qs * (double)nx;
  }
  const double inv = 1.0 / (std::max(std::fabs(den), std::exp(-mt)) + eps);
  for (int64_t y = 0; y < DV; ++y) h[y] = (float)((double)num[y] * inv);
  return mt;
}

}  // namespace

template <>
Tensor XLSTMLarge<float>::decode_step(const Tensor& ids, const XLSTMLargeState* state_in,
                                      XLSTMLargeState* state_out) {
  const int64_t B = ids.dim(0), H = cfg_.embedding_dim, V = cfg_.vocab_size,
                L = cfg_.num_blocks, NH = cfg_.num_heads, QK = cfg_.qk_dim(), VD = cfg_.v_dim(),
                U = cfg_.ffn_dim(), DQK = cfg_.dhqk(), DV = cfg_.dhv();
  XLSTM_ASSERT(ids.dim(1) == 1 && B >= 1 && B <= kLinearGemvRows);
  const int T = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (!decode_) decode_ = std::make_unique<Decode>();
  Decode& d = *decode_;
  if (d.B != B || d.threads != T) {
    d = Decode();
    d.B = B;
    d.threads = T;
    auto buf = [](int64_t n) { return Tensor::empty({n}, DType::F32); };
    d.x = buf(B * H);
    d.u = buf(T * B * H);
    d.q = buf(B * QK);
    d.k = buf(B * QK);
    d.v = buf(B * VD);
    d.o = buf(B * VD);
    d.ig = buf(B * NH);
    d.fg = buf(B * NH);
    d.p = buf(B * VD);
    d.a = buf(B * U);
    d.c = buf(B * U);
    d.num = buf(T * DV);
  }
  // Two logits buffers taken in turn; one the caller still holds is not reused.
  Tensor* out = nullptr;
  for (Tensor& lg : d.logits)
    if (lg.defined() && lg.use_count() == 1 && lg.dim(0) == B) out = &lg;
  if (!out) {
    out = &d.logits[d.next_logits];
    d.next_logits ^= 1;
    *out = Tensor::empty({B, 1, V}, DType::F32);
  }
  embedding_forward_mixed(B, V, H, ids.data<int64_t>(), w_emb_.raw(), w_emb_.dtype(),
                          d.x.data<float>());

  // Where each block's state comes from and goes to. In place when the caller passes the same
  // state in and out and holds no other reference to its tensors; new tensors otherwise.
  const bool has_in = state_in && !state_in->blocks.empty();
  XLSTM_CHECK(!has_in || (int64_t)state_in->blocks.size() == L, ValueError, "[xlstm_large] state has ",
              state_in ? state_in->blocks.size() : 0, " blocks, the model has ", L);
  const Shape sc{B, NH, DQK, DV}, sn{B, NH, DQK}, sm{B, NH};
  struct Io {
    const float *c, *n, *m;
    float *co, *no, *mo;
  };
  std::vector<Io> io((size_t)L);
  std::vector<MlstmState> fresh((size_t)L);
  const bool in_place = has_in && state_out == state_in;
  if (!state_out && (int64_t)d.state.size() != L) d.state.assign((size_t)L, MlstmState());
  for (int64_t l = 0; l < L; ++l) {
    Io& e = io[(size_t)l];
    e.c = e.n = e.m = nullptr;
    const MlstmState* si = has_in && state_in->blocks[(size_t)l].c.defined()
                               ? &state_in->blocks[(size_t)l] : nullptr;
    if (si) {
      XLSTM_CHECK(si->c.shape() == sc && si->n.shape() == sn && si->m.shape() == sm &&
                      si->c.dtype() == DType::F32 && si->n.dtype() == DType::F32 &&
                      si->m.dtype() == DType::F32,
                  ValueError, "[xlstm_large] state of block ", l, " must be C ", shape_str(sc),
                  ", n ", shape_str(sn), ", m ", shape_str(sm), " float32, got C ",
                  shape_str(si->c.shape()), ", n ", shape_str(si->n.shape()), ", m ",
                  shape_str(si->m.shape()));
      e.c = si->c.data<float>();
      e.n = si->n.data<float>();
      e.m = si->m.data<float>();
    }
    MlstmState* target;
    if (in_place && si && si->c.use_count() == 1 && si->n.use_count() == 1 &&
        si->m.use_count() == 1) {
      target = const_cast<MlstmState*>(si);
    } else if (state_out) {
      target = &fresh[(size_t)l];
      target->c = Tensor::empty(sc, DType::F32);
      target->n = Tensor::empty(sn, DType::F32);
      target->m = Tensor::empty(sm, DType::F32);
    } else {  // nobody keeps the state: a reused scratch
      target = &d.state[(size_t)l];
      if (!target->c.defined()) {
        target->c = Tensor::empty(sc, DType::F32);
        target->n = Tensor::empty(sn, DType::F32);
        target->m = Tensor::empty(sm, DType::F32);
      }
    }
    e.co = target->c.data<float>();
    e.no = target->n.data<float>();
    e.mo = target->m.data<float>();
  }

  const double eps = cfg_.norm_eps, gcap = cfg_.gate_soft_cap;
  const double sq = 1.0 / std::sqrt((double)DQK), sk = 1.0;  // ScaleOn::Q (xLSTM-Large)
  float* x = d.x.data<float>();
  float* logits = out->data<float>();
  const Tensor& head = w_head_.defined() ? w_head_ : w_emb_;
  SpinBarrier bar;
  // Nothing in the region throws (inputs and state were checked above).
#pragma omp parallel num_threads(T)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();  // T <= the buffers' count
    bar.set_threads(T);
    float* u = d.u.data<float>() + (int64_t)t * B * H;
    float* num = d.num.data<float>() + (int64_t)t * DV;
    int64_t r0, r1;
    for (int64_t l = 0; l < L; ++l) {
      Block& bl = *blocks_[(size_t)l];
      const Io& e = io[(size_t)l];
      // A, B
      rms_rows(B, H, x, bl.w[kNormM], bl.w[kNormMB], eps, u);
      const Seg qkv[6] = {{&bl.w[kQ], ptr<float>(bl.w[kQB]), d.q.data<float>(), QK},
                          {&bl.w[kK], ptr<float>(bl.w[kKB]), d.k.data<float>(), QK},
                          {&bl.w[kV], ptr<float>(bl.w[kVB]), d.v.data<float>(), VD},
                          {&bl.w[kO], ptr<float>(bl.w[kOB]), d.o.data<float>(), VD},
                          {&bl.w[kI], ptr<float>(bl.w[kIB]), d.ig.data<float>(), NH},
                          {&bl.w[kF], ptr<float>(bl.w[kFB]), d.fg.data<float>(), NH}};
      split_rows(2 * QK + 2 * VD + 2 * NH, t, T, r0, r1);
      gemv_segments(B, H, u, qkv, 6, r0, r1);
      bar.wait();
      // C
      const float* mhw = ptr<float>(bl.w[kMH]);
      const float* mhb = ptr<float>(bl.w[kMHB]);
      for (int64_t j = t; j < B * NH; j += T) {
        const int64_t b = j / NH, hh = j % NH;
        float gi = d.ig.data<float>()[j], gf = d.fg.data<float>()[j];
        soft_cap<float>(1, &gi, gcap);
        soft_cap<float>(1, &gf, gcap);
        const int64_t cs = DQK * DV;
        const double mp = e.m ? (double)e.m[j] : 0.0;
        float* h = d.p.data<float>() + b * VD + hh * DV;  // h, then p in place
        // A zero state is written first and then stepped in place.
        const float* cin = e.c ? e.c + j * cs : e.co + j * cs;
        const float* nin = e.c ? e.n + j * DQK : e.no + j * DQK;
        if (!e.c) {
          std::fill(e.co + j * cs, e.co + (j + 1) * cs, 0.f);
          std::fill(e.no + j * DQK, e.no + (j + 1) * DQK, 0.f);
        }
        e.mo[j] = (float)head_step(DQK, DV, sq, sk, cfg_.eps, d.q.data<float>() + b * QK + hh * DQK,
                                   d.k.data<float>() + b * QK + hh * DQK,
                                   d.v.data<float>() + b * VD + hh * DV, gi, gf, cin, nin, mp,
                                   e.co + j * cs, e.no + j * DQK, h, num);
        // per-head LayerNorm in place (one row of multihead_norm_forward), output gate
        float mean, rstd;
        layernorm_forward<float>(1, DV, h, mhw ? mhw + hh * DV : nullptr,
                                 mhb ? mhb + hh * DV : nullptr, eps, NormScale::Plain, h, &mean,
                                 &rstd);
        const float* og = d.o.data<float>() + b * VD + hh * DV;
        for (int64_t y = 0; y < DV; ++y) h[y] *= sigmoid<float>(og[y]);
      }
      bar.wait();
      // D
      split_rows(H, t, T, r0, r1);
      linear_gemv_rows(B, VD, r0, r1, d.p.data<float>(), bl.w[kOut].raw(), bl.w[kOut].dtype(),
                       ptr<float>(bl.w[kOutB]), x, H, true);
      bar.wait();
      // E
      rms_rows(B, H, x, bl.w[kNormF], bl.w[kNormFB], eps, u);
      split_rows(U, t, T, r0, r1);
      float* a = d.a.data<float>();
      float* c = d.c.data<float>();
      linear_gemv_rows(B, H, r0, r1, u, bl.w[kGate].raw(), bl.w[kGate].dtype(),
                       ptr<float>(bl.w[kGateB]), a, U);
      linear_gemv_rows(B, H, r0, r1, u, bl.w[kUp].raw(), bl.w[kUp].dtype(),
                       ptr<float>(bl.w[kUpB]), c, U);
      for (int64_t b = 0; b < B && r0 < r1; ++b) {
        float* ar = a + b * U + r0;
        act_forward<float>(Act::SiLU, r1 - r0, ar, ar);
        const float* cr = c + b * U + r0;
        for (int64_t j = 0; j < r1 - r0; ++j) ar[j] *= cr[j];
      }
      bar.wait();
      // F
      split_rows(H, t, T, r0, r1);
      linear_gemv_rows(B, U, r0, r1, a, bl.w[kDown].raw(), bl.w[kDown].dtype(),
                       ptr<float>(bl.w[kDownB]), x, H, true);
      bar.wait();
    }
    const float* hin = x;
    if (w_out_.defined()) {
      rms_rows(B, H, x, w_out_, Tensor(), eps, u);
      hin = u;
    }
    split_rows(V, t, T, r0, r1);
    if (r0 < r1) {
      linear_gemv_rows(B, H, r0, r1, hin, head.raw(), head.dtype(), nullptr, logits, V);
      for (int64_t b = 0; b < B; ++b)
        soft_cap<float>(r1 - r0, logits + b * V + r0, cfg_.output_logit_soft_cap);
    }
  }
  if (state_out) {
    if (!in_place) state_out->blocks.assign((size_t)L, MlstmState());
    for (int64_t l = 0; l < L; ++l)
      if (fresh[(size_t)l].c.defined()) state_out->blocks[(size_t)l] = std::move(fresh[(size_t)l]);
  }
  return *out;
}

}  // namespace xlstm
