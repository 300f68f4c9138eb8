// sLSTM modules of the xlstm package (NeurIPS 2024), vanilla-backend semantics:
//  - SLSTMCell  = xlstm.blocks.slstm.cell.sLSTMCell  (params `_recurrent_kernel_`, `_bias_`)
//  - SLSTMLayer = xlstm.blocks.slstm.layer.sLSTMLayer (conv + SiLU, headwise gates with the
//    official fgate/igate slot swap, cell, dropout, MultiHeadLayerNorm)
// Parameters are stored in the official VANILLA internal layout (conformance README §6.3);
// checkpoints written by the CUDA backend (or the external layout) are converted on import with
// slstm_convert_state_dict, which tells the layouts apart by the shape of `_recurrent_kernel_`.
// Write modes (module.h): backward returns input/state gradients (=) and accumulates (+=)
// parameter gradients. forward keeps what backward needs; the input tensors are kept by handle,
// so they must not be modified between forward and backward.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/huge_vector.h"
#include "cpu/slstm.h"
#include "nn/module.h"
#include "xlstm/rng.h"

namespace xlstm {

// The sLSTMCellConfig fields that change the computation or the initialisation. Everything else
// in the official dataclass is CUDA-backend only (dtypes, batch_size, constants).
struct SLSTMCellConfig {
  int64_t hidden_size = -1;                             // H = num_heads * head_dim
  int64_t num_heads = 4;
  std::string bias_init = "powerlaw_blockdependent";    // | "small_init" | "standard" | "zeros"
  std::string recurrent_weight_init = "zeros";          // | "standard"
  int64_t block_idx = 0;                                // _block_idx (forget-bias power law)
  int64_t num_blocks = 1;                               // _num_blocks
  int64_t head_dim() const { return num_heads > 0 ? hidden_size / num_heads : 0; }
};

// ---- checkpoint layouts (README §6.3) ----------------------------------------------------------
enum class SlstmParamLayout {
  Vanilla,  // R (NH, 4DH, DH) = R[h, g*DH+o, i];  bias (4H) ordered [gate][head][dh]
  Cuda,     // R (NH, DH, 4DH) = R[h, i, g*DH+o];  bias (4H) ordered [head][gate][dh]
  Ext,      // R (NH, DH, 4, DH) = R[h, i, g, o];  bias (NH, 4, DH)
};
// The layout of a recurrent kernel, from its shape; ValueError if it is none of them.
SlstmParamLayout slstm_param_layout(const Shape& R);
// R in any layout -> vanilla (NH, 4DH, DH), same dtype.
Tensor slstm_recurrent_to_vanilla(const Tensor& R);
// bias in the layout of `R` -> vanilla (4H), same dtype.
Tensor slstm_bias_to_vanilla(const Tensor& bias, const Tensor& R);
// Rewrites `sd` in place: for every key "<p>_recurrent_kernel_" in a non-vanilla layout, that
// tensor and "<p>_bias_" become vanilla; "<p>recurrent_kernel" / "<p>bias" in the external layout
// (the official ParameterProxy names) become "<p>_recurrent_kernel_" / "<p>_bias_" (vanilla).
// Returns the number of cells converted.
int slstm_convert_state_dict(std::map<std::string, Tensor>& sd);

// ---- cell ----------------------------------------------------------------------------------------
template <class T>
class SLSTMCell : public Module {
 public:
  explicit SLSTMCell(const SLSTMCellConfig& cfg);  // parameters initialised with a seed-0 Rng
  const SLSTMCellConfig& config() const { return cfg_; }
  // sLSTMCellBase.reset_parameters: R zeros (or U(±1/sqrt(H))), bias per bias_init.
  void reset_parameters(Rng& rng);
  void collect_params(const std::string& prefix, std::vector<ParamRef>& out) override;

  struct Out {
    Tensor output;  // (B, NH, S, DH) = y(1..S)
    Tensor state;   // (4, B, H) = (y, c, n, m) after the last step
  };
  // input (B, S, 4H) ordered [gate i,f,z,o][head][dh]; state (4, B, H) or undefined (zeros).
  Out forward(const Tensor& input, const Tensor& state = Tensor());
  struct Grads {
    Tensor input;  // (B, S, 4H)
    Tensor state;  // (4, B, H): gradient w.r.t. the initial state (also when it was zeros)
  };
  // dout (B, NH, S, DH) and dstate (4, B, H); either may be undefined (zero).
  Grads backward(const Tensor& dout, const Tensor& dstate = Tensor());

  // Kernel-level entry for composite modules: sequence tensors in any SlstmLayout, no
  // validation (the caller validated), no allocation at a fixed shape. Same write modes.
  void forward_raw(const SlstmShape& s, const SlstmLayout& L, const T* x, const T* state0, T* y,
                   T* state_out);
  void backward_raw(const SlstmShape& s, const SlstmLayout& L, const T* dy, const T* dstate_out,
                    T* dx, T* dstate0);

