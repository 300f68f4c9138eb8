// xLSTM-Large (the xLSTM 7B architecture): the official xlstm.xlstm_large.model.xLSTMLarge and
// Hugging Face transformers' `xlstm` model (xLSTMForCausalLM), which compute the same function.
//
//   x = E[ids]
//   per block:  x = x + mLSTMLayer(RMSNorm(x));  x = x + SwiGLU(RMSNorm(x))
//   logits = cap(W_head RMSNorm_out(x); output_logit_soft_cap)        cap(z; c) = c tanh(z / c)
//
//   mLSTMLayer(u): q = W_q u, k = W_k u (QK), v = W_v u, o = W_o u (VD),
//                  i = cap(W_i u + b_i; gate_soft_cap), f = cap(W_f u + b_f) (NH per token),
//                  h = mLSTM cell (scale on q, m0 = 0, eps after the max; cpu/mlstm.h),
//                  y = W_out( sigmoid(o) * MultiHeadLayerNorm(h) )
//   SwiGLU(z)    = W_down( SiLU(W_up_gate z) * (W_up z) )
//
// Parameter names are the Hugging Face ones (../shared/hf/FORMAT.md §3):
//   backbone.embeddings.weight (V,H); backbone.blocks.{i}.norm_mlstm.weight (H);
//   .mlstm_layer.{q,k} (QK,H), {v,ogate_preact} (VD,H), {igate_preact,fgate_preact} (NH,H)+bias,
//   .mlstm_layer.multihead_norm.weight (VD), .mlstm_layer.out_proj (H,VD), .norm_ffn (H),
//   .ffn.{proj_up_gate,proj_up} (U,H), .ffn.proj_down (H,U); backbone.out_norm.weight (H);
//   lm_head.weight (V,H) (absent when the head is tied to the embedding). With use_bias, every
//   linear except the head and every block norm has a `.bias`. The official module names the
//   embedding `embedding.weight` (xlstm_large_official_name converts).
//
// Weights may be F32 owned tensors (training) or read-only views of a mapped checkpoint in F32
// or BF16 (inference; see models/hf.h). Training needs F32: enable_training() converts.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cpu/mlstm.h"
#include "nn/module.h"
#include "xlstm/rng.h"

namespace xlstm {

struct XLSTMLargeConfig {
  int64_t vocab_size = 50304;
  int64_t embedding_dim = 4096;  // H
  int64_t num_heads = 8;         // NH
  int64_t num_blocks = 32;       // L
  bool use_bias = false;
  double norm_eps = 1e-6;
  bool add_out_norm = true;
  double qk_dim_factor = 0.5, v_dim_factor = 1.0;
  int64_t chunk_size = 64;   // chunkwise prefill (numerics only)
  double eps = 1e-6;         // cell denominator eps
  double ffn_proj_factor = 2.667;
  int64_t ffn_round_up_to_multiple_of = 64;
  double gate_soft_cap = 15.0;          // <= 0: no cap (JSON null)
  double output_logit_soft_cap = 30.0;  // <= 0: no cap (JSON null)
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 0, eos_token_id = 2, pad_token_id = 1;

