// The `xlstm` command-line tool. The only place that catches library errors: one line on
// stderr, non-zero exit.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "xlstm/error.h"

int main(int argc, char** argv) {
  CLI::App app{"xlstm: LSTM, sLSTM, mLSTM and xLSTM models on CPU, exactly as the official "
               "PyTorch code computes them"};
  app.require_subcommand(1);
  app.set_version_flag("--version", XLSTM_VERSION);
  std::function<int()> run;
  xlstm::cli::add_conformance(app, run);
  xlstm::cli::add_train(app, run);
  xlstm::cli::add_generate(app, run);
  xlstm::cli::add_hf_check(app, run);
  xlstm::cli::add_export_hf(app, run);
  xlstm::cli::add_tokenizer(app, run);
  xlstm::cli::add_tune(app, run);
  xlstm::cli::add_inspect(app, run);
  xlstm::cli::add_forecast(app, run);
  xlstm::cli::add_classify(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return run ? run() : 0;
  } catch (const xlstm::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
