// Hugging Face `xlstm` checkpoint directories (xLSTMForCausalLM, the format of NX-AI/xLSTM-7b):
//   config.json                          model_type "xlstm" (../shared/hf/FORMAT.md §2)
//   model.safetensors                    or sharded: model.safetensors.index.json ("weight_map":
//   model-0000k-of-0000n.safetensors       tensor name -> shard file) and the shards
//   tokenizer.json, generation_config.json (optional)
//
// Loading validates everything before any weight is used: the config (defaults filled, sizes
// consistent), the index and every shard (safetensors headers, offsets inside the file), and
// every tensor name and shape against the config (missing, unexpected and mis-shaped tensors
// are errors naming the file and the tensor). lm_head.weight absent + tie_word_embeddings =
// the head is the embedding (absent without tie is an error); HF itself ignores the tie.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "models/xlstm_large.h"

namespace xlstm {

enum class HfLoad {
  // Zero-copy: F32 tensors and BF16 matrices stay views of the mapped files (read-only,
  // paged in on first use; a bf16 7B needs ~14 GB of page cache, nothing is copied). Other
  // dtypes (F16, F64, BF16 vectors) are converted to owned F32. For inference.
  Mapped,
  // Every parameter an owned F32 tensor with gradients (fine-tuning).
  Owned,
};

struct HfCheckpoint {
  std::string dir;
  nlohmann::json config_json;     // config.json as read
  XLSTMLargeConfig config;        // parsed; tie_word_embeddings = the head is the embedding
  std::unique_ptr<XLSTMLarge<float>> model;
  bool tied_fallback = false;     // lm_head.weight was absent: head tied to the embedding
  std::string tokenizer_json;     // <dir>/tokenizer.json when present, else ""
  nlohmann::json generation_config;  // <dir>/generation_config.json or {}
  DType stored_dtype = DType::F32;   // dtype of the stored weight matrices
  int64_t stored_bytes = 0;          // bytes of all stored tensors
};

// True when `dir` holds a config.json with a `model_type` (an HF-format model directory, not
// one of our checkpoints), or a config.json that cannot be parsed.
bool is_hf_dir(const std::string& dir);

// Throws IoError / ValueError naming the file and the field or tensor.
HfCheckpoint load_hf_checkpoint(const std::string& dir, HfLoad mode = HfLoad::Mapped);

// Writes `model` as an HF directory: config.json (cfg.to_hf_json() merged over `base_config`
// when given, so unknown fields of the original survive), model.safetensors (F32, or BF16 when
// `dtype` is BF16), and copies of `tokenizer_json` / generation_config when given. The
// directory appears complete or not at all (written beside it, then renamed).
void save_hf_checkpoint(const std::string& dir, XLSTMLarge<float>& model,
                        const nlohmann::json& base_config = nlohmann::json(),
                        const std::string& tokenizer_json = "", DType dtype = DType::F32,
                        const nlohmann::json& generation_config = nlohmann::json());

}  // namespace xlstm