  int64_t qk_dim() const;   // int(H * qk_dim_factor)
  int64_t v_dim() const;    // int(H * v_dim_factor)
  int64_t dhqk() const { return qk_dim() / num_heads; }
  int64_t dhv() const { return v_dim() / num_heads; }
  int64_t ffn_dim() const;  // floor((H*factor + m - 1) / m) * m, in floating point
  // Throws ValueError naming `where` for inconsistent sizes.
  void validate(const std::string& where) const;
  // The Hugging Face config.json form (model_type "xlstm", every field written).
  nlohmann::json to_hf_json() const;
};

// Parses an official xLSTMLargeConfig dict or a Hugging Face config.json (missing fields take
// the HF defaults; `hidden_size`/`embedding_dim` and `num_hidden_layers`/`num_blocks` must
// agree when both are given; null caps mean no cap). Throws ValueError naming `where` and the
// field.
XLSTMLargeConfig xlstm_large_config_from_json(const nlohmann::json& j, const std::string& where);

// "embedding.weight" (official xLSTMLarge) -> "backbone.embeddings.weight" (HF); other names
// are the same in both.
std::string xlstm_large_hf_name(const std::string& official);

// Carried state: one (C, n, m) per block, C (B,NH,DHQK,DHV), n (B,NH,DHQK), m (B,NH), in the
// mlstm_kernels convention (q scaled, C and n divided by e^m). Empty = zeros.
struct XLSTMLargeState {
  std::vector<MlstmState> blocks;
};

// Init: parameters allocated in T and initialised by reset_parameters(Rng(0)).
// Placeholders: every parameter has its shape but no storage (nothing allocated, so a model of
// any size can be described); set_param must give each one before forward (checked).
enum class ParamAlloc { Init, Placeholders };

template <class T>
class XLSTMLarge : public Module {
 public:
  // Gradients are allocated by enable_training().
  explicit XLSTMLarge(const XLSTMLargeConfig& cfg, ParamAlloc alloc = ParamAlloc::Init);
  ~XLSTMLarge() override;
  const XLSTMLargeConfig& config() const { return cfg_; }
  int64_t vocab_size() const { return cfg_.vocab_size; }
  // The HF init (FORMAT.md §5.7 / spec §4.3): small_init for embedding and projections,
  // wang_init for out_proj and proj_down, gate weights 0, igate bias -10, fgate bias
  // linspace(3, 6), norm weights 1, biases 0.
  void reset_parameters(Rng& rng);
  // Every parameter; `grad` is an undefined tensor until enable_training().
  void collect_params(const std::string& prefix, std::vector<ParamRef>& out) override;
  // Replaces parameter `name` by `value` (a view is kept, not copied): shape must match; dtype
  // T, or F32/BF16 for matrices when T = float. Throws ValueError naming `where`.
  void set_param(const std::string& name, const Tensor& value, const std::string& where);
  // Converts every parameter to an owned T tensor and allocates zero gradients.
  void enable_training();
  bool training_enabled() const { return training_; }

  // ids (B, S) I64 -> logits (B, S, V) in T (soft-capped). state_in/out optional (streaming;
  // may alias). Mode::Train keeps what backward needs (needs enable_training()).
  // `rows` (Mode::Eval only): Logits::Last computes the out norm, head and cap for the last
  // position of each row only and returns (B, 1, V) (a prompt's prefill: ~half the time of a
  // 2048-token prefill is the full (S, V) logits otherwise); Logits::None skips the head and
  // returns an undefined tensor (the state is what is wanted).
  enum class Logits { All, Last, None };
  Tensor forward(const Tensor& ids, Mode mode = Mode::Eval, const XLSTMLargeState* state_in = nullptr,
                 XLSTMLargeState* state_out = nullptr, Logits rows = Logits::All);
  // dlogits (B, S, V): accumulates parameter gradients through the last Mode::Train forward.
  void backward(const Tensor& dlogits);
  // Hidden states of the last forward (batch row `b`) after block `l` (l < L) or after the
  // out norm (l == L), (S, H); for locating divergences (kept only in Mode::Train).
  Tensor hidden(int64_t l, int64_t b) const;

 private:
  struct Block;
  struct Saved;
  XLSTMLargeConfig cfg_;
  bool training_ = false;
  Tensor w_emb_, dw_emb_, w_out_, dw_out_, w_head_, dw_head_;
  std::vector<std::unique_ptr<Block>> blocks_;
  std::unique_ptr<Saved> eval_saved_;  // scratch shared by all blocks in Mode::Eval
  struct Scratch;
  std::unique_ptr<Scratch> scratch_;   // backward and embedding buffers (only grow)
  struct Decode;
  std::unique_ptr<Decode> decode_;     // buffers of decode_step (only grow)
  int64_t B_ = 0, S_ = 0;
  std::vector<int64_t> ids_;
  std::vector<T> xlast_, xn_, rstd_, logits_;
  bool saved_train_ = false;
  void check_loaded() const;
  void block_forward(Block& b, Saved& s, int64_t B, int64_t S, T* x, const MlstmState* st_in,
                     MlstmState* st_out, Mode mode);
  void block_backward(Block& b, Saved& s, T* dx);
  // One token per row (ids (B, 1), B <= kLinearGemvRows, Mode::Eval) in a single parallel
  // region (models/xlstm_large_decode.cpp); float only.
  Tensor decode_step(const Tensor& ids, const XLSTMLargeState* state_in,
                     XLSTMLargeState* state_out);
};

template <>
Tensor XLSTMLarge<float>::decode_step(const Tensor& ids, const XLSTMLargeState* state_in,
                                      XLSTMLargeState* state_out);

extern template class XLSTMLarge<float>;
extern template class XLSTMLarge<double>;

}  // namespace xlstm
