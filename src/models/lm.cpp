#include "models/lm.h"

#include <cstring>

#include "models/lstm_lm.h"
#include "models/xlstm_lm.h"

namespace xlstm {

namespace {

struct XLSTMState : LMState {
  XLSTMLMState s;
};

// The xLSTM LM of the xlstm package behind the LanguageModel interface.
class XLSTMLanguageModel : public LanguageModel {
 public:
  XLSTMLanguageModel(const nlohmann::json& j, const std::string& where, uint64_t seed)
      : json_(j), lm_(xlstm_lm_config_from_json(j, where)) {
    Rng rng(seed);
    lm_.reset_parameters(rng);
  }
  int64_t vocab_size() const override { return lm_.vocab_size(); }
  const nlohmann::json& config() const override { return json_; }
  void reset_parameters(Rng& rng) override { lm_.reset_parameters(rng); }
  void collect_params(const std::string& p, std::vector<ParamRef>& out) override {
    lm_.collect_params(p, out);
  }
  Tensor forward(const Tensor& ids, Mode mode, Rng* rng) override {
    return lm_.forward(ids, mode, rng);
  }
  void backward(const Tensor& dlogits) override { lm_.backward(dlogits); }
  std::unique_ptr<LMState> new_state(int64_t) const override {
    return std::make_unique<XLSTMState>();
  }
  Tensor prefill(const Tensor& ids, LMState& state) override {
    auto& s = dynamic_cast<XLSTMState&>(state);
    XLSTMLMState next;
    Tensor logits = lm_.forward(ids, Mode::Eval, nullptr, s.s.blocks.empty() ? nullptr : &s.s, &next);
    s.s = std::move(next);
    const int64_t B = ids.dim(0), S = ids.dim(1), V = lm_.vocab_size();
    Tensor last({B, V}, DType::F32);
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(last.data<float>() + b * V, logits.data<float>() + (b * S + S - 1) * V,
                  sizeof(float) * V);
    return last;
  }
  Tensor step(const Tensor& ids, LMState& state) override {
    return lm_.step(ids, dynamic_cast<XLSTMState&>(state).s);
  }

 private:
  nlohmann::json json_;
  XLSTMLM<float> lm_;
};

}  // namespace

std::unique_ptr<LanguageModel> make_language_model(const nlohmann::json& config,
                                                   const std::string& where, uint64_t seed) {
  XLSTM_CHECK(config.is_object(), ValueError, where, ": model config must be a JSON object");
  XLSTM_CHECK(config.contains("arch") && config["arch"].is_string(), ValueError, where,
              ": model config lacks field 'arch' (\"xlstm\" or \"lstm\")");
  const std::string arch = config["arch"].get<std::string>();
  if (arch == "xlstm") return std::make_unique<XLSTMLanguageModel>(config, where, seed);
  if (arch == "lstm") return std::make_unique<LSTMLM>(config, where, seed);
  throw ValueError(str(where, ": field 'arch' is '", arch, "'; hint: \"xlstm\" or \"lstm\""));
}

int64_t count_params(Module& m) {
  int64_t n = 0;
  for (auto& p : m.params()) n += p.value->numel();
  return n;
}

}  // namespace xlstm
