// Training of character/byte-level language models: the loop behind `xlstm train`.
//
// Per step: `accum` micro-batches of B random windows (T+1 tokens) from the train split ->
// forward -> softmax cross-entropy (mean over tokens) -> backward (gradients averaged over the
// micro-batches) -> global-norm clipping -> learning rate from the schedule -> optimizer step.
// Every eval_every steps: mean loss over up to eval_batches sequential windows of the
// validation split; the best model by validation loss is kept in <out>/best; the checkpoint in
// <out>/checkpoint is rewritten; metrics go to <out>/metrics.{csv,jsonl} and <out>/loss.png.
//
// Determinism: for a fixed seed and thread count the run is reproducible, and a run stopped
// at any checkpoint and resumed ends with bit-identical weights (model, optimizer, sampler
// RNG, dropout RNG, step and schedule are all in the checkpoint; the time budget only decides
// when to stop, never what a step computes).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "data/text.h"
#include "io/json_config.h"
#include "train/optim.h"
#include "train/schedule.h"

namespace xlstm {

// The run stopped because training diverged (NaN/Inf loss or gradients).
class TrainingDiverged : public Error {
 public:
  using Error::Error;
};

struct TrainConfig {
  std::string data;             // text file
  std::string out;              // run directory
  std::string vocab = "char";   // "char" | "byte" (a fine-tuned HF model uses its tokenizer: "bpe")
  std::string init_from;        // Hugging Face xlstm model directory to fine-tune ("" = fresh model)
  double val_fraction = 0.1;
  int64_t batch_size = 32;
  int64_t context = 128;        // T (window length)
  int64_t steps = 0;            // total optimizer steps; 0 = decided by `minutes`
  double minutes = 0;           // wall-clock budget (0 = none)
  int64_t accum = 1;            // micro-batches per step
  std::string optimizer = "adamw";
  double lr = 2e-3, min_lr = -1 /* = lr/10 */, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.99;
  double momentum = 0.9;        // sgd
  std::string schedule = "cosine";
  int64_t warmup = 100;
  double clip = 1.0;            // <= 0: off
  int64_t eval_every = 250, eval_batches = 25, log_every = 10;
  int64_t patience = 0;         // early stopping after this many evals without improvement (0 = off)
  uint64_t seed = 1337;
  int64_t stop_at = 0;          // stop after this step as if interrupted (for tests); 0 = off
  // > 0: truncated backpropagation through time (train/tbptt.h): batch_size parallel streams
  // read the train split in consecutive windows of this many tokens (it sets `context`), the
  // state carried across windows; reset where `doc_sep` ends a document ("" = never).
  int64_t tbptt = 0;
  std::string doc_sep;
  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j, const std::string& where);
};

// The settings every task's training config has under the same JSON names (TrainConfig,
// ForecastTrainConfig, ClassifyTrainConfig): steps, minutes, optimizer, schedule, lr, min_lr,
// weight_decay, warmup, clip, eval_every, log_every, patience, seed. Each keeps c's value when
// its field is absent; ValueError naming `where` and the field for a wrong type.
template <class Cfg>
void read_common_train_fields(const nlohmann::json& j, const std::string& w, Cfg& c) {
  using namespace json_cfg;
  c.steps = get_int(j, "steps", w, c.steps);
  c.minutes = get_number(j, "minutes", w, c.minutes);
  c.optimizer = get_string(j, "optimizer", w, c.optimizer);
  c.schedule = get_string(j, "schedule", w, c.schedule);
  c.lr = get_number(j, "lr", w, c.lr);
  c.min_lr = get_number(j, "min_lr", w, c.min_lr);
  c.weight_decay = get_number(j, "weight_decay", w, c.weight_decay);
  c.warmup = get_int(j, "warmup", w, c.warmup);
  c.clip = get_number(j, "clip", w, c.clip);
  c.eval_every = get_int(j, "eval_every", w, c.eval_every);
  c.log_every = get_int(j, "log_every", w, c.log_every);
  c.patience = get_int(j, "patience", w, c.patience);
  c.seed = (uint64_t)get_int(j, "seed", w, (int64_t)c.seed);
}

struct TrainProgress {
  int64_t step = 0, total_steps = 0;
  double loss = 0, val_loss = -1, best_val = -1, lr = 0, tokens_per_s = 0, elapsed_s = 0,
         eta_s = -1, grad_norm = 0;
  bool eval = false;  // this report follows an evaluation
};

struct TrainResult {
  int64_t steps = 0;
  double final_loss = 0, best_val_loss = -1, last_val_loss = -1, tokens_per_s = 0, seconds = 0;
  int64_t params = 0;
  std::string stop_reason;  // "steps", "time", "early stopping", "stop_at"
  std::string checkpoint_dir, best_dir, metrics_csv, metrics_jsonl, plot_png;
  std::string init_from;  // the run's TrainConfig::init_from (also after --resume)
};

// Fresh run: `model_config` is the JSON model config with "vocab_size" filled by the trainer
// from the data. Resume: `resume` = true reads <out>/checkpoint (model + train config from
// there; `cfg` may extend steps/minutes). `on_progress` is called every log_every steps and
// after each evaluation.
TrainResult train_language_model(const TrainConfig& cfg, nlohmann::json model_config, bool resume,
                                 const std::function<void(const TrainProgress&)>& on_progress);

}  // namespace xlstm