  Tensor R_, dR_;  // _recurrent_kernel_ (NH, 4DH, DH)
  Tensor b_, db_;  // _bias_ (4H)

 private:
  SLSTMCellConfig cfg_;
  SlstmCache<T> cache_;
  SlstmShape fwd_shape_;
};

// ---- layer ---------------------------------------------------------------------------------------
struct SLSTMLayerConfig {
  int64_t embedding_dim = -1;      // D = hidden size of the cell
  int64_t num_heads = 4;
  int64_t conv1d_kernel_size = 4;  // 0: no convolution
  bool group_norm_weight = true;   // MultiHeadLayerNorm has a (residual, 1 + w) weight
  double dropout = 0.0;
  std::string bias_init = "powerlaw_blockdependent";
  std::string recurrent_weight_init = "zeros";
  int64_t block_idx = 0, num_blocks = 1;
  SLSTMCellConfig cell() const {
    return {embedding_dim, num_heads, bias_init, recurrent_weight_init, block_idx, num_blocks};
  }
};

// Carried state of the layer. Undefined tensors mean zeros.
struct SLSTMLayerState {
  Tensor conv;   // (B, K-1, D): the last K-1 pre-conv inputs, oldest first (absent when K == 0)
  Tensor slstm;  // (4, B, H): (y, c, n, m)
};

template <class T>
class SLSTMLayer : public Module {
 public:
  enum class Mode { Train, Eval };  // dropout is active in Train only (torch default: Train)
  explicit SLSTMLayer(const SLSTMLayerConfig& cfg, uint64_t dropout_seed = 0);
  const SLSTMLayerConfig& config() const { return cfg_; }
  void set_mode(Mode m) { mode_ = m; }
  // Draw dropout masks from `rng` (owned by the caller, e.g. a trainer that checkpoints it)
  // instead of the layer's own generator; nullptr restores the layer's own.
  void set_dropout_rng(Rng* rng) { ext_rng_ = rng; }
  // sLSTMLayer.reset_parameters: cell as above, group norm 0, gates small_init
  // N(0, sqrt(2/(5 D))); conv like torch's Conv1d default, U(±1/sqrt(K)) for weight and bias.
  void reset_parameters(Rng& rng);
  void collect_params(const std::string& prefix, std::vector<ParamRef>& out) override;

  struct Out {
    Tensor output;          // (B, S, D)
    SLSTMLayerState state;  // the last states (conv undefined when K == 0)
  };
  // x (B, S, D). Computes, as the official forward:
  //   xc = SiLU(conv(x)) (or x); slots i = fgate(xc), f = igate(xc), z = zgate(x), o = ogate(x);
  //   y = cell([i f z o]); out = group_norm(dropout(y)) reshaped (B, S, D).
  Out forward(const Tensor& x, const SLSTMLayerState& state = {});
  struct Grads {
    Tensor input;           // (B, S, D)
    SLSTMLayerState state;  // gradients w.r.t. the initial states
  };
  // dout (B, S, D) or undefined; dstate: gradients flowing into the returned states (optional).
  Grads backward(const Tensor& dout, const SLSTMLayerState& dstate = {});

  // Inference: one token per sequence. x_t (B, D) -> (B, D); `state` is updated in place (zero
  // state when undefined). Same numbers as forward over the whole sequence (conv state keeps
  // K-1 inputs, unlike the official step's K). Does not keep anything for backward.
  Tensor step(const Tensor& x_t, SLSTMLayerState& state);

  SLSTMCell<T>& cell() { return cell_; }

  Tensor conv_w_, dconv_w_, conv_b_, dconv_b_;  // conv1d.conv.weight (D,1,K), .bias (D)
  Tensor Wf_, dWf_, Wi_, dWi_, Wz_, dWz_, Wo_, dWo_;  // {f,i,z,o}gate.weight (NH, DH, DH)
  Tensor gn_w_, dgn_w_;                              // group_norm.weight (D)

 private:
  void run_forward(int64_t B, int64_t S, const T* x, const T* conv0, const T* slstm0, T* out,
                   T* conv_out, T* slstm_out);
  SLSTMLayerConfig cfg_;
  SLSTMCell<T> cell_;
  Mode mode_ = Mode::Train;
  bool dropped_ = false;  // the last forward applied dropout (mask_ valid)
  Rng rng_;
  Rng* ext_rng_ = nullptr;
  // forward cache (B*S rows); buffers grow only
  int64_t B_ = 0, S_ = 0;
  Tensor x_, conv0_;  // handles of the forward inputs
  HugeVector<T> xconv_pre_, xconv_, gates_, y_, yd_, mask_, mean_, rstd_;
  // backward workspaces
  HugeVector<T> dgates_, dy_, dxc_;
};

}  // namespace xlstm
