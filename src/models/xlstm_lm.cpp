#include "models/xlstm_lm.h"

#include <cmath>
#include <cstring>

#include "cpu/dropout.h"
#include "cpu/embedding.h"
#include "cpu/layernorm.h"
#include "cpu/linear.h"
#include "nn/init.h"

namespace xlstm {

template <class T>
XLSTMLM<T>::XLSTMLM(const XLSTMLMConfig& cfg) : cfg_(cfg) {
  V_ = cfg.vocab_size;
  D_ = cfg.embedding_dim;
  XLSTM_CHECK(V_ > 0 && D_ > 0, ValueError, "[xlstm_lm] vocab_size and embedding_dim must be > 0");
  XLSTM_CHECK((int64_t)cfg.blocks.size() == cfg.num_blocks, ValueError,
              "[xlstm_lm] config has ", cfg.blocks.size(), " block configs for num_blocks ",
              cfg.num_blocks);
  const DType dt = DTypeOf<T>::value;
  make_param(w_emb_, dw_emb_, {V_, D_}, dt);
  for (auto& b : cfg.blocks) blocks_.push_back(std::make_unique<XLSTMBlock<T>>(b));
  if (cfg.add_post_blocks_norm) make_param(w_post_, dw_post_, {D_}, dt);
  if (!cfg.tie_weights) make_param(w_head_, dw_head_, {V_, D_}, dt);
  Rng rng(0);
  reset_parameters(rng);
}

template <class T>
void XLSTMLM<T>::reset_parameters(Rng& rng) {
  const double small = small_init_std(D_);
  init_normal(w_emb_, rng, small);
  for (auto& b : blocks_) b->reset_parameters(rng);
  if (w_post_.defined()) w_post_.zero();
  if (w_head_.defined()) init_normal(w_head_, rng, small);
}

template <class T>
void XLSTMLM<T>::collect_params(const std::string& p, std::vector<ParamRef>& out) {
  out.push_back({p + "token_embedding.weight", &w_emb_, &dw_emb_});
  for (size_t i = 0; i < blocks_.size(); ++i)
    blocks_[i]->collect_params(str(p, "xlstm_block_stack.blocks.", i, "."), out);
  if (w_post_.defined())
    out.push_back({p + "xlstm_block_stack.post_blocks_norm.weight", &w_post_, &dw_post_});
  if (w_head_.defined()) out.push_back({p + "lm_head.weight", &w_head_, &dw_head_});
}

template <class T>
Tensor XLSTMLM<T>::forward(const Tensor& ids, Mode mode, Rng* rng, const XLSTMLMState* state_in,
                           XLSTMLMState* state_out) {
  XLSTM_CHECK(ids.ndim() == 2 && ids.dtype() == DType::I64, ValueError,
              "[xlstm_lm] ids must be (B,S) int64, got ", shape_str(ids.shape()), " ",
              dtype_name(ids.dtype()));
  const int64_t B = ids.dim(0), S = ids.dim(1), N = B * S;
  XLSTM_CHECK(B >= 1 && S >= 1, ValueError, "[xlstm_lm] empty batch or sequence");
  XLSTM_CHECK(!state_in || state_in->blocks.empty() || state_in->blocks.size() == blocks_.size(),
              ValueError, "[xlstm_lm] state has ", state_in ? state_in->blocks.size() : 0,
              " blocks, the model has ", blocks_.size());
  B_ = B;
  S_ = S;
  const DType dt = DTypeOf<T>::value;
  ids_.assign(ids.data<int64_t>(), ids.data<int64_t>() + N);
  Tensor x = Tensor::empty({B, S, D_}, dt);
  embedding_forward<T>(N, V_, D_, ids_.data(), w_emb_.data<T>(), x.data<T>());
  emb_mask_.clear();
  if (mode == Mode::Train && cfg_.add_embedding_dropout && cfg_.dropout > 0) {
    XLSTM_CHECK(rng, ValueError, "[xlstm_lm] dropout in Mode::Train needs an Rng");
    emb_mask_.resize((size_t)(N * D_));
    dropout_forward<T>(N * D_, cfg_.dropout, *rng, x.data<T>(), x.data<T>(), emb_mask_.data());
  }
  if (state_out) state_out->blocks.resize(blocks_.size());
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const BlockState* si =
        state_in && !state_in->blocks.empty() ? &state_in->blocks[i] : nullptr;
    x = blocks_[i]->forward(x, mode, rng, si, state_out ? &state_out->blocks[i] : nullptr);
  }
  xlast_.assign(x.data<T>(), x.data<T>() + N * D_);
  const T* hin = xlast_.data();
  if (w_post_.defined()) {
    xn_.resize((size_t)(N * D_));
    mean_.resize((size_t)N);
    rstd_.resize((size_t)N);
    layernorm_forward<T>(N, D_, xlast_.data(), w_post_.data<T>(), nullptr, 1e-5,
                         NormScale::OnePlusWeight, xn_.data(), mean_.data(), rstd_.data());
    hin = xn_.data();
  }
  Tensor logits = Tensor::empty({B, S, V_}, dt);
  const Tensor& head = w_head_.defined() ? w_head_ : w_emb_;
  linear_forward<T>(N, D_, V_, hin, head.data<T>(), nullptr, logits.data<T>());
  return logits;
}

