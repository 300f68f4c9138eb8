#include "infer/sample.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <numeric>

namespace xlstm {

void validate(const SamplingConfig& s) {
  XLSTM_CHECK(std::isfinite(s.temperature) && s.temperature >= 0, ValueError,
              "--temperature must be >= 0, got ", s.temperature);
  XLSTM_CHECK(s.top_k >= 0, ValueError, "--top-k must be >= 0, got ", s.top_k);
  XLSTM_CHECK(s.top_p > 0 && s.top_p <= 1, ValueError, "--top-p must be in (0, 1], got ", s.top_p);
  XLSTM_CHECK(s.repetition_penalty > 0, ValueError, "--repetition-penalty must be > 0");
}

int64_t sample_token(const float* logits, int64_t V, const SamplingConfig& s, Rng& rng,
                     const std::vector<int64_t>& history) {
  std::vector<double> l(logits, logits + V);
  if (s.repetition_penalty != 1.0)
    for (int64_t t : history)
      if (t >= 0 && t < V) l[(size_t)t] = l[(size_t)t] > 0 ? l[(size_t)t] / s.repetition_penalty
                                                            : l[(size_t)t] * s.repetition_penalty;
  if (s.temperature == 0) return (int64_t)(std::max_element(l.begin(), l.end()) - l.begin());
  std::vector<int64_t> idx((size_t)V);
  std::iota(idx.begin(), idx.end(), 0);
  // most likely first; stable so ties keep id order
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return l[(size_t)a] > l[(size_t)b]; });
  int64_t keep = V;
  if (s.top_k > 0) keep = std::min(keep, s.top_k);
  const double mx = l[(size_t)idx[0]];
  std::vector<double> p((size_t)keep);
  double z = 0;
  for (int64_t i = 0; i < keep; ++i) {
    p[(size_t)i] = std::exp((l[(size_t)idx[(size_t)i]] - mx) / s.temperature);
    z += p[(size_t)i];
  }
  if (s.top_p < 1.0) {
    double c = 0;
    int64_t k = 0;
    while (k < keep) {
      c += p[(size_t)k] / z;
      ++k;
      if (c >= s.top_p) break;
    }
    keep = k;
    z = 0;
    for (int64_t i = 0; i < keep; ++i) z += p[(size_t)i];
  }
  double u = rng.uniform() * z;
  for (int64_t i = 0; i < keep; ++i) {
    u -= p[(size_t)i];
    if (u < 0) return idx[(size_t)i];
  }
  return idx[(size_t)(keep - 1)];
}

std::vector<int64_t> generate(LanguageModel& model, const std::vector<int64_t>& prompt, int64_t n,
                              const SamplingConfig& s, uint64_t seed,
                              const std::function<bool(int64_t)>& on_token) {
  validate(s);
  XLSTM_CHECK(!prompt.empty(), ValueError, "[generate] the prompt must hold at least one token");
  XLSTM_CHECK(n >= 0, ValueError, "--tokens must be >= 0, got ", n);
  const int64_t V = model.vocab_size();
  auto state = model.new_state(1);
  Tensor ids({1, (int64_t)prompt.size()}, DType::I64);
  std::copy(prompt.begin(), prompt.end(), ids.data<int64_t>());
  Tensor logits = model.prefill(ids, *state);
  Rng rng(seed);
  std::vector<int64_t> history(prompt), out;
  Tensor tok({1}, DType::I64);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = sample_token(logits.data<float>(), V, s, rng, history);
    out.push_back(t);
    history.push_back(t);
    if (on_token && !on_token(t)) break;
    if (i + 1 == n) break;
    tok.data<int64_t>()[0] = t;
    logits = model.step(tok, *state);
  }
  return out;
}

namespace {

// Logits (B, V) of row b.
const float* row_of(const Tensor& logits, int64_t b) {
  return logits.data<float>() + b * logits.dim(1);
}

}  // namespace

