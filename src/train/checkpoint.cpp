#include "train/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "io/atomic_file.h"
#include "io/json_config.h"
#include "io/safetensors.h"
#include "models/hf.h"
#include "models/xlstm_large_lm.h"

namespace xlstm {

namespace fs = std::filesystem;

namespace {

bool exists(const std::string& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

std::map<std::string, Tensor> read_all(const std::string& path) {
  SafeTensorsFile f(path);
  std::map<std::string, Tensor> r;
  for (auto& n : f.names()) r[n] = f.get(n).clone();  // own the memory: the file may be replaced
  return r;
}

}  // namespace

void save_checkpoint(const std::string& dir, const Checkpoint& ck) {
  write_dir_atomic(dir, [&](const std::string& tmp) {
    nlohmann::json cfg = ck.config;
    cfg["format"] = "xlstm-checkpoint";
    cfg["version"] = 1;
    write_file_atomic(tmp + "/config.json", cfg.dump(2) + "\n");
    ck.vocab.save(tmp + "/vocab.json");
    save_safetensors(tmp + "/model.safetensors", ck.model);
    if (!ck.optim.empty()) save_safetensors(tmp + "/optimizer.safetensors", ck.optim);
    write_file_atomic(tmp + "/state.json", ck.state.dump(2) + "\n");
  });
}

Checkpoint load_checkpoint(const std::string& dir_in, bool with_optimizer) {
  std::string dir = dir_in;
  if (!exists(dir) && exists(dir + ".old")) dir += ".old";
  XLSTM_CHECK(fs::is_directory(dir), IoError, dir_in, ": checkpoint directory not found");
  Checkpoint ck;
  for (const char* f : {"config.json", "vocab.json", "model.safetensors", "state.json"})
    XLSTM_CHECK(exists(dir + "/" + f), IoError, dir, "/", f,
                ": missing (not a complete checkpoint directory)");
  ck.config = json_cfg::read_file(dir + "/config.json");
  const std::string cw = dir + "/config.json";
  XLSTM_CHECK(ck.config.is_object() && ck.config.value("format", "") == "xlstm-checkpoint", ValueError,
              cw, ": field 'format' must be \"xlstm-checkpoint\"");
  XLSTM_CHECK(ck.config.contains("model") && ck.config["model"].is_object(), ValueError, cw,
              ": missing field 'model'");
  ck.vocab = Vocab::load(dir + "/vocab.json");
  ck.model = read_all(dir + "/model.safetensors");
  ck.state = json_cfg::read_file(dir + "/state.json");
  XLSTM_CHECK(ck.state.is_object(), ValueError, dir, "/state.json: expected a JSON object");
  if (with_optimizer) {
    XLSTM_CHECK(exists(dir + "/optimizer.safetensors"), IoError, dir,
                "/optimizer.safetensors: missing (this checkpoint cannot resume training)");
    ck.optim = read_all(dir + "/optimizer.safetensors");
  }
  return ck;
}

std::string resolve_checkpoint_dir(const std::string& path) {
  for (const std::string& d : {path, path + "/best", path + "/checkpoint"})
    if (exists(d + "/model.safetensors") || exists(d + ".old/model.safetensors")) return d;
  throw IoError(str(path, ": no checkpoint here (looked for model.safetensors in ", path, ", ",
                    path, "/best and ", path, "/checkpoint)"));
}

LoadedModel load_model(const std::string& path) {
  LoadedModel r;
  r.dir = resolve_checkpoint_dir(path);
  Checkpoint ck = load_checkpoint(r.dir, false);
  r.config = ck.config;
  r.vocab = ck.vocab;
  const std::string cw = r.dir + "/config.json";
  r.model = make_language_model(ck.config["model"], cw);
  XLSTM_CHECK(r.model->vocab_size() == r.vocab.size(), ValueError, cw, ": model vocab_size ",
              r.model->vocab_size(), " does not match vocab.json's ", r.vocab.size(), " symbols");
  r.model->load_params(ck.model, r.dir + "/model.safetensors");
  return r;
}

void export_hf(const std::string& path, const std::string& hf_dir, DType dtype) {
  LoadedModel m = load_model(path);
  auto* lm = dynamic_cast<XLSTMLargeLM*>(m.model.get());
  XLSTM_CHECK(lm, ValueError, m.dir, ": only xlstm-large models have a Hugging Face format (this "
              "checkpoint's arch is '", m.config.value("arch", std::string("?")), "')");
  const std::string tok = m.vocab.kind() == VocabKind::Bpe ? m.vocab.tokenizer_file() : "";
  const auto& c = lm->model().config();
  save_hf_checkpoint(hf_dir, lm->model(), nlohmann::json(), tok, dtype,
                     {{"bos_token_id", c.bos_token_id}, {"eos_token_id", c.eos_token_id},
                      {"pad_token_id", c.pad_token_id}});
}

}  // namespace xlstm
