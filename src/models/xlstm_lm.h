// xLSTM language model of the xlstm package (xlstm.xlstm_lm_model.xLSTMLMModel):
//   x = token_embedding(ids) [-> dropout]; x = blocks(x); x = post_blocks_norm(x);
//   logits = lm_head(x)   (no bias; tied to the embedding when tie_weights)
// Parameter names are the official state_dict names (token_embedding.weight,
// xlstm_block_stack.blocks.{i}.*, xlstm_block_stack.post_blocks_norm.weight, lm_head.weight).
#pragma once
#include <memory>
#include <vector>

#include "core/huge_vector.h"
#include "models/xlstm_config.h"

namespace xlstm {

// Streaming state of the whole stack: one BlockState per block (undefined = zeros).
struct XLSTMLMState {
  std::vector<BlockState> blocks;
};

template <class T>
class XLSTMLM : public Module {
 public:
  explicit XLSTMLM(const XLSTMLMConfig& cfg);  // initialised by reset_parameters(Rng(0))
  const XLSTMLMConfig& config() const { return cfg_; }
  int64_t vocab_size() const { return V_; }
  // The official init (reset_parameters): small_init embedding and head, block inits.
  void reset_parameters(Rng& rng);
  void collect_params(const std::string& prefix, std::vector<ParamRef>& out) override;

  // ids (B, S) I64 -> logits (B, S, V). state_in/out optional (streaming). Keeps what
  // backward needs. rng: dropout draws in Mode::Train.
  Tensor forward(const Tensor& ids, Mode mode = Mode::Eval, Rng* rng = nullptr,
                 const XLSTMLMState* state_in = nullptr, XLSTMLMState* state_out = nullptr);
  // dlogits (B, S, V): accumulates parameter gradients (carried states are constants).
  void backward(const Tensor& dlogits);
  // Inference, one token per sequence: ids (B) I64 -> logits (B, V); `state` advanced in place.
  Tensor step(const Tensor& ids, XLSTMLMState& state);

 private:
  XLSTMLMConfig cfg_;
  int64_t V_, D_;
  Tensor w_emb_, dw_emb_, w_post_, dw_post_, w_head_, dw_head_;
  std::vector<std::unique_ptr<XLSTMBlock<T>>> blocks_;
  int64_t B_ = 0, S_ = 0;
  std::vector<int64_t> ids_;
  HugeVector<T> emb_mask_, xlast_, xn_, mean_, rstd_;
};

extern template class XLSTMLM<float>;
extern template class XLSTMLM<double>;

}  // namespace xlstm