BatchResult generate_batch(LanguageModel& model, const std::vector<std::vector<int64_t>>& prompts,
                           const BatchOptions& opt,
                           const std::function<bool(int64_t row, int64_t id)>& on_token,
                           const GenerationStart* start) {
  validate(opt.sampling);
  XLSTM_CHECK(!prompts.empty(), ValueError, "[generate] no prompts");
  XLSTM_CHECK(opt.max_tokens >= 0, ValueError, "--tokens must be >= 0, got ", opt.max_tokens);
  const int64_t B = (int64_t)prompts.size(), V = model.vocab_size();
  if (start) {
    XLSTM_CHECK(start->logits.defined() && start->logits.shape() == Shape({B, V}), ValueError,
                "[generate] the saved generation has logits ", shape_str(start->logits.shape()),
                ", expected ", shape_str({B, V}), " (one row per prompt, this vocabulary)");
  }
  // 1. Prefill each row alone (from the saved state's row when continuing).
  std::vector<StateTensors> rows((size_t)B);
  Tensor logits({B, V}, DType::F32);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[(size_t)b];
    std::unique_ptr<LMState> st;
    if (start) st = model.import_state(state_row(start->state, b), "saved state");
    else st = model.new_state(1);
    if (p.empty()) {
      XLSTM_CHECK(start, ValueError, "[generate] prompt ", b,
                  " is empty; hint: give at least one token, or continue a saved state");
      std::memcpy(logits.data<float>() + b * V, row_of(start->logits, b), sizeof(float) * V);
    } else {
      Tensor ids({1, (int64_t)p.size()}, DType::I64);
      std::copy(p.begin(), p.end(), ids.data<int64_t>());
      Tensor l = model.prefill(ids, *st);
      std::memcpy(logits.data<float>() + b * V, l.data<float>(), sizeof(float) * V);
    }
    rows[(size_t)b] = model.export_state(*st);
  }
  // 2. Decode all unfinished rows together.
  BatchResult res;
  res.tokens.resize((size_t)B);
  res.stop_reason.assign((size_t)B, "length");
  std::vector<Rng> rng;
  for (int64_t b = 0; b < B; ++b) rng.emplace_back(opt.seed + (uint64_t)b);
  std::vector<std::vector<int64_t>> history(prompts);
  std::vector<int64_t> active;  // rows still generating, in order
  for (int64_t b = 0; b < B; ++b) active.push_back(b);
  std::vector<int64_t> pending((size_t)B, -1);  // emitted token not yet fed to the model
  std::unique_ptr<LMState> state =
      model.import_state(concat_state_rows(rows, "generate"), "generate");
  std::vector<int64_t> state_rows = active;  // which row each batch row of `state` holds
  for (int64_t i = 0; i < opt.max_tokens && !active.empty(); ++i) {
    std::vector<int64_t> next;
    for (int64_t b : active) {
      const int64_t t = sample_token(row_of(logits, b), V, opt.sampling, rng[(size_t)b],
                                     history[(size_t)b]);
      if (std::find(opt.stop_ids.begin(), opt.stop_ids.end(), t) != opt.stop_ids.end()) {
        res.stop_reason[(size_t)b] = "stop_id";
        continue;
      }
      res.tokens[(size_t)b].push_back(t);
      history[(size_t)b].push_back(t);
      pending[(size_t)b] = t;
      if (on_token && !on_token(b, t)) {
        res.stop_reason[(size_t)b] = "callback";
        continue;
      }
      if (i + 1 < opt.max_tokens) next.push_back(b);
    }
    // Feed every emitted token (also the last one of a finished row, so that the final state
    // covers all emitted text). `state` holds the rows of state_rows; `rows` the others.
    std::vector<int64_t> feed;
    for (int64_t b : state_rows)
      if (pending[(size_t)b] >= 0) feed.push_back(b);
    if (!feed.empty()) {
      if (feed != state_rows) {  // some rows emitted nothing: set them aside
        StateTensors all = model.export_state(*state);
        std::vector<StateTensors> parts;
        for (size_t j = 0; j < state_rows.size(); ++j)
          rows[(size_t)state_rows[j]] = state_row(all, (int64_t)j);
        for (int64_t b : feed) parts.push_back(rows[(size_t)b]);
        state = model.import_state(concat_state_rows(parts, "generate"), "generate");
        state_rows = feed;
      }
      Tensor tok({(int64_t)feed.size()}, DType::I64);
      for (size_t j = 0; j < feed.size(); ++j) tok.data<int64_t>()[j] = pending[(size_t)feed[j]];
      Tensor l = model.step(tok, *state);  // the common case: every row steps, in place
      for (size_t j = 0; j < feed.size(); ++j) {
        std::memcpy(logits.data<float>() + feed[j] * V, l.data<float>() + j * V, sizeof(float) * V);
        pending[(size_t)feed[j]] = -1;
      }
      if (next != state_rows) {  // rows finished: keep their states, batch the rest
        StateTensors all = model.export_state(*state);
        for (size_t j = 0; j < state_rows.size(); ++j)
          rows[(size_t)state_rows[j]] = state_row(all, (int64_t)j);
        std::vector<StateTensors> parts;
        for (int64_t b : next) parts.push_back(rows[(size_t)b]);
        state = next.empty() ? nullptr
                             : model.import_state(concat_state_rows(parts, "generate"), "generate");
        state_rows = next;
      }
    }
    active = next;
  }
  if (state && !state_rows.empty()) {
    StateTensors all = model.export_state(*state);
    for (size_t j = 0; j < state_rows.size(); ++j)
      rows[(size_t)state_rows[j]] = state_row(all, (int64_t)j);
  }
  res.state = concat_state_rows(rows, "generate");
  res.logits = logits;
  return res;
}

}  // namespace xlstm
