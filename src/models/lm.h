// The language-model interface the trainer and the generator use, and the factory that builds
// a model from its JSON config ({"arch": "xlstm" | "lstm", ...}). Models compute in float32.
#pragma once
#include <memory>
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
};

// Builds an untrained model (deterministic init from `seed`). Throws ValueError naming `where`
// and the field for a bad config.
std::unique_ptr<LanguageModel> make_language_model(const nlohmann::json& config,
                                                   const std::string& where, uint64_t seed = 0);

// Number of scalar parameters.
int64_t count_params(Module& m);

}  // namespace xlstm
