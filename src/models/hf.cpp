#include "models/hf.h"

#include <filesystem>
#include <map>
#include <set>

#include "io/atomic_file.h"
#include "io/json_config.h"
#include "io/safetensors.h"

namespace xlstm {

namespace fs = std::filesystem;
using nlohmann::json;

bool is_hf_dir(const std::string& dir) {
  std::error_code ec;
  const std::string cfg = (fs::path(dir) / "config.json").string();
  if (!fs::is_directory(dir, ec) || !fs::is_regular_file(cfg, ec)) return false;
  try {
    const json j = json_cfg::read_file(cfg);
    return j.is_object() && j.contains("model_type");
  } catch (const Error&) {
    return true;  // a broken config.json: let the loader report it
  }
}

namespace {

// Where a parameter's data is: a tensor of `file`, or (rows >= 0) rows [row0, row0 + rows) of
// the fused tensor `stored` (weight_mode "fused").
struct Source {
  std::shared_ptr<SafeTensorsFile> file;
  std::string stored;
  int64_t row0 = 0, rows = -1;
};

Tensor source_tensor(const Source& s, const std::string& name) {
  if (s.rows < 0) return s.file->get(name);
  const Tensor f = s.file->get(s.stored);
  // The rows are contiguous: a view, which keeps the fused tensor (and its mapping) alive.
  Shape sh = f.shape();
  const size_t row_bytes = f.nbytes() / (size_t)sh[0];
  sh[0] = s.rows;
  auto owner = std::make_shared<Tensor>(f);
  char* base = static_cast<char*>(const_cast<void*>(f.raw()));
  return Tensor::wrap(sh, f.dtype(), owner, base + (size_t)s.row0 * row_bytes);
}

// weight_mode "fused" (FORMAT.md §3): each block's q|k|v|o projections, i|f gate
// pre-activations and gate|up FFN projections are one tensor each, their rows in that order.
// Each part becomes a Source of the rows the model's own parameter of that name has, so the
// checks and the loading below see the "single" names; the fused tensor must hold exactly the
// parts' rows. `params`: the model's parameters (their shapes give the row counts).
void split_fused(std::map<std::string, Source>& sources, const std::vector<ParamRef>& params,
                 const std::string& cfg_path) {
  std::map<std::string, int64_t> rows;
  for (auto& p : params) rows[p.name] = p.value->dim(0);
  static const std::vector<std::pair<std::string, std::vector<std::string>>> groups = {
      {"mlstm_layer.qkv_opreact", {"mlstm_layer.q", "mlstm_layer.k", "mlstm_layer.v",
                                   "mlstm_layer.ogate_preact"}},
      {"mlstm_layer.ifgate_preact", {"mlstm_layer.igate_preact", "mlstm_layer.fgate_preact"}},
      {"ffn.proj_up_gate_z", {"ffn.proj_up_gate", "ffn.proj_up"}}};
  std::vector<std::pair<std::string, Source>> parts;
  std::vector<std::string> fused_names;
  for (auto& [name, src] : sources) {
    for (auto& [fused, split] : groups)
      for (const char* kind : {".weight", ".bias"}) {
        const std::string tail = fused + kind;
        if (name.size() <= tail.size() || name.compare(name.size() - tail.size(), tail.size(), tail))
          continue;
        const std::string prefix = name.substr(0, name.size() - tail.size());
        const Shape shape = src.file->get(name).shape();
        int64_t offset = 0;
        for (auto& part : split) {
          const std::string pn = prefix + part + kind;
          auto it = rows.find(pn);
          XLSTM_CHECK(it != rows.end(), ValueError, src.file->path(), ": fused tensor '", name,
                      "' has no part '", pn, "' in the model ", cfg_path, " describes");
          parts.push_back({pn, Source{src.file, name, offset, it->second}});
          offset += it->second;
        }
        XLSTM_CHECK(!shape.empty() && shape[0] == offset, ValueError, src.file->path(),
                    ": fused tensor '", name, "' has ", shape.empty() ? 0 : shape[0],
                    " rows, its parts need ", offset);
        fused_names.push_back(name);
      }
  }
  for (auto& n : fused_names) sources.erase(n);
  for (auto& [n, src] : parts) {
    XLSTM_CHECK(!sources.count(n), ValueError, src.file->path(), ": tensor '", n,
                "' is given both on its own and inside fused '", src.stored, "'");
    sources[n] = src;
  }
}

// name -> the file holding it, from model.safetensors or the sharded index.
std::map<std::string, Source> open_weights(const std::string& dir) {
  const std::string single = dir + "/model.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";
  std::map<std::string, Source> out;
  std::error_code ec;
  if (fs::exists(index, ec)) {
    const json j = json_cfg::read_file(index);
    XLSTM_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
                IoError, index, ": field 'weight_map' (tensor name -> shard file) is missing");
    std::map<std::string, std::shared_ptr<SafeTensorsFile>> shards;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      XLSTM_CHECK(it->is_string(), IoError, index, ": weight_map['", it.key(),
                  "'] must be a file name");
      const std::string shard = it->get<std::string>();
      XLSTM_CHECK(!shard.empty() && shard.find('/') == std::string::npos && shard != "..",
                  IoError, index, ": weight_map['", it.key(), "'] = '", shard,
                  "' is not a file name in the directory");
      auto& f = shards[shard];
      if (!f) {
        const std::string path = dir + "/" + shard;
        XLSTM_CHECK(fs::is_regular_file(path, ec), IoError, index, ": weight_map['", it.key(),
                    "'] names shard '", shard, "', which does not exist");
        f = std::make_shared<SafeTensorsFile>(path);
      }
      XLSTM_CHECK(f->has(it.key()), IoError, index, ": tensor '", it.key(), "' is mapped to '",
                  shard, "', which does not contain it");
      out[it.key()] = {f};
    }
    return out;
  }
  XLSTM_CHECK(fs::exists(single, ec), IoError, dir,
              ": no model.safetensors and no model.safetensors.index.json");
  auto f = std::make_shared<SafeTensorsFile>(single);
  for (auto& n : f->names()) out[n] = {f};
  return out;
}

}  // namespace

