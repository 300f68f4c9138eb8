// float64 recomputation of one recurrent step of each cell kind, straight from the equations
// and the layer's parameters, keeping every intermediate that `xlstm inspect` shows. Internal to
// src/inspect (inspect.cpp checks these against the modules' own steps).
//
// Buffers are std::vector<double>, resized by the step functions (written, =). Shapes:
// D embedding, H hidden units, NH heads, DH head dim, I inner (mLSTM), K conv kernel.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nn/module.h"

namespace xlstm::inspect_detail {

using Vec = std::vector<double>;

// Every parameter of a module as float64, by its official name.
class ParamTable {
 public:
  explicit ParamTable(Module& m);
  bool has(const std::string& name) const { return t_.count(name) > 0; }
  // InternalError naming the parameter when absent or not of `numel` values (numel < 0: any).
  const Vec& get(const std::string& name, int64_t numel = -1) const;
  // Parameters whose names start with `prefix`, prefix removed, as float64 tensors.
  std::map<std::string, Tensor> with_prefix(const std::string& prefix) const;

 private:
  std::map<std::string, std::pair<Shape, Vec>> t_;
};

// ---- LSTM (torch.nn.LSTM, one layer, one step) ---------------------------------------------
struct LstmLayerParams {
  int64_t In = 0, H = 0;
  Vec w_ih, w_hh, b_ih, b_hh;  // (4H, In), (4H, H), (4H), (4H); gate rows [i, f, g, o]
};
struct LstmStep {
  Vec i, f, g, o, c, h;        // (H) each
};
// x (In), h_prev, c_prev (H) read.
void lstm_step(const LstmLayerParams& p, const double* x, const double* h_prev,
               const double* c_prev, LstmStep& s);

// ---- sLSTM layer inside its block (pre-norm, conv, headwise gates, vanilla cell) ------------
struct SlstmLayerParams {
  int64_t D = 0, NH = 0, DH = 0, K = 0;
  Vec norm_w;                  // (D) the block's xlstm_norm (scale 1 + w)
  Vec conv_w, conv_b;          // (D, K), (D); K = 0: no convolution
  Vec w_f, w_i, w_z, w_o;      // (NH, DH, DH) headwise fgate/igate/zgate/ogate modules
  Vec R, bias;                 // (NH, 4DH, DH) vanilla layout, (4H) [gate][head][dh]
};
struct SlstmStep {
  Vec xn;                      // (D) the normalised block input (the conv's new input)
  Vec i_raw, f_raw, z_raw, o_raw;  // (H) pre-activations incl. R y_{t-1} + bias
  Vec i, f, z, o;              // (H) effective gates: min(exp(.), 1), tanh, sigmoid
  Vec c, n, m, h;              // (H) new states; h = y
};
// x (D) the block input. conv_state (K-1, D) and state (4, H) = (y, c, n, m) read; null = zeros.
void slstm_step(const SlstmLayerParams& p, const double* x, const double* conv_state,
                const double* state, SlstmStep& s);

// ---- mLSTM layer inside its block ------------------------------------------------------------
struct MlstmLayerParams {
  int64_t D = 0, I = 0, NH = 0, DH = 0, K = 0, BS = 0;
  double eps = 1e-6;
  Vec norm_w;                  // (D) the block's xlstm_norm
  Vec up_w, up_b;              // (2I, D), (2I) or empty
  Vec conv_w, conv_b;          // (I, K), (I)
  Vec q_w, q_b, k_w, k_b, v_w, v_b;  // (I/BS, BS, BS), (I) or empty
  Vec ig_w, ig_b, fg_w, fg_b;  // (NH, 3I), (NH)
  Vec outnorm_w, skip;         // (I), (I)
  Vec down_w, down_b;          // (D, I), (D) or empty
};
struct MlstmStep {
  Vec xm;                      // (I) the conv's new input
  Vec i_raw, f_raw, i, f, m, C_norm, qn, den;  // (NH)
  Vec h, o;                    // (I): cell output (before outnorm), SiLU(z)
  Vec C, n;                    // (NH, DH, DH), (NH, DH) new states
  Vec out;                     // (D) the block output x + proj_down(...)
};
// x (D) the block input; conv_state (K-1, I), C0 (NH, DH, DH), n0 (NH, DH), m0 (NH) read;
// null = zeros.
void mlstm_step(const MlstmLayerParams& p, const double* x, const double* conv_state,
                const double* C0, const double* n0, const double* m0, MlstmStep& s);

}  // namespace xlstm::inspect_detail
