// Time-series forecasting: the task behind `xlstm train --task forecast` and `xlstm forecast`.
//
// Data flow:
//   CSV (data/table.h) -> numeric columns, target first, then the --features columns
//   -> chronological split by rows: train | validation | test
//   -> per-column scaling (mean/std of the TRAIN rows), saved with the model
//   -> windows: origin t (the last observed row); inputs = rows t-N+1..t of every column
//      (scaled), targets = target rows t+1..t+H (scaled); with window normalisation (default
//      meanstd) the window's target inputs and targets are standardised by the mean and std of
//      its N target inputs, and the forecasts mapped back, so the model sees the series relative
//      to its recent level and spread (a series that drifts beyond the train range, or whose
//      swings grow, stays in range)
//   -> backbone (models/backbone.h) over the N inputs -> Linear head on the last output
//      -> H point forecasts, or H x Q quantiles (pinball loss), direct multi-horizon
//   -> unscaled back to the target's units for metrics, CSV and plots.
//
// A window belongs to the part that holds all its H targets; its context may reach back into
// the previous parts (as it would when forecasting live). N = --context, H = --horizon,
// C = columns (1 + features), Q = quantiles (1 for a point forecast), P = --season.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/module.h"
#include "xlstm/rng.h"
#include "xlstm/tensor.h"

