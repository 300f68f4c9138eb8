#include "models/lm.h"

#include <cstdio>
#include <cstring>

#include "models/lstm_lm.h"
#include "models/xlstm_large_lm.h"
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
  Tensor forward_carry(const Tensor& ids, Mode mode, Rng* rng, LMState& state) override {
    auto& s = dynamic_cast<XLSTMState&>(state);
    XLSTMLMState next;
    Tensor logits = lm_.forward(ids, mode, rng, s.s.blocks.empty() ? nullptr : &s.s, &next);
    s.s = std::move(next);
    return logits;
  }
  std::map<std::string, Tensor> export_state(const LMState& state) const override {
    const auto& s = dynamic_cast<const XLSTMState&>(state).s;
    std::map<std::string, Tensor> r;
    auto put = [&](const std::string& n, const Tensor& t, int bdim) {
      if (t.defined()) r[n] = batch_first(t, bdim);
    };
    for (size_t i = 0; i < s.blocks.size(); ++i) {
      const BlockState& b = s.blocks[i];
      const std::string p = str("block.", i, ".");
      put(p + "mlstm.conv", b.mlstm.conv, 0);
      put(p + "mlstm.c", b.mlstm.cell.c, 0);
      put(p + "mlstm.n", b.mlstm.cell.n, 0);
      put(p + "mlstm.m", b.mlstm.cell.m, 0);
      put(p + "slstm.conv", b.slstm.conv, 0);
      put(p + "slstm.state", b.slstm.slstm, 1);  // (4, B, H)
    }
    return r;
  }
  std::unique_ptr<LMState> import_state(const std::map<std::string, Tensor>& t,
                                        const std::string& where) const override {
    auto st = std::make_unique<XLSTMState>();
    if (t.empty()) return st;
    const size_t L = lm_.config().blocks.size();
    st->s.blocks.resize(L);
    for (auto& [name, v] : t) {
      size_t i = 0;
      char field[32] = {};
      XLSTM_CHECK(std::sscanf(name.c_str(), "block.%zu.%31s", &i, field) == 2 && i < L,
                  ValueError, where, ": state tensor '", name, "' does not belong to this model (",
                  L, " blocks)");
      BlockState& b = st->s.blocks[i];
      const std::string f = field;
      Tensor x = v.to(DType::F32);
      if (f == "mlstm.conv") b.mlstm.conv = x;
      else if (f == "mlstm.c") b.mlstm.cell.c = x;
      else if (f == "mlstm.n") b.mlstm.cell.n = x;
      else if (f == "mlstm.m") b.mlstm.cell.m = x;
      else if (f == "slstm.conv") b.slstm.conv = x;
      else if (f == "slstm.state") b.slstm.slstm = batch_to(x, 1);
      else throw ValueError(str(where, ": unknown state tensor '", name, "'"));
    }
    return st;
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
              ": model config lacks field 'arch' (\"xlstm\", \"xlstm-large\" or \"lstm\")");
  const std::string arch = config["arch"].get<std::string>();
  if (arch == "xlstm") return std::make_unique<XLSTMLanguageModel>(config, where, seed);
  if (arch == "lstm") return std::make_unique<LSTMLM>(config, where, seed);
  if (arch == "xlstm-large") return std::make_unique<XLSTMLargeLM>(config, where, seed);
  throw ValueError(str(where, ": field 'arch' is '", arch,
                       "'; hint: \"xlstm\", \"xlstm-large\" or \"lstm\""));
}

Tensor batch_first(const Tensor& t, int dim) {
  XLSTM_CHECK(dim >= 0 && dim < t.ndim(), ValueError, "[batch_first] dim ", dim, " of a ",
              t.ndim(), "-d tensor");
  if (dim == 0) return t.clone();
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= t.dim(d);
  for (int d = dim + 1; d < t.ndim(); ++d) inner *= t.dim(d);
  const int64_t B = t.dim(dim), es = (int64_t)dtype_size(t.dtype());
  Shape sh = t.shape();
  sh.erase(sh.begin() + dim);
  sh.insert(sh.begin(), B);
  Tensor r = Tensor::empty(sh, t.dtype());
  const char* src = static_cast<const char*>(t.raw());
  char* dst = static_cast<char*>(r.raw());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(dst + ((b * outer + o) * inner) * es, src + ((o * B + b) * inner) * es,
                  (size_t)(inner * es));
  return r;
}