template <class T>
void XLSTMLM<T>::backward(const Tensor& dlogits) {
  XLSTM_CHECK(B_ > 0, ValueError, "[xlstm_lm] backward called before forward");
  const int64_t N = B_ * S_;
  XLSTM_CHECK(dlogits.shape() == Shape({B_, S_, V_}) && dlogits.dtype() == DTypeOf<T>::value,
              ValueError, "[xlstm_lm] dlogits must be ", shape_str({B_, S_, V_}), ", got ",
              shape_str(dlogits.shape()));
  const DType dt = DTypeOf<T>::value;
  const bool tied = !w_head_.defined();
  const T* hin = w_post_.defined() ? xn_.data() : xlast_.data();
  Tensor dx = Tensor::empty({B_, S_, D_}, dt);
  std::vector<T> dh((size_t)(N * D_));
  linear_backward<T>(N, D_, V_, hin, tied ? w_emb_.data<T>() : w_head_.data<T>(),
                     dlogits.data<T>(), dh.data(), tied ? dw_emb_.data<T>() : dw_head_.data<T>(),
                     nullptr);
  if (w_post_.defined())
    layernorm_backward<T>(N, D_, xlast_.data(), w_post_.data<T>(), NormScale::OnePlusWeight,
                          mean_.data(), rstd_.data(), dh.data(), dx.data<T>(), dw_post_.data<T>(),
                          nullptr);
  else
    std::memcpy(dx.data<T>(), dh.data(), sizeof(T) * N * D_);
  for (size_t i = blocks_.size(); i-- > 0;) dx = blocks_[i]->backward(dx);
  if (!emb_mask_.empty())
    dropout_backward<T>(N * D_, emb_mask_.data(), dx.data<T>(), dx.data<T>());
  embedding_backward<T>(N, V_, D_, ids_.data(), dx.data<T>(), dw_emb_.data<T>());
}

template <class T>
Tensor XLSTMLM<T>::step(const Tensor& ids, XLSTMLMState& state) {
  XLSTM_CHECK(ids.ndim() == 1 && ids.dtype() == DType::I64, ValueError,
              "[xlstm_lm.step] ids must be (B) int64, got ", shape_str(ids.shape()));
  const int64_t B = ids.dim(0);
  XLSTMLMState next;
  Tensor logits = forward(ids.reshape({B, 1}), Mode::Eval, nullptr,
                          state.blocks.empty() ? nullptr : &state, &next);
  state = std::move(next);
  return logits.reshape({B, V_});
}

template class XLSTMLM<float>;
template class XLSTMLM<double>;

}  // namespace xlstm