namespace xlstm {

// ------------------------------------------------------------------------------------- data

// Numeric columns of a CSV file, in rows order (row 0 = first data row).
struct SeriesData {
  std::string path;                          // for messages
  std::vector<std::string> columns;          // [target, features...]
  std::vector<std::vector<double>> values;   // values[c][t]; all columns have rows() entries
  std::string time_col;                      // "" = none
  std::vector<std::string> time;             // the time column's cells (empty if none)
  int64_t rows() const { return values.empty() ? 0 : (int64_t)values[0].size(); }
};

// Parses a numeric CSV cell: optional surrounding blanks, then a finite decimal number.
// Returns false for anything else (empty, "NA", "nan", "inf", "1,5", "12abc").
bool parse_number_cell(const std::string& cell, double& out);

// Picks the target, feature and time columns out of a parsed table. `header` names the
// columns; rows[r][c] is the cell of data row r (0-based), `lines[r]` its 1-based line in the
// file (may be empty: then line = r + 2). ValueError naming `path`, the line and the column
// for: a missing column (listing the available ones), a column named twice, an empty cell
// ("missing value"), a non-numeric or non-finite cell, no data rows.
SeriesData series_from_table(const std::string& path, const std::vector<std::string>& header,
                             const std::vector<std::vector<std::string>>& rows,
                             const std::vector<int64_t>& lines, const std::string& target,
                             const std::vector<std::string>& features,
                             const std::string& time_col);

// read_csv (data/table.h) + series_from_table. IoError for a missing/unreadable file,
// ValueError for an empty or malformed one (naming the file and line).
SeriesData load_series_csv(const std::string& path, const std::string& target,
                           const std::vector<std::string>& features, const std::string& time_col);

// "a,b,c" -> {"a","b","c"} (blanks around names trimmed; "" -> {}).
std::vector<std::string> split_names(const std::string& s);
// "0.1,0.5,0.9" -> quantiles; ValueError unless each is in (0, 1), strictly ascending.
std::vector<double> parse_quantiles(const std::string& s);

// Per-column standardisation z = (v - mean) / std with the mean and (population) std of the
// train rows. A constant column gets std = 1 (z = v - mean).
struct Scaler {
  std::vector<double> mean, std;  // one per column
  static Scaler fit(const SeriesData& d, int64_t rows);  // over rows [0, rows); rows >= 1
  double scale(size_t c, double v) const { return (v - mean[c]) / std[c]; }
  double unscale(size_t c, double z) const { return z * std[c] + mean[c]; }
  nlohmann::json to_json() const;
  static Scaler from_json(const nlohmann::json& j, size_t columns, const std::string& where);
};

// Chronological split by rows: train [0, train_end), validation [train_end, val_end),
// test [val_end, n). n_test = floor(n * test_fraction), n_val = floor(n * val_fraction).
struct SplitRows {
  int64_t n = 0, train_end = 0, val_end = 0;
};
// ValueError unless fractions are in [0, 1) with val + test < 1.
SplitRows split_rows(int64_t n, double val_fraction, double test_fraction);

enum class Part { Train, Val, Test };
const char* part_name(Part p);  // "train", "validation", "test"

// The window origins of a part: every t with context rows t-N+1..t >= 0 and target rows
// t+1..t+H inside the part. first..last inclusive; count() == 0 when there is none.
struct Origins {
  int64_t first = 0, last = -1;
  int64_t count() const { return last >= first ? last - first + 1 : 0; }
};
Origins window_origins(const SplitRows& s, Part p, int64_t N, int64_t H);

// Scaled data as one row-major (rows, C) float array, target in column 0.
std::vector<float> scale_series(const SeriesData& d, const Scaler& sc);

// Per-window normalisation of the target column, v -> (v - level) / spread, with level and
// spread computed from the window's N target inputs (scaled units):
//   None:    level 0, spread 1
//   Mean:    level = mean, spread 1
//   MeanStd: level = mean, spread = max(population std, kMinSpread)
enum class WindowNorm { None, Mean, MeanStd };
constexpr double kMinSpread = 0.1;  // a flat window is not blown up (1 = the train std)
WindowNorm parse_window_norm(const std::string& s);  // "none" | "mean" | "meanstd"
const char* window_norm_name(WindowNorm w);

// Gathers B windows. z: (rows, C) scaled data, read. origins: (B) read.
// x: (B, N, C) written = z rows t-N+1..t, column 0 normalised.  y: (B, H) written =
// z[t+1..t+H, 0] normalised; may be null (then the targets may lie beyond the data).
// level, spread: (B) written, each window's normalisation (a forecast f maps back to
// level + spread * f); may be null for WindowNorm::None.
void gather_windows(const float* z, int64_t rows, int64_t C, const int64_t* origins, int64_t B,
                    int64_t N, int64_t H, float* x, float* y, WindowNorm norm = WindowNorm::None,
                    float* level = nullptr, float* spread = nullptr);

// ---------------------------------------------------------------------- metrics, baselines

// MASE denominator: the in-sample seasonal-naive MAE mean_{t in [P, n)} |y[t] - y[t-P]|.
// ValueError (naming `where`) when n <= P or the value is 0 (a constant series).
double seasonal_naive_scale(const double* y, int64_t n, int64_t P, const std::string& where);

struct ForecastMetrics {
  double mae = 0, rmse = 0, mase = 0;
  int64_t count = 0;  // forecasts compared
};
// pred, actual: (n) read, original units. mase = mae / mase_scale.
ForecastMetrics forecast_metrics(const double* pred, const double* actual, int64_t n,
                                 double mase_scale);

// Baselines from the history y[0..t] for the H steps after origin t; out: (H) written.
// Seasonal naive: out[h-1] = y[t + h - P * ceil(h / P)] (the last value of the same season);
// P = 1 is the last-value forecast. Requires t + 1 >= P.
void seasonal_naive_forecast(const double* y, int64_t t, int64_t H, int64_t P, double* out);
void last_value_forecast(const double* y, int64_t t, int64_t H, double* out);

// ---------------------------------------------------------------------------------- losses

enum class ForecastLoss { MSE, MAE, Pinball };
ForecastLoss parse_forecast_loss(const std::string& s);  // "mse" | "mae" | "pinball"
const char* forecast_loss_name(ForecastLoss l);

// Point losses over n predictions: MSE = mean (p - y)^2, MAE = mean |p - y|.
// pred, target: (n) read. dpred: (n) written = scale * dLoss/dpred, may be null.
// MAE's subgradient at p == y is 0. Returns the loss (double accumulation).
template <class T>
double point_loss(ForecastLoss kind, int64_t n, const T* pred, const T* target, T* dpred,
                  double scale);

// Quantile (pinball) loss: mean over n*Q of rho_q(y - p), rho_q(u) = max(q u, (q - 1) u).
// pred: (n, Q) read. target: (n) read. q: (Q) read. dpred: (n, Q) written = scale * dLoss/dpred
// (= scale * (p > y ? 1 - q : -q) / (n Q); at p == y the mean of both sides, (1/2 - q)/(n Q)),
// may be null. Returns the loss.
template <class T>
double pinball_loss(int64_t n, int64_t Q, const T* pred, const T* target, const double* q,
                    T* dpred, double scale);

// -------------------------------------------------------------------------------- the task

// Everything about the task that the model is saved with ("forecast" in config.json).
struct ForecastSpec {
  std::string target, time_col;
  std::vector<std::string> features;
  int64_t context = 0, horizon = 0, season = 1;
  std::vector<double> quantiles;           // empty: one point forecast per step
  ForecastLoss loss = ForecastLoss::MSE;   // Pinball when quantiles are given
  WindowNorm window_norm = WindowNorm::MeanStd;
  double val_fraction = 0.15, test_fraction = 0.15;
  Scaler scaler;

