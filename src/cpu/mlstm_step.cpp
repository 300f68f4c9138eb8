// Recurrent mLSTM, spec §2.1 (mlstm_kernels recurrent/native_step.py; xlstm
// recurrent_step_stabilized_simple), as a loop of steps with state in and out:
//   m_t = maximum(lf_t + m_{t-1}, i_t),  lf = logsigmoid(f)
//   fa = exp(lf_t + m_{t-1} - m_t), ia = exp(i_t - m_t)
//   C_t = fa C_{t-1} + ia k~_t v_t^T,  n_t = fa n_{t-1} + ia k~_t
//   h_t = q~_t C_t / (max(|q~_t . n_t|, e^-m_t) + eps)
// The backward walks the steps in reverse, recomputing the states of one segment of
// chunk_size steps at a time from checkpoints the forward saved.
#include <cstring>

#include "cpu/mlstm_impl.h"

namespace xlstm {

using namespace mlstm_detail;

namespace {

template <class T>
struct StepBufs {
  T *C, *n;  // forward without cache: the running state
  // backward: the states of one segment (P+1 of them), and the gradient state
  T *Cs, *ns, *dC, *dn, *hs;
  double *ms, *num, *dvv, *dnum;
  void carve(Arena& a, int64_t P, int64_t DHQK, int64_t DHV, bool bwd) {
    num = a.take<double>(DHV);
    C = a.take<T>(DHQK * DHV);
    n = a.take<T>(DHQK);
    if (!bwd) return;
    Cs = a.take<T>((P + 1) * DHQK * DHV);
    ns = a.take<T>((P + 1) * DHQK);
    ms = a.take<double>(P + 1);
    dC = a.take<T>(DHQK * DHV);
    dn = a.take<T>(DHQK);
    hs = a.take<T>(DHV);
    dvv = a.take<double>(DHV);
    dnum = a.take<double>(DHV);
  }
};

template <class T>
size_t step_bytes(const MlstmDims& d, int64_t P, bool bwd) {
  Arena a(nullptr);
  StepBufs<T> b;
  b.carve(a, P, d.DHQK, d.DHV, bwd);
  return a.used();
}

// One step from (C, n, mp) to (Cn, nn) (may alias); returns m_t, writes h and den.
template <class T>
double step_forward(int64_t DHQK, int64_t DHV, const Scales& sc, double eps, const T* q,
                    const T* k, const T* v, T ig, T f, const T* C, const T* n, double mp, T* Cn,
                    T* nn, T* h, double* den_out, double* num) {
  const double lf = logsigmoid<double>((double)f);
  const double mt = std::max(lf + mp, (double)ig);
  const double fa = std::exp((lf + mp) - mt), ia = std::exp((double)ig - mt);
  std::fill(num, num + DHV, 0.0);
  double den = 0;
  for (int64_t x = 0; x < DHQK; ++x) {
    const double ik = ia * sc.sk * (double)k[x], qs = sc.sq * (double)q[x];
    const T* crow = C + x * DHV;
    T* cnrow = Cn + x * DHV;
    for (int64_t y = 0; y < DHV; ++y) {
      const T c = (T)(fa * (double)crow[y] + ik * (double)v[y]);
      cnrow[y] = c;
      num[y] += qs * (double)c;
    }
    const T nx = (T)(fa * (double)n[x] + ik);
    nn[x] = nx;
    den += qs * (double)nx;
  }
  const double N = std::max(std::fabs(den), std::exp(-mt));
  const double inv = 1.0 / (N + eps);
  for (int64_t y = 0; y < DHV; ++y) h[y] = (T)(num[y] * inv);
  *den_out = den;
  return mt;
}

}  // namespace

template <class T>
void mlstm_recurrent_forward(const MlstmDims& d, const MlstmOptions& o, const MlstmInputs<T>& in,
                             const MlstmOutputs<T>& out, MlstmCache<T>* cache,
                             MlstmWorkspace& ws) {
  const int64_t S = d.S, DHQK = d.DHQK, DHV = d.DHV, BH = d.B * d.NH;
  const int64_t P = std::min(o.chunk_size, S), NK = (S + P - 1) / P;
  const Scales sc = scales(o.scale_on, DHQK);
  const int64_t CS = DHQK * DHV;
  if (cache) {
    cache->m.resize((size_t)(BH * S));
    cache->den.resize((size_t)(BH * S));
    cache->ms.resize((size_t)(BH * (NK + 1)));
    cache->c.resize((size_t)(BH * (NK + 1) * CS));
    cache->n.resize((size_t)(BH * (NK + 1) * DHQK));
  }
  for_each_head(BH, (double)BH * S * 4 * CS, ws, step_bytes<T>(d, P, false), [&](int64_t bh, unsigned char* mem) {
    Arena arena(mem);
    StepBufs<T> w;
    w.carve(arena, P, DHQK, DHV, false);
    // The running state lives in the output state when there is one (a decode step: one copy
    // of C in instead of one in and one out; none when the caller passes the same buffers).
    T* C = out.c ? out.c + bh * CS : w.C;
    T* n = out.n ? out.n + bh * DHQK : w.n;
    if (!in.c0) std::fill(C, C + CS, T(0));
    else if (C != in.c0 + bh * CS) std::memcpy(C, in.c0 + bh * CS, sizeof(T) * CS);
    if (!in.n0) std::fill(n, n + DHQK, T(0));
    else if (n != in.n0 + bh * DHQK) std::memcpy(n, in.n0 + bh * DHQK, sizeof(T) * DHQK);
    double mp = in.m0 ? (double)in.m0[bh] : 0.0;
    auto checkpoint = [&](int64_t slot) {
      std::memcpy(cache->c.data() + (bh * (NK + 1) + slot) * CS, C, sizeof(T) * CS);
      std::memcpy(cache->n.data() + (bh * (NK + 1) + slot) * DHQK, n, sizeof(T) * DHQK);
      cache->ms[(size_t)(bh * (NK + 1) + slot)] = mp;
    };
    for (int64_t t = 0; t < S; ++t) {
      if (cache && t % P == 0) checkpoint(t / P);
      const int64_t r = bh * S + t;
      double den;
      mp = step_forward(DHQK, DHV, sc, o.eps, in.q + r * DHQK, in.k + r * DHQK, in.v + r * DHV,
                        in.i[r], in.f[r], C, n, mp, C, n, out.h + r * DHV, &den, w.num);
      if (cache) {
        cache->m[(size_t)r] = mp;
        cache->den[(size_t)r] = den;
      }
    }
    if (cache) checkpoint(NK);
    if (out.m) out.m[bh] = (T)mp;
  });
}

template <class T>
void mlstm_recurrent_backward(const MlstmDims& d, const MlstmOptions& o, const MlstmInputs<T>& in,
                              const T* h, const MlstmOutputGrads<T>& dout,
                              const MlstmCache<T>& cache, const MlstmGrads<T>& g,
                              MlstmWorkspace& ws) {
  const int64_t S = d.S, DHQK = d.DHQK, DHV = d.DHV, BH = d.B * d.NH;
  const int64_t P = std::min(o.chunk_size, S), NK = (S + P - 1) / P;
  const Scales sc = scales(o.scale_on, DHQK);
  const int64_t CS = DHQK * DHV;
  const bool has_state = in.c0 || in.n0 || in.m0;
  for_each_head(BH, (double)BH * S * 4 * CS, ws, step_bytes<T>(d, P, true), [&](int64_t bh, unsigned char* mem) {
    Arena arena(mem);
    StepBufs<T> w;
    w.carve(arena, P, DHQK, DHV, true);
    const T* Ck = cache.c.data() + bh * (NK + 1) * CS;
    const T* nk = cache.n.data() + bh * (NK + 1) * DHQK;
    const double* mk = cache.ms.data() + bh * (NK + 1);
    T* dC = w.dC;
    T* dn = w.dn;
    double dmk = seed_final_state_grad(dout, bh, DHQK, DHV, Ck + NK * CS, nk + NK * DHQK, dC, dn);
    for (int64_t seg = NK - 1; seg >= 0; --seg) {
      const int64_t t0 = seg * P, Ls = std::min(P, S - t0);
      // Recompute the states of the segment: Cs[u] is the state before step t0+u.
      std::memcpy(w.Cs, Ck + seg * CS, sizeof(T) * CS);
      std::memcpy(w.ns, nk + seg * DHQK, sizeof(T) * DHQK);
      w.ms[0] = mk[seg];
      for (int64_t u = 0; u < Ls; ++u) {
        const int64_t r = bh * S + t0 + u;
        double den;
        w.ms[u + 1] = step_forward(DHQK, DHV, sc, o.eps, in.q + r * DHQK, in.k + r * DHQK,
                                   in.v + r * DHV, in.i[r], in.f[r], w.Cs + u * CS,
                                   w.ns + u * DHQK, w.ms[u], w.Cs + (u + 1) * CS,
                                   w.ns + (u + 1) * DHQK, w.hs, &den, w.num);
      }
      for (int64_t u = Ls - 1; u >= 0; --u) {
        const int64_t r = bh * S + t0 + u;
        const T* q = in.q + r * DHQK;
        const T* k = in.k + r * DHQK;
        const T* v = in.v + r * DHV;
        const T* dh = dout.dh + r * DHV;
        const T* Cp = w.Cs + u * CS;
        const T* Ct = w.Cs + (u + 1) * CS;
        const T* np = w.ns + u * DHQK;
        const T* nt = w.ns + (u + 1) * DHQK;
        const double mp = w.ms[u], mt = w.ms[u + 1];
        const double lf = logsigmoid<double>((double)in.f[r]);
        const double fa = std::exp((lf + mp) - mt), ia = std::exp((double)in.i[r] - mt);
        const NormGrad ng = norm_grad(cache.den[(size_t)r], mt, o.eps, dot(dh, h + r * DHV, DHV));
        for (int64_t y = 0; y < DHV; ++y) {
          w.dnum[y] = (double)dh[y] * ng.inv;
          w.dvv[y] = 0;
        }
        // One pass over the rows of the matrices: the readout, the update and the decay.
        double dfa = 0, dia = 0;
        for (int64_t x = 0; x < DHQK; ++x) {
          const double qs = sc.sq * (double)q[x], ks = sc.sk * (double)k[x];
          T* dcrow = dC + x * DHV;
          const T* ctrow = Ct + x * DHV;
          const T* cprow = Cp + x * DHV;
          double dqx = 0, wx = 0, cacc = 0;
          for (int64_t y = 0; y < DHV; ++y) {
            const double dc = (double)dcrow[y] + qs * w.dnum[y];
            dqx += (double)ctrow[y] * w.dnum[y];
            wx += dc * (double)v[y];
            w.dvv[y] += ks * dc;
            cacc += dc * (double)cprow[y];
            dcrow[y] = (T)(fa * dc);
          }
          const double dnx = (double)dn[x] + qs * ng.dden;
          dqx += ng.dden * (double)nt[x];
          wx += dnx;
          g.dq[r * DHQK + x] = (T)(sc.sq * dqx);
          g.dk[r * DHQK + x] = (T)(sc.sk * ia * wx);
          dia += ks * wx;
          dfa += cacc + dnx * (double)np[x];
          dn[x] = (T)(fa * dnx);
        }
        for (int64_t y = 0; y < DHV; ++y) g.dv[r * DHV + y] = (T)(ia * w.dvv[y]);
        double dlf = fa * dfa, di = ia * dia;
        // m_t = maximum(lf + m_{t-1}, i_t); its gradient: eps-term of h_t + the chain from t+1.
        double ga, gb;
        route_max(lf + mp, (double)in.i[r], ng.dm + dmk, ga, gb);
        dlf += ga;
        di += gb;
        dmk = ga;
        g.di[r] = (T)di;
        g.df[r] = (T)(dlf * sigmoid<double>(-(double)in.f[r]));
      }
    }
    if (has_state) {
      if (g.dc0) std::memcpy(g.dc0 + bh * CS, dC, sizeof(T) * CS);
      if (g.dn0) std::memcpy(g.dn0 + bh * DHQK, dn, sizeof(T) * DHQK);
      if (g.dm0) g.dm0[bh] = (T)(dmk + dot(dC, Ck, CS) + dot(dn, nk, DHQK));
    }
  });
}

#define XLSTM_INST(T)                                                                           \
  template void mlstm_recurrent_forward<T>(const MlstmDims&, const MlstmOptions&,               \
                                           const MlstmInputs<T>&, const MlstmOutputs<T>&,       \
                                           MlstmCache<T>*, MlstmWorkspace&);                    \
  template void mlstm_recurrent_backward<T>(const MlstmDims&, const MlstmOptions&,              \
                                            const MlstmInputs<T>&, const T*,                    \
                                            const MlstmOutputGrads<T>&, const MlstmCache<T>&,   \
                                            const MlstmGrads<T>&, MlstmWorkspace&);
XLSTM_INST(float)
XLSTM_INST(double)
#undef XLSTM_INST

}  // namespace xlstm