Tensor batch_to(const Tensor& t, int dim) {
  XLSTM_CHECK(dim >= 0 && dim < t.ndim(), ValueError, "[batch_to] dim ", dim, " of a ",
              t.ndim(), "-d tensor");
  if (dim == 0) return t.clone();
  int64_t outer = 1, inner = 1;
  for (int d = 1; d <= dim; ++d) outer *= t.dim(d);
  for (int d = dim + 1; d < t.ndim(); ++d) inner *= t.dim(d);
  const int64_t B = t.dim(0), es = (int64_t)dtype_size(t.dtype());
  Shape sh = t.shape();
  sh.erase(sh.begin());
  sh.insert(sh.begin() + dim, B);
  Tensor r = Tensor::empty(sh, t.dtype());
  const char* src = static_cast<const char*>(t.raw());
  char* dst = static_cast<char*>(r.raw());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(dst + ((o * B + b) * inner) * es, src + ((b * outer + o) * inner) * es,
                  (size_t)(inner * es));
  return r;
}

StateTensors state_row(const StateTensors& s, int64_t b) {
  StateTensors r;
  for (auto& [n, t] : s) {
    XLSTM_CHECK(t.ndim() >= 1 && b >= 0 && b < t.dim(0), ValueError, "[state_row] row ", b,
                " of state tensor '", n, "' ", shape_str(t.shape()));
    Shape sh = t.shape();
    sh[0] = 1;
    Tensor x = Tensor::empty(sh, t.dtype());
    const size_t row = x.nbytes();
    std::memcpy(x.raw(), static_cast<const char*>(t.raw()) + b * row, row);
    r[n] = x;
  }
  return r;
}

StateTensors concat_state_rows(const std::vector<StateTensors>& rows, const std::string& where) {
  XLSTM_CHECK(!rows.empty(), ValueError, where, ": no states to concatenate");
  StateTensors r;
  for (auto& [n, t0] : rows[0]) {
    int64_t B = 0;
    for (auto& row : rows) {
      auto it = row.find(n);
      XLSTM_CHECK(it != row.end() && it->second.ndim() == t0.ndim() &&
                      it->second.dtype() == t0.dtype(),
                  ValueError, where, ": states differ in tensor '", n, "'");
      for (int d = 1; d < t0.ndim(); ++d)
        XLSTM_CHECK(it->second.dim(d) == t0.dim(d), ValueError, where, ": states differ in the shape of '", n, "'");
      B += it->second.dim(0);
    }
    Shape sh = t0.shape();
    sh[0] = B;
    Tensor x = Tensor::empty(sh, t0.dtype());
    char* dst = static_cast<char*>(x.raw());
    for (auto& row : rows) {
      const Tensor& t = row.at(n);
      std::memcpy(dst, t.raw(), t.nbytes());
      dst += t.nbytes();
    }
    r[n] = x;
  }
  for (auto& row : rows)
    XLSTM_CHECK(row.size() == rows[0].size(), ValueError, where, ": states have different tensors");
  return r;
}

Tensor LanguageModel::forward_carry(const Tensor&, Mode, Rng*, LMState&) {
  throw NotImplementedError(str("[lm] arch '", config().value("arch", std::string("?")),
                                "' cannot train with a carried state (--tbptt); hint: an xlstm or "
                                "lstm model"));
}

void LanguageModel::set_decode_bf16(bool on) {
  if (!on) return;
  throw NotImplementedError(str("[lm] arch '", config().value("arch", std::string("?")),
                                "' has no bf16 decode; hint: lstm models (a Hugging Face "
                                "checkpoint decodes in the dtype it is stored in)"));
}

int64_t count_params(Module& m) {
  int64_t n = 0;
  for (auto& p : m.params()) n += p.value->numel();
  return n;
}

}  // namespace xlstm
