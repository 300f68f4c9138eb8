// Float64 reference of the sLSTM cell and layer: the spec (XLSTM-SPEC §1.1, §3.2; conformance
// README §5, §6.1, §6.4) as naive loops. Forward only; gradients are checked by finite
// differences of the production kernels. Layouts are the official ones (see cpu/slstm.h).
#pragma once
#include <cstdint>

namespace xlstm::ref {

// x (B,T,4H) ordered [gate i,f,z,o][head][dh]; R (NH,4DH,DH) vanilla layout
// (Ry[g*H + h*DH + o] = sum_i R[h, g*DH+o, i] y[h*DH+i]); bias (4H) [gate][head][dh];
// state0 (4,B,H) = (y,c,n,m) or null (zeros). y (B,NH,T,DH) written; state_out (4,B,H) or null.
void slstm_cell_ref(int64_t B, int64_t T, int64_t NH, int64_t DH, const double* x,
                    const double* R, const double* bias, const double* state0, double* y,
                    double* state_out);

// sLSTMLayer parameters (official names). conv_w (D,K), conv_b (D): null when K == 0.
// Headwise weights (NH,DH,DH). gn_w (D) residual weight (scale 1 + w) or null (scale 1).
struct SlstmLayerRefParams {
  const double *conv_w = nullptr, *conv_b = nullptr;
  const double *fgate = nullptr, *igate = nullptr, *zgate = nullptr, *ogate = nullptr;
  const double *R = nullptr, *bias = nullptr, *gn_w = nullptr;
};

// x (B,T,D); conv_state0 (B,K-1,D) or null; slstm_state0 (4,B,D) or null. out (B,T,D);
// conv_state_out (B,K-1,D) or null; slstm_state_out (4,B,D) or null. No dropout.
void slstm_layer_ref(int64_t B, int64_t T, int64_t NH, int64_t DH, int64_t K,
                     const SlstmLayerRefParams& p, const double* x, const double* conv_state0,
                     const double* slstm_state0, double* out, double* conv_state_out,
                     double* slstm_state_out);

}  // namespace xlstm::ref
