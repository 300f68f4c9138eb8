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

// Batched generation of prompts of any lengths. Each prompt is prefilled alone (there is no
// attention mask in a recurrent model, so padding would change the result): row b gives
// exactly what generate() gives for prompt b alone with seed `seed + b`. The row states are
// then stacked and every step decodes all unfinished rows at once (one pass over the weights
// for the whole batch).
struct BatchOptions {
  int64_t max_tokens = 256;         // per row
  SamplingConfig sampling;
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;    // a row ends when it samples one of these (not emitted)
};
// Where a continued generation starts: an exported state of all rows (LanguageModel::
// export_state) and the next-token logits (B, V) it ended with. With a start, a prompt may be
// empty (continue right where the state ended).
struct GenerationStart {
  StateTensors state;
  Tensor logits;
};
struct BatchResult {
  std::vector<std::vector<int64_t>> tokens;  // emitted tokens per row
  std::vector<std::string> stop_reason;      // "length", "stop_id", "callback"
  // The state after every emitted token of every row has been consumed, and the next-token
  // logits (B, V): save both to continue later (GenerationStart).
  StateTensors state;
  Tensor logits;
};
// on_token(row, id): called as soon as a token is drawn; return false to end that row (the
// token counts as emitted). `start` (optional) continues from a saved generation; its batch
// size must equal prompts.size().
BatchResult generate_batch(LanguageModel& model, const std::vector<std::vector<int64_t>>& prompts,
                           const BatchOptions& opt,
                           const std::function<bool(int64_t row, int64_t id)>& on_token,
                           const GenerationStart* start = nullptr);

}  // namespace xlstm