  int64_t columns() const { return 1 + (int64_t)features.size(); }
  int64_t num_quantiles() const { return quantiles.empty() ? 1 : (int64_t)quantiles.size(); }
  int64_t outputs() const { return horizon * num_quantiles(); }
  // Index of the quantile used as the point forecast: the one closest to 0.5 (0 when none).
  int64_t point_index() const;
  // ValueError for context/horizon/season < 1, bad quantiles, a pinball loss without
  // quantiles or quantiles with another loss.
  void validate() const;
  nlohmann::json to_json() const;
  static ForecastSpec from_json(const nlohmann::json& j, const std::string& where);
};

class Backbone;

// Backbone + head: x (B, N, C) scaled inputs -> (B, H*Q) scaled forecasts, laid out
// [b][h][q]. Parameters: "backbone.<backbone names>", "head.weight" (H*Q, D), "head.bias".
class Forecaster : public Module {
 public:
  // `backbone_config`: the JSON config of models/backbone.h ({"arch": ...}); `where` names it
  // in errors. Deterministic initialisation from `seed`. dtype F32 (training, inference) or
  // F64 (gradient checks); x, dout and the output below have this dtype.
  Forecaster(const nlohmann::json& backbone_config, const ForecastSpec& spec,
             const std::string& where, uint64_t seed, DType dtype = DType::F32);
  ~Forecaster() override;
  const nlohmann::json& backbone_config() const { return backbone_json_; }
  const ForecastSpec& spec() const { return spec_; }
  void collect_params(const std::string& prefix, std::vector<ParamRef>& out) override;

  DType dtype() const { return dtype_; }
  int64_t backbone_width() const { return D_; }

  // x: (B, N, C) read -> (B, H*Q) (a new tensor). N may differ from spec().context.
  // Keeps what backward needs.
  Tensor forward(const Tensor& x, Mode mode, Rng* rng);
  // dout: (B, H*Q) read; accumulates parameter gradients (+=).
  void backward(const Tensor& dout);

