#include "ref/mlstm_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace xlstm::ref {

namespace {

double logsig(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }

struct Sc {
  double s, sq, sk;
};
Sc scales_of(ScaleOn on, int64_t DHQK) {
  const double s = 1.0 / std::sqrt((double)DHQK);
  return on == ScaleOn::Q ? Sc{s, s, 1.0} : Sc{s, 1.0, s};
}

// Initial state of head bh into C (DHQK*DHV), n (DHQK); returns m.
double load_state(const MlstmDims& d, int64_t bh, const double* c0, const double* n0,
                  const double* m0, std::vector<double>& C, std::vector<double>& n) {
  const int64_t CS = d.DHQK * d.DHV;
  C.assign((size_t)CS, 0.0);
  n.assign((size_t)d.DHQK, 0.0);
  for (int64_t x = 0; c0 && x < CS; ++x) C[(size_t)x] = c0[bh * CS + x];
  for (int64_t x = 0; n0 && x < d.DHQK; ++x) n[(size_t)x] = n0[bh * d.DHQK + x];
  return m0 ? m0[bh] : 0.0;
}

void store_state(const MlstmDims& d, int64_t bh, const std::vector<double>& C,
                 const std::vector<double>& n, double mm, double* c, double* nn, double* m) {
  const int64_t CS = d.DHQK * d.DHV;
  for (int64_t x = 0; c && x < CS; ++x) c[bh * CS + x] = C[(size_t)x];
  for (int64_t x = 0; nn && x < d.DHQK; ++x) nn[bh * d.DHQK + x] = n[(size_t)x];
  if (m) m[bh] = mm;
}

}  // namespace

void mlstm_recurrent_ref(const MlstmDims& d, double eps, ScaleOn scale, const double* q,
                         const double* k, const double* v, const double* i, const double* f,
                         const double* c0, const double* n0, const double* m0, double* h,
                         double* c, double* n, double* m) {
  const Sc sc = scales_of(scale, d.DHQK);
  const int64_t DK = d.DHQK, DV = d.DHV;
  std::vector<double> C, nv;
  for (int64_t bh = 0; bh < d.B * d.NH; ++bh) {
    double mp = load_state(d, bh, c0, n0, m0, C, nv);
    for (int64_t t = 0; t < d.S; ++t) {
      const int64_t r = bh * d.S + t;
      const double lf = logsig(f[r]);
      const double mt = std::max(lf + mp, i[r]);
      const double fa = std::exp(lf + mp - mt), ia = std::exp(i[r] - mt);
      for (int64_t x = 0; x < DK; ++x) {
        for (int64_t y = 0; y < DV; ++y)
          C[(size_t)(x * DV + y)] = fa * C[(size_t)(x * DV + y)] + ia * sc.sk * k[r * DK + x] * v[r * DV + y];
        nv[(size_t)x] = fa * nv[(size_t)x] + ia * sc.sk * k[r * DK + x];
      }
      double den = 0;
      for (int64_t x = 0; x < DK; ++x) den += sc.sq * q[r * DK + x] * nv[(size_t)x];
      const double N = std::max(std::fabs(den), std::exp(-mt));
      for (int64_t y = 0; y < DV; ++y) {
        double num = 0;
        for (int64_t x = 0; x < DK; ++x) num += sc.sq * q[r * DK + x] * C[(size_t)(x * DV + y)];
        h[r * DV + y] = num / (N + eps);
      }
      mp = mt;
    }
    store_state(d, bh, C, nv, mp, c, n, m);
  }
}

void mlstm_parallel_ref(const MlstmDims& d, double eps, const double* q, const double* k,
                        const double* v, const double* i, const double* f, double* h) {
  const double s = 1.0 / std::sqrt((double)d.DHQK);
  const int64_t S = d.S, DK = d.DHQK, DV = d.DHV;
  std::vector<double> F((size_t)S), logD((size_t)S);
  for (int64_t bh = 0; bh < d.B * d.NH; ++bh) {
    const int64_t o = bh * S;
    double acc = 0;
    for (int64_t t = 0; t < S; ++t) F[(size_t)t] = (acc += logsig(f[o + t]));
    for (int64_t t = 0; t < S; ++t) {
      double mt = -std::numeric_limits<double>::infinity();
      for (int64_t u = 0; u <= t; ++u) {
        logD[(size_t)u] = F[(size_t)t] - F[(size_t)u] + i[o + u];
        mt = std::max(mt, logD[(size_t)u]);
      }
      double den = 0;
      std::vector<double> num((size_t)DV, 0.0);
      for (int64_t u = 0; u <= t; ++u) {
        double qk = 0;
        for (int64_t x = 0; x < DK; ++x) qk += q[(o + t) * DK + x] * k[(o + u) * DK + x];
        const double ct = qk * s * std::exp(logD[(size_t)u] - mt);
        den += ct;
        for (int64_t y = 0; y < DV; ++y) num[(size_t)y] += ct * v[(o + u) * DV + y];
      }
      const double N = std::max(std::fabs(den), std::exp(-mt));
      for (int64_t y = 0; y < DV; ++y) h[(o + t) * DV + y] = num[(size_t)y] / (N + eps);
    }
  }
}

