// Each subcommand registers itself on the app and sets `run` when it is chosen.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

namespace xlstm::cli {

void add_conformance(CLI::App& app, std::function<int()>& run);
void add_train(CLI::App& app, std::function<int()>& run);
void add_generate(CLI::App& app, std::function<int()>& run);
void add_hf_check(CLI::App& app, std::function<int()>& run);
void add_export_hf(CLI::App& app, std::function<int()>& run);
void add_tokenizer(CLI::App& app, std::function<int()>& run);  // tokenizer-check, encode, decode
void add_tune(CLI::App& app, std::function<int()>& run);
void add_inspect(CLI::App& app, std::function<int()>& run);
void add_forecast(CLI::App& app, std::function<int()>& run);
void add_classify(CLI::App& app, std::function<int()>& run);

}  // namespace xlstm::cli

namespace xlstm {
struct TrainConfig;
struct ModelOverrides;
}  // namespace xlstm

namespace xlstm::cli {

// `xlstm train --task forecast` (cli/forecast.cpp): registers the forecasting flags on the train
// subcommand; run_forecast_train runs the task with the common training flags (`train` tells
// which of them the user gave, so forecasting keeps its own defaults for the others).
struct ForecastTrainFlags;
std::shared_ptr<ForecastTrainFlags> add_forecast_train_flags(CLI::App* train);
int run_forecast_train(const CLI::App& train, const ForecastTrainFlags& flags,
                       const TrainConfig& common, const std::string& model,
                       const ModelOverrides& overrides, const std::string& config_file,
                       bool resume, bool quiet);

// `xlstm train --task classify` (cli/classify.cpp), same pattern as forecasting.
struct ClassifyTrainFlags;
std::shared_ptr<ClassifyTrainFlags> add_classify_train_flags(CLI::App* train);
int run_classify_train(const CLI::App& train, const ClassifyTrainFlags& flags,
                       const TrainConfig& common, const std::string& model,
                       const ModelOverrides& overrides, const std::string& config_file,
                       bool resume, bool quiet);

}  // namespace xlstm::cli