 private:
  nlohmann::json backbone_json_;
  ForecastSpec spec_;
  std::unique_ptr<Backbone> backbone_;
  DType dtype_ = DType::F32;
  int64_t D_ = 0;
  Tensor w_head_, dw_head_, b_head_, db_head_;
  int64_t B_ = 0, N_ = 0;
  Tensor last_, dlast_, dy_;  // (B, D) last backbone outputs and their gradient;
                              // (B, N, D) backbone output gradient
};

// Forecasts for the given origins in the target's units: (origins, H, Q) row-major.
// z: the scaled data (scale_series), rows of it.
std::vector<double> predict_origins(Forecaster& model, const float* z, int64_t rows,
                                    const std::vector<int64_t>& origins, int64_t batch_size);

// Model and baselines on every window of a part, in the target's units.
struct ForecastEvaluation {
  Part part = Part::Test;
  Origins origins;
  int64_t horizon = 0, season = 1;
  double mase_scale = 0;  // seasonal-naive MAE of the train rows
  ForecastMetrics model, seasonal_naive, last_value;
  double coverage = -1;   // share of actuals inside [lowest, highest quantile] (-1: no quantiles)
};
ForecastEvaluation evaluate_part(Forecaster& model, const SeriesData& d, const SplitRows& s,
                                 Part p, int64_t batch_size);
// The side-by-side table printed after training:
//   test split: rows 6209..7304 (1096 rows), 1083 windows x 14 steps; MASE scale 812.3 (...)
//   forecaster       MAE  RMSE  MASE ...
std::string format_evaluation(const ForecastEvaluation& e, const std::string& model_name);
nlohmann::json evaluation_json(const ForecastEvaluation& e);

// ---------------------------------------------------------------------------- training

struct ForecastTrainConfig {
  std::string data, out;
  std::string model_name = "model";  // for tables and titles (e.g. the preset name)
  ForecastSpec spec;  // target, features, time_col, context, horizon, season, quantiles, loss,
                      // fractions (the scaler is fitted by the trainer)
  int64_t batch_size = 64;
  int64_t epochs = 30;           // passes over the train windows (unless steps > 0)
  int64_t steps = 0;             // total optimizer steps (0: epochs decide)
  double minutes = 0;            // wall-clock cap (0 = none)
  std::string optimizer = "adamw";
  double lr = 3e-3, min_lr = -1 /* lr/10 */, weight_decay = 0.01, beta1 = 0.9, beta2 = 0.999;
  std::string schedule = "cosine";
  int64_t warmup = 50;
  double clip = 1.0;
  int64_t eval_every = 0;        // steps between validations (0: once per epoch)
  int64_t patience = 5;          // early stopping after this many validations without
                                 // improvement (0 = off)
  int64_t log_every = 10;        // metrics row every N steps (and after each validation)
  uint64_t seed = 1337;
  int64_t stop_at = 0;           // stop after this step as if interrupted, with a validation and
                                 // a checkpoint there (0 = off; not part of the run's settings)
  nlohmann::json to_json() const;
  // The fields of to_json() (spec excluded: a checkpoint keeps it under "forecast");
  // ValueError naming `where` and the field.
  static ForecastTrainConfig from_json(const nlohmann::json& j, const std::string& where);
};

struct ForecastProgress {
  int64_t step = 0, total_steps = 0, epoch = 0;
  double loss = 0, val_loss = -1, best_val = -1, lr = 0, elapsed_s = 0, eta_s = -1;
  bool eval = false;
};

struct ForecastTrainResult {
  int64_t steps = 0, params = 0, train_windows = 0, val_windows = 0;
  double epochs = 0, best_val_loss = -1, seconds = 0;
  std::string stop_reason;
  ForecastEvaluation test;
  std::string checkpoint_dir, best_dir, metrics_csv, plot_png, eval_json;
  std::string data, model_name;  // the run's (from the checkpoint when resumed)
  int64_t horizon = 0;
};

// Trains a forecaster on cfg.data and evaluates the best model (by validation loss) on the
// test part. Writes into cfg.out: best/ and checkpoint/ (model + scaler + optimizer state),
// metrics.csv/.jsonl, loss.png, test_metrics.json. `backbone_config` is a backbone JSON
// config ({"arch": ...}); its input width is set from the data.
//
// resume = true continues the run in cfg.out from its checkpoint/ (the other fields of cfg and
// backbone_config are not used, except cfg.data when non-empty: the same series, moved); the
// data must give the scaler the checkpoint holds. The shuffle and dropout streams, the
// permutation of the current epoch, the optimizer, the best model so far and the early-stopping
// counter are restored, and metrics rows after the checkpoint's step are dropped, so an
// interrupted and resumed run ends with the weights and rows of the uninterrupted one. The
// --minutes cap counts this invocation's time.
ForecastTrainResult train_forecaster(const ForecastTrainConfig& cfg,
                                     const nlohmann::json& backbone_config,
                                     const std::function<void(const ForecastProgress&)>& on_progress,
                                     bool resume = false);

// ------------------------------------------------------------------------- checkpoints

// A forecaster checkpoint directory (written whole: temp dir + fsync + rename, like
// train/checkpoint.h):
//   config.json   {"format":"xlstm-checkpoint","version":1,"task":"forecast",
//                  "model": backbone config, "forecast": ForecastSpec, "train": {...}}
//   model.safetensors, optimizer.safetensors (optional), state.json
void save_forecaster(const std::string& dir, Forecaster& model, const nlohmann::json& train,
                     const std::map<std::string, Tensor>& optim, const nlohmann::json& state);

struct LoadedForecaster {
  std::unique_ptr<Forecaster> model;
  std::string dir;          // the checkpoint directory used
  nlohmann::json config;    // its config.json
  std::string model_name;   // config "train.model_name" (e.g. the preset), else "model"
};
// `path`: a checkpoint directory or a run directory (best/, then checkpoint/). IoError /
// ValueError naming the file and field on any defect (also: not a forecast checkpoint).
LoadedForecaster load_forecaster(const std::string& path);

// ---------------------------------------------------------------------------- plotting

// A forecast figure: the last `history` rows up to the origin, the forecast (the point
// quantile) and its band (lowest..highest quantile), the actuals after the origin when known,
// a dashed line at the origin. forecast: (H, Q) in target units.
void save_forecast_plot(const std::string& path, const SeriesData& d, int64_t origin,
                        const ForecastSpec& spec, const std::vector<double>& forecast,
                        int64_t H, int64_t history, const std::string& title);

}  // namespace xlstm
