#include "ref/ops_ref.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace xlstm::ref {

void linear_ref(int64_t N, int64_t I, int64_t O, const double* x, const double* W,
                const double* b, double* y) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      double acc = b ? b[o] : 0.0;
      for (int64_t i = 0; i < I; ++i) acc += x[n * I + i] * W[o * I + i];
      y[n * O + o] = acc;
    }
}

void embedding_ref(int64_t N, int64_t V, int64_t D, const int64_t* ids, const double* W,
                   double* y) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) y[n * D + d] = W[ids[n] * D + d];
}

void multihead_norm_ref(int64_t N, int64_t NH, int64_t DH, const double* x, const double* w,
                        const double* b, double eps, NormScale scale, double* y) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < NH; ++h) {
      const int64_t off = n * NH * DH + h * DH;
      double mean = 0;
      for (int64_t d = 0; d < DH; ++d) mean += x[off + d];
      mean /= (double)DH;
      double var = 0;
      for (int64_t d = 0; d < DH; ++d) var += (x[off + d] - mean) * (x[off + d] - mean);
      var /= (double)DH;
      for (int64_t d = 0; d < DH; ++d) {
        const int64_t j = h * DH + d;
        double s = 1.0;
        if (scale == NormScale::Plain && w) s = w[j];
        if (scale == NormScale::OnePlusWeight) s = 1.0 + (w ? w[j] : 0.0);
        y[off + d] = (x[off + d] - mean) / std::sqrt(var + eps) * s + (b ? b[j] : 0.0);
      }
    }
}

void layernorm_ref(int64_t N, int64_t D, const double* x, const double* w, const double* b,
                   double eps, NormScale scale, double* y) {
  multihead_norm_ref(N, 1, D, x, w, b, eps, scale, y);
}

void rmsnorm_ref(int64_t N, int64_t D, const double* x, const double* w, double eps, double* y) {
  for (int64_t n = 0; n < N; ++n) {
    double ms = 0;
    for (int64_t d = 0; d < D; ++d) ms += x[n * D + d] * x[n * D + d];
    ms /= (double)D;
    for (int64_t d = 0; d < D; ++d)
      y[n * D + d] = x[n * D + d] / std::sqrt(ms + eps) * (w ? w[d] : 1.0);
  }
}

void conv1d_ref(int64_t B, int64_t T, int64_t F, int64_t K, const double* x, const double* w,
                const double* bias, const double* state_in, double* y, double* state_out) {
  const int64_t S = K - 1;
  // xpad (B, S+T, F) = concat(state_in, x) along time.
  std::vector<double> xpad((size_t)(B * (S + T) * F), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < S + T; ++p)
      for (int64_t f = 0; f < F; ++f) {
        double v = 0;
        if (p < S) v = state_in ? state_in[(b * S + p) * F + f] : 0.0;
        else v = x[(b * T + p - S) * F + f];
        xpad[(size_t)((b * (S + T) + p) * F + f)] = v;
      }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t f = 0; f < F; ++f) {
        double acc = bias ? bias[f] : 0.0;
        for (int64_t k = 0; k < K; ++k)
          acc += w[f * K + k] * xpad[(size_t)((b * (S + T) + t + k) * F + f)];
        y[(b * T + t) * F + f] = acc;
      }
  if (state_out)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < S; ++j)
        for (int64_t f = 0; f < F; ++f)
          state_out[(b * S + j) * F + f] = xpad[(size_t)((b * (S + T) + T + j) * F + f)];
}

void act_ref(Act a, int64_t n, const double* x, double* y) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    switch (a) {
      case Act::Identity: y[i] = v; break;
      case Act::Sigmoid: y[i] = 1.0 / (1.0 + std::exp(-v)); break;
      case Act::Tanh: y[i] = std::tanh(v); break;
      case Act::SiLU: y[i] = v / (1.0 + std::exp(-v)); break;
      case Act::GELU: y[i] = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); break;
      case Act::ReLU: y[i] = v > 0 ? v : 0.0; break;
    }
  }
}

void headwise_ref(int64_t N, int64_t NH, int64_t I, int64_t O, const double* x, const double* W,
                  const double* b, double* y) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t o = 0; o < O; ++o) {
        double acc = b ? b[h * O + o] : 0.0;
        for (int64_t d = 0; d < I; ++d) acc += x[n * NH * I + h * I + d] * W[(h * O + o) * I + d];
        y[n * NH * O + h * O + o] = acc;
      }
}

double xent_ref(int64_t N, int64_t V, const double* logits, const int64_t* targets,
                int64_t ignore_index) {
  double total = 0;
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] == ignore_index) continue;
    const double* z = logits + n * V;
    double mx = z[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, z[v]);
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(z[v] - mx);
    total += mx + std::log(s) - z[targets[n]];
    ++count;
  }
  return count ? total / (double)count : 0.0;
}

}  // namespace xlstm::ref
