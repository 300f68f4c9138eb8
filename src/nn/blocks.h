// Residual blocks of the xlstm package (NeurIPS 2024):
//   mLSTM block: x + mlstm_layer(xlstm_norm(x))
//   sLSTM block: y = x + slstm_layer(xlstm_norm(x)); y + ffn(ffn_norm(y))
// Norms are the xlstm LayerNorm (scale 1 + weight, no bias, eps 1e-5). GatedFeedForward is
// proj_down(gelu(gate) * up) with [gate, up] = split(proj_up(x)), exact erf GELU.
// Parameter names are the official ones (xlstm_norm.weight, xlstm.*, ffn_norm.weight,
// ffn.proj_up.weight, ffn.proj_down.weight). Write modes as in module.h.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/huge_vector.h"
#include "nn/mlstm.h"
#include "nn/slstm.h"

namespace xlstm {

struct FeedForwardConfig {
  int64_t embedding_dim = -1;
  double proj_factor = 1.3;
  int64_t round_proj_up_to_multiple_of = 64;
  bool round_proj_up_dim_up = true;
  bool bias = false;
  double dropout = 0.0;
  int64_t num_blocks = 1;  // wang init of proj_down
  int64_t up_dim() const;  // P
};

// Gated feed-forward (ff_type "ffn_gated", act "gelu").
template <class T>
class GatedFFN : public Module {
 public:
  explicit GatedFFN(const FeedForwardConfig& cfg);
  void reset_parameters(Rng& rng);
  void collect_params(const std::string& prefix, std::vector<ParamRef>& out) override;
  // x: (N, D) read; y: (N, D) written. Keeps what backward needs.
  void forward(int64_t N, const T* x, T* y, Mode mode, Rng* rng);
  // dy: (N, D) read; dx: (N, D) written.
  void backward(const T* dy, T* dx);

 private:
  FeedForwardConfig cfg_;
  int64_t D_, P_, N_ = 0;
  Tensor w_up_, b_up_, w_down_, b_down_, dw_up_, db_up_, dw_down_, db_down_;
  HugeVector<T> x_, up_, act_, mask_;
  HugeVector<T> sc_dy_, sc_dact_, sc_dup_, sc_gl_;  // backward scratch, kept (no per-call alloc)
};

enum class BlockKind { MLSTM, SLSTM };

struct BlockConfig {
  BlockKind kind = BlockKind::MLSTM;
  MLSTMLayerConfig mlstm;  // used when kind == MLSTM
  SLSTMLayerConfig slstm;  // used when kind == SLSTM
  FeedForwardConfig ffn;   // used when kind == SLSTM (the official sLSTM block has an FFN)
  bool has_ffn = true;     // sLSTM block only
};

// Carried state of one block (the part of its kind is used).
struct BlockState {
  MLSTMLayerState mlstm;
  SLSTMLayerState slstm;
};

template <class T>
class XLSTMBlock : public Module {
 public:
  explicit XLSTMBlock(const BlockConfig& cfg);
  const BlockConfig& config() const { return cfg_; }
  void reset_parameters(Rng& rng);
  void collect_params(const std::string& prefix, std::vector<ParamRef>& out) override;
  // x (B, S, D) -> (B, S, D). state_in/out optional (streaming). Keeps what backward needs.
  Tensor forward(const Tensor& x, Mode mode = Mode::Eval, Rng* rng = nullptr,
                 const BlockState* state_in = nullptr, BlockState* state_out = nullptr);
  // dy (B, S, D) -> dx (B, S, D). Carried states are treated as constants.
  Tensor backward(const Tensor& dy);

 private:
  BlockConfig cfg_;
  int64_t D_;
  Tensor w_norm_, dw_norm_, w_ffn_norm_, dw_ffn_norm_;
  std::unique_ptr<MLSTMLayer<T>> mlstm_;
  std::unique_ptr<SLSTMLayer<T>> slstm_;
  std::unique_ptr<GatedFFN<T>> ffn_;
  int64_t B_ = 0, S_ = 0;
  HugeVector<T> x_, xn_, mean_, rstd_, y1_, y1n_, mean2_, rstd2_;
};

extern template class GatedFFN<float>;
extern template class GatedFFN<double>;
extern template class XLSTMBlock<float>;
extern template class XLSTMBlock<double>;

}  // namespace xlstm
