#include "cpu/lstm.h"

#include <sys/mman.h>

#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "cpu/gemm.h"
#include "cpu/parallel.h"
#include "cpu/simd.h"
#include "cpu/packed_gemm.h"
#include "xlstm/error.h"
#include "xlstm/tensor.h"

namespace xlstm {

namespace detail {

void* lstm_alloc(size_t bytes) {
  // Fresh pages cost ~12 µs per 4 KiB here (CPU-NOTES.md): big buffers get huge pages, and all
  // are touched once now rather than inside a timed step.
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t align = bytes >= kHuge ? kHuge : 64;
  const size_t sz = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
  void* p = std::aligned_alloc(align, sz);
  if (!p) throw std::bad_alloc();
  if (bytes >= kHuge) madvise(p, sz, MADV_HUGEPAGE);
  std::memset(p, 0, sz);
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

// ---- activations -------------------------------------------------------------------------
// Branch-free float forms that GCC vectorises (libm calls would keep the pointwise pass scalar
// and cost more than the recurrent GEMM at H = 512). NaN propagates.

inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// exp(x), Cephes polynomial after range reduction x = n ln2 + r; ~1 ulp on [-87, 88].
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + kMagic;
  const float n = t - kMagic;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  const float e = p * r * r + r + 1.0f;
  const uint32_t k = (f32_bits(t) - 0x4B400000u + 127u) << 23;  // 2^n
  return e * f32_from_bits(k);
}
inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }
// tanh: (1 - e^{-2|x|}) / (1 + e^{-2|x|}) with the sign, and an odd Taylor series near 0 where
// that form cancels.
inline float fast_tanh(float x) {
  const float a = std::fabs(x);
  const float e = fast_exp(-2.0f * a);
  const float t = std::copysign((1.0f - e) / (1.0f + e), x);
  const float x2 = x * x;
  const float s =
      x * (1.0f +
           x2 * (-0.333333333f + x2 * (0.133333333f + x2 * (-0.0539682540f + x2 * 0.0218694885f))));
  return a < 0.15f ? s : t;
}

template <class T>
struct Act;
template <>
struct Act<float> {
  static float sig(float x) { return fast_sigmoid(x); }
  static float tanh(float x) { return fast_tanh(x); }
};
template <>
struct Act<double> {
  static double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }
  static double tanh(double x) { return std::tanh(x); }
};

// ---- pointwise passes ----------------------------------------------------------------------

constexpr int64_t kColBlock = 16;       // columns per work item (one AVX-512 float vector)
constexpr int64_t kParallelMin = 8192;  // B*H below which a pass stays on one thread

// One step forward. g: (B, 4H) input projections (x W_ih^T) read, overwritten with the
// activations [i, f, g, o]. gh: (B, 4H) recurrent part (h_prev W_hh^T) read (ignored unless
// kRec). bias: (4H) read (ignored unless kBias). cprev: (B, H) read. c: (B, H) written (may
// alias cprev). h: (B, H) row stride ldh, written.
template <class T, bool kRec, bool kBias>
void pointwise_forward(int64_t B, int64_t H, T* g, const T* gh, const T* bias, const T* cprev, T* c,
                       T* h, int64_t ldh) {
  const int64_t G = 4 * H, nblk = (H + kColBlock - 1) / kColBlock;
  parallel_for(B * nblk, B * H >= kParallelMin, [&](int64_t bj) {
    const int64_t b = bj / nblk, jb = bj % nblk;
    const int64_t j0 = jb * kColBlock, j1 = std::min(H, j0 + kColBlock);
    T* gi = g + b * G;
    T* gf = gi + H;
    T* gg = gi + 2 * H;
    T* go = gi + 3 * H;
    const T* ri = kRec ? gh + b * G : nullptr;
    const T* cp = cprev + b * H;
    T* cr = c + b * H;
    T* hr = h + b * ldh;
#pragma omp simd
    for (int64_t j = j0; j < j1; ++j) {
      T pi = gi[j], pf = gf[j], pg = gg[j], po = go[j];
      if (kRec) pi += ri[j], pf += ri[H + j], pg += ri[2 * H + j], po += ri[3 * H + j];
      if (kBias) pi += bias[j], pf += bias[H + j], pg += bias[2 * H + j], po += bias[3 * H + j];
      const T ai = Act<T>::sig(pi), af = Act<T>::sig(pf), ag = Act<T>::tanh(pg),
              ao = Act<T>::sig(po);
      const T cn = af * cp[j] + ai * ag;
      gi[j] = ai, gf[j] = af, gg[j] = ag, go[j] = ao;
      cr[j] = cn;
      hr[j] = ao * Act<T>::tanh(cn);
    }
  });
}

