// Checkpoint directories: everything a run needs to resume bit-identically or to generate.
//
//   <dir>/config.json          {"format":"xlstm-checkpoint","version":1,"model":{...},"train":{...}}
//   <dir>/vocab.json           the tokenizer (data/text.h Vocab)
//   <dir>/model.safetensors    weights under their official names (float32)
//   <dir>/optimizer.safetensors  optimizer moments + step, sampler and dropout RNG states
//   <dir>/state.json           step, total_steps, best validation loss, patience counter, ...
//
// A directory is written as a whole: into "<dir>.tmp.<pid>", fsynced, then renamed over <dir>
// (the previous version is moved to "<dir>.old" first and removed after). A crash therefore
// leaves either the old or the new checkpoint, never a mix; load_checkpoint falls back to
// "<dir>.old" when <dir> is missing.
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/rng_state.h"
#include "data/text.h"
#include "models/lm.h"

namespace xlstm {

struct Checkpoint {
  nlohmann::json config;                  // {"model": ..., "train": ...}
  Vocab vocab;
  std::map<std::string, Tensor> model;    // weights
  std::map<std::string, Tensor> optim;    // may be empty (inference-only checkpoints)
  nlohmann::json state = nlohmann::json::object();
};

// Writes `ck` as directory `dir` atomically (see above). IoError naming the path on failure;
// an existing checkpoint at `dir` is left untouched when writing fails.
void save_checkpoint(const std::string& dir, const Checkpoint& ck);

// Reads a checkpoint directory, validating every file (IoError/ValueError naming the file and
// the field). `with_optimizer` = false skips optimizer.safetensors (inference).
Checkpoint load_checkpoint(const std::string& dir, bool with_optimizer);

// The checkpoint directory a user path means: the path itself when it holds model.safetensors;
// else <path>/best, then <path>/checkpoint (a run directory). IoError listing what was looked
// for otherwise.
std::string resolve_checkpoint_dir(const std::string& path);

// A model built from a checkpoint's config with its weights loaded (float32), plus its vocab.
struct LoadedModel {
  std::unique_ptr<LanguageModel> model;
  Vocab vocab;
  nlohmann::json config;
  std::string dir;
};
LoadedModel load_model(const std::string& path);

// Writes the xLSTM-Large model of a checkpoint (path as for load_model) as a Hugging Face
// model directory `hf_dir` (models/hf.h; weights F32 or BF16; its tokenizer.json when the
// checkpoint has a BPE vocabulary). ValueError for models of other architectures.
void export_hf(const std::string& path, const std::string& hf_dir, DType dtype = DType::F32);


}  // namespace xlstm
