#include "infer/sample.h"

#include <algorithm>
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

}  // namespace xlstm