// One step backward. act: (B, 4H) activations read. c, cprev: (B, H) read. dy: (B, H) row
// stride lddy, read. dh_rec: (B, H) read (dh from the later step). dc: (B, H) read (dc from the
// later step) and overwritten with dc for the earlier step. dg: (B, 4H) written.
// dbias: (4H) accumulated, in the order b = 0..B-1 for each column whatever the thread count.
template <class T>
void pointwise_backward(int64_t B, int64_t H, const T* act, const T* c, const T* cprev, const T* dy,
                        int64_t lddy, const T* dh_rec, T* dc, T* dg, T* dbias) {
  const int64_t G = 4 * H, nblk = (H + kColBlock - 1) / kColBlock;
  parallel_for(nblk, B * H >= kParallelMin, [&](int64_t jb) {
    const int64_t j0 = jb * kColBlock, j1 = std::min(H, j0 + kColBlock);
    for (int64_t b = 0; b < B; ++b) {
      const T* ai = act + b * G;
      const T* cr = c + b * H;
      const T* cp = cprev + b * H;
      const T* dyr = dy + b * lddy;
      const T* dhr = dh_rec + b * H;
      T* dcr = dc + b * H;
      T* dgr = dg + b * G;
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        const T ig = ai[j], fg = ai[H + j], gg = ai[2 * H + j], og = ai[3 * H + j];
        const T tc = Act<T>::tanh(cr[j]);
        const T dh = dyr[j] + dhr[j];
        const T dct = dcr[j] + dh * og * (T(1) - tc * tc);
        const T di = dct * gg * ig * (T(1) - ig);
        const T df = dct * cp[j] * fg * (T(1) - fg);
        const T dgg = dct * ig * (T(1) - gg * gg);
        const T dgo = dh * tc * og * (T(1) - og);
        dcr[j] = dct * fg;
        dgr[j] = di, dgr[H + j] = df, dgr[2 * H + j] = dgg, dgr[3 * H + j] = dgo;
        dbias[j] += di, dbias[H + j] += df, dbias[2 * H + j] += dgg, dbias[3 * H + j] += dgo;
      }
    }
  });
}

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

template <class T>
void copy_rows(int64_t B, int64_t H, const T* src, int64_t lds, T* dst, int64_t ldd) {
  for (int64_t b = 0; b < B; ++b) std::memcpy(dst + b * ldd, src + b * lds, (size_t)H * sizeof(T));
}

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
    pointwise_forward<T, true, true>(B, H, gt, gh, bias, cprev, ct, yt, a.ldy);
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
      pointwise_backward(B, H, gates + t * B * G, cs + t * B * H, cprev, dyt, lddy, dh, dc, dgt, db);
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

