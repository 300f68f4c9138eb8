// xLSTM-Large behind the LanguageModel interface (trainer, generator). Config JSON:
// {"arch": "xlstm-large", <the Hugging Face config.json fields>} (xlstm_large_config_from_json).
#pragma once
#include <memory>

#include "models/lm.h"
#include "models/xlstm_large.h"

namespace xlstm {

class XLSTMLargeLM : public LanguageModel {
 public:
  // A freshly initialised model (HF init from `seed`), ready to train.
  XLSTMLargeLM(const nlohmann::json& config, const std::string& where, uint64_t seed);
  // Wraps a loaded model (e.g. load_hf_checkpoint); `config` is recorded as its config().
  XLSTMLargeLM(std::unique_ptr<XLSTMLarge<float>> model, nlohmann::json config);
  XLSTMLarge<float>& model() { return *model_; }
  int64_t vocab_size() const override { return model_->vocab_size(); }
  const nlohmann::json& config() const override { return json_; }
  void reset_parameters(Rng& rng) override { model_->reset_parameters(rng); }
  void collect_params(const std::string& p, std::vector<ParamRef>& out) override {
    model_->collect_params(p, out);
  }
  // Mode::Train needs an owned model (enable_training(); done by the fresh-init constructor
  // and by HfLoad::Owned). xLSTM-Large has no dropout: rng is unused.
  Tensor forward(const Tensor& ids, Mode mode, Rng* rng) override;
  void backward(const Tensor& dlogits) override { model_->backward(dlogits); }
  // TBPTT: forward from the carried state, which is replaced by the state after the window.
  Tensor forward_carry(const Tensor& ids, Mode mode, Rng* rng, LMState& state) override;
  std::unique_ptr<LMState> new_state(int64_t B) const override;
  // Consumes the prompt in slices of at most kPrefillSlice tokens (chunkwise form, state carried
  // between slices: exactly the same function, bounded activation memory).
  Tensor prefill(const Tensor& ids, LMState& state) override;
  Tensor step(const Tensor& ids, LMState& state) override;
  // "block.{i}.C" (B,NH,DHQK,DHV), "block.{i}.n" (B,NH,DHQK), "block.{i}.m" (B,NH).
  std::map<std::string, Tensor> export_state(const LMState& state) const override;
  std::unique_ptr<LMState> import_state(const std::map<std::string, Tensor>& t,
                                        const std::string& where) const override;
  static constexpr int64_t kPrefillSlice = 1024;

 private:
  nlohmann::json json_;
  std::unique_ptr<XLSTMLarge<float>> model_;
};

// The LM config JSON of an xLSTM-Large config ({"arch": "xlstm-large", ...to_hf_json()}).
nlohmann::json xlstm_large_lm_json(const XLSTMLargeConfig& cfg);

}  // namespace xlstm
