// Internal helpers shared by mlstm_parallel.cpp, mlstm_chunkwise.cpp and mlstm_step.cpp.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <cstdint>
#include <limits>

#include "cpu/activations.h"
#include "cpu/fastmath.h"
#include "cpu/gemm.h"
#include "cpu/mlstm.h"

namespace xlstm::mlstm_detail {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Bump allocator over one thread's workspace slice. With base == nullptr it only counts, so
// the same carve sequence first sizes the workspace and then hands out the pointers.
class Arena {
 public:
  explicit Arena(unsigned char* base) : base_(base) {}
  template <class U>
  U* take(int64_t count) {
    used_ = (used_ + 63) & ~size_t(63);
    U* p = base_ ? reinterpret_cast<U*>(base_ + used_) : nullptr;
    used_ += sizeof(U) * (size_t)std::max<int64_t>(count, 1);
    return p;
  }
  size_t used() const { return used_ + 64; }

 private:
  unsigned char* base_;
  size_t used_ = 0;
};

// Effective scales: S_ij = s q_i.k_j in every form; the state side uses q~ = sq q, k~ = sk k.
struct Scales {
  double s, sq, sk;
};
inline Scales scales(ScaleOn on, int64_t DHQK) {
  const double s = 1.0 / std::sqrt((double)DHQK);
  return on == ScaleOn::Q ? Scales{s, s, 1.0} : Scales{s, 1.0, s};
}

// Gradient g of max(a, b) as torch.maximum routes it: to the larger, halves at an exact tie.
inline void route_max(double a, double b, double g, double& ga, double& gb) {
  if (a > b) ga = g, gb = 0;
  else if (b > a) ga = 0, gb = g;
  else ga = gb = 0.5 * g;
}

// Per-position backward scalars of h = num / (N + eps), N = max(|den|, e^-m):
// dnum scale 1/(N+eps), dden (|den| branch only), dm = eps * dL/dN (the exact m-path term).
struct NormGrad {
  double inv, dden, dm;
};
inline NormGrad norm_grad(double den, double m, double eps, double hdot /* dh . h */) {
  const double floor = std::exp(-m);
  const double a = std::fabs(den);
  const double N = std::max(a, floor);
  const double inv = 1.0 / (N + eps);
  const double dN = -hdot * inv;
  double dden = 0;
  if (a > floor) dden = den > 0 ? dN : (den < 0 ? -dN : 0.0);
  else if (a == floor) dden = 0.5 * (den > 0 ? dN : (den < 0 ? -dN : 0.0));
  // At an exact tie torch sends the other half to exp(-m); the closed-form dm below is the
  // derivative of either branch, so only the |den| half needs the split.
  return {inv, dden, eps * dN};
}

template <class T>
inline double dot(const T* a, const T* b, int64_t n) {
  double s = 0;
  for (int64_t x = 0; x < n; ++x) s += (double)a[x] * (double)b[x];
  return s;
}

// Runs body(bh, slice) for every (batch, head), in parallel when there are several and the
// call is worth it (`work`: a rough flop count of the whole call), each thread with its own
// workspace slice of `bytes`.
template <class Body>
void for_each_head(int64_t BH, double work, MlstmWorkspace& ws, size_t bytes, Body body) {
  const int threads =
      BH > 1 && work > 2e5 ? (int)std::min<int64_t>(omp_get_max_threads(), BH) : 1;
  ws.reserve(threads, bytes);
  if (threads == 1) {  // no OpenMP construct at all: see cpu/parallel.h
    for (int64_t bh = 0; bh < BH; ++bh) body(bh, ws.slice(0));
    return;
  }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t bh = 0; bh < BH; ++bh) body(bh, ws.slice(omp_get_thread_num()));
}

// Intra-block matrices of the causal part: rows r (queries) against columns c (keys), column c
// visible to row r iff c <= r + off. logD_rc = (Fr_r - Fc_c) + ig_c (the official expression
// order). Fills lg[r*ld + c] with logD (masked: -inf) and returns via mx/arg the row max and
// its first argmax (torch.max(dim) routes its gradient to that one index).
template <class T>
inline void intra_logd(int64_t Lq, int64_t Lk, int64_t off, const double* Fr, const double* Fc,
                       const T* ig, double* lg, int64_t ld, double* mx, int64_t* arg) {
  for (int64_t r = 0; r < Lq; ++r) {
    double* row = lg + r * ld;
    const int64_t cend = std::min(Lk, r + off + 1);
    double best = kNegInf;
    int64_t ba = 0;
    for (int64_t c = 0; c < cend; ++c) {
      const double x = (Fr[r] - Fc[c]) + (double)ig[c];
      row[c] = x;
      if (x > best) best = x, ba = c;
    }
    for (int64_t c = cend; c < Lk; ++c) row[c] = kNegInf;
    mx[r] = best;
    arg[r] = ba;
  }
}

