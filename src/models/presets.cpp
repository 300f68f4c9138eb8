#include "models/presets.h"

#include <sstream>

#include "xlstm/error.h"

namespace xlstm {

using json = nlohmann::json;

namespace {

struct Size { int64_t width, blocks, heads, context; };

Size size_of(const std::string& s, bool lstm) {
  if (lstm) {
    if (s == "tiny") return {256, 1, 0, 128};
    if (s == "small") return {512, 1, 0, 128};
    if (s == "medium") return {1024, 2, 0, 256};
  } else {
    if (s == "tiny") return {64, 4, 4, 128};
    if (s == "small") return {128, 8, 4, 128};
    if (s == "medium") return {256, 12, 4, 256};
  }
  throw ValueError(str("[presets] unknown size '", s, "'; hint: tiny, small or medium"));
}

json xlstm_config(int64_t V, const Size& z, const std::vector<int64_t>& slstm_at, bool all_slstm,
                  bool no_mlstm, double dropout) {
  json j;
  j["arch"] = "xlstm";
  j["vocab_size"] = V;
  j["embedding_dim"] = z.width;
  j["num_blocks"] = z.blocks;
  j["context_length"] = z.context;
  j["add_post_blocks_norm"] = true;
  j["tie_weights"] = false;
  j["bias"] = false;
  j["dropout"] = dropout;
  j["add_embedding_dropout"] = dropout > 0;
  if (all_slstm) j["slstm_at"] = "all";
  else j["slstm_at"] = slstm_at;
  if (!no_mlstm)
    j["mlstm_block"] = {{"mlstm",
                         {{"conv1d_kernel_size", 4}, {"qkv_proj_blocksize", 4},
                          {"num_heads", z.heads}, {"proj_factor", 2.0},
                          {"embedding_dim", z.width}, {"context_length", z.context},
                          {"form", "chunkwise"}, {"chunk_size", 64}}}};
  j["slstm_block"] = {{"slstm",
                       {{"backend", "vanilla"}, {"num_heads", z.heads}, {"conv1d_kernel_size", 4},
                        {"bias_init", "powerlaw_blockdependent"},
                        {"recurrent_weight_init", "zeros"}, {"embedding_dim", z.width}}},
                      {"feedforward", {{"proj_factor", 1.3}, {"act_fn", "gelu"}}}};
  return j;
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> r;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t pos = 0;
      long long v = std::stoll(item, &pos);
      XLSTM_CHECK(pos == item.size() && v >= 0, ValueError, "");
      r.push_back(v);
    } catch (const std::exception&) {
      throw ValueError(str("[presets] --slstm-at '", s, "' must be all, none or a list like 1,5"));
    }
  }
  return r;
}

}  // namespace

std::vector<std::string> model_preset_names() {
  std::vector<std::string> r;
  for (const char* a : {"lstm", "slstm", "mlstm", "xlstm-7-1", "xlstm-1-1"})
    for (const char* s : {"tiny", "small", "medium"}) r.push_back(std::string(a) + "-" + s);
  return r;
}

json model_preset(const std::string& name, int64_t V, const ModelOverrides& o) {
  XLSTM_CHECK(V > 0, ValueError, "[presets] vocab_size must be > 0");
  const auto dash = name.rfind('-');
  const std::string arch = dash == std::string::npos ? name : name.substr(0, dash);
  const std::string size = dash == std::string::npos ? "small" : name.substr(dash + 1);
  bool known = false;
  for (auto& n : model_preset_names()) known |= n == name;
  if (!known) {
    std::string all;
    for (auto& n : model_preset_names()) all += (all.empty() ? "" : ", ") + n;
    throw ValueError(str("[presets] unknown model '", name, "'; known: ", all));
  }
  const bool lstm = arch == "lstm";
  Size z = size_of(size, lstm);
  if (o.width > 0) z.width = o.width;
  if (o.blocks > 0) z.blocks = o.blocks;
  if (o.heads > 0) z.heads = o.heads;
  if (o.context > 0) z.context = o.context;
  const double dropout = o.dropout >= 0 ? o.dropout : 0.0;
  XLSTM_CHECK(dropout < 1, ValueError, "[presets] dropout must be in [0, 1)");
  if (lstm) {
    return {{"arch", "lstm"}, {"vocab_size", V}, {"embedding_dim", std::min<int64_t>(128, z.width)},
            {"hidden_size", z.width}, {"num_layers", z.blocks}, {"dropout", dropout},
            {"context_length", z.context}};
  }
  XLSTM_CHECK(z.heads > 0 && z.width % z.heads == 0, ValueError, "[presets] heads ", z.heads,
              " must divide the width ", z.width);
  std::vector<int64_t> at;
  bool all = false, none = false;
  if (arch == "slstm") all = true;
  else if (arch == "mlstm") none = true;
  else if (arch == "xlstm-7-1") {
    for (int64_t i = 3; i < z.blocks; i += 8) at.push_back(i);
    if (at.empty()) at.push_back(z.blocks - 1);
  } else {  // xlstm-1-1
    for (int64_t i = 1; i < z.blocks; i += 2) at.push_back(i);
  }
  if (!o.slstm_at.empty()) {
    all = o.slstm_at == "all";
    none = o.slstm_at == "none";
    at = (all || none) ? std::vector<int64_t>{} : parse_list(o.slstm_at);
    for (auto i : at)
      XLSTM_CHECK(i < z.blocks, ValueError, "[presets] --slstm-at index ", i, " >= blocks ", z.blocks);
  }
  return xlstm_config(V, z, at, all, all, dropout);
}

int64_t model_context_length(const json& c) {
  if (c.contains("context_length") && c["context_length"].is_number_integer() &&
      c["context_length"].get<int64_t>() > 0)
    return c["context_length"].get<int64_t>();
  return 128;
}

}  // namespace xlstm
