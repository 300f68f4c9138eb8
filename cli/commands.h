// Each subcommand registers itself on the app and sets `run` when it is chosen.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace xlstm::cli {

void add_conformance(CLI::App& app, std::function<int()>& run);
void add_train(CLI::App& app, std::function<int()>& run);
void add_generate(CLI::App& app, std::function<int()>& run);

}  // namespace xlstm::cli
