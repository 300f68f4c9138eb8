#include "cpu/slstm.h"

#include "cpu/fastmath.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include <omp.h>

#include "cpu/gemm.h"
#include "cpu/gemm_tn.h"
#include "cpu/packed_gemm.h"
#include "cpu/parallel.h"
#include "xlstm/error.h"

namespace xlstm {

namespace {

// Autograd weights of the three ties, one byte per unit and step: bits 0-1 = 2 * (share of dm
// that goes to i_raw: max(i_raw, L) gives 1, 0, or 1/2 at a tie; the all-n-zero branch 1),
// bits 2-3 = 2 * (weight of d exp(i_raw - m) through min(., 1): 1 below 1, 1/2 at 1, 0 above),
// bits 4-5 = the same for f.
// (Built with float arithmetic so that the loop stays branch-free and vectorises.)
template <class T>
inline uint8_t tie_code(T si2, T wi2, T wf2) {
  return (uint8_t)(int32_t)(si2 + T(4) * wi2 + T(16) * wf2);
}

// Forward pointwise of one (t, b, h) row of n units: pre-activations ir, fr, zr, orw and m(t-1)
// in; gate values ig, fg, zt, og, sigmoid(-f_raw) sf, the tie code and m(t) out. The backward
// reads these instead of recomputing them.
template <class T>
inline void compute_gates(int64_t n, const T* ir, const T* fr, const T* zr, const T* orw,
                          const T* mprev, bool first, T* ig, T* fg, T* zt, T* og, T* sf,
                          uint8_t* code, T* mnew) {
  using M = PwMath<T>;
#pragma omp simd
  for (int64_t d = 0; d < n; ++d) {
    const T i = ir[d], f = fr[d];
    const T e = M::exp(-std::fabs(f));
    const T ls = std::min(f, T(0)) - M::log1p_unit(e);  // logsigmoid(f)
    const T rec = T(1) / (T(1) + e);
    sf[d] = f >= T(0) ? e * rec : rec;
    const T lm = mprev[d] + ls;
    const T mn = first ? i : (i < lm ? lm : i);
    const T si2 = first ? T(2) : (i > lm ? T(2) : (i < lm ? T(0) : T(1)));
    // One of exp(i - mn), exp(lm - mn) has argument exactly 0 (mn is one of them), so one exp.
    // The other is 1 + (its argument): exactly 1 for finite values, NaN where the argument is
    // inf - inf (as exp gives officially). min(., 1) lets NaN through, as torch.minimum does.
    const bool mi = mn == i;
    const T ex = M::exp(mi ? lm - mn : i - mn);
    const T ei = mi ? T(1) + (i - mn) : ex, ef = mi ? ex : T(1) + (lm - mn);
    ig[d] = ei > T(1) ? T(1) : ei;
    fg[d] = ef > T(1) ? T(1) : ef;
    code[d] = tie_code(si2, ei < T(1) ? T(2) : (ei == T(1) ? T(1) : T(0)),
                       ef < T(1) ? T(2) : (ef == T(1) ? T(1) : T(0)));
    mnew[d] = mn;
    zt[d] = M::tanh(zr[d]);
    og[d] = M::sigmoid(orw[d]);
  }
}

// The sequence tensors are read/written one (b, h) row of DH units per step, rows T steps apart:
// too far apart for the hardware prefetcher, so the next step's rows are prefetched by hand.
template <class T>
inline void prefetch_row(const T* p, int64_t n, bool write) {
  for (int64_t k = 0; k < n; k += 64 / (int64_t)sizeof(T)) {
    if (write) __builtin_prefetch(p + k, 1, 3);
    else __builtin_prefetch(p + k, 0, 3);
  }
}

template <class T>
bool all_zero(const T* v, int64_t n) {
  for (int64_t k = 0; k < n; ++k)
    if (v[k] != T(0)) return false;
  return true;
}

// Views into states_all (4, T+1, B, H).
template <class T>
struct StateView {
  T* base;
  int64_t slot, BH;  // slot = (T+1)*B*H
  T* y(int64_t t) const { return base + t * BH; }
  T* c(int64_t t) const { return base + slot + t * BH; }
  T* n(int64_t t) const { return base + 2 * slot + t * BH; }
  T* m(int64_t t) const { return base + 3 * slot + t * BH; }
};

// Views into states_all (4, T+1, B, H) are above; the per-head products follow.
//
// Loop order. Heads are independent except for the vanilla backend's "first step" rule (m = i
// where the whole n state is zero), so the float kernel runs head-major: each thread takes
// whole heads through all T steps with no synchronisation, and each head's R_h (4DH x DH) is
// packed once per call (PackedMatmul) and stays in the core's L2 for the whole loop. A zero n
// state can only recur after step 0 from a state that holds negative n (n_t >= min(n_{t-1}, 1)
// otherwise), so the head-major loop assumes "not first" after step 0, watches each head's
// n_t, and if one is entirely zero, recomputes everything step-major with the exact global rule.
// Step-major (all heads per step, units in parallel) is also the path on one thread, when there
// are fewer heads than threads, and for double (whose gemm is OpenBLAS, not called per thread).

// Per-head matmuls of one call: fwd[h] raw_h (B, 4DH; ld G) = y_h (B, DH; ld H) R_h^T, and
// bwd[h] dy_h (B, DH; ld H) = draw_h (B, 4DH; ld G) R_h. T = double: plain gemm.
template <class T>
struct HeadGemms {
  const SlstmShape& s;
  const T* R;
  HeadGemms(const SlstmShape& sh, const T* r, SlstmCache<T>&) : s(sh), R(r) {}
  void pack_fwd(int64_t) {}
  void pack_bwd(int64_t) {}
  void fwd(int64_t h, const T* yprev, T* raw) {
    const int64_t DH = s.DH, H = s.H();
    gemm<T>(Trans::N, Trans::T, s.B, 4 * DH, DH, T(1), yprev + h * DH, H, R + h * 4 * DH * DH, DH,
            T(0), raw + h * 4 * DH, 4 * H);
  }
  void bwd(int64_t h, const T* draw, T* dyr) {
    const int64_t DH = s.DH, H = s.H();
    gemm<T>(Trans::N, Trans::N, s.B, DH, 4 * DH, T(1), draw + h * 4 * DH, 4 * H,
            R + h * 4 * DH * DH, DH, T(0), dyr + h * DH, H);
  }
};

}  // namespace

namespace detail {
struct SlstmPacked {
  std::vector<PackedMatmul> fwd, bwd;  // one per head
};
}  // namespace detail

namespace {

template <>
struct HeadGemms<float> {
  const SlstmShape& s;
  const float* R;
  detail::SlstmPacked& p;
  HeadGemms(const SlstmShape& sh, const float* r, SlstmCache<float>& cache)
      : s(sh), R(r), p(init(cache, sh.NH)) {}
  static detail::SlstmPacked& init(SlstmCache<float>& cache, int64_t NH) {
    if (!cache.packed) cache.packed = std::make_shared<detail::SlstmPacked>();
    cache.packed->fwd.resize((size_t)NH);
    cache.packed->bwd.resize((size_t)NH);
    return *cache.packed;
  }
  void pack_fwd(int64_t h) {
    const int64_t DH = s.DH;
    p.fwd[(size_t)h].pack(s.B, DH, 4 * DH, s.H(), 4 * s.H(), Trans::T, false,
                          R + h * 4 * DH * DH);
  }
  void pack_bwd(int64_t h) {
    const int64_t DH = s.DH;
    p.bwd[(size_t)h].pack(s.B, 4 * DH, DH, 4 * s.H(), s.H(), Trans::N, false,
                          R + h * 4 * DH * DH);
  }
  void fwd(int64_t h, const float* yprev, float* raw) {
    p.fwd[(size_t)h].run(yprev + h * s.DH, raw + h * 4 * s.DH);
  }
  void bwd(int64_t h, const float* draw, float* dyr) {
    p.bwd[(size_t)h].run(draw + h * 4 * s.DH, dyr + h * s.DH);
  }
};

// Head-major when there are 2+ threads, every thread gets a head and T is float (see above). On
// one thread step-major is faster (B 16: 67 vs 72 ms fwd+bwd at T 256, H 512; B 64: 254 vs
// 313 ms; docs/perf.md): its step touches whole contiguous rows of x, y and the states.
// XLSTM_SLSTM_STEP_MAJOR=1 forces step-major (for comparisons in benchmarks).
template <class T>
bool head_major(int64_t NH) {
  static const bool forced_step = [] {
    const char* e = std::getenv("XLSTM_SLSTM_STEP_MAJOR");
    return e && e[0] == '1';
  }();
  const int threads = omp_get_max_threads();
  return std::is_same_v<T, float> && !forced_step && threads > 1 && NH >= threads;
}

template <class T>
bool head_n_zero(const T* n, int64_t B, int64_t H, int64_t h, int64_t DH) {
  for (int64_t b = 0; b < B; ++b)
    if (!all_zero(n + b * H + h * DH, DH)) return false;
  return true;
}

// The pointwise part of step t for batch row b, head h: raw (its (b, h) row holds R y)
// += x + bias, gates, new state, y. Reads state t, writes state t+1, gates/sgf/code of t.
template <class T>
inline void forward_unit_row(const SlstmShape& s, const SlstmLayout& L, const T* x,
                             const T* bias, T* y, SlstmCache<T>& cache, const StateView<T>& st,
                             int64_t t, int64_t b, int64_t h, bool first) {
  const int64_t Tn = s.T, NH = s.NH, DH = s.DH, H = s.H(), G = 4 * H, r = b * NH + h,
                o = b * H + h * DH;
  T* rr = cache.raw.data() + r * 4 * DH;
  const T* xr = x + b * L.x_b + t * L.x_t + h * DH;
  T* yr = y + b * L.y_b + t * L.y_t + h * L.y_h;
  if (t + 1 < Tn) {
    for (int64_t g = 0; g < 4; ++g) prefetch_row(xr + L.x_t + g * L.x_g, DH, false);
    prefetch_row(yr + L.y_t, DH, true);
    // What step t+1 writes for this row: gates, sgf, code, states t+2 (rows a step apart are
    // B*H or more floats apart: too far for the hardware prefetcher).
    prefetch_row(cache.gates.data() + (t + 1) * s.B * G + r * 4 * DH, 4 * DH, true);
    prefetch_row(cache.sgf.data() + (t + 1) * s.B * H + o, DH, true);
    prefetch_row(cache.code.data() + (t + 1) * s.B * H + o, DH, true);
    if (t + 2 <= Tn)
      for (T* p : {st.y(t + 2), st.c(t + 2), st.n(t + 2), st.m(t + 2)})
        prefetch_row(p + o, DH, true);
  }
  for (int64_t g = 0; g < 4; ++g) {  // raw = (Wx + Ry) + b, the official order
    T* dst = rr + g * DH;
    const T* xs = xr + g * L.x_g;
    const T* bs = bias + g * H + h * DH;
#pragma omp simd
    for (int64_t d = 0; d < DH; ++d) dst[d] = (xs[d] + dst[d]) + bs[d];
  }
  T* gr = cache.gates.data() + t * s.B * G + r * 4 * DH;
  T *ig = gr, *fg = gr + DH, *zt = gr + 2 * DH, *og = gr + 3 * DH;
  const T *cp = st.c(t), *np = st.n(t), *mp = st.m(t);
  T *yo = st.y(t + 1), *co = st.c(t + 1), *no = st.n(t + 1), *mo = st.m(t + 1);
  compute_gates(DH, rr, rr + DH, rr + 2 * DH, rr + 3 * DH, mp + o, first, ig, fg, zt, og,
                cache.sgf.data() + t * s.B * H + o, cache.code.data() + t * s.B * H + o, mo + o);
#pragma omp simd
  for (int64_t d = 0; d < DH; ++d) {
    const T c = fg[d] * cp[o + d] + ig[d] * zt[d];
    const T nn = fg[d] * np[o + d] + ig[d];
    const T yv = (og[d] * c) / nn;
    co[o + d] = c;
    no[o + d] = nn;
    yo[o + d] = yv;
    yr[d] = yv;
  }
}

// The backward pointwise of step t for batch row b, head h (carry: dy_rec, dc, dn, dm of step
// t+1 in, of step t out; draw and dx rows of step t written).
template <class T>
inline void backward_unit_row(const SlstmShape& s, const SlstmLayout& L, const T* dy, T* dx,
                              SlstmCache<T>& cache, const StateView<T>& st, int64_t t,
                              int64_t b, int64_t h) {
  const int64_t B = s.B, NH = s.NH, DH = s.DH, H = s.H(), BH = B * H, G = 4 * H,
                r = b * NH + h, o = b * H + h * DH;
  const T* gr = cache.gates.data() + t * B * G + r * 4 * DH;
  const T *ig = gr, *fg = gr + DH, *zt = gr + 2 * DH, *og = gr + 3 * DH;
  const T* sgf = cache.sgf.data() + t * BH;
  const uint8_t* code = cache.code.data() + t * BH;
  T* dr = cache.draw.data() + r * 4 * DH;  // this step's d raw: the scratch the GEMM reads next
  T* dyr = cache.carry.data();
  T* dc = dyr + BH;
  T* dn = dc + BH;
  T* dm = dn + BH;
  const T *cp = st.c(t), *np = st.n(t);
  const T *yv = st.y(t + 1), *cv = st.c(t + 1), *nv = st.n(t + 1);
  const T* dyo = dy ? dy + b * L.y_b + t * L.y_t + h * L.y_h : nullptr;
  T* dxr = dx + b * L.x_b + t * L.x_t + h * DH;
  T *dxi = dxr, *dxf = dxr + L.x_g, *dxz = dxr + 2 * L.x_g, *dxo = dxr + 3 * L.x_g;
  if (t > 0) {
    for (int64_t g = 0; g < 4; ++g) prefetch_row(dxr - L.x_t + g * L.x_g, DH, true);
    if (dyo) prefetch_row(dyo - L.y_t, DH, false);
    // What step t-1 reads and writes for this row; of the states it reads c(t), n(t) hot (step t
    // read them too), c(t-1), n(t-1), y(t) not.
    prefetch_row(cache.gates.data() + (t - 1) * B * G + r * 4 * DH, 4 * DH, false);
    prefetch_row(cache.sgf.data() + (t - 1) * BH + o, DH, false);
    prefetch_row(cache.code.data() + (t - 1) * BH + o, DH, false);
    for (const T* p : {st.c(t - 1), st.n(t - 1), st.y(t)}) prefetch_row(p + o, DH, false);
  }
#pragma omp simd
  for (int64_t d = 0; d < DH; ++d) {
    const int64_t k = o + d;
    const int cd = code[k];
    const T si = T(0.5) * T(cd & 3), wi = T(0.5) * T((cd >> 2) & 3),
            wf = T(0.5) * T((cd >> 4) & 3);
    const T ai = wi == T(1) ? ig[d] : wi;  // d min(exp(a), 1) / da
    const T af = wf == T(1) ? fg[d] : wf;
    const T dyt = (dyo ? dyo[d] : T(0)) + dyr[k];
    const T dq = dyt / nv[k];  // y = (o c) / n
    const T dog = dq * cv[k];
    const T dct = dc[k] + dq * og[d];
    const T dnt = dn[k] - dq * yv[k];
    const T dfg = dct * cp[k] + dnt * np[k];
    const T dig = dct * zt[d] + dnt;
    const T gi = dig * ai, gf = dfg * af;
    const T dmn = dm[k] - gi - gf;
    const T dL = gf + (T(1) - si) * dmn;  // L = m(t-1) + logsigmoid(f_raw)
    const T di = gi + si * dmn, df = dL * sgf[k];
    const T dz = dct * ig[d] * (T(1) - zt[d] * zt[d]);
    const T dO = dog * og[d] * (T(1) - og[d]);
    dr[d] = dxi[d] = di;
    dr[DH + d] = dxf[d] = df;
    dr[2 * DH + d] = dxz[d] = dz;
    dr[3 * DH + d] = dxo[d] = dO;
    dc[k] = dct * fg[d];
    dn[k] = dnt * fg[d];
    dm[k] = dL;
  }
}

}  // namespace

template <class T>
void slstm_forward(const SlstmShape& s, const SlstmLayout& L, const T* x, const T* R,
                   const T* bias, const T* state0, T* y, T* state_out, SlstmCache<T>& cache) {
  const int64_t B = s.B, Tn = s.T, NH = s.NH, DH = s.DH, H = s.H(), BH = B * H, G = 4 * H;
  cache.shape = s;
  cache.states.resize((size_t)(4 * (Tn + 1) * BH));
  cache.gates.resize((size_t)(Tn * B * G));
  cache.sgf.resize((size_t)(Tn * BH));
  cache.code.resize((size_t)(Tn * BH));
  cache.raw.resize((size_t)(B * G));
  StateView<T> st{cache.states.data(), (Tn + 1) * BH, BH};
  for (int k = 0; k < 4; ++k) {
    T* dst = st.base + k * st.slot;
    if (state0) std::memcpy(dst, state0 + k * BH, sizeof(T) * BH);
    else std::fill(dst, dst + BH, T(0));
  }
  T* raw = cache.raw.data();  // (B, NH, 4, DH) pre-activations of the current step
  HeadGemms<T> mm(s, R, cache);

  bool step_major = !head_major<T>(NH);
  if (!step_major) {
    const bool first0 = all_zero(st.n(0), BH);
    std::vector<char> zero_seen((size_t)NH, 0);
    parallel_for(NH, NH > 1 && B * Tn * G * DH >= (1 << 16), [&](int64_t h) {
      mm.pack_fwd(h);
      for (int64_t t = 0; t < Tn; ++t) {
        if (t > 0 && head_n_zero(st.n(t), B, H, h, DH)) {
          zero_seen[(size_t)h] = 1;  // the global rule decides: recomputed step-major below
          break;
        }
        mm.fwd(h, st.y(t), raw);
        for (int64_t b = 0; b < B; ++b)
          forward_unit_row(s, L, x, bias, y, cache, st, t, b, h, t == 0 && first0);
      }
    });
    step_major = std::find(zero_seen.begin(), zero_seen.end(), 1) != zero_seen.end();
  }
  if (step_major) {
    for (int64_t h = 0; h < NH; ++h) mm.pack_fwd(h);
    for (int64_t t = 0; t < Tn; ++t) {
      for (int64_t h = 0; h < NH; ++h) mm.fwd(h, st.y(t), raw);
      const bool first = all_zero(st.n(t), BH);
      parallel_for(B * NH, BH >= 4096, [&](int64_t r) {
        forward_unit_row(s, L, x, bias, y, cache, st, t, r / NH, r % NH, first);
      });
    }
  }
  if (state_out)
    for (int k = 0; k < 4; ++k)
      std::memcpy(state_out + k * BH, st.base + k * st.slot + Tn * BH, sizeof(T) * BH);
  cache.valid = true;
}

template <class T>
void slstm_backward(const SlstmShape& s, const SlstmLayout& L, const T* R, const T* dy,
                    const T* dstate_out, T* dx, T* dR, T* dbias, T* dstate0,
                    SlstmCache<T>& cache) {
  const int64_t B = s.B, Tn = s.T, NH = s.NH, DH = s.DH, H = s.H(), BH = B * H, G = 4 * H;
  XLSTM_ASSERT(cache.valid && cache.shape.B == B && cache.shape.T == Tn && cache.shape.NH == NH &&
               cache.shape.DH == DH);
  cache.draw.resize((size_t)(B * G));
  cache.carry.resize((size_t)(4 * BH));
  StateView<T> st{cache.states.data(), (Tn + 1) * BH, BH};
  T* dyr = cache.carry.data();  // d y(t) from step t+1's recurrence, then d c, d n, d m
  if (dstate_out) std::memcpy(dyr, dstate_out, sizeof(T) * 4 * BH);
  else std::fill(dyr, dyr + 4 * BH, T(0));
  HeadGemms<T> mm(s, R, cache);

  if (head_major<T>(NH)) {
    parallel_for(NH, NH > 1 && B * Tn * G * DH >= (1 << 16), [&](int64_t h) {
      mm.pack_bwd(h);
      for (int64_t t = Tn - 1; t >= 0; --t) {
        for (int64_t b = 0; b < B; ++b) backward_unit_row(s, L, dy, dx, cache, st, t, b, h);
        if (t > 0 || dstate0) mm.bwd(h, cache.draw.data(), dyr);
      }
    });
  } else {
    for (int64_t h = 0; h < NH; ++h) mm.pack_bwd(h);
    for (int64_t t = Tn - 1; t >= 0; --t) {
      parallel_for(B * NH, BH >= 4096, [&](int64_t r) {
        backward_unit_row(s, L, dy, dx, cache, st, t, r / NH, r % NH);
      });
      if (t > 0 || dstate0)  // d y(t-1) = sum_h draw_h (B, 4DH) . R_h (4DH, DH)
        for (int64_t h = 0; h < NH; ++h) mm.bwd(h, cache.draw.data(), dyr);
    }
  }
  if (dstate0) std::memcpy(dstate0, dyr, sizeof(T) * 4 * BH);

  // dR_h (4DH, DH) += draw_h^T (4DH, T*B) . y_prev_h (T*B, DH), with draw read from dx (which
  // holds the same values; draw itself is one step's scratch):
  //   dR[h, g*DH + o, i] += sum over (b, t) of dx[b, t, g, h, o] * y(t)[b, h, i]
  // and dbias[g*H + h*DH + o] += sum over (b, t) of dx[b, t, g, h, o]. dx orders its rows
  // (b, t), the states (t, b): one segment of T rows per batch row; the four gates are four
  // groups of rows of dR_h. For float one gemm_tn per head, the bias from the column sums of the
  // same pass; fixed order (deterministic).
  const T* yprev = st.y(0);
  std::vector<double>& sums = cache.colsum;
  sums.assign((size_t)(NH * 4 * DH), 0.0);
  if constexpr (std::is_same_v<T, float>) {
    // Whole heads per thread when they split evenly (each thread packs only its heads' y).
    auto head = [&](int64_t h) {
      gemm_tn(DH, DH, Tn, dx + h * DH, L.x_t, yprev + h * DH, BH, 1.0f, dR + h * 4 * DH * DH, DH,
              sums.data() + h * 4 * DH, {B, L.x_b, H, 4, L.x_g, DH * DH});
    };
    const int nth = omp_get_max_threads();
    if (nth > 1 && NH % nth == 0 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
      for (int64_t h = 0; h < NH; ++h) head(h);
    } else {
      for (int64_t h = 0; h < NH; ++h) head(h);
    }
  } else {
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t g = 0; g < 4; ++g)
        for (int64_t b = 0; b < B; ++b) {
          const T* Ab = dx + h * DH + g * L.x_g + b * L.x_b;
          gemm<T>(Trans::T, Trans::N, DH, DH, Tn, T(1), Ab, L.x_t, yprev + h * DH + b * H, BH,
                  T(1), dR + h * 4 * DH * DH + g * DH * DH, DH);
          for (int64_t t = 0; t < Tn; ++t)
            for (int64_t d = 0; d < DH; ++d)
              sums[(size_t)((h * 4 + g) * DH + d)] += (double)Ab[t * L.x_t + d];
        }
  }
  for (int64_t h = 0; h < NH; ++h)
    for (int64_t g = 0; g < 4; ++g)
      for (int64_t d = 0; d < DH; ++d)
        dbias[g * H + h * DH + d] += (T)sums[(size_t)((h * 4 + g) * DH + d)];
}

#define XLSTM_INST(T)                                                                          \
  template void slstm_forward<T>(const SlstmShape&, const SlstmLayout&, const T*, const T*,      \
                                 const T*, const T*, T*, T*, SlstmCache<T>&);                    \
  template void slstm_backward<T>(const SlstmShape&, const SlstmLayout&, const T*, const T*,     \
                                  const T*, T*, T*, T*, T*, SlstmCache<T>&);
XLSTM_INST(float)
XLSTM_INST(double)
#undef XLSTM_INST

}  // namespace xlstm
