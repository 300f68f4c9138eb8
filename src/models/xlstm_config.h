// Configs of the xlstm package (NeurIPS 2024) read from / written to JSON in the official
// dataclass layout (xLSTMLMModelConfig with nested mlstm_block / slstm_block), so that an
// official config (after __post_init__) loads as it is. Errors name the file and the field.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/blocks.h"

namespace xlstm {

MLSTMLayerConfig mlstm_layer_config_from_json(const nlohmann::json& j, const std::string& where);
SLSTMLayerConfig slstm_layer_config_from_json(const nlohmann::json& j, const std::string& where);
FeedForwardConfig ffn_config_from_json(const nlohmann::json& j, const std::string& where);

// A block config ({"mlstm": {...}} or {"slstm": {...}, "feedforward": {...}}).
BlockConfig mlstm_block_config_from_json(const nlohmann::json& j, const std::string& where);
BlockConfig slstm_block_config_from_json(const nlohmann::json& j, const std::string& where);

struct XLSTMLMConfig {
  int64_t vocab_size = -1;
  int64_t embedding_dim = 128;
  int64_t num_blocks = 1;
  int64_t context_length = -1;
  bool add_post_blocks_norm = true;
  bool tie_weights = false;
  bool add_embedding_dropout = false;
  double dropout = 0.0;
  std::vector<BlockConfig> blocks;  // one per block, in order (derived from the block map)
  nlohmann::json source;            // the JSON it was read from (saved back unchanged)
};

// Reads xLSTMLMModelConfig JSON: vocab_size, embedding_dim, num_blocks, context_length,
// slstm_at (list or "all") or _block_map ("0,1,0,0"), mlstm_block / slstm_block sub-configs
// (embedding_dim, context_length, dropout, bias and _num_blocks propagate as in the official
// __post_init__), add_post_blocks_norm, tie_weights, add_embedding_dropout.
XLSTMLMConfig xlstm_lm_config_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace xlstm
