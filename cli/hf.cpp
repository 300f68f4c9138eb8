// `xlstm hf-check`: a Hugging Face `xlstm` model directory against its reference outputs.
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "models/hf.h"
#include "models/hf_check.h"
#include "train/checkpoint.h"

namespace xlstm::cli {

namespace fs = std::filesystem;

void add_hf_check(CLI::App& app, std::function<int()>& run) {
  struct Opts {
    std::string dir, reference;
  };
  auto o = std::make_shared<Opts>();
  auto* s = app.add_subcommand(
      "hf-check",
      "Check Hugging Face xlstm model directories against the reference outputs transformers "
      "made for them (logits, prefill states, teacher-forced step logits, greedy tokens, final "
      "states). DIR is one model directory or a folder of them (e.g. ../shared/hf). Prints one "
      "line per check and 'N passed, M failed'.");
  s->add_option("DIR", o->dir, "model directory, or a folder of model directories")->required();
  s->add_option("--reference", o->reference,
                "reference.safetensors to use (default: DIR/reference.safetensors)");
  s->callback([o, &run] {
    run = [o]() -> int {
      std::vector<std::pair<std::string, std::string>> jobs;  // dir, reference
      if (is_hf_dir(o->dir)) {
        jobs.push_back({o->dir, o->reference});
      } else {
        XLSTM_CHECK(fs::is_directory(o->dir), IoError, o->dir, ": not a directory");
        XLSTM_CHECK(o->reference.empty(), ValueError,
                    "--reference needs DIR to be one model directory");
        std::vector<std::string> dirs;
        for (auto& e : fs::directory_iterator(o->dir))
          if (is_hf_dir(e.path().string())) dirs.push_back(e.path().string());
        std::sort(dirs.begin(), dirs.end());
        XLSTM_CHECK(!dirs.empty(), IoError, o->dir, ": no model directories (with config.json) in it");
        for (auto& d : dirs) {
          std::string ref = d + "/reference.safetensors";
          const std::string base = fs::path(d).filename().string();
          const size_t cut = base.find("__");
          // Fixture convention: <model>__<variant>/ shares <model>/reference.safetensors.
          if (!fs::exists(ref) && cut != std::string::npos)
            ref = (fs::path(d).parent_path() / base.substr(0, cut) / "reference.safetensors").string();
          jobs.push_back({d, ref});
        }
      }
      int passed = 0, failed = 0;
      for (auto& [dir, ref] : jobs) {
        try {
          for (auto& r : hf_check(dir, ref)) {
            std::cout << (r.ok ? "PASS " : "FAIL ") << r.model << " " << r.check << " "
                      << r.detail << "\n";
            (r.ok ? passed : failed)++;
          }
        } catch (const Error& e) {
          std::cout << "FAIL " << fs::path(dir).filename().string() << " error: " << e.what() << "\n";
          ++failed;
        }
      }
      std::cout << passed << " passed, " << failed << " failed\n";
      return failed == 0 ? 0 : 1;
    };
  });
}

void add_export_hf(CLI::App& app, std::function<int()>& run) {
  struct Opts {
    std::string checkpoint, out, dtype = "f32";
  };
  auto o = std::make_shared<Opts>();
  auto* s = app.add_subcommand(
      "export-hf",
      "Write an xlstm-large checkpoint of `xlstm train` (e.g. a fine-tuned Hugging Face model) "
      "as a Hugging Face model directory: config.json, model.safetensors, tokenizer.json.");
  s->add_option("--checkpoint", o->checkpoint, "run directory (uses best/) or checkpoint directory")
      ->required();
  s->add_option("--out", o->out, "directory to write (replaced atomically)")->required();
  s->add_option("--dtype", o->dtype, "weight dtype: f32 or bf16")->capture_default_str();
  s->callback([o, &run] {
    run = [o]() -> int {
      XLSTM_CHECK(o->dtype == "f32" || o->dtype == "bf16", ValueError,
                  "--dtype must be f32 or bf16, got '", o->dtype, "'");
      export_hf(o->checkpoint, o->out, o->dtype == "bf16" ? DType::BF16 : DType::F32);
      std::cout << "wrote " << o->out << "\n";
      return 0;
    };
  });
}

}  // namespace xlstm::cli