namespace {

// Small-batch decode: the step is a pass over the weights (memory-bound), so each hidden unit j
// reads its four gate rows of W_ih and W_hh once, dots them with every batch row (four
// independent accumulators keep the FMA pipes busy), and applies the pointwise step at once:
// one parallel pass, no gates round trip, no library call overhead. hnew: (B, H) scratch (h
// is read by every j, so the new h lands there first).
constexpr int64_t kDecodeMaxB = 4;

// Weights as stored: T itself, or bf16 (uint16_t, the top half of a float) widened exactly.
template <class T>
inline T wval(T w) {
  return w;
}
inline float wval(uint16_t w) {
  const uint32_t u = (uint32_t)w << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

template <class T, class W>
inline void dot4(int64_t n, const T* v, const W* w0, const W* w1, const W* w2, const W* w3, T& s0,
                 T& s1, T& s2, T& s3) {
  T a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
  for (int64_t k = 0; k < n; ++k) {
    const T vk = v[k];
    a0 += wval(w0[k]) * vk, a1 += wval(w1[k]) * vk, a2 += wval(w2[k]) * vk, a3 += wval(w3[k]) * vk;
  }
  s0 += a0, s1 += a1, s2 += a2, s3 += a3;
}

#if defined(__AVX512F__)
// Float weights: 32 columns per iteration in two independent sets of four chains (8 FMA chains
// cover the FMA latency), and each row's stream prefetched 2 KiB ahead: the rows of unit j + 1
// follow those of unit j, so the prefetch runs on into the next unit's rows.
inline void dot4(int64_t n, const float* v, const float* w0, const float* w1, const float* w2,
                 const float* w3, float& s0, float& s1, float& s2, float& s3) {
  constexpr int64_t kAhead = 512;  // floats
  const float* w[4] = {w0, w1, w2, w3};
  __m512 a[2][4];
  for (int u = 0; u < 2; ++u)
    for (int g = 0; g < 4; ++g) a[u][g] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= n; k += 32)
    for (int u = 0; u < 2; ++u) {
      const __m512 x = _mm512_loadu_ps(v + k + 16 * u);
      for (int g = 0; g < 4; ++g) {
        _mm_prefetch((const char*)(w[g] + k + 16 * u + kAhead), _MM_HINT_T0);
        a[u][g] = _mm512_fmadd_ps(_mm512_loadu_ps(w[g] + k + 16 * u), x, a[u][g]);
      }
    }
  for (; k < n; k += 16) {
    const __mmask16 m = n - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - k)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(m, v + k);
    for (int g = 0; g < 4; ++g)
      a[0][g] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w[g] + k), x, a[0][g]);
  }
  s0 += hsum16(_mm512_add_ps(a[0][0], a[1][0])), s1 += hsum16(_mm512_add_ps(a[0][1], a[1][1]));
  s2 += hsum16(_mm512_add_ps(a[0][2], a[1][2])), s3 += hsum16(_mm512_add_ps(a[0][3], a[1][3]));
}
#endif

template <class T, class W>
void step_fused(int64_t B, int64_t I, int64_t H, const T* x, int64_t ldx, const W* W_ih,
                const W* W_hh, const T* b_ih, const T* b_hh, T* h, int64_t ldh, T* c, T* hnew) {
  parallel_for(H, H * (I + H) >= (1 << 16), [&](int64_t j) {
    const int64_t r[4] = {j, H + j, 2 * H + j, 3 * H + j};
    for (int64_t b = 0; b < B; ++b) {
      T p[4];
      for (int g = 0; g < 4; ++g) p[g] = (b_ih ? b_ih[r[g]] : T(0)) + (b_hh ? b_hh[r[g]] : T(0));
      dot4(I, x + b * ldx, W_ih + r[0] * I, W_ih + r[1] * I, W_ih + r[2] * I, W_ih + r[3] * I, p[0],
           p[1], p[2], p[3]);
      dot4(H, h + b * ldh, W_hh + r[0] * H, W_hh + r[1] * H, W_hh + r[2] * H, W_hh + r[3] * H, p[0],
           p[1], p[2], p[3]);
      const T ai = Act<T>::sig(p[0]), af = Act<T>::sig(p[1]), ag = Act<T>::tanh(p[2]),
              ao = Act<T>::sig(p[3]);
      const T cn = af * c[b * H + j] + ai * ag;
      c[b * H + j] = cn;
      hnew[b * H + j] = ao * Act<T>::tanh(cn);
    }
  });
  copy_rows(B, H, hnew, H, h, ldh);
}

}  // namespace

