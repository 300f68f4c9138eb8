#include "ref/slstm_ref.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ref/ops_ref.h"

namespace xlstm::ref {

void slstm_cell_ref(int64_t B, int64_t T, int64_t NH, int64_t DH, const double* x,
                    const double* R, const double* bias, const double* state0, double* y,
                    double* state_out) {
  const int64_t H = NH * DH;
  // s[k][b*H + j]: k = 0 y, 1 c, 2 n, 3 m
  std::vector<double> s[4];
  for (int k = 0; k < 4; ++k) {
    s[k].assign((size_t)(B * H), 0.0);
    if (state0) std::copy(state0 + k * B * H, state0 + (k + 1) * B * H, s[k].begin());
  }
  std::vector<double> raw((size_t)(4 * H));
  for (int64_t t = 0; t < T; ++t) {
    bool all_n_zero = true;
    for (double v : s[2]) all_n_zero = all_n_zero && v == 0.0;
    std::vector<double> ns[4];
    for (int k = 0; k < 4; ++k) ns[k].assign((size_t)(B * H), 0.0);
    for (int64_t b = 0; b < B; ++b) {
      // raw = Wx + R y(t-1) + b
      for (int64_t g = 0; g < 4; ++g)
        for (int64_t h = 0; h < NH; ++h)
          for (int64_t o = 0; o < DH; ++o) {
            double ry = 0;
            for (int64_t i = 0; i < DH; ++i)
              ry += R[(h * 4 * DH + g * DH + o) * DH + i] * s[0][(size_t)(b * H + h * DH + i)];
            const int64_t f = g * H + h * DH + o;
            raw[(size_t)f] = x[(b * T + t) * 4 * H + f] + ry + bias[f];
          }
      for (int64_t j = 0; j < H; ++j) {
        const double ir = raw[(size_t)j], fr = raw[(size_t)(H + j)];
        const double zr = raw[(size_t)(2 * H + j)], orr = raw[(size_t)(3 * H + j)];
        const size_t k = (size_t)(b * H + j);
        const double logsig_f = fr >= 0 ? -std::log1p(std::exp(-fr)) : fr - std::log1p(std::exp(fr));
        const double lfm = s[3][k] + logsig_f;
        const double m = all_n_zero ? ir : std::max(ir, lfm);
        const double ig = std::min(std::exp(ir - m), 1.0);
        const double fg = std::min(std::exp(lfm - m), 1.0);
        const double c = fg * s[1][k] + ig * std::tanh(zr);
        const double n = fg * s[2][k] + ig;
        const double o = 1.0 / (1.0 + std::exp(-orr));
        ns[0][k] = o * c / n;
        ns[1][k] = c;
        ns[2][k] = n;
        ns[3][k] = m;
        const int64_t h = j / DH, d = j % DH;
        y[((b * NH + h) * T + t) * DH + d] = ns[0][k];
      }
    }
    for (int k = 0; k < 4; ++k) s[k] = ns[k];
  }
  if (state_out)
    for (int k = 0; k < 4; ++k) std::copy(s[k].begin(), s[k].end(), state_out + k * B * H);
}

void slstm_layer_ref(int64_t B, int64_t T, int64_t NH, int64_t DH, int64_t K,
                     const SlstmLayerRefParams& p, const double* x, const double* conv_state0,
                     const double* slstm_state0, double* out, double* conv_state_out,
                     double* slstm_state_out) {
  const int64_t D = NH * DH, N = B * T;
  std::vector<double> xc(x, x + N * D);
  if (K > 0) {
    std::vector<double> pre((size_t)(N * D));
    conv1d_ref(B, T, D, K, x, p.conv_w, p.conv_b, conv_state0, pre.data(), conv_state_out);
    act_ref(Act::SiLU, N * D, pre.data(), xc.data());
  }
  // i slot = fgate(xc), f slot = igate(xc), z = zgate(x), o = ogate(x)  (README §6.1)
  std::vector<double> gi((size_t)(N * D)), gf(gi.size()), gz(gi.size()), go(gi.size());
  headwise_ref(N, NH, DH, DH, xc.data(), p.fgate, nullptr, gi.data());
  headwise_ref(N, NH, DH, DH, xc.data(), p.igate, nullptr, gf.data());
  headwise_ref(N, NH, DH, DH, x, p.zgate, nullptr, gz.data());
  headwise_ref(N, NH, DH, DH, x, p.ogate, nullptr, go.data());
  std::vector<double> cell_in((size_t)(N * 4 * D));
  for (int64_t r = 0; r < N; ++r)
    for (int64_t j = 0; j < D; ++j) {
      cell_in[(size_t)(r * 4 * D + j)] = gi[(size_t)(r * D + j)];
      cell_in[(size_t)(r * 4 * D + D + j)] = gf[(size_t)(r * D + j)];
      cell_in[(size_t)(r * 4 * D + 2 * D + j)] = gz[(size_t)(r * D + j)];
      cell_in[(size_t)(r * 4 * D + 3 * D + j)] = go[(size_t)(r * D + j)];
    }
  std::vector<double> y((size_t)(N * D));  // (B, NH, T, DH)
  slstm_cell_ref(B, T, NH, DH, cell_in.data(), p.R, p.bias, slstm_state0, y.data(),
                 slstm_state_out);
  std::vector<double> yt((size_t)(N * D));  // (B, T, NH, DH)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < DH; ++d)
          yt[(size_t)(((b * T + t) * NH + h) * DH + d)] = y[(size_t)(((b * NH + h) * T + t) * DH + d)];
  multihead_norm_ref(N, NH, DH, yt.data(), p.gn_w, nullptr, 1e-5, NormScale::OnePlusWeight, out);
}

}  // namespace xlstm::ref
