// Named model configurations for `xlstm train --model PRESET` and the overrides of the common
// fields. Presets are "<arch>-<size>" with arch in lstm, slstm, mlstm, xlstm-7-1, xlstm-1-1
// (xLSTM[a:b] = a mLSTM blocks per b sLSTM blocks) and size in tiny, small, medium.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace xlstm {

std::vector<std::string> model_preset_names();

// Overrides of the common fields; unset (< 0) fields keep the preset's value.
struct ModelOverrides {
  int64_t width = -1;       // embedding_dim (xLSTM) / hidden_size (LSTM)
  int64_t blocks = -1;      // num_blocks (xLSTM) / num_layers (LSTM)
  int64_t heads = -1;       // mLSTM and sLSTM heads
  int64_t context = -1;     // context_length (training window)
  double dropout = -1;
  std::string slstm_at;     // "" keep; "all", "none" or a comma list like "1,5"
};

// The JSON model config of a preset for `vocab_size` symbols, with overrides applied. Throws
// ValueError for an unknown preset (listing the known ones) or a bad override.
nlohmann::json model_preset(const std::string& name, int64_t vocab_size,
                            const ModelOverrides& o = {});

// The training window a config implies (context_length, default 128).
int64_t model_context_length(const nlohmann::json& config);

}  // namespace xlstm