void mlstm_chunkwise_ref(const MlstmDims& d, double eps, int64_t L, ScaleOn scale,
                         const double* q, const double* k, const double* v, const double* i,
                         const double* f, const double* c0, const double* n0, const double* m0,
                         double* h, double* c, double* n, double* m) {
  const Sc sc = scales_of(scale, d.DHQK);
  const int64_t S = d.S, DK = d.DHQK, DV = d.DHV;
  const double ninf = -std::numeric_limits<double>::infinity();
  std::vector<double> C, nv, b;
  for (int64_t bh = 0; bh < d.B * d.NH; ++bh) {
    double mp = load_state(d, bh, c0, n0, m0, C, nv);
    for (int64_t t0 = 0; t0 < S; t0 += L) {
      const int64_t Lk = std::min(L, S - t0), o = bh * S + t0;
      b.assign((size_t)Lk, 0.0);
      double acc = 0;
      for (int64_t j = 0; j < Lk; ++j) b[(size_t)j] = (acc += logsig(f[o + j]));
      const double g = b[(size_t)Lk - 1];
      // Outputs from the state before the chunk and the intra-chunk part.
      for (int64_t r = 0; r < Lk; ++r) {
        double mintra = ninf;
        for (int64_t j = 0; j <= r; ++j) mintra = std::max(mintra, b[(size_t)r] - b[(size_t)j] + i[o + j]);
        const double minter = b[(size_t)r] + mp, mr = std::max(minter, mintra);
        const double beta = std::exp(minter - mr);
        double den = 0;
        std::vector<double> num((size_t)DV, 0.0);
        for (int64_t x = 0; x < DK; ++x) {
          const double qs = sc.sq * q[(o + r) * DK + x];
          den += beta * qs * nv[(size_t)x];
          for (int64_t y = 0; y < DV; ++y) num[(size_t)y] += beta * qs * C[(size_t)(x * DV + y)];
        }
        for (int64_t j = 0; j <= r; ++j) {
          double qk = 0;
          for (int64_t x = 0; x < DK; ++x) qk += q[(o + r) * DK + x] * k[(o + j) * DK + x];
          const double ct = sc.s * qk * std::exp(b[(size_t)r] - b[(size_t)j] + i[o + j] - mr);
          den += ct;
          for (int64_t y = 0; y < DV; ++y) num[(size_t)y] += ct * v[(o + j) * DV + y];
        }
        const double N = std::max(std::fabs(den), std::exp(-mr));
        for (int64_t y = 0; y < DV; ++y) h[(o + r) * DV + y] = num[(size_t)y] / (N + eps);
      }
      // State after the chunk.
      double amax = ninf;
      for (int64_t j = 0; j < Lk; ++j) amax = std::max(amax, g - b[(size_t)j] + i[o + j]);
      const double mn = std::max(g + mp, amax), gamma = std::exp(g + mp - mn);
      for (auto& x : C) x *= gamma;
      for (auto& x : nv) x *= gamma;
      for (int64_t j = 0; j < Lk; ++j) {
        const double alpha = std::exp(g - b[(size_t)j] + i[o + j] - mn);
        for (int64_t x = 0; x < DK; ++x) {
          const double ka = alpha * sc.sk * k[(o + j) * DK + x];
          nv[(size_t)x] += ka;
          for (int64_t y = 0; y < DV; ++y) C[(size_t)(x * DV + y)] += ka * v[(o + j) * DV + y];
        }
      }
      mp = mn;
    }
    store_state(d, bh, C, nv, mp, c, n, m);
  }
}

}  // namespace xlstm::ref
