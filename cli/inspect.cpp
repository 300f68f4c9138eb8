// `xlstm inspect`: heatmaps and CSV of every gate and state of a trained language model while
// it reads a text one character at a time. The logic is in src/inspect/inspect.h.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/util.h"
#include "data/text.h"
#include "inspect/inspect.h"
#include "train/checkpoint.h"

namespace xlstm::cli {

void add_inspect(CLI::App& app, std::function<int()>& run) {
  struct Opts {
    std::string checkpoint, input, file, out;
    bool has_input = false;
    int64_t layer = -1, max_steps = 200;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* s = app.add_subcommand(
      "inspect",
      "Pictures of the inside: run a checkpoint over a text one character at a time (recurrent "
      "form) and write PNG heatmaps and CSV files of every gate, state and stabiliser over time "
      "(docs/inspect.md).");
  s->add_option("--checkpoint", o->checkpoint, "run directory (uses best/) or checkpoint directory")
      ->required();
  auto* in = s->add_option("--input", o->input, "the text to read");
  s->add_option("--file", o->file, "read the text from this file instead");
  s->add_option("--out", o->out, "output directory for the PNG and CSV files")->required();
  s->add_option("--layer", o->layer, "LSTM layer or xLSTM block index to inspect (default: all)");
  s->add_option("--max-steps", o->max_steps, "read at most this many characters")
      ->capture_default_str();
  s->add_option("--threads", o->threads, "CPU threads");
  s->callback([o, in, &run] {
    o->has_input = in->count() > 0;
    run = [o]() -> int {
      set_threads(o->threads);
      XLSTM_CHECK(o->has_input || !o->file.empty(), ValueError,
                  "give the text with --input TEXT or --file FILE");
      XLSTM_CHECK(!(o->has_input && !o->file.empty()), ValueError,
                  "give either --input or --file, not both");
      XLSTM_CHECK(o->max_steps >= 1, ValueError, "--max-steps must be >= 1, got ", o->max_steps);
      std::string text, where;
      if (o->has_input) {
        text = o->input;
        where = "--input";
        XLSTM_CHECK(!text.empty(), ValueError, "--input is empty; hint: give at least one character");
      } else {
        text = read_text_file(o->file);  // IoError naming the file when missing or empty
        where = o->file;
      }
      LoadedModel m = load_model(o->checkpoint);
      const int64_t layers = inspectable_layers(m);
      XLSTM_CHECK(o->layer >= -1 && o->layer < layers, ValueError, "--layer ", o->layer,
                  " is out of range: the model in ", m.dir, " has ", layers,
                  m.model->config().value("arch", "") == "lstm" ? " LSTM layers" : " blocks",
                  " (0..", layers - 1, ")");
      const std::vector<int32_t> ids32 = m.vocab.encode(text, where);
      std::vector<int64_t> ids(ids32.begin(), ids32.end());
      const size_t total = ids.size();
      if ((int64_t)ids.size() > o->max_steps) ids.resize((size_t)o->max_steps);
      InspectResult r = inspect_model(m, ids, o->layer);
      const std::vector<std::string> files = write_inspect(r, o->out);
      std::printf("read %zu of %zu characters with %s\n", ids.size(), total, m.dir.c_str());
      for (const auto& L : r.layers) {
        std::string names;
        for (const auto& t : L.traces) names += (names.empty() ? "" : " ") + t.name;
        std::printf("layer %lld (%s): %s\n", (long long)L.index, L.kind.c_str(), names.c_str());
      }
      std::printf("check: recomputed states vs the model's own step %.1e (relative), logits vs "
                  "the float32 model %.1e\n",
                  r.max_state_err, r.max_logit_err);
      std::printf("wrote %zu files (PNG heatmap + CSV per quantity) to %s/\n", files.size(),
                  o->out.c_str());
      return 0;
    };
  });
}

}  // namespace xlstm::cli