HfCheckpoint load_hf_checkpoint(const std::string& dir, HfLoad mode) {
  std::error_code ec;
  XLSTM_CHECK(fs::is_directory(dir, ec), IoError, dir, ": not a directory");
  HfCheckpoint ck;
  ck.dir = dir;
  const std::string cfg_path = dir + "/config.json";
  XLSTM_CHECK(fs::is_regular_file(cfg_path, ec), IoError, cfg_path, ": missing (an HF model "
              "directory needs config.json)");
  ck.config_json = json_cfg::read_file(cfg_path);
  XLSTM_CHECK(ck.config_json.is_object(), ValueError, cfg_path, ": not a JSON object");
  XLSTM_CHECK(ck.config_json.contains("model_type"), ValueError, cfg_path,
              ": field 'model_type' is missing (expected \"xlstm\")");
  ck.config = xlstm_large_config_from_json(ck.config_json, cfg_path);
  if (fs::is_regular_file(dir + "/generation_config.json", ec))
    ck.generation_config = json_cfg::read_file(dir + "/generation_config.json");
  if (fs::is_regular_file(dir + "/tokenizer.json", ec)) ck.tokenizer_json = dir + "/tokenizer.json";

  auto sources = open_weights(dir);
  const bool fused = ck.config_json.value("weight_mode", "single") == "fused";
  const bool has_head = sources.count("lm_head.weight") != 0;
  if (!has_head) {
    XLSTM_CHECK(ck.config.tie_word_embeddings, ValueError, dir,
                ": tensor 'lm_head.weight' is missing and config.json has tie_word_embeddings "
                "false");
    ck.tied_fallback = true;
  }
  ck.config.tie_word_embeddings = !has_head;  // the head is the embedding exactly when absent
  ck.model = std::make_unique<XLSTMLarge<float>>(ck.config, ParamAlloc::Placeholders);

  // Names and shapes first, all of them, before any data is used.
  auto params = ck.model->params();
  if (fused) split_fused(sources, params, cfg_path);
  std::set<std::string> expected;
  for (auto& p : params) {
    expected.insert(p.name);
    auto it = sources.find(p.name);
    if (it == sources.end() && p.name == "backbone.embeddings.weight" &&
        sources.count("backbone.embeddings.weight") == 0 && sources.count("embedding.weight"))
      continue;  // official naming, handled below
    XLSTM_CHECK(it != sources.end(), ValueError, dir, ": tensor '", p.name,
                "' is missing (the config needs it with shape ", shape_str(p.value->shape()), ")");
    Tensor t = source_tensor(it->second, p.name);
    XLSTM_CHECK(t.shape() == p.value->shape(), ValueError, it->second.file->path(), ": tensor '",
                p.name, "' has shape ", shape_str(t.shape()), ", config.json needs ",
                shape_str(p.value->shape()));
  }
  for (auto& [name, src] : sources) {
    const bool official_emb = name == "embedding.weight" && !sources.count("backbone.embeddings.weight");
    XLSTM_CHECK(expected.count(name) || official_emb, ValueError, src.file->path(),
                ": unexpected tensor '", name, "' (not a parameter of the model config.json "
                "describes; wrong config or an unsupported weight layout)");
  }
  // Then the data: views where possible.
  int64_t bytes = 0;
  bool bf16 = false;
  for (auto& p : params) {
    std::string stored = p.name;
    if (!sources.count(stored) && stored == "backbone.embeddings.weight") stored = "embedding.weight";
    const Source& src = sources.at(stored);
    Tensor t = source_tensor(src, stored);
    bytes += (int64_t)t.nbytes();
    if (t.ndim() == 2 && t.dtype() == DType::BF16) bf16 = true;
    const bool keep = mode == HfLoad::Mapped &&
                      (t.dtype() == DType::F32 || (t.dtype() == DType::BF16 && t.ndim() == 2));
    ck.model->set_param(p.name, keep ? t : t.to(DType::F32), src.file->path());
  }
  ck.stored_bytes = bytes;
  ck.stored_dtype = bf16 ? DType::BF16 : DType::F32;
  if (mode == HfLoad::Owned) ck.model->enable_training();
  return ck;
}