template <class T>
void lstm_step(int64_t B, int64_t I, int64_t H, const T* x, int64_t ldx, const T* W_ih,
               const T* W_hh, const T* b_ih, const T* b_hh, T* h, int64_t ldh, T* c, T* gates) {
  if (B <= kDecodeMaxB)
    return step_fused(B, I, H, x, ldx, W_ih, W_hh, b_ih, b_hh, h, ldh, c, gates);
  const int64_t G = 4 * H;
  const bool has_bias = b_ih || b_hh;
  if (has_bias)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < G; ++j)
        gates[b * G + j] = (b_ih ? b_ih[j] : T(0)) + (b_hh ? b_hh[j] : T(0));
  gemm<T>(Trans::N, Trans::T, B, G, I, T(1), x, ldx, W_ih, I, has_bias ? T(1) : T(0), gates, G);
  gemm<T>(Trans::N, Trans::T, B, G, H, T(1), h, ldh, W_hh, H, T(1), gates, G);
  pointwise_forward<T, false, false>(B, H, gates, nullptr, nullptr, c, c, h, ldh);
}

// ---- bf16 decode step --------------------------------------------------------------------------
//
// The packed layout (lstm_step_bf16_pack): unit j's block holds its four gate rows of W_ih, then
// of W_hh, 32 columns at a time ([i 0..31][f 0..31][g 0..31][o 0..31][i 32..63]...), columns
// zero-padded to a multiple of 32. With a static split of the units a thread reads one
// contiguous stream, prefetched 8 KiB ahead; the row-major matrices made each unit read eight
// 2 KiB runs in two alternating groups, which kept the read stream ~30% below the bandwidth this
// step needs (docs/perf.md).

namespace {

constexpr int64_t kStepChunk = 32;  // bf16 columns per gate row in a chunk (one 64-byte line)

inline int64_t pad_chunk(int64_t n) { return (n + kStepChunk - 1) / kStepChunk * kStepChunk; }

}  // namespace

int64_t lstm_step_bf16_packed_size(int64_t I, int64_t H) {
  return 4 * H * (pad_chunk(I) + pad_chunk(H));
}

void lstm_step_bf16_pack(int64_t I, int64_t H, const float* W_ih, const float* W_hh,
                         uint16_t* out) {
  const int64_t Ip = pad_chunk(I), Hp = pad_chunk(H);
  parallel_for(H, H * (I + H) >= (1 << 16), [&](int64_t j) {
    uint16_t* o = out + j * 4 * (Ip + Hp);
    for (int part = 0; part < 2; ++part) {
      const int64_t K = part ? H : I, Kp = part ? Hp : Ip;
      const float* W = part ? W_hh : W_ih;
      for (int64_t q = 0; q < Kp; q += kStepChunk)
        for (int64_t g = 0; g < 4; ++g, o += kStepChunk)
          for (int64_t e = 0; e < kStepChunk; ++e)
            o[e] = q + e < K ? f32_to_bf16(W[(g * H + j) * K + q + e]) : uint16_t{0};
    }
  });
}

namespace {

#if defined(__AVX512BF16__)
// v (n) -> hi, lo (n) bf16 with hi + lo = v to ~2^-17 relative (hi = RNE(v), lo = RNE(v - hi);
// v - hi is exact in float). vcvtneps2bf16 reads denormal inputs as zero: a lo below 1e-38 is
// dropped, far below the 2^-17. (GCC 12's intrinsics headers warn about their own
// placeholder operand inside this function: silenced here.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
void split_bf16(int64_t n, const float* v, uint16_t* hi, uint16_t* lo) {
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m512 x = _mm512_loadu_ps(v + k);
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(x);
    const __m512 hf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    _mm256_storeu_si256((__m256i*)(hi + k), h);
    _mm256_storeu_si256((__m256i*)(lo + k), (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(x, hf)));
  }
  for (; k < n; ++k) {
    hi[k] = f32_to_bf16(v[k]);
    lo[k] = f32_to_bf16(v[k] - bf16_to_f32(hi[k]));
  }
}
#pragma GCC diagnostic pop

constexpr int64_t kStepPrefetch = 32 * 4 * kStepChunk;  // bf16 elements ahead: 32 chunks, 8 KiB

