// mLSTM layer of the xlstm package (xlstm.blocks.mlstm.layer.mLSTMLayer, NeurIPS 2024):
//   up = proj_up(x) (D -> 2*inner); x_m, z = split(up)            (first half: mLSTM branch)
//   x_c = SiLU(causal_conv1d(x_m))                                 (depthwise, kernel K, bias)
//   q = q_proj(x_c), k = k_proj(x_c), v = v_proj(x_m)              (headwise, blocksize 4)
//   i, f = igate(cat(q,k,v)), fgate(cat(q,k,v))                    (Linear 3*inner -> NH)
//   h = mLSTM kernel(q, k, v, i, f)                                (B, NH, S, DH)
//   h = outnorm(h)                                                 (per-head LayerNorm, 1+w)
//   y = proj_down((h + learnable_skip * x_c) * SiLU(z)), then dropout
// Parameter names are the official state_dict names. Write modes as in module.h.
#pragma once
#include <string>
#include <vector>

#include "core/huge_vector.h"
#include "cpu/mlstm.h"
#include "nn/module.h"
#include "xlstm/rng.h"

namespace xlstm {

struct MLSTMLayerConfig {
  int64_t embedding_dim = -1;       // D
  int64_t num_heads = 4;            // NH of the mLSTM cell
  int64_t conv1d_kernel_size = 4;   // K (>= 1)
  int64_t qkv_proj_blocksize = 4;
  double proj_factor = 2.0;
  int64_t round_proj_up_to_multiple_of = 64;
  bool round_proj_up_dim_up = true;
  bool bias = false;
  double dropout = 0.0;
  int64_t num_blocks = 1;           // _num_blocks (wang init of proj_down)
  int64_t inner_dim = -1;           // _inner_embedding_dim; -1 = derived from proj_factor
  // Which form of the kernel runs the sequence. The official layer uses the parallel form;
  // chunkwise agrees up to eps effects (docs/numerics.md) and is linear in S.
  MlstmForm form = MlstmForm::Parallel;
  int64_t chunk_size = 64;
  int64_t inner() const;            // the up-projection width
};

// Carried state for streaming: conv (B, K-1, inner) last pre-conv inputs; cell (C, n, m) in
// the xlstm package's k-scaled convention. Undefined tensors = zeros.
struct MLSTMLayerState {
  Tensor conv;
  MlstmState cell;
};

template <class T>
class MLSTMLayer : public Module {
 public:
  explicit MLSTMLayer(const MLSTMLayerConfig& cfg);  // parameters initialised with seed 0
  const MLSTMLayerConfig& config() const { return cfg_; }
  // Official init: small_init for proj_up/q/k/v, wang_init for proj_down, conv default,
  // igate weight 0 bias N(0, 0.1), fgate weight 0 bias linspace(3, 6), skip 1, norm 0.
  void reset_parameters(Rng& rng);
  void collect_params(const std::string& prefix, std::vector<ParamRef>& out) override;

  // x (B, S, D) -> y (B, S, D). state_in / state_out optional (streaming; the parallel form
  // cannot carry a cell state, so a stateful call runs the chunkwise form, or the recurrent
  // step when S == 1).
  // Keeps what backward needs. rng is used only for dropout in Mode::Train.
  Tensor forward(const Tensor& x, Mode mode = Mode::Eval, Rng* rng = nullptr,
                 const MLSTMLayerState* state_in = nullptr, MLSTMLayerState* state_out = nullptr);
  // dy (B, S, D) -> dx (B, S, D); accumulates parameter gradients. The carried states are
  // treated as constants (truncated backpropagation through time).
  Tensor backward(const Tensor& dy);

 private:
  MLSTMLayerConfig cfg_;
  int64_t D_, inner_, NH_, DH_, K_, NP_, BS_;
  Tensor w_up_, b_up_, w_conv_, b_conv_, w_q_, b_q_, w_k_, b_k_, w_v_, b_v_;
  Tensor w_ig_, b_ig_, w_fg_, b_fg_, w_norm_, skip_, w_down_, b_down_;
  Tensor dw_up_, db_up_, dw_conv_, db_conv_, dw_q_, db_q_, dw_k_, db_k_, dw_v_, db_v_;
  Tensor dw_ig_, db_ig_, dw_fg_, db_fg_, dw_norm_, dskip_, dw_down_, db_down_;
  // Saved by forward (sizes follow the last call).
  int64_t B_ = 0, S_ = 0;
  bool has_conv_state_ = false;
  HugeVector<T> x_, xm_, z_, xcpre_, xc_, qkv_, hs_, mean_, rstd_, hn_, pre_, mask_;
  HugeVector<T> conv_state_in_;
  // Per-call scratch: what forward and backward need only while they run. One set per thread,
  // shared by every layer (a call never runs inside another layer's call), kept between calls:
  // no allocation at a fixed shape, and a stack of L layers touches one set instead of L
  // (xlstm-7-1-small: ~120 MB instead of ~840 MB of fresh pages at the first step).
  struct Scratch {
    HugeVector<T> up, q, k, v, ig, fg, dpre, dhn, dxc, dup, dhs, di, df, dqkv, tmp, dq, dk, dv,
        dpart, dxm, dy;
  };
  static Scratch& scratch();
  MlstmContext ctx_;
};

extern template class MLSTMLayer<float>;
extern template class MLSTMLayer<double>;

}  // namespace xlstm
