// The sequence backbone shared by the task models (classification, forecasting): a stack of
// recurrent layers that maps a sequence of feature vectors to a sequence of feature vectors,
// without the token embedding and the head of the language models (it is their middle part).
//
//   arch "lstm":  torch.nn.LSTM semantics (stacked, dropout between layers), optionally
//                 bidirectional; output = [forward | reverse] halves of the last layer.
//   arch "xlstm": input Linear in_dim -> embedding_dim [-> dropout], the xLSTM block stack of
//                 the xlstm package (mLSTM / sLSTM blocks, models/xlstm_config.h), the
//                 post-blocks LayerNorm.
//
// Variable-length batches: `lengths` (B) gives each row's valid length, padding at the END. All
// cells are causal, so the forward direction needs no masking: padded steps come after every
// valid one and cannot change valid outputs. The reverse direction of a bidirectional LSTM must
// start at each row's last valid step: each row's valid prefix is reversed into a scratch
// buffer (x_rev[b, t] = x[b, len_b-1-t] for t < len_b, padding after), a forward-running LSTM
// runs over it, and its outputs are reversed back the same way. With the padded positions'
// output gradients zero (callers mask them), padded steps contribute exactly zero to every
// gradient. Valid outputs and gradients therefore equal those of the row run alone up to
// floating-point summation order (GEMM blocking differs with the batch shape).
//
// Parameter names: arch "lstm": "lstm." + torch.nn.LSTM names (weight_ih_l{k}[_reverse], ...);
// arch "xlstm": "input_proj.weight", "input_proj.bias", then the official stack names
// "xlstm_block_stack.blocks.{i}.*" and "xlstm_block_stack.post_blocks_norm.weight".
// Write modes as in nn/module.h: activation gradients written, parameter gradients accumulated.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "models/presets.h"
#include "nn/module.h"
#include "xlstm/rng.h"
#include "xlstm/tensor.h"

namespace xlstm {

// Opaque carried state of a backbone (recurrent states of every layer / block).
struct BackboneState {
  virtual ~BackboneState() = default;
};

class Backbone : public Module {
 public:
  virtual int64_t in_dim() const = 0;   // features per step of the input
  virtual int64_t out_dim() const = 0;  // features per step of the output
  virtual bool bidirectional() const { return false; }
  // The scalar type it computes in: F32 from make_backbone, F64 for the double instances used
  // by gradient checks. x, y, dy, dx below are of this dtype.
  virtual DType dtype() const { return DType::F32; }
  virtual const nlohmann::json& config() const = 0;  // what make_backbone was given

  // x (B,S,in_dim) -> y (B,S,out_dim) (written, a new tensor). lengths: undefined, or (B) I64
  // valid lengths in [1, S] with padding at the END of each row; outputs at padded positions
  // are unspecified (callers mask them) and outputs at valid positions equal those of the row
  // run alone. state_in / state_out optional (carried state for TBPTT / streaming;
  // unidirectional only; state_in null = zeros). With lengths, state_out is the state after
  // each row's last valid step; rows shorter than S get it from a forward-only re-run of their
  // valid prefix in Mode::Eval (so with dropout in Mode::Train it is the state without
  // dropout; exact otherwise). Keeps what backward needs. rng: dropout draws in Mode::Train.
  virtual Tensor forward(const Tensor& x, Mode mode, Rng* rng, const Tensor& lengths = Tensor(),
                         const BackboneState* state_in = nullptr,
                         BackboneState* state_out = nullptr) = 0;
  // dy (B,S,out_dim) -> dx (B,S,in_dim) (written); parameter grads accumulated (+=). Carried
  // states are constants (truncated backpropagation through time).
  virtual Tensor backward(const Tensor& dy) = 0;
  virtual std::unique_ptr<BackboneState> new_state(int64_t B) const = 0;  // zero state
  virtual void reset_parameters(Rng& rng) = 0;
};

// cfg: {"arch": "lstm", "hidden_size", "num_layers" (1), "bidirectional" (false), "dropout" (0)}
// or the xLSTM block-stack config of models/xlstm_config.h ({"arch": "xlstm", "embedding_dim",
// "num_blocks", "slstm_at", "mlstm_block", "slstm_block", "dropout", ...; "vocab_size" is not
// needed}). Other fields (e.g. "context_length") are ignored. Deterministic init from `seed`.
// Throws ValueError naming `where` and the field. dtype: F32 (default) or F64.
std::unique_ptr<Backbone> make_backbone(const nlohmann::json& cfg, int64_t in_dim,
                                        const std::string& where, uint64_t seed);
std::unique_ptr<Backbone> make_backbone(const nlohmann::json& cfg, int64_t in_dim,
                                        const std::string& where, uint64_t seed, DType dtype);

// A backbone JSON config from the LM preset names (models/presets.h:
// {lstm,slstm,mlstm,xlstm-7-1,xlstm-1-1}-{tiny,small,medium}) with the overrides (width,
// blocks, heads, slstm_at, dropout, context) applied, plus `bidirectional` (LSTM only; ValueError
// otherwise). The config keeps "context_length" (the training window the preset implies) and,
// for LSTM, "embedding_dim" (the token embedding width the LM preset would use: min(128, width)).
nlohmann::json backbone_preset(const std::string& name, const ModelOverrides& ov,
                               bool bidirectional = false);

// Copies every parameter value of `src` into `dst` (same architecture; ValueError otherwise).
void copy_params(Module& src, Module& dst);

}  // namespace xlstm
