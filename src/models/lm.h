// The language-model interface the trainer and the generator use, and the factory that builds
// a model from its JSON config ({"arch": "xlstm" | "lstm", ...}). Models compute in float32.
#pragma once
#include <map>
#include <memory>
#include <vector>
#include <nlohmann/json.hpp>
#include <string>

#include "nn/module.h"
#include "xlstm/rng.h"

namespace xlstm {

// Opaque carried state of a model (recurrent states of every layer/block).
struct LMState {
  virtual ~LMState() = default;
};

class LanguageModel : public Module {
 public:
  virtual int64_t vocab_size() const = 0;
  virtual const nlohmann::json& config() const = 0;  // what make_language_model was given
  virtual void reset_parameters(Rng& rng) = 0;
  // ids (B, S) I64 -> logits (B, S, V) F32; keeps what backward needs.
  virtual Tensor forward(const Tensor& ids, Mode mode, Rng* rng) = 0;
  // dlogits (B, S, V) F32; accumulates parameter gradients.
  virtual void backward(const Tensor& dlogits) = 0;
  // A zero state for B sequences.
  virtual std::unique_ptr<LMState> new_state(int64_t B) const = 0;
  // Consumes ids (B, S) from `state` in the parallel/chunkwise form, advances `state`, returns
  // the logits of the last position (B, V).
  virtual Tensor prefill(const Tensor& ids, LMState& state) = 0;
  // One token per sequence: ids (B) -> logits (B, V), O(1) work in the sequence length.
  virtual Tensor step(const Tensor& ids, LMState& state) = 0;
  // The carried state as named tensors, every one batch-first (B, ...), for saving a state to
  // a file and for stacking rows into a batch (state_rows / concat_state_rows below). A zero
  // state may export as an empty map. import_state is the inverse; it throws ValueError naming
  // `where` for names or shapes this model does not have.
  virtual std::map<std::string, Tensor> export_state(const LMState& state) const = 0;
  virtual std::unique_ptr<LMState> import_state(const std::map<std::string, Tensor>& tensors,
                                                const std::string& where) const = 0;
  // Truncated backpropagation through time (train/tbptt.h): like forward (keeps what backward
  // needs, dropout in Mode::Train), but starting from the carried `state`, which is then
  // replaced by the state after the last position. The carried state is a constant for
  // backward. The default throws NotImplementedError.
  virtual Tensor forward_carry(const Tensor& ids, Mode mode, Rng* rng, LMState& state);
  // Decode (step) with bf16 copies of the recurrent weight matrices made now (about half the
  // memory traffic per token; results differ from float32 by the weights' bf16 rounding).
  // Implemented by the LSTM model; the default throws NotImplementedError.
  virtual void set_decode_bf16(bool on);
};

// Rows [b] of every tensor of an exported state (each (1, ...)), and the concatenation of
// exported single- or multi-row states along the batch dimension (same names and shapes).
using StateTensors = std::map<std::string, Tensor>;
StateTensors state_row(const StateTensors& s, int64_t b);
StateTensors concat_state_rows(const std::vector<StateTensors>& rows, const std::string& where);
// Moves dimension `dim` of t to the front (a copy): (A, B, C) with dim 1 -> (B, A, C).
Tensor batch_first(const Tensor& t, int dim);
// The inverse: moves the front dimension to position `dim`.
Tensor batch_to(const Tensor& t, int dim);

// Builds an untrained model (deterministic init from `seed`). Throws ValueError naming `where`
// and the field for a bad config.
std::unique_ptr<LanguageModel> make_language_model(const nlohmann::json& config,
                                                   const std::string& where, uint64_t seed = 0);

// Number of scalar parameters.
int64_t count_params(Module& m);

}  // namespace xlstm