void save_hf_checkpoint(const std::string& dir, XLSTMLarge<float>& model, const json& base_config,
                        const std::string& tokenizer_json, DType dtype,
                        const json& generation_config) {
  XLSTM_CHECK(dtype == DType::F32 || dtype == DType::BF16, ValueError,
              "[save_hf_checkpoint] dtype must be F32 or BF16, got ", dtype_name(dtype));
  json cfg = base_config.is_object() ? base_config : json::object();
  const json ours = model.config().to_hf_json();
  for (auto& [k, v] : ours.items()) cfg[k] = v;
  cfg["torch_dtype"] = dtype == DType::BF16 ? "bfloat16" : "float32";
  std::map<std::string, Tensor> tensors;
  for (auto& p : model.params()) {
    const bool narrow = dtype == DType::BF16 && p.value->ndim() == 2;
    tensors[p.name] = p.value->dtype() == (narrow ? DType::BF16 : DType::F32)
                          ? *p.value
                          : p.value->to(narrow ? DType::BF16 : DType::F32);
  }
  // HF 5.x ignores tie_word_embeddings and always reads lm_head.weight (FORMAT.md §5.5): write
  // the tied head out so that transformers loads the same model.
  if (!tensors.count("lm_head.weight")) tensors["lm_head.weight"] = tensors.at("backbone.embeddings.weight");
  write_dir_atomic(dir, [&](const std::string& tmp) {
    write_file_atomic(tmp + "/config.json", cfg.dump(2) + "\n");
    save_safetensors(tmp + "/model.safetensors", tensors, {{"format", "pt"}});
    if (!tokenizer_json.empty()) {
      fs::copy_file(tokenizer_json, tmp + "/tokenizer.json");
      fs::permissions(tmp + "/tokenizer.json", fs::perms::owner_read | fs::perms::owner_write |
                                                   fs::perms::group_read | fs::perms::others_read);
    }
    if (generation_config.is_object())
      write_file_atomic(tmp + "/generation_config.json", generation_config.dump(2) + "\n");
  });
}

}  // namespace xlstm
