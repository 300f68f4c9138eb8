// Float64 reference LSTM, straight from the torch.nn.LSTM equations (the spec of cpu/lstm.h):
//   [i f g o] = x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh;  i,f,o = sigmoid, g = tanh
//   c_t = f c_prev + i g;  h_t = o tanh(c_t)
// Batch-first layouts, like the module's API. Forward only (gradients are checked by finite
// differences).
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/lstm.h"

namespace xlstm::ref {

// One layer, one direction (Reverse: t runs T-1 .. 0). x (B,T,I); W_ih (4H,I); W_hh (4H,H);
// b_ih, b_hh (4H) or null; h0, c0 (B,H) or null (zeros). y (B,T,H) with row stride ldy >= H,
// written; h_n, c_n (B,H) written, may be null.
void lstm_layer_ref(int64_t B, int64_t T, int64_t I, int64_t H, LstmDirection dir, const double* x,
                    const double* W_ih, const double* W_hh, const double* b_ih, const double* b_hh,
                    const double* h0, const double* c0, double* y, int64_t ldy, double* h_n,
                    double* c_n);

// A stack of L layers, D directions (no dropout): layer k > 0 reads the [fwd | rev] output of
// layer k-1. Parameters per layer-direction index k*D + d (biases may be null). x (B,T,I);
// h0, c0 (L*D,B,H) or null; y (B,T,D*H), h_n, c_n (L*D,B,H) written.
struct LstmRefParams {
  std::vector<const double*> w_ih, w_hh, b_ih, b_hh;
};
void lstm_stack_ref(int64_t B, int64_t T, int64_t I, int64_t H, int64_t L, int64_t D,
                    const LstmRefParams& p, const double* x, const double* h0, const double* c0,
                    double* y, double* h_n, double* c_n);

}  // namespace xlstm::ref
