#include "models/lstm_lm.h"

#include <cmath>
#include <cstring>

#include "cpu/dropout.h"
#include "cpu/embedding.h"
#include "cpu/linear.h"

namespace xlstm {

namespace {
int64_t field(const nlohmann::json& j, const char* k, const std::string& where, int64_t dflt) {
  if (!j.contains(k)) {
    XLSTM_CHECK(dflt >= 0, ValueError, where, ": config lacks field '", k, "'");
    return dflt;
  }
  XLSTM_CHECK(j[k].is_number_integer() && j[k].get<int64_t>() > 0, ValueError, where, ": field '",
              k, "' must be a positive integer");
  return j[k].get<int64_t>();
}

LSTMConfig lstm_config(const LSTMLMConfig& c) {
  LSTMConfig l;
  l.input_size = c.embedding_dim;
  l.hidden_size = c.hidden_size;
  l.num_layers = c.num_layers;
  l.dropout = c.dropout;
  return l;
}

struct LSTMLMState : LMState {
  Tensor h, c;  // (L, B, H)
};
}  // namespace

LSTMLMConfig lstm_lm_config_from_json(const nlohmann::json& j, const std::string& where) {
  LSTMLMConfig c;
  c.vocab_size = field(j, "vocab_size", where, -1);
  c.embedding_dim = field(j, "embedding_dim", where, 128);
  c.hidden_size = field(j, "hidden_size", where, 512);
  c.num_layers = field(j, "num_layers", where, 1);
  if (j.contains("dropout")) {
    XLSTM_CHECK(j["dropout"].is_number() && j["dropout"].get<double>() >= 0 &&
                    j["dropout"].get<double>() < 1,
                ValueError, where, ": field 'dropout' must be a number in [0, 1)");
    c.dropout = j["dropout"].get<double>();
  }
  return c;
}

LSTMLM::LSTMLM(const nlohmann::json& config, const std::string& where, uint64_t seed)
    : json_(config), cfg_(lstm_lm_config_from_json(config, where)), lstm_(lstm_config(cfg_), seed) {
  make_param(w_emb_, dw_emb_, {cfg_.vocab_size, cfg_.embedding_dim}, DType::F32);
  make_param(w_head_, dw_head_, {cfg_.vocab_size, cfg_.hidden_size}, DType::F32);
  make_param(b_head_, db_head_, {cfg_.vocab_size}, DType::F32);
  Rng rng(seed);
  reset_parameters(rng);
}

void LSTMLM::reset_parameters(Rng& rng) {
  // torch defaults: Embedding N(0, 1); LSTM and Linear U(±1/sqrt(fan_in)).
  float* e = w_emb_.data<float>();
  for (int64_t i = 0; i < w_emb_.numel(); ++i) e[i] = (float)rng.normal();
  lstm_.reset_parameters(rng);
  const double b = 1.0 / std::sqrt((double)cfg_.hidden_size);
  float* w = w_head_.data<float>();
  for (int64_t i = 0; i < w_head_.numel(); ++i) w[i] = (float)rng.uniform(-b, b);
  float* bb = b_head_.data<float>();
  for (int64_t i = 0; i < b_head_.numel(); ++i) bb[i] = (float)rng.uniform(-b, b);
}

void LSTMLM::collect_params(const std::string& p, std::vector<ParamRef>& out) {
  out.push_back({p + "embedding.weight", &w_emb_, &dw_emb_});
  lstm_.collect_params(p + "lstm.", out);
  out.push_back({p + "head.weight", &w_head_, &dw_head_});
  out.push_back({p + "head.bias", &b_head_, &db_head_});
}

Tensor LSTMLM::run(const Tensor& ids, Mode mode, Rng* rng, const Tensor& h0, const Tensor& c0,
                   Tensor* h_n, Tensor* c_n) {
  XLSTM_CHECK(ids.ndim() == 2 && ids.dtype() == DType::I64, ValueError,
              "[lstm_lm] ids must be (B,S) int64, got ", shape_str(ids.shape()));
  const int64_t B = ids.dim(0), S = ids.dim(1), N = B * S, E = cfg_.embedding_dim,
                H = cfg_.hidden_size, V = cfg_.vocab_size;
  B_ = B;
  S_ = S;
  ids_.assign(ids.data<int64_t>(), ids.data<int64_t>() + N);
  Tensor x = Tensor::empty({B, S, E}, DType::F32);
  embedding_forward<float>(N, V, E, ids_.data(), w_emb_.data<float>(), x.data<float>());
  const LstmMode lm = mode == Mode::Train ? LstmMode::Train : LstmMode::Eval;
  auto o = lstm_.forward(x, h0, c0, lm, rng);
  hid_.assign(o.output.data<float>(), o.output.data<float>() + N * H);
  mask_.clear();
  if (mode == Mode::Train && cfg_.dropout > 0) {
    XLSTM_CHECK(rng, ValueError, "[lstm_lm] dropout in Mode::Train needs an Rng");
    mask_.resize((size_t)(N * H));
    dropout_forward<float>(N * H, cfg_.dropout, *rng, hid_.data(), hid_.data(), mask_.data());
  }
  Tensor logits = Tensor::empty({B, S, V}, DType::F32);
  linear_forward<float>(N, H, V, hid_.data(), w_head_.data<float>(), b_head_.data<float>(),
                        logits.data<float>());
  if (h_n) *h_n = o.h_n;
  if (c_n) *c_n = o.c_n;
  return logits;
}

Tensor LSTMLM::forward(const Tensor& ids, Mode mode, Rng* rng) {
  return run(ids, mode, rng, Tensor(), Tensor(), nullptr, nullptr);
}

void LSTMLM::backward(const Tensor& dlogits) {
  XLSTM_CHECK(B_ > 0, ValueError, "[lstm_lm] backward called before forward");
  const int64_t N = B_ * S_, E = cfg_.embedding_dim, H = cfg_.hidden_size, V = cfg_.vocab_size;
  XLSTM_CHECK(dlogits.shape() == Shape({B_, S_, V}), ValueError, "[lstm_lm] dlogits must be ",
              shape_str({B_, S_, V}), ", got ", shape_str(dlogits.shape()));
  Tensor dh = Tensor::empty({B_, S_, H}, DType::F32);
  linear_backward<float>(N, H, V, hid_.data(), w_head_.data<float>(), dlogits.data<float>(),
                         dh.data<float>(), dw_head_.data<float>(), db_head_.data<float>());
  if (!mask_.empty()) dropout_backward<float>(N * H, mask_.data(), dh.data<float>(), dh.data<float>());
  auto g = lstm_.backward(dh);
  embedding_backward<float>(N, V, E, ids_.data(), g.dx.data<float>(), dw_emb_.data<float>());
}

std::unique_ptr<LMState> LSTMLM::new_state(int64_t B) const {
  auto s = std::make_unique<LSTMLMState>();
  s->h = Tensor({cfg_.num_layers, B, cfg_.hidden_size}, DType::F32);
  s->c = Tensor({cfg_.num_layers, B, cfg_.hidden_size}, DType::F32);
  return s;
}

std::map<std::string, Tensor> LSTMLM::export_state(const LMState& state) const {
  const auto& s = dynamic_cast<const LSTMLMState&>(state);
  return {{"h", batch_first(s.h, 1)}, {"c", batch_first(s.c, 1)}};
}

std::unique_ptr<LMState> LSTMLM::import_state(const std::map<std::string, Tensor>& t,
                                              const std::string& where) const {
  XLSTM_CHECK(t.size() == 2 && t.count("h") && t.count("c"), ValueError, where,
              ": an LSTM state has exactly the tensors 'h' and 'c'");
  auto s = std::make_unique<LSTMLMState>();
  for (const char* n : {"h", "c"}) {
    const Tensor& x = t.at(n);
    XLSTM_CHECK(x.ndim() == 3 && x.dim(1) == cfg_.num_layers && x.dim(2) == cfg_.hidden_size,
                ValueError, where, ": state tensor '", n, "' must be (B, ", cfg_.num_layers, ", ",
                cfg_.hidden_size, "), got ", shape_str(x.shape()));
    (n[0] == 'h' ? s->h : s->c) = batch_to(x.to(DType::F32), 1);
  }
  XLSTM_CHECK(s->h.dim(1) == s->c.dim(1), ValueError, where, ": 'h' and 'c' differ in batch size");
  return s;
}

Tensor LSTMLM::forward_carry(const Tensor& ids, Mode mode, Rng* rng, LMState& state) {
  auto& s = dynamic_cast<LSTMLMState&>(state);
  Tensor h_n, c_n;
  Tensor logits = run(ids, mode, rng, s.h, s.c, &h_n, &c_n);
  s.h = h_n;
  s.c = c_n;
  return logits;
}

Tensor LSTMLM::prefill(const Tensor& ids, LMState& state) {
  auto& s = dynamic_cast<LSTMLMState&>(state);
  Tensor h_n, c_n;
  Tensor logits = run(ids, Mode::Eval, nullptr, s.h, s.c, &h_n, &c_n);
  s.h = h_n;
  s.c = c_n;
  const int64_t B = ids.dim(0), S = ids.dim(1), V = cfg_.vocab_size;
  Tensor last = Tensor::empty({B, V}, DType::F32);
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(last.data<float>() + b * V, logits.data<float>() + (b * S + S - 1) * V,
                sizeof(float) * V);
  return last;
}

Tensor LSTMLM::step(const Tensor& ids, LMState& state) {
  auto& s = dynamic_cast<LSTMLMState&>(state);
  XLSTM_CHECK(ids.ndim() == 1 && ids.dtype() == DType::I64, ValueError,
              "[lstm_lm.step] ids must be (B) int64");
  const int64_t B = ids.dim(0), E = cfg_.embedding_dim, H = cfg_.hidden_size, V = cfg_.vocab_size;
  Tensor x = Tensor::empty({B, E}, DType::F32);
  embedding_forward<float>(B, V, E, ids.data<int64_t>(), w_emb_.data<float>(), x.data<float>());
  lstm_.step(x, s.h, s.c);
  Tensor logits = Tensor::empty({B, V}, DType::F32);
  const float* top = s.h.data<float>() + (cfg_.num_layers - 1) * B * H;
  linear_forward<float>(B, H, V, top, w_head_.data<float>(), b_head_.data<float>(),
                        logits.data<float>());
  return logits;
}

}  // namespace xlstm
