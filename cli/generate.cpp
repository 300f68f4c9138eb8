// `xlstm generate`: sample text from a trained checkpoint, streaming it as it is made.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/util.h"
#include "infer/sample.h"
#include "train/checkpoint.h"

namespace xlstm::cli {

void add_generate(CLI::App& app, std::function<int()>& run) {
  struct Opts {
    std::string checkpoint, prompt = "\n";
    int64_t tokens = 500;
    SamplingConfig s;
    uint64_t seed = 0;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* g = app.add_subcommand("generate",
                               "Generate text from a checkpoint: the prompt is read once in "
                               "parallel form, then each new character costs one recurrent step.");
  g->add_option("--checkpoint", o->checkpoint, "run directory (uses best/) or checkpoint directory")
      ->required();
  g->add_option("--prompt", o->prompt, "text to continue (default: a newline)");
  g->add_option("--tokens", o->tokens, "characters to generate")->capture_default_str();
  g->add_option("--temperature", o->s.temperature, "sampling temperature (0 = greedy)")->capture_default_str();
  g->add_option("--top-k", o->s.top_k, "sample among the k most likely (0 = all)")->capture_default_str();
  g->add_option("--top-p", o->s.top_p, "nucleus sampling threshold")->capture_default_str();
  g->add_option("--repetition-penalty", o->s.repetition_penalty, "> 1 discourages repeats")
      ->capture_default_str();
  g->add_option("--seed", o->seed, "sampling seed")->capture_default_str();
  g->add_option("--threads", o->threads, "CPU threads");
  g->callback([o, &run] {
    run = [o]() -> int {
      set_threads(o->threads);
      validate(o->s);
      XLSTM_CHECK(o->tokens >= 0, ValueError, "--tokens must be >= 0");
      XLSTM_CHECK(!o->prompt.empty(), ValueError, "--prompt must not be empty");
      LoadedModel m = load_model(o->checkpoint);
      auto ids32 = m.vocab.encode(o->prompt, "--prompt");
      std::vector<int64_t> prompt(ids32.begin(), ids32.end());
      std::fwrite(o->prompt.data(), 1, o->prompt.size(), stdout);
      std::fflush(stdout);
      generate(*m.model, prompt, o->tokens, o->s, o->seed, [&](int64_t t) {
        const std::string c = m.vocab.decode(&t, 1);
        std::fwrite(c.data(), 1, c.size(), stdout);
        std::fflush(stdout);
        return true;
      });
      std::fputc('\n', stdout);
      return 0;
    };
  });
}

}  // namespace xlstm::cli
