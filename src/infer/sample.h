// Sampling the next token from logits, and the generation loop: the prompt is consumed once
// in the parallel/chunkwise form (prefill), then every new token costs one recurrent step.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "models/lm.h"
#include "xlstm/rng.h"

namespace xlstm {

struct SamplingConfig {
  double temperature = 1.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // keep the k most likely tokens (0 = all)
  double top_p = 1.0;        // keep the smallest set with cumulative probability >= top_p
  double repetition_penalty = 1.0;  // > 1 discourages tokens already generated (CTRL-style)
};
// ValueError for temperature < 0, top_k < 0, top_p outside (0, 1], penalty <= 0.
void validate(const SamplingConfig& s);

// Draws a token from logits[0..V) (read). `history` are the tokens so far (for the penalty).
// Deterministic for a fixed Rng state. Ties in greedy mode go to the lowest id.
int64_t sample_token(const float* logits, int64_t V, const SamplingConfig& s, Rng& rng,
                     const std::vector<int64_t>& history);

// Feeds `prompt` (non-empty) through model.prefill, then samples `n` tokens, calling
// on_token(id) for each as soon as it is drawn (return false to stop early). Returns the ids.
std::vector<int64_t> generate(LanguageModel& model, const std::vector<int64_t>& prompt, int64_t n,
                              const SamplingConfig& s, uint64_t seed,
                              const std::function<bool(int64_t)>& on_token);

}  // namespace xlstm
