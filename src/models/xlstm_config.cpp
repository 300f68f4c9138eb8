#include "models/xlstm_config.h"

namespace xlstm {

using json = nlohmann::json;

namespace {

const json& req(const json& j, const char* k, const std::string& where) {
  XLSTM_CHECK(j.is_object() && j.contains(k) && !j[k].is_null(), ValueError, where,
              ": config lacks field '", k, "'");
  return j[k];
}
int64_t get_int(const json& j, const char* k, const std::string& where) {
  const json& v = req(j, k, where);
  XLSTM_CHECK(v.is_number_integer(), ValueError, where, ": field '", k, "' must be an integer");
  return v.get<int64_t>();
}
int64_t opt_int(const json& j, const char* k, int64_t dflt, const std::string& where) {
  if (!j.contains(k) || j[k].is_null()) return dflt;
  XLSTM_CHECK(j[k].is_number_integer(), ValueError, where, ": field '", k, "' must be an integer");
  return j[k].get<int64_t>();
}
double opt_num(const json& j, const char* k, double dflt, const std::string& where) {
  if (!j.contains(k) || j[k].is_null()) return dflt;
  XLSTM_CHECK(j[k].is_number(), ValueError, where, ": field '", k, "' must be a number");
  return j[k].get<double>();
}
bool opt_bool(const json& j, const char* k, bool dflt, const std::string& where) {
  if (!j.contains(k) || j[k].is_null()) return dflt;
  XLSTM_CHECK(j[k].is_boolean(), ValueError, where, ": field '", k, "' must be true or false");
  return j[k].get<bool>();
}
std::string opt_str(const json& j, const char* k, const std::string& dflt, const std::string& where) {
  if (!j.contains(k) || j[k].is_null()) return dflt;
  XLSTM_CHECK(j[k].is_string(), ValueError, where, ": field '", k, "' must be a string");
  return j[k].get<std::string>();
}

}  // namespace

MLSTMLayerConfig mlstm_layer_config_from_json(const json& j, const std::string& where) {
  MLSTMLayerConfig c;
  c.embedding_dim = get_int(j, "embedding_dim", where);
  c.num_heads = opt_int(j, "num_heads", 4, where);
  c.conv1d_kernel_size = opt_int(j, "conv1d_kernel_size", 4, where);
  c.qkv_proj_blocksize = opt_int(j, "qkv_proj_blocksize", 4, where);
  c.proj_factor = opt_num(j, "proj_factor", 2.0, where);
  c.round_proj_up_dim_up = opt_bool(j, "round_proj_up_dim_up", true, where);
  c.round_proj_up_to_multiple_of = opt_int(j, "round_proj_up_to_multiple_of", 64, where);
  c.bias = opt_bool(j, "bias", false, where);
  c.dropout = opt_num(j, "dropout", 0.0, where);
  c.num_blocks = opt_int(j, "_num_blocks", 1, where);
  c.inner_dim = opt_int(j, "_inner_embedding_dim", -1, where);
  const std::string form = opt_str(j, "form", "parallel", where);  // our extension
  XLSTM_CHECK(form == "parallel" || form == "chunkwise" || form == "recurrent", ValueError, where,
              ": field 'form' must be parallel, chunkwise or recurrent, got '", form, "'");
  c.form = form == "parallel" ? MlstmForm::Parallel
           : form == "chunkwise" ? MlstmForm::Chunkwise : MlstmForm::Recurrent;
  c.chunk_size = opt_int(j, "chunk_size", 64, where);
  return c;
}

SLSTMLayerConfig slstm_layer_config_from_json(const json& j, const std::string& where) {
  SLSTMLayerConfig c;
  c.embedding_dim = opt_int(j, "embedding_dim", opt_int(j, "hidden_size", -1, where), where);
  XLSTM_CHECK(c.embedding_dim > 0, ValueError, where, ": sLSTM config needs embedding_dim > 0");
  c.num_heads = opt_int(j, "num_heads", 4, where);
  c.conv1d_kernel_size = opt_int(j, "conv1d_kernel_size", 4, where);
  c.group_norm_weight = opt_bool(j, "group_norm_weight", true, where);
  c.dropout = opt_num(j, "dropout", 0.0, where);
  c.bias_init = opt_str(j, "bias_init", "powerlaw_blockdependent", where);
  c.recurrent_weight_init = opt_str(j, "recurrent_weight_init", "zeros", where);
  c.block_idx = opt_int(j, "_block_idx", 0, where);
  c.num_blocks = opt_int(j, "_num_blocks", 1, where);
  const std::string fn = opt_str(j, "function", "slstm", where);
  XLSTM_CHECK(fn == "slstm", NotImplementedError, where, ": sLSTM function '", fn,
              "' is not supported (only \"slstm\")");
  return c;
}

FeedForwardConfig ffn_config_from_json(const json& j, const std::string& where) {
  FeedForwardConfig c;
  c.embedding_dim = opt_int(j, "embedding_dim", -1, where);
  c.proj_factor = opt_num(j, "proj_factor", 1.3, where);
  c.round_proj_up_dim_up = opt_bool(j, "round_proj_up_dim_up", true, where);
  c.round_proj_up_to_multiple_of = opt_int(j, "round_proj_up_to_multiple_of", 64, where);
  c.bias = opt_bool(j, "bias", false, where);
  c.dropout = opt_num(j, "dropout", 0.0, where);
  c.num_blocks = opt_int(j, "_num_blocks", 1, where);
  const std::string act = opt_str(j, "act_fn", "gelu", where);
  const std::string type = opt_str(j, "ff_type", "ffn_gated", where);
  XLSTM_CHECK(act == "gelu" && type == "ffn_gated", NotImplementedError, where,
              ": feed-forward '", type, "' with act_fn '", act,
              "' is not supported (only ffn_gated with gelu)");
  return c;
}

BlockConfig mlstm_block_config_from_json(const json& j, const std::string& where) {
  BlockConfig b;
  b.kind = BlockKind::MLSTM;
  b.mlstm = mlstm_layer_config_from_json(req(j, "mlstm", where), where + " (mlstm)");
  return b;
}

BlockConfig slstm_block_config_from_json(const json& j, const std::string& where) {
  BlockConfig b;
  b.kind = BlockKind::SLSTM;
  b.slstm = slstm_layer_config_from_json(req(j, "slstm", where), where + " (slstm)");
  b.has_ffn = j.contains("feedforward") && !j["feedforward"].is_null();
  if (b.has_ffn) {
    b.ffn = ffn_config_from_json(j["feedforward"], where + " (feedforward)");
    b.ffn.embedding_dim = b.slstm.embedding_dim;
  }
  return b;
}

XLSTMLMConfig xlstm_lm_config_from_json(const json& j, const std::string& where) {
  XLSTMLMConfig c;
  c.source = j;
  c.vocab_size = get_int(j, "vocab_size", where);
  XLSTM_CHECK(c.vocab_size > 0, ValueError, where, ": vocab_size must be > 0");
  c.embedding_dim = get_int(j, "embedding_dim", where);
  c.num_blocks = get_int(j, "num_blocks", where);
  XLSTM_CHECK(c.embedding_dim > 0 && c.num_blocks > 0, ValueError, where,
              ": embedding_dim and num_blocks must be > 0");
  c.context_length = opt_int(j, "context_length", -1, where);
  c.add_post_blocks_norm = opt_bool(j, "add_post_blocks_norm", true, where);
  c.tie_weights = opt_bool(j, "tie_weights", false, where);
  c.add_embedding_dropout = opt_bool(j, "add_embedding_dropout", false, where);
  c.dropout = opt_num(j, "dropout", 0.0, where);
  const bool stack_bias = opt_bool(j, "bias", false, where);
  // block map: _block_map string wins, else slstm_at
  std::vector<int> map((size_t)c.num_blocks, 0);
  if (j.contains("_block_map") && j["_block_map"].is_string()) {
    const std::string s = j["_block_map"].get<std::string>();
    size_t i = 0;
    for (char ch : s) {
      if (ch == ',') continue;
      XLSTM_CHECK((ch == '0' || ch == '1') && i < map.size(), ValueError, where,
                  ": field '_block_map' must list ", c.num_blocks, " entries of 0 or 1, got '", s, "'");
      map[i++] = ch - '0';
    }
    XLSTM_CHECK(i == map.size(), ValueError, where, ": field '_block_map' has ", i,
                " entries for num_blocks ", c.num_blocks);
  } else if (j.contains("slstm_at")) {
    const json& at = j["slstm_at"];
    if (at.is_string()) {
      XLSTM_CHECK(at.get<std::string>() == "all", ValueError, where,
                  ": field 'slstm_at' must be a list of block indices or \"all\"");
      for (auto& m : map) m = 1;
    } else {
      XLSTM_CHECK(at.is_array(), ValueError, where, ": field 'slstm_at' must be a list");
      for (auto& v : at) {
        XLSTM_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < c.num_blocks,
                    ValueError, where, ": field 'slstm_at' has an index outside [0, ", c.num_blocks, ")");
        map[(size_t)v.get<int64_t>()] = 1;
      }
    }
  }
  const bool has_m = j.contains("mlstm_block") && !j["mlstm_block"].is_null();
  const bool has_s = j.contains("slstm_block") && !j["slstm_block"].is_null();
  if (!has_m)  // official: every block is sLSTM when mlstm_block is None
    for (auto& m : map) m = 1;
  for (int64_t i = 0; i < c.num_blocks; ++i) {
    const std::string w = str(where, " (block ", i, ")");
    BlockConfig b;
    if (map[(size_t)i] == 1) {
      XLSTM_CHECK(has_s, ValueError, where, ": block ", i, " is sLSTM but slstm_block is missing");
      json sj = j["slstm_block"];
      json& sl = sj["slstm"];
      sl["embedding_dim"] = c.embedding_dim;
      sl["dropout"] = c.dropout;
      sl["_block_idx"] = i;
      sl["_num_blocks"] = c.num_blocks;
      if (sj.contains("feedforward") && !sj["feedforward"].is_null()) {
        sj["feedforward"]["embedding_dim"] = c.embedding_dim;
        sj["feedforward"]["dropout"] = c.dropout;
        sj["feedforward"]["bias"] = stack_bias;
        sj["feedforward"]["_num_blocks"] = c.num_blocks;
      }
      b = slstm_block_config_from_json(sj, w);
    } else {
      json mj = j["mlstm_block"];
      json& ml = mj["mlstm"];
      ml["embedding_dim"] = c.embedding_dim;
      ml["dropout"] = c.dropout;
      ml["bias"] = stack_bias;
      ml["_num_blocks"] = c.num_blocks;
      ml.erase("_inner_embedding_dim");  // derived from embedding_dim, as in __post_init__
      b = mlstm_block_config_from_json(mj, w);
    }
    c.blocks.push_back(b);
  }
  return c;
}

}  // namespace xlstm
