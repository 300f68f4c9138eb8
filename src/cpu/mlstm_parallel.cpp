// Parallel (quadratic) mLSTM, spec §2.2, tiled over query rows so the scratch is O(tile * S)
// instead of O(S^2). Row stabiliser m_r = max_c logD_rc, logD_rc = (F_r - F_c) + i_c, with F
// the inclusive cumsum of logsigmoid(f) over the whole sequence (kept in double).
#include <cstring>

#include "cpu/mlstm_impl.h"

namespace xlstm {

using namespace mlstm_detail;

namespace {

constexpr int64_t kTileQ = 64;

template <class T>
struct ParallelBufs {
  double *F, *lg, *mx, *rowsum, *dden, *dm, *dF, *dI, *rowP, *colP;
  int64_t* arg;
  T *A, *D, *Bm, *dnum;
  void carve(Arena& a, int64_t S, int64_t DHV, bool bwd) {
    const int64_t tq = std::min(kTileQ, S);
    F = a.take<double>(S);
    lg = a.take<double>(tq * S);
    mx = a.take<double>(tq);
    rowsum = a.take<double>(tq);
    arg = a.take<int64_t>(tq);
    A = a.take<T>(tq * S);
    if (!bwd) return;
    D = a.take<T>(tq * S);
    Bm = a.take<T>(tq * S);
    dnum = a.take<T>(tq * DHV);
    dden = a.take<double>(tq);
    dm = a.take<double>(tq);
    dF = a.take<double>(S);
    dI = a.take<double>(S);
    rowP = a.take<double>(tq);
    colP = a.take<double>(S);
  }
};

template <class T>
size_t parallel_bytes(const MlstmDims& d, bool bwd) {
  Arena a(nullptr);
  ParallelBufs<T> b;
  b.carve(a, d.S, d.DHV, bwd);
  return a.used();
}

}  // namespace

template <class T>
void mlstm_parallel_forward(const MlstmDims& d, const MlstmOptions& o, const MlstmInputs<T>& in,
                            T* h, MlstmCache<T>* cache, MlstmWorkspace& ws) {
  const int64_t S = d.S, DHQK = d.DHQK, DHV = d.DHV, BH = d.B * d.NH;
  const double s = scales(o.scale_on, DHQK).s;
  if (cache) {
    cache->m.resize((size_t)(BH * S));
    cache->den.resize((size_t)(BH * S));
  }
  for_each_head(BH, (double)BH * S * S * (DHQK + DHV), ws, parallel_bytes<T>(d, false), [&](int64_t bh, unsigned char* mem) {
    Arena arena(mem);
    ParallelBufs<T> b;
    b.carve(arena, S, DHV, false);
    const T* q = in.q + bh * S * DHQK;
    const T* k = in.k + bh * S * DHQK;
    const T* v = in.v + bh * S * DHV;
    const T* ig = in.i + bh * S;
    T* hb = h + bh * S * DHV;
    cumsum_logsig(S, in.f + bh * S, b.F);
    for (int64_t r0 = 0; r0 < S; r0 += kTileQ) {
      const int64_t Lq = std::min(kTileQ, S - r0), Lk = r0 + Lq;
      intra_logd(Lq, Lk, r0, b.F + r0, b.F, ig, b.lg, Lk, b.mx, b.arg);
      gemm<T>(Trans::N, Trans::T, Lq, Lk, DHQK, (T)s, q + r0 * DHQK, DHQK, k, DHQK, T(0), b.A, Lk);
      intra_apply<T>(Lq, Lk, r0, b.lg, Lk, b.mx, b.A, nullptr, b.rowsum);
      T* hr = hb + r0 * DHV;
      gemm<T>(Trans::N, Trans::N, Lq, DHV, Lk, T(1), b.A, Lk, v, DHV, T(0), hr, DHV);
      for (int64_t r = 0; r < Lq; ++r) {
        const double N = std::max(std::fabs(b.rowsum[r]), std::exp(-b.mx[r]));
        const T inv = (T)(1.0 / (N + o.eps));
        for (int64_t x = 0; x < DHV; ++x) hr[r * DHV + x] *= inv;
        if (cache) {
          cache->m[(size_t)(bh * S + r0 + r)] = b.mx[r];
          cache->den[(size_t)(bh * S + r0 + r)] = b.rowsum[r];
        }
      }
    }
  });
}

template <class T>
void mlstm_parallel_backward(const MlstmDims& d, const MlstmOptions& o, const MlstmInputs<T>& in,
                             const T* h, const T* dh, const MlstmCache<T>& cache,
                             const MlstmGrads<T>& g, MlstmWorkspace& ws) {
  const int64_t S = d.S, DHQK = d.DHQK, DHV = d.DHV, BH = d.B * d.NH;
  const double s = scales(o.scale_on, DHQK).s;
  for_each_head(BH, (double)BH * S * S * (DHQK + DHV), ws, parallel_bytes<T>(d, true), [&](int64_t bh, unsigned char* mem) {
    Arena arena(mem);
    ParallelBufs<T> b;
    b.carve(arena, S, DHV, true);
    const T* q = in.q + bh * S * DHQK;
    const T* k = in.k + bh * S * DHQK;
    const T* v = in.v + bh * S * DHV;
    const T* ig = in.i + bh * S;
    const T* f = in.f + bh * S;
    const T* hb = h + bh * S * DHV;
    const T* dhb = dh + bh * S * DHV;
    T* dq = g.dq + bh * S * DHQK;
    T* dk = g.dk + bh * S * DHQK;
    T* dv = g.dv + bh * S * DHV;
    std::fill(dk, dk + S * DHQK, T(0));
    std::fill(dv, dv + S * DHV, T(0));
    std::fill(b.dF, b.dF + S, 0.0);
    std::fill(b.dI, b.dI + S, 0.0);
    cumsum_logsig(S, f, b.F);
    const double* mrow = cache.m.data() + bh * S;
    const double* den = cache.den.data() + bh * S;
    for (int64_t r0 = 0; r0 < S; r0 += kTileQ) {
      const int64_t Lq = std::min(kTileQ, S - r0), Lk = r0 + Lq;
      intra_logd(Lq, Lk, r0, b.F + r0, b.F, ig, b.lg, Lk, b.mx, b.arg);
      gemm<T>(Trans::N, Trans::T, Lq, Lk, DHQK, (T)s, q + r0 * DHQK, DHQK, k, DHQK, T(0), b.A, Lk);
      intra_apply<T>(Lq, Lk, r0, b.lg, Lk, mrow + r0, b.A, b.D, b.rowsum);
      for (int64_t r = 0; r < Lq; ++r) {
        const T* dhr = dhb + (r0 + r) * DHV;
        const NormGrad ng = norm_grad(den[r0 + r], mrow[r0 + r], o.eps,
                                      dot(dhr, hb + (r0 + r) * DHV, DHV));
        for (int64_t x = 0; x < DHV; ++x) b.dnum[r * DHV + x] = (T)((double)dhr[x] * ng.inv);
        b.dden[r] = ng.dden;
        b.dm[r] = ng.dm;
        b.rowP[r] = 0;
      }
      std::fill(b.colP, b.colP + Lk, 0.0);
      intra_backward<T>(Lq, Lk, r0, DHQK, DHV, s, b.A, b.D, b.dnum, b.dden, q + r0 * DHQK, k, v,
                        b.Bm, dq + r0 * DHQK, T(0), dk, dv, b.rowP, b.colP);
      for (int64_t c = 0; c < Lk; ++c) {
        b.dI[c] += b.colP[c];
        b.dF[c] -= b.colP[c];
      }
      for (int64_t r = 0; r < Lq; ++r) {
        // m_r = logD_{r, arg}: its gradient reaches F_r, F_arg and i_arg.
        const int64_t j = b.arg[r];
        b.dF[r0 + r] += b.rowP[r] + b.dm[r];
        b.dF[j] -= b.dm[r];
        b.dI[j] += b.dm[r];
      }
    }
    for (int64_t t = 0; t < S; ++t) g.di[bh * S + t] = (T)b.dI[t];
    cumsum_logsig_backward(S, f, b.dF, g.df + bh * S);
  });
}

#define XLSTM_INST(T)                                                                          \
  template void mlstm_parallel_forward<T>(const MlstmDims&, const MlstmOptions&,               \
                                          const MlstmInputs<T>&, T*, MlstmCache<T>*,           \
                                          MlstmWorkspace&);                                    \
  template void mlstm_parallel_backward<T>(const MlstmDims&, const MlstmOptions&,              \
                                           const MlstmInputs<T>&, const T*, const T*,          \
                                           const MlstmCache<T>&, const MlstmGrads<T>&,         \
                                           MlstmWorkspace&);
XLSTM_INST(float)
XLSTM_INST(double)
#undef XLSTM_INST

}  // namespace xlstm