// p[r][g] += sum_k w_g[k] (vh[r][k] + vl[r][k]) over n columns (a multiple of 32) of a packed
// block w (chunks of 4 gate rows x 32), for NB activation rows. vdpbf16ps multiplies pairs of
// bf16 exactly and adds them in float; hi and lo products go to separate accumulators and U
// chunks are in flight at once, so that U * NB * 8 >= 16 independent chains cover the
// instruction's latency (6 cycles, 2 per cycle).
template <int NB, int U>
inline void unit_dot(int64_t n, const uint16_t* w, const uint16_t* const* vh,
                     const uint16_t* const* vl, float (*p)[4]) {
  __m512 a[U][NB][4], c[U][NB][4];
  for (int u = 0; u < U; ++u)
    for (int r = 0; r < NB; ++r)
      for (int g = 0; g < 4; ++g) a[u][r][g] = c[u][r][g] = _mm512_setzero_ps();
  const auto chunk = [&](int u, int64_t k, const uint16_t* wk) __attribute__((always_inline)) {
    for (int g = 0; g < 4; ++g)
      _mm_prefetch((const char*)(wk + kStepPrefetch + g * kStepChunk), _MM_HINT_T0);
    __m512bh xh[NB], xl[NB];
    for (int r = 0; r < NB; ++r) {
      xh[r] = (__m512bh)_mm512_loadu_si512(vh[r] + k);
      xl[r] = (__m512bh)_mm512_loadu_si512(vl[r] + k);
    }
    for (int g = 0; g < 4; ++g) {
      const __m512bh b = (__m512bh)_mm512_loadu_si512(wk + g * kStepChunk);
      for (int r = 0; r < NB; ++r) {
        a[u][r][g] = _mm512_dpbf16_ps(a[u][r][g], b, xh[r]);
        c[u][r][g] = _mm512_dpbf16_ps(c[u][r][g], b, xl[r]);
      }
    }
  };
  int64_t k = 0;
  for (; k + U * kStepChunk <= n; k += U * kStepChunk, w += U * 4 * kStepChunk)
    for (int u = 0; u < U; ++u) chunk(u, k + u * kStepChunk, w + u * 4 * kStepChunk);
  for (; k < n; k += kStepChunk, w += 4 * kStepChunk) chunk(0, k, w);
  for (int r = 0; r < NB; ++r)
    for (int g = 0; g < 4; ++g) {
      __m512 s = _mm512_add_ps(a[0][r][g], c[0][r][g]);
      for (int u = 1; u < U; ++u) s = _mm512_add_ps(s, _mm512_add_ps(a[u][r][g], c[u][r][g]));
      p[r][g] += hsum16(s);
    }
}
#else
// Without AVX512_BF16: the weights widened exactly, products and sums in float. v: n floats
// (zero-padded to the chunk).
inline void unit_dot_widen(int64_t n, const uint16_t* w, const float* v, float* p) {
  for (int64_t k = 0; k < n; k += kStepChunk, w += 4 * kStepChunk)
    for (int g = 0; g < 4; ++g) {
      float s = 0;
      const uint16_t* wg = w + g * kStepChunk;
#pragma omp simd reduction(+ : s)
      for (int64_t e = 0; e < kStepChunk; ++e) s += wval(wg[e]) * v[k + e];
      p[g] += s;
    }
}
#endif

}  // namespace

