// The classic baseline: embedding -> stacked LSTM (torch.nn.LSTM semantics) -> dropout ->
// linear head. Parameter names: embedding.weight, lstm.<torch LSTM names>, head.weight,
// head.bias. Config JSON: {"arch": "lstm", "vocab_size", "embedding_dim", "hidden_size",
// "num_layers", "dropout"}.
#pragma once
#include "models/lm.h"
#include "nn/lstm.h"

namespace xlstm {

struct LSTMLMConfig {
  int64_t vocab_size = -1, embedding_dim = 128, hidden_size = 512, num_layers = 1;
  double dropout = 0.0;  // between LSTM layers and before the head, in Mode::Train
};
LSTMLMConfig lstm_lm_config_from_json(const nlohmann::json& j, const std::string& where);

class LSTMLM : public LanguageModel {
 public:
  LSTMLM(const nlohmann::json& config, const std::string& where, uint64_t seed);
  int64_t vocab_size() const override { return cfg_.vocab_size; }
  const nlohmann::json& config() const override { return json_; }
  void reset_parameters(Rng& rng) override;
  void collect_params(const std::string& prefix, std::vector<ParamRef>& out) override;
  Tensor forward(const Tensor& ids, Mode mode, Rng* rng) override;
  void backward(const Tensor& dlogits) override;
  std::unique_ptr<LMState> new_state(int64_t B) const override;
  Tensor prefill(const Tensor& ids, LMState& state) override;
  Tensor step(const Tensor& ids, LMState& state) override;
  // "h", "c": (B, L, H) (the LSTM's (L, B, H) made batch-first).
  std::map<std::string, Tensor> export_state(const LMState& state) const override;
  std::unique_ptr<LMState> import_state(const std::map<std::string, Tensor>& t,
                                        const std::string& where) const override;
  Tensor forward_carry(const Tensor& ids, Mode mode, Rng* rng, LMState& state) override;
  void set_decode_bf16(bool on) override { lstm_.set_step_bf16(on); }

 private:
  Tensor run(const Tensor& ids, Mode mode, Rng* rng, const Tensor& h0, const Tensor& c0,
             Tensor* h_n, Tensor* c_n);
  nlohmann::json json_;
  LSTMLMConfig cfg_;
  LSTM<float> lstm_;
  Tensor w_emb_, dw_emb_, w_head_, dw_head_, b_head_, db_head_;
  int64_t B_ = 0, S_ = 0;
  std::vector<int64_t> ids_;
  std::vector<float> hid_, mask_;
};

}  // namespace xlstm
