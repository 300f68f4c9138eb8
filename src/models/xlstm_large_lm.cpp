#include "models/xlstm_large_lm.h"

#include <cstdio>
#include <cstring>

namespace xlstm {

namespace {
struct LargeState : LMState {
  XLSTMLargeState s;
};
}  // namespace

nlohmann::json xlstm_large_lm_json(const XLSTMLargeConfig& cfg) {
  nlohmann::json j = cfg.to_hf_json();
  j["arch"] = "xlstm-large";
  return j;
}

XLSTMLargeLM::XLSTMLargeLM(const nlohmann::json& config, const std::string& where, uint64_t seed)
    : json_(config),
      model_(std::make_unique<XLSTMLarge<float>>(xlstm_large_config_from_json(config, where))) {
  Rng rng(seed);
  model_->reset_parameters(rng);
  model_->enable_training();
}

XLSTMLargeLM::XLSTMLargeLM(std::unique_ptr<XLSTMLarge<float>> model, nlohmann::json config)
    : json_(std::move(config)), model_(std::move(model)) {}

Tensor XLSTMLargeLM::forward(const Tensor& ids, Mode mode, Rng*) {
  return model_->forward(ids, mode);
}

Tensor XLSTMLargeLM::forward_carry(const Tensor& ids, Mode mode, Rng*, LMState& state) {
  auto& s = dynamic_cast<LargeState&>(state).s;
  return model_->forward(ids, mode, &s, &s);
}

std::unique_ptr<LMState> XLSTMLargeLM::new_state(int64_t) const {
  return std::make_unique<LargeState>();
}

Tensor XLSTMLargeLM::prefill(const Tensor& ids, LMState& state) {
  XLSTM_CHECK(ids.ndim() == 2 && ids.dtype() == DType::I64 && ids.dim(1) >= 1, ValueError,
              "[xlstm_large.prefill] ids must be (B, S >= 1) int64, got ", shape_str(ids.shape()));
  auto& s = dynamic_cast<LargeState&>(state).s;
  const int64_t B = ids.dim(0), S = ids.dim(1), V = vocab_size();
  Tensor last;
  for (int64_t t0 = 0; t0 < S; t0 += kPrefillSlice) {
    const int64_t n = std::min(kPrefillSlice, S - t0);
    Tensor slice = Tensor::empty({B, n}, DType::I64);
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(slice.data<int64_t>() + b * n, ids.data<int64_t>() + b * S + t0,
                  sizeof(int64_t) * n);
    const bool final = t0 + n == S;
    Tensor logits = model_->forward(slice, Mode::Eval, &s, &s,
                                    final ? XLSTMLarge<float>::Logits::Last
                                          : XLSTMLarge<float>::Logits::None);
    if (final) last = logits.reshape({B, V});
  }
  return last;
}

Tensor XLSTMLargeLM::step(const Tensor& ids, LMState& state) {
  XLSTM_CHECK(ids.ndim() == 1 && ids.dtype() == DType::I64, ValueError,
              "[xlstm_large.step] ids must be (B) int64, got ", shape_str(ids.shape()));
  auto& s = dynamic_cast<LargeState&>(state).s;
  const int64_t B = ids.dim(0);
  return model_->forward(ids.reshape({B, 1}), Mode::Eval, &s, &s).reshape({B, vocab_size()});
}

std::map<std::string, Tensor> XLSTMLargeLM::export_state(const LMState& state) const {
  const auto& s = dynamic_cast<const LargeState&>(state).s;
  std::map<std::string, Tensor> r;
  for (size_t i = 0; i < s.blocks.size(); ++i) {
    if (!s.blocks[i].c.defined()) continue;
    r[str("block.", i, ".C")] = s.blocks[i].c;
    r[str("block.", i, ".n")] = s.blocks[i].n;
    r[str("block.", i, ".m")] = s.blocks[i].m;
  }
  return r;
}

std::unique_ptr<LMState> XLSTMLargeLM::import_state(const std::map<std::string, Tensor>& t,
                                                    const std::string& where) const {
  auto st = std::make_unique<LargeState>();
  if (t.empty()) return st;
  const XLSTMLargeConfig& c = model_->config();
  const int64_t L = c.num_blocks, NH = c.num_heads, DQK = c.dhqk(), DV = c.dhv();
  XLSTM_CHECK((int64_t)t.size() == 3 * L, ValueError, where, ": a state of this model has ",
              3 * L, " tensors (C, n, m for ", L, " blocks), got ", t.size());
  st->s.blocks.resize((size_t)L);
  int64_t B = -1;
  for (int64_t i = 0; i < L; ++i) {
    MlstmState& m = st->s.blocks[(size_t)i];
    for (const char* f : {"C", "n", "m"}) {
      const std::string name = str("block.", i, ".", f);
      auto it = t.find(name);
      XLSTM_CHECK(it != t.end(), ValueError, where, ": state tensor '", name, "' is missing");
      const Tensor& x = it->second;
      if (B < 0 && x.ndim() >= 1) B = x.dim(0);
      const Shape want = f[0] == 'C' ? Shape{B, NH, DQK, DV} : f[0] == 'n' ? Shape{B, NH, DQK}
                                                                           : Shape{B, NH};
      XLSTM_CHECK(x.shape() == want, ValueError, where, ": state tensor '", name, "' must be ",
                  shape_str(want), ", got ", shape_str(x.shape()));
      (f[0] == 'C' ? m.c : f[0] == 'n' ? m.n : m.m) = x.to(DType::F32);
    }
  }
  return st;
}

}  // namespace xlstm