void lstm_step_bf16(int64_t B, int64_t I, int64_t H, const float* x, int64_t ldx,
                    const uint16_t* Wp, const float* b_ih, const float* b_hh, float* h,
                    int64_t ldh, float* c, float* hnew) {
  XLSTM_CHECK(B >= 1 && B <= kDecodeMaxB, ValueError, "[lstm_step_bf16] B must be in [1, ",
              kDecodeMaxB, "], got ", B);
  const int64_t Ip = pad_chunk(I), Hp = pad_chunk(H), K = Ip + Hp;
  // Per batch row, the activations [x | h] zero-padded to [Ip | Hp]: with AVX512_BF16 as two
  // bf16 halves (hi rows, then lo rows), so that the products keep ~16 bits of them (error
  // ~1e-5 relative, far below the bf16 rounding of the weights); else as floats.
#if defined(__AVX512BF16__)
  thread_local std::vector<uint16_t> act;
  act.assign((size_t)(2 * B * K), 0);
  for (int64_t b = 0; b < B; ++b) {
    uint16_t* hi = act.data() + b * K;
    uint16_t* lo = hi + B * K;
    split_bf16(I, x + b * ldx, hi, lo);
    split_bf16(H, h + b * ldh, hi + Ip, lo + Ip);
  }
#else
  thread_local std::vector<float> act;
  act.assign((size_t)(B * K), 0.f);
  for (int64_t b = 0; b < B; ++b) {
    std::copy(x + b * ldx, x + b * ldx + I, act.data() + b * K);
    std::copy(h + b * ldh, h + b * ldh + H, act.data() + b * K + Ip);
  }
#endif
  const auto* av = act.data();
  // Units in blocks of 16: the dot products of a block land in pre, whose pointwise step then
  // runs as one vector pass (scalar, it cost ~10% of a step).
  constexpr int64_t kUnits = 16;
  const int64_t nblk = (H + kUnits - 1) / kUnits;
  parallel_for(nblk, H * (I + H) >= (1 << 16), [&](int64_t blk) {
    const int64_t j0 = blk * kUnits, nu = std::min(kUnits, H - j0);
    alignas(64) float pre[kDecodeMaxB][4][kUnits];
    for (int64_t u = 0; u < nu; ++u) {
      const int64_t j = j0 + u;
      const uint16_t* w = Wp + j * 4 * K;
      float p[kDecodeMaxB][4];
      for (int64_t b = 0; b < B; ++b)
        for (int g = 0; g < 4; ++g)
          p[b][g] = (b_ih ? b_ih[g * H + j] : 0.f) + (b_hh ? b_hh[g * H + j] : 0.f);
#if defined(__AVX512BF16__)
      // Two batch rows per pass over the block (it stays in L1/L2 for the next pair).
      for (int64_t b = 0; b < B; b += 2) {
        const uint16_t* vh[2] = {av + b * K, av + (b + 1) * K};
        const uint16_t* vl[2] = {av + (B + b) * K, av + (B + b + 1) * K};
        if (b + 1 < B) unit_dot<2, 1>(K, w, vh, vl, p + b);
        else unit_dot<1, 2>(K, w, vh, vl, p + b);
      }
#else
      for (int64_t b = 0; b < B; ++b) unit_dot_widen(K, w, av + b * K, p[b]);
#endif
      for (int64_t b = 0; b < B; ++b)
        for (int g = 0; g < 4; ++g) pre[b][g][u] = p[b][g];
    }
    for (int64_t b = 0; b < B; ++b) {
      float* cb = c + b * H + j0;
      float* hb = hnew + b * H + j0;
#pragma omp simd
      for (int64_t u = 0; u < nu; ++u) {
        const float ai = Act<float>::sig(pre[b][0][u]), af = Act<float>::sig(pre[b][1][u]),
                    ag = Act<float>::tanh(pre[b][2][u]), ao = Act<float>::sig(pre[b][3][u]);
        const float cn = af * cb[u] + ai * ag;
        cb[u] = cn;
        hb[u] = ao * Act<float>::tanh(cn);
      }
    }
  });
  copy_rows(B, H, hnew, H, h, ldh);
}

template void lstm_forward<float>(const LstmDims&, LstmDirection, const LstmForwardArgs<float>&,
                                  LstmCache<float>&, LstmScratch<float>&);
template void lstm_forward<double>(const LstmDims&, LstmDirection, const LstmForwardArgs<double>&,
                                   LstmCache<double>&, LstmScratch<double>&);
template void lstm_backward<float>(const LstmDims&, LstmDirection, const LstmBackwardArgs<float>&,
                                   const LstmCache<float>&, LstmScratch<float>&);
template void lstm_backward<double>(const LstmDims&, LstmDirection, const LstmBackwardArgs<double>&,
                                    const LstmCache<double>&, LstmScratch<double>&);
template void lstm_step<float>(int64_t, int64_t, int64_t, const float*, int64_t, const float*,
                               const float*, const float*, const float*, float*, int64_t, float*,
                               float*);
template void lstm_step<double>(int64_t, int64_t, int64_t, const double*, int64_t, const double*,
                                const double*, const double*, const double*, double*, int64_t,
                                double*, double*);

}  // namespace xlstm
