// Chunkwise mLSTM, spec §2.3 (mlstm_kernels chunkwise/native/fw.py), forward and exact
// backward. Per chunk (local positions 0..Lk-1, Lk = L except a shorter last chunk):
//   b = inclusive cumsum of logsigmoid(f) in the chunk, g = b[Lk-1], a_j = (g - b_j) + i_j
//   m_i   = maximum(b_i + m_prev, max_j<=i ((b_i - b_j) + i_j))         (per position)
//   m_new = maximum(g + m_prev, max_j a_j)                               (chunk boundary)
//   h_i   = (beta_i q~_i C_prev + sum_j Ct_ij v_j) / (max(|den_i|, e^-m_i) + eps),
//           beta_i = exp(b_i + m_prev - m_i), Ct_ij = s q_i.k_j exp(logD_ij - m_i)
//   C_new = gamma C_prev + sum_j alpha_j k~_j v_j^T, gamma = exp(g + m_prev - m_new),
//           alpha_j = exp(a_j - m_new)   (n alike with k~_j)
// The backward holds every m fixed, then adds the m-path (mlstm.h) routed through the two
// maxima above, chunk by chunk down to m_initial.
#include <cstring>

#include "cpu/mlstm_impl.h"

namespace xlstm {

using namespace mlstm_detail;

namespace {

template <class T>
struct ChunkBufs {
  double *b, *lg, *mint, *mc, *rowsum, *beta, *alpha, *dden, *dm, *db, *dI, *rowP, *colP;
  int64_t* arg;
  T *A, *D, *Bm, *Qb, *Ka, *dnum, *dQb, *dKa, *dC, *dn, *run;
  void carve(Arena& a, int64_t L, int64_t DHQK, int64_t DHV, bool bwd) {
    b = a.take<double>(L);
    lg = a.take<double>(L * L);
    mint = a.take<double>(L);
    mc = a.take<double>(L);
    rowsum = a.take<double>(L);
    beta = a.take<double>(L);
    alpha = a.take<double>(L);
    arg = a.take<int64_t>(L);
    A = a.take<T>(L * L);
    Qb = a.take<T>(L * DHQK);
    Ka = a.take<T>(L * DHQK);
    run = a.take<T>(2 * (DHQK * DHV + DHQK));  // ping-pong state when there is no cache
    if (!bwd) return;
    D = a.take<T>(L * L);
    Bm = a.take<T>(L * L);
    dnum = a.take<T>(L * DHV);
    dQb = a.take<T>(L * DHQK);
    dKa = a.take<T>(L * DHQK);
    dC = a.take<T>(DHQK * DHV);
    dn = a.take<T>(DHQK);
    dden = a.take<double>(L);
    dm = a.take<double>(L);
    db = a.take<double>(L);
    dI = a.take<double>(L);
    rowP = a.take<double>(L);
    colP = a.take<double>(L);
  }
};

template <class T>
size_t chunk_bytes(const MlstmDims& d, int64_t L, bool bwd) {
  Arena a(nullptr);
  ChunkBufs<T> b;
  b.carve(a, L, d.DHQK, d.DHV, bwd);
  return a.used();
}

// Gate quantities of one chunk: b (cumsum), returns g; amax / ja: max_j a_j and first argmax.
template <class T>
double chunk_gates(int64_t Lk, const T* f, const T* ig, double* b, double* amax, int64_t* ja) {
  cumsum_logsig(Lk, f, b);
  const double g = b[Lk - 1];
  *amax = kNegInf;
  *ja = 0;
  for (int64_t j = 0; j < Lk; ++j) {
    const double a = (g - b[j]) + (double)ig[j];
    if (a > *amax) *amax = a, *ja = j;
  }
  return g;
}

}  // namespace

template <class T>
void mlstm_chunkwise_forward(const MlstmDims& d, const MlstmOptions& o, const MlstmInputs<T>& in,
                             const MlstmOutputs<T>& out, MlstmCache<T>* cache,
                             MlstmWorkspace& ws) {
  const int64_t S = d.S, DHQK = d.DHQK, DHV = d.DHV, BH = d.B * d.NH;
  const int64_t L = std::min(o.chunk_size, S), NC = (S + L - 1) / L;
  const Scales sc = scales(o.scale_on, DHQK);
  const int64_t CS = DHQK * DHV;
  if (cache) {
    cache->m.resize((size_t)(BH * S));
    cache->den.resize((size_t)(BH * S));
    cache->ms.resize((size_t)(BH * (NC + 1)));
    cache->c.resize((size_t)(BH * (NC + 1) * CS));
    cache->n.resize((size_t)(BH * (NC + 1) * DHQK));
  }
  for_each_head(BH, (double)BH * S * (L * (DHQK + DHV) + 2 * CS), ws, chunk_bytes<T>(d, L, false), [&](int64_t bh, unsigned char* mem) {
    Arena arena(mem);
    ChunkBufs<T> w;
    w.carve(arena, L, DHQK, DHV, false);
    T* Cbase = cache ? cache->c.data() + bh * (NC + 1) * CS : w.run;
    T* nbase = cache ? cache->n.data() + bh * (NC + 1) * DHQK : w.run + 2 * CS;
    auto Cslot = [&](int64_t k) { return Cbase + (cache ? k : k % 2) * CS; };
    auto nslot = [&](int64_t k) { return nbase + (cache ? k : k % 2) * DHQK; };
    if (in.c0) std::memcpy(Cslot(0), in.c0 + bh * CS, sizeof(T) * CS);
    else std::fill(Cslot(0), Cslot(0) + CS, T(0));
    if (in.n0) std::memcpy(nslot(0), in.n0 + bh * DHQK, sizeof(T) * DHQK);
    else std::fill(nslot(0), nslot(0) + DHQK, T(0));
    double mp = in.m0 ? (double)in.m0[bh] : 0.0;
    if (cache) cache->ms[(size_t)(bh * (NC + 1))] = mp;

    for (int64_t k = 0; k < NC; ++k) {
      const int64_t t0 = k * L, Lk = std::min(L, S - t0);
      const T* q = in.q + (bh * S + t0) * DHQK;
      const T* kk = in.k + (bh * S + t0) * DHQK;
      const T* v = in.v + (bh * S + t0) * DHV;
      const T* ig = in.i + bh * S + t0;
      T* h = out.h + (bh * S + t0) * DHV;
      const T* Cp = Cslot(k);
      const T* np = nslot(k);
      double amax;
      int64_t ja;
      const double g = chunk_gates(Lk, in.f + bh * S + t0, ig, w.b, &amax, &ja);
      const double mn = std::max(g + mp, amax);

      // Outputs of the chunk from the intra block and the state before it.
      intra_logd(Lk, Lk, 0, w.b, w.b, ig, w.lg, Lk, w.mint, w.arg);
      for (int64_t r = 0; r < Lk; ++r) w.mc[r] = std::max(w.b[r] + mp, w.mint[r]);
      gemm<T>(Trans::N, Trans::T, Lk, Lk, DHQK, (T)sc.s, q, DHQK, kk, DHQK, T(0), w.A, Lk);
      intra_apply<T>(Lk, Lk, 0, w.lg, Lk, w.mc, w.A, nullptr, w.rowsum);
      gemm<T>(Trans::N, Trans::N, Lk, DHV, Lk, T(1), w.A, Lk, v, DHV, T(0), h, DHV);
      for (int64_t r = 0; r < Lk; ++r) {
        const double beta = std::exp((w.b[r] + mp) - w.mc[r]);
        for (int64_t x = 0; x < DHQK; ++x) w.Qb[r * DHQK + x] = (T)(beta * sc.sq * (double)q[r * DHQK + x]);
      }
      gemm<T>(Trans::N, Trans::N, Lk, DHV, DHQK, T(1), w.Qb, DHQK, Cp, DHV, T(1), h, DHV);
      for (int64_t r = 0; r < Lk; ++r) {
        const double den = w.rowsum[r] + dot(w.Qb + r * DHQK, np, DHQK);
        const double N = std::max(std::fabs(den), std::exp(-w.mc[r]));
        const T inv = (T)(1.0 / (N + o.eps));
        for (int64_t x = 0; x < DHV; ++x) h[r * DHV + x] *= inv;
        if (cache) {
          cache->m[(size_t)(bh * S + t0 + r)] = w.mc[r];
          cache->den[(size_t)(bh * S + t0 + r)] = den;
        }
      }

      // State update C_{k+1} = gamma C_k + Ka^T V.
      const double gamma = std::exp((g + mp) - mn);
      for (int64_t j = 0; j < Lk; ++j) {
        const double alpha = std::exp(((g - w.b[j]) + (double)ig[j]) - mn);
        for (int64_t x = 0; x < DHQK; ++x) w.Ka[j * DHQK + x] = (T)(alpha * sc.sk * (double)kk[j * DHQK + x]);
      }
      T* Cn = Cslot(k + 1);
      T* nn = nslot(k + 1);
      for (int64_t x = 0; x < CS; ++x) Cn[x] = (T)(gamma * (double)Cp[x]);
      gemm<T>(Trans::T, Trans::N, DHQK, DHV, Lk, T(1), w.Ka, DHQK, v, DHV, T(1), Cn, DHV);
      for (int64_t x = 0; x < DHQK; ++x) {
        double acc = gamma * (double)np[x];
        for (int64_t j = 0; j < Lk; ++j) acc += (double)w.Ka[j * DHQK + x];
        nn[x] = (T)acc;
      }
      mp = mn;
      if (cache) cache->ms[(size_t)(bh * (NC + 1) + k + 1)] = mp;
    }
    if (out.c) std::memcpy(out.c + bh * CS, Cslot(NC), sizeof(T) * CS);
    if (out.n) std::memcpy(out.n + bh * DHQK, nslot(NC), sizeof(T) * DHQK);
    if (out.m) out.m[bh] = (T)mp;
  });
}

template <class T>
void mlstm_chunkwise_backward(const MlstmDims& d, const MlstmOptions& o, const MlstmInputs<T>& in,
                              const T* h, const MlstmOutputGrads<T>& dout,
                              const MlstmCache<T>& cache, const MlstmGrads<T>& g,
                              MlstmWorkspace& ws) {
  const int64_t S = d.S, DHQK = d.DHQK, DHV = d.DHV, BH = d.B * d.NH;
  const int64_t L = std::min(o.chunk_size, S), NC = (S + L - 1) / L;
  const Scales sc = scales(o.scale_on, DHQK);
  const int64_t CS = DHQK * DHV;
  const bool has_state = in.c0 || in.n0 || in.m0;
  for_each_head(BH, (double)BH * S * (L * (DHQK + DHV) + 2 * CS), ws, chunk_bytes<T>(d, L, true), [&](int64_t bh, unsigned char* mem) {
    Arena arena(mem);
    ChunkBufs<T> w;
    w.carve(arena, L, DHQK, DHV, true);
    const T* Cbase = cache.c.data() + bh * (NC + 1) * CS;
    const T* nbase = cache.n.data() + bh * (NC + 1) * DHQK;
    const double* ms = cache.ms.data() + bh * (NC + 1);
    T* dC = w.dC;
    T* dn = w.dn;
    // Gradient into the final state, and the explicit m-path term of m_NC.
    double dmk =
        seed_final_state_grad(dout, bh, DHQK, DHV, Cbase + NC * CS, nbase + NC * DHQK, dC, dn);

    for (int64_t k = NC - 1; k >= 0; --k) {
      const int64_t t0 = k * L, Lk = std::min(L, S - t0);
      const T* q = in.q + (bh * S + t0) * DHQK;
      const T* kk = in.k + (bh * S + t0) * DHQK;
      const T* v = in.v + (bh * S + t0) * DHV;
      const T* ig = in.i + bh * S + t0;
      const T* f = in.f + bh * S + t0;
      const T* hb = h + (bh * S + t0) * DHV;
      const T* dh = dout.dh + (bh * S + t0) * DHV;
      T* dq = g.dq + (bh * S + t0) * DHQK;
      T* dk = g.dk + (bh * S + t0) * DHQK;
      T* dv = g.dv + (bh * S + t0) * DHV;
      const T* Cp = Cbase + k * CS;
      const T* np = nbase + k * DHQK;
      const double mp = ms[k], mn = ms[k + 1];
      double amax;
      int64_t ja;
      const double gg = chunk_gates(Lk, f, ig, w.b, &amax, &ja);
      std::fill(w.db, w.db + Lk, 0.0);
      std::fill(w.dI, w.dI + Lk, 0.0);
      double dg = 0, dmp = 0;

      // (1) State update C_{k+1} = gamma C_k + Ka^T V; dC holds dL/dC_{k+1}.
      const double gamma = std::exp((gg + mp) - mn);
      for (int64_t j = 0; j < Lk; ++j) {
        w.alpha[j] = std::exp(((gg - w.b[j]) + (double)ig[j]) - mn);
        for (int64_t x = 0; x < DHQK; ++x) w.Ka[j * DHQK + x] = (T)(w.alpha[j] * sc.sk * (double)kk[j * DHQK + x]);
      }
      gemm<T>(Trans::N, Trans::T, Lk, DHQK, DHV, T(1), v, DHV, dC, DHV, T(0), w.dKa, DHQK);
      gemm<T>(Trans::N, Trans::N, Lk, DHV, DHQK, T(1), w.Ka, DHQK, dC, DHV, T(0), dv, DHV);
      for (int64_t j = 0; j < Lk; ++j) {
        T* dka = w.dKa + j * DHQK;
        for (int64_t x = 0; x < DHQK; ++x) dka[x] += dn[x];
        const double da = dot(w.Ka + j * DHQK, dka, DHQK);
        const double sa = w.alpha[j] * sc.sk;
        for (int64_t x = 0; x < DHQK; ++x) dk[j * DHQK + x] = (T)(sa * (double)dka[x]);
        dg += da;
        w.db[j] -= da;
        w.dI[j] += da;
      }
      dg += gamma * (dot(dC, Cp, CS) + dot(dn, np, DHQK));
      for (int64_t x = 0; x < CS; ++x) dC[x] = (T)(gamma * (double)dC[x]);
      for (int64_t x = 0; x < DHQK; ++x) dn[x] = (T)(gamma * (double)dn[x]);

      // (2) m_{k+1} = maximum(g + m_k, max_j a_j).
      {
        double ga, gb;
        route_max(gg + mp, amax, dmk, ga, gb);
        dg += ga + gb;
        dmp += ga;
        w.db[ja] -= gb;
        w.dI[ja] += gb;
      }

      // (3) Outputs of the chunk.
      intra_logd(Lk, Lk, 0, w.b, w.b, ig, w.lg, Lk, w.mint, w.arg);
      for (int64_t r = 0; r < Lk; ++r) w.mc[r] = std::max(w.b[r] + mp, w.mint[r]);
      gemm<T>(Trans::N, Trans::T, Lk, Lk, DHQK, (T)sc.s, q, DHQK, kk, DHQK, T(0), w.A, Lk);
      intra_apply<T>(Lk, Lk, 0, w.lg, Lk, w.mc, w.A, w.D, w.rowsum);
      for (int64_t r = 0; r < Lk; ++r) {
        const NormGrad ng = norm_grad(cache.den[(size_t)(bh * S + t0 + r)], w.mc[r], o.eps,
                                      dot(dh + r * DHV, hb + r * DHV, DHV));
        for (int64_t x = 0; x < DHV; ++x) w.dnum[r * DHV + x] = (T)((double)dh[r * DHV + x] * ng.inv);
        w.dden[r] = ng.dden;
        w.dm[r] = ng.dm;
        w.rowP[r] = 0;
        w.colP[r] = 0;
        w.beta[r] = std::exp((w.b[r] + mp) - w.mc[r]);
        for (int64_t x = 0; x < DHQK; ++x) w.Qb[r * DHQK + x] = (T)(w.beta[r] * sc.sq * (double)q[r * DHQK + x]);
      }
      intra_backward<T>(Lk, Lk, 0, DHQK, DHV, sc.s, w.A, w.D, w.dnum, w.dden, q, kk, v, w.Bm, dq,
                        T(0), dk, dv, w.rowP, w.colP);
      for (int64_t r = 0; r < Lk; ++r) {
        w.db[r] += w.rowP[r] - w.colP[r];
        w.dI[r] += w.colP[r];
      }
      // Inter part: num_i += Qb_i C_k, den_i += Qb_i . n_k.
      gemm<T>(Trans::N, Trans::T, Lk, DHQK, DHV, T(1), w.dnum, DHV, Cp, DHV, T(0), w.dQb, DHQK);
      for (int64_t r = 0; r < Lk; ++r) {
        T* dqb = w.dQb + r * DHQK;
        for (int64_t x = 0; x < DHQK; ++x) dqb[x] += (T)(w.dden[r] * (double)np[x]);
        const double sb = w.beta[r] * sc.sq;
        for (int64_t x = 0; x < DHQK; ++x) dq[r * DHQK + x] += (T)(sb * (double)dqb[x]);
        w.db[r] += dot(w.Qb + r * DHQK, dqb, DHQK);
      }
      gemm<T>(Trans::T, Trans::N, DHQK, DHV, Lk, T(1), w.Qb, DHQK, w.dnum, DHV, T(1), dC, DHV);
      for (int64_t x = 0; x < DHQK; ++x) {
        double acc = 0;
        for (int64_t r = 0; r < Lk; ++r) acc += w.dden[r] * (double)w.Qb[r * DHQK + x];
        dn[x] += (T)acc;
      }
      // m_i = maximum(b_i + m_k, logD_{i,arg_i}).
      for (int64_t r = 0; r < Lk; ++r) {
        double ga, gb;
        route_max(w.b[r] + mp, w.mint[r], w.dm[r], ga, gb);
        w.db[r] += ga + gb;
        dmp += ga;
        w.db[w.arg[r]] -= gb;
        w.dI[w.arg[r]] += gb;
      }
      dmk = dmp;

      // (4) Gates: g = b[Lk-1]; b is the cumsum of logsigmoid(f) within the chunk.
      w.db[Lk - 1] += dg;
      for (int64_t r = 0; r < Lk; ++r) g.di[bh * S + t0 + r] = (T)w.dI[r];
      cumsum_logsig_backward(Lk, f, w.db, g.df + bh * S + t0);
    }
    if (has_state) {
      if (g.dc0) std::memcpy(g.dc0 + bh * CS, dC, sizeof(T) * CS);
      if (g.dn0) std::memcpy(g.dn0 + bh * DHQK, dn, sizeof(T) * DHQK);
      if (g.dm0) g.dm0[bh] = (T)(dmk + dot(dC, Cbase, CS) + dot(dn, nbase, DHQK));
    }
  });
}

#define XLSTM_INST(T)                                                                           \
  template void mlstm_chunkwise_forward<T>(const MlstmDims&, const MlstmOptions&,               \
                                           const MlstmInputs<T>&, const MlstmOutputs<T>&,       \
                                           MlstmCache<T>*, MlstmWorkspace&);                    \
  template void mlstm_chunkwise_backward<T>(const MlstmDims&, const MlstmOptions&,              \
                                            const MlstmInputs<T>&, const T*,                    \
                                            const MlstmOutputGrads<T>&, const MlstmCache<T>&,   \
                                            const MlstmGrads<T>&, MlstmWorkspace&);
XLSTM_INST(float)
XLSTM_INST(double)
#undef XLSTM_INST

}  // namespace xlstm
