#include "ref/lstm_ref.h"

#include <cmath>
#include <vector>

namespace xlstm::ref {

namespace {
double sig(double v) { return 1.0 / (1.0 + std::exp(-v)); }
}  // namespace

void lstm_layer_ref(int64_t B, int64_t T, int64_t I, int64_t H, LstmDirection dir, const double* x,
                    const double* W_ih, const double* W_hh, const double* b_ih, const double* b_hh,
                    const double* h0, const double* c0, double* y, int64_t ldy, double* h_n,
                    double* c_n) {
  std::vector<double> h(H), c(H), pre(4 * H);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = 0; j < H; ++j) {
      h[j] = h0 ? h0[b * H + j] : 0.0;
      c[j] = c0 ? c0[b * H + j] : 0.0;
    }
    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = dir == LstmDirection::Forward ? s : T - 1 - s;
      const double* xt = x + (b * T + t) * I;
      for (int64_t r = 0; r < 4 * H; ++r) {
        double a = (b_ih ? b_ih[r] : 0.0) + (b_hh ? b_hh[r] : 0.0);
        for (int64_t k = 0; k < I; ++k) a += W_ih[r * I + k] * xt[k];
        for (int64_t k = 0; k < H; ++k) a += W_hh[r * H + k] * h[k];
        pre[r] = a;
      }
      for (int64_t j = 0; j < H; ++j) {
        const double ig = sig(pre[j]), fg = sig(pre[H + j]), gg = std::tanh(pre[2 * H + j]),
                     og = sig(pre[3 * H + j]);
        c[j] = fg * c[j] + ig * gg;
        h[j] = og * std::tanh(c[j]);
        y[(b * T + t) * ldy + j] = h[j];
      }
    }
    for (int64_t j = 0; j < H; ++j) {
      if (h_n) h_n[b * H + j] = h[j];
      if (c_n) c_n[b * H + j] = c[j];
    }
  }
}

void lstm_stack_ref(int64_t B, int64_t T, int64_t I, int64_t H, int64_t L, int64_t D,
                    const LstmRefParams& p, const double* x, const double* h0, const double* c0,
                    double* y, double* h_n, double* c_n) {
  std::vector<double> in(x, x + B * T * I), out((size_t)(B * T * D * H));
  int64_t in_size = I;
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t d = 0; d < D; ++d) {
      const int64_t k = l * D + d, s = k * B * H;
      lstm_layer_ref(B, T, in_size, H, d == 0 ? LstmDirection::Forward : LstmDirection::Reverse,
                     in.data(), p.w_ih[k], p.w_hh[k], p.b_ih[k], p.b_hh[k], h0 ? h0 + s : nullptr,
                     c0 ? c0 + s : nullptr, out.data() + d * H, D * H, h_n + s, c_n + s);
    }
    in = out;
    in_size = D * H;
  }
  std::copy(out.begin(), out.end(), y);
}

}  // namespace xlstm::ref