// A (Lq x Lk, holding s*Q K^T) becomes Ct = A .* exp(logD - m_r) (0 where masked); D keeps the
// decay factors when non-null; rowsum receives sum_c Ct_rc.
template <class T>
inline void intra_apply(int64_t Lq, int64_t Lk, int64_t off, const double* lg, int64_t ld,
                        const double* m, T* A, T* D, double* rowsum) {
  for (int64_t r = 0; r < Lq; ++r) {
    const double* lrow = lg + r * ld;
    T* arow = A + r * Lk;
    T* drow = D ? D + r * Lk : nullptr;
    const int64_t cend = std::min(Lk, r + off + 1);
    double s = 0;
    if constexpr (std::is_same_v<T, float>) {
      // float: the exponent rounded to float and the vectorisable polynomial exp (~1e-7
      // relative, the size of the rounding of dd to float anyway); libm's exp kept the loop
      // scalar and was the larger part of the chunkwise kernel at small head sizes.
      const double mr = m[r];
      if (drow) {
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < cend; ++c) {
          const float dd = PwMath<float>::exp((float)(lrow[c] - mr));
          const float ct = arow[c] * dd;
          arow[c] = ct;
          drow[c] = dd;
          s += (double)ct;
        }
      } else {
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < cend; ++c) {
          const float ct = arow[c] * PwMath<float>::exp((float)(lrow[c] - mr));
          arow[c] = ct;
          s += (double)ct;
        }
      }
    } else {
      for (int64_t c = 0; c < cend; ++c) {
        const T dd = (T)std::exp(lrow[c] - m[r]);
        const T ct = arow[c] * dd;
        arow[c] = ct;
        if (drow) drow[c] = dd;
        s += (double)ct;
      }
    }
    for (int64_t c = cend; c < Lk; ++c) {
      arow[c] = T(0);
      if (drow) drow[c] = T(0);
    }
    rowsum[r] = s;
  }
}

// Backward of the intra block. In: Ct (Lq x Lk), D, dnum (Lq x DHV), dden (Lq), Q block, K and
// V columns. Accumulates dv_cols += Ct^T dnum, dq_rows = / += s*dSm K (beta_q), dk_cols +=
// s*dSm^T Q, and the log-gate gradient: rowP[r] += sum_c P_rc, colP[c] += sum_r P_rc with
// P = dCt .* Ct (dlogD). Bm is Lq x Lk scratch.
template <class T>
inline void intra_backward(int64_t Lq, int64_t Lk, int64_t off, int64_t DHQK, int64_t DHV,
                           double s, const T* Ct, const T* D, const T* dnum, const double* dden,
                           const T* Qr, const T* Kc, const T* Vc, T* Bm, T* dq_rows, T beta_q,
                           T* dk_cols, T* dv_cols, double* rowP, double* colP) {
  gemm<T>(Trans::T, Trans::N, Lk, DHV, Lq, T(1), Ct, Lk, dnum, DHV, T(1), dv_cols, DHV);
  gemm<T>(Trans::N, Trans::T, Lq, Lk, DHV, T(1), dnum, DHV, Vc, DHV, T(0), Bm, Lk);
  for (int64_t r = 0; r < Lq; ++r) {
    T* brow = Bm + r * Lk;
    const T* crow = Ct + r * Lk;
    const T* drow = D + r * Lk;
    const int64_t cend = std::min(Lk, r + off + 1);
    double rs = 0;
    for (int64_t c = 0; c < cend; ++c) {
      const double dct = (double)brow[c] + dden[r];
      const double p = dct * (double)crow[c];
      rs += p;
      colP[c] += p;
      brow[c] = (T)(dct * (double)drow[c]);
    }
    for (int64_t c = cend; c < Lk; ++c) brow[c] = T(0);
    rowP[r] += rs;
  }
  gemm<T>(Trans::N, Trans::N, Lq, DHQK, Lk, (T)s, Bm, Lk, Kc, DHQK, beta_q, dq_rows, DHQK);
  gemm<T>(Trans::T, Trans::N, Lk, DHQK, Lq, (T)s, Bm, Lk, Qr, DHQK, T(1), dk_cols, DHQK);
}

// Gate tail: dF (gradient w.r.t. the inclusive cumsum of logsigmoid(f) over n positions) ->
// df = revcumsum(dF) * sigmoid(-f).
template <class T>
inline void cumsum_logsig_backward(int64_t n, const T* f, const double* dF, T* df) {
  double acc = 0;
  for (int64_t t = n - 1; t >= 0; --t) {
    acc += dF[t];
    df[t] = (T)(acc * sigmoid<double>(-(double)f[t]));
  }
}

// Inclusive cumsum of logsigmoid(f) over n positions.
template <class T>
inline void cumsum_logsig(int64_t n, const T* f, double* F) {
  double acc = 0;
  for (int64_t t = 0; t < n; ++t) F[t] = (acc += logsigmoid<double>((double)f[t]));
}

// Seeds the backward pass with the gradient of the returned final state of head `bh`:
// dC, dn (written) from dout.dc / dout.dn (zero when null), and returns dL/dm_last including
// the explicit m-path term -sum(dC*C_last) - sum(dn*n_last) (the state is stabilised by m).
template <class T>
double seed_final_state_grad(const MlstmOutputGrads<T>& dout, int64_t bh, int64_t DHQK,
                             int64_t DHV, const T* C_last, const T* n_last, T* dC, T* dn) {
  const int64_t CS = DHQK * DHV;
  double dm = dout.dm ? (double)dout.dm[bh] : 0.0;
  if (dout.dc) {
    std::memcpy(dC, dout.dc + bh * CS, sizeof(T) * CS);
    dm -= dot(dC, C_last, CS);
  } else {
    std::fill(dC, dC + CS, T(0));
  }
  if (dout.dn) {
    std::memcpy(dn, dout.dn + bh * DHQK, sizeof(T) * DHQK);
    dm -= dot(dn, n_last, DHQK);
  } else {
    std::fill(dn, dn + DHQK, T(0));
  }
  return dm;
}

}  // namespace xlstm::mlstm_detail
