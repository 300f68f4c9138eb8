// `xlstm forecast` (forecast with a trained forecaster) and the `--task forecast` branch of
// `xlstm train`.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/util.h"
#include "io/atomic_file.h"
#include "io/json_config.h"
#include "models/backbone.h"
#include "models/presets.h"
#include "tasks/forecast.h"
#include "train/trainer.h"

namespace xlstm::cli {

// ----------------------------------------------------------------- xlstm train --task forecast

struct ForecastTrainFlags {
  std::string target, features, time_col, quantiles, loss, window_norm = "meanstd";
  int64_t horizon = -1, season = 1, epochs = 30;
  double test_fraction = 0.15;
};

std::shared_ptr<ForecastTrainFlags> add_forecast_train_flags(CLI::App* s) {
  auto f = std::make_shared<ForecastTrainFlags>();
  const char* g = "Forecasting (--task forecast)";
  s->add_option("--target", f->target,
                "forecast: the CSV column to forecast. The common flags keep their meaning with "
                "these defaults when not given: --val-fraction 0.15 --batch-size 64 --lr 3e-3 "
                "--warmup 50 --weight-decay 0.01 --patience 5, --eval-every one epoch")
      ->group(g);
  s->add_option("--features", f->features,
                "forecast: other numeric CSV columns fed as inputs, comma-separated")->group(g);
  s->add_option("--time-col", f->time_col, "forecast: a time column for labels (not an input)")
      ->group(g);
  s->add_option("--horizon", f->horizon, "forecast: steps H predicted from each window")->group(g);
  s->add_option("--quantiles", f->quantiles,
                "forecast: quantile outputs, e.g. 0.1,0.5,0.9 (pinball loss; the one nearest "
                "0.5 is the point forecast)")->group(g);
  s->add_option("--season", f->season,
                "forecast: seasonal period P of the seasonal-naive baseline and MASE")
      ->capture_default_str()->group(g);
  s->add_option("--loss", f->loss, "forecast: mse or mae (default mse; pinball with --quantiles)")
      ->group(g);
  s->add_option("--window-norm", f->window_norm,
                "forecast: meanstd = standardise each window's target (inputs and targets) by "
                "the mean and std of its context and map the forecast back; mean = subtract the "
                "mean only; none = the global (train) scaling only")
      ->capture_default_str()->group(g);
  s->add_option("--epochs", f->epochs, "forecast: passes over the train windows (unless --steps)")
      ->capture_default_str()->group(g);
  s->add_option("--test-fraction", f->test_fraction,
                "forecast: last fraction of the rows held out for the test metrics")
      ->capture_default_str()->group(g);
  return f;
}

int run_forecast_train(const CLI::App& s, const ForecastTrainFlags& f, const TrainConfig& t,
                       const std::string& model, const ModelOverrides& ov,
                       const std::string& config_file, bool resume, bool quiet) {
  auto given = [&](const char* flag) { return s.count(flag) > 0; };
  for (const char* flag : {"--accum", "--vocab", "--eval-batches"})
    XLSTM_CHECK(!given(flag), ValueError, flag, " does not apply to --task forecast");
  ForecastTrainConfig c;
  c.data = t.data;
  c.out = t.out;
  c.stop_at = t.stop_at;
  if (resume) c.steps = t.steps;  // on resume only a larger --steps applies: it extends the run
  nlohmann::json bb;
  if (!resume) {
    c.model_name = config_file.empty() ? model : config_file;
    ForecastSpec& sp = c.spec;
    sp.target = f.target;
    sp.features = split_names(f.features);
    sp.time_col = f.time_col;
    XLSTM_CHECK(ov.context > 0, ValueError, "--context N is required with --task forecast (the "
                                            "number of past rows each forecast sees)");
    XLSTM_CHECK(f.horizon > 0, ValueError, "--horizon H is required with --task forecast (the "
                                           "number of steps to forecast)");
    XLSTM_CHECK(!f.target.empty(), ValueError, "--target COL is required with --task forecast");
    sp.context = ov.context;
    sp.horizon = f.horizon;
    sp.season = f.season;
    sp.quantiles = parse_quantiles(f.quantiles);
    if (!f.loss.empty()) sp.loss = parse_forecast_loss(f.loss);
    else if (!sp.quantiles.empty()) sp.loss = ForecastLoss::Pinball;
    sp.test_fraction = f.test_fraction;
    sp.window_norm = parse_window_norm(f.window_norm);
    if (given("--val-fraction")) sp.val_fraction = t.val_fraction;
    // The common training flags; forecasting has its own defaults where the user gave none.
    if (given("--batch-size")) c.batch_size = t.batch_size;
    c.epochs = f.epochs;
    copy_common_train_flags(t, given, c);
    if (!config_file.empty()) {
      bb = json_cfg::read_file(config_file);
      json_cfg::check_object(bb, config_file);
    } else {
      bb = backbone_preset(model, ov);
    }
  } else {
    note_flags_ignored_on_resume(given,
                                 {"--target", "--features", "--time-col", "--horizon", "--season",
                                  "--quantiles", "--loss", "--window-norm", "--test-fraction",
                                  "--epochs"},
                                 c.out, quiet);
  }
  const bool tty = ::isatty(2);
  auto progress = [&](const ForecastProgress& p) {
    if (quiet) return;
    char line[256];
    const int width = 24;
    const int fill = p.total_steps ? (int)(width * p.step / p.total_steps) : 0;
    std::string bar = std::string((size_t)fill, '#') + std::string((size_t)(width - fill), '.');
    char val[32] = "-";
    if (p.val_loss >= 0) std::snprintf(val, sizeof val, "%.4f", p.val_loss);
    std::snprintf(line, sizeof line, "[%s] step %lld/%lld  epoch %lld  loss %.4f  val %s  ETA %s",
                  bar.c_str(), (long long)p.step, (long long)p.total_steps, (long long)p.epoch,
                  p.loss, val, fmt_duration(p.eta_s).c_str());
    if (tty) std::fprintf(stderr, "\r%s\033[K%s", line, p.eval ? "\n" : "");
    else if (p.eval) std::fprintf(stderr, "%s\n", line);
    std::fflush(stderr);
  };
  ForecastTrainResult r = train_forecaster(c, bb, progress, resume);
  if (tty && !quiet) std::fprintf(stderr, "\n");
  std::printf("trained %lld steps (%.1f epochs, %s) in %s: %lld parameters, %lld train / %lld "
              "validation windows\n",
              (long long)r.steps, r.epochs, r.stop_reason.c_str(), fmt_duration(r.seconds).c_str(),
              (long long)r.params, (long long)r.train_windows, (long long)r.val_windows);
  if (r.best_val_loss >= 0) std::printf("best validation loss: %.5f\n", r.best_val_loss);
  if (r.test.origins.count() > 0) std::printf("\n%s\n", format_evaluation(r.test, r.model_name).c_str());
  std::printf("best model: %s\ncheckpoint: %s\nmetrics:    %s\nplots:      %s, %s/forecast_test.png\n"
              "test:       %s\n",
              r.best_dir.c_str(), r.checkpoint_dir.c_str(), r.metrics_csv.c_str(),
              r.plot_png.c_str(), c.out.c_str(), r.eval_json.c_str());
  std::printf("forecast:   build/xlstm forecast --checkpoint %s --data %s --horizon %lld\n",
              c.out.c_str(), r.data.c_str(), (long long)r.horizon);
  return 0;
}

// --------------------------------------------------------------------------- xlstm forecast

void add_forecast(CLI::App& app, std::function<int()>& run) {
  struct Opts {
    std::string checkpoint, data, plot, out;
    int64_t horizon = -1, history = -1, batch_size = 256;
    bool backtest = false, evaluate = false;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* s = app.add_subcommand(
      "forecast",
      "Forecast the next steps of a CSV series with a forecaster trained by "
      "`xlstm train --task forecast`: from the last --context rows of --data (or, with "
      "--backtest, from the rows before the last H, compared with them).");
  s->add_option("--checkpoint", o->checkpoint, "checkpoint or run directory (uses best/)")->required();
  s->add_option("--data", o->data, "CSV with the columns the model was trained on")->required();
  s->add_option("--horizon", o->horizon, "steps to forecast (<= the trained horizon; default it)");
  s->add_option("--out", o->out,
                "write the forecast as CSV: h, forecast, the quantiles, and with --backtest the "
                "time column and the actual values");
  s->add_option("--plot", o->plot, "write a PNG: history, forecast (+ quantile band), actuals");
  s->add_option("--history", o->history, "rows of history in the plot (default max(context, 4 x horizon))");
  s->add_flag("--backtest", o->backtest,
              "hold out the last H rows: forecast them from the rows before and compare "
              "(MAE/RMSE/MASE against seasonal-naive and last-value)");
  s->add_flag("--evaluate", o->evaluate,
              "also print the metrics on every window of the test split (the checkpoint's "
              "split fractions) for the model and the baselines");
  s->add_option("--batch-size", o->batch_size, "windows per forward pass in --evaluate")
      ->capture_default_str();
  s->add_option("--threads", o->threads, "CPU threads (default: OMP_NUM_THREADS or all cores)");
  s->callback([o, &run] {
    run = [o]() -> int {
      set_threads(o->threads);
      LoadedForecaster lf = load_forecaster(o->checkpoint);
      Forecaster& m = *lf.model;
      const ForecastSpec& sp = m.spec();
      const int64_t H = o->horizon > 0 ? o->horizon : sp.horizon, N = sp.context;
      XLSTM_CHECK(o->horizon == -1 || o->horizon >= 1, ValueError, "--horizon must be >= 1");
      XLSTM_CHECK(H <= sp.horizon, ValueError, "--horizon ", H, " exceeds the horizon ",
                  sp.horizon, " the model in ", lf.dir,
                  " was trained for; hint: train with a larger --horizon");
      const SeriesData d = load_series_csv(o->data, sp.target, sp.features, sp.time_col);
      const int64_t L = d.rows();
      const int64_t need = N + (o->backtest ? H : 0);
      XLSTM_CHECK(L >= need, ValueError, o->data, ": ", L, " data rows, fewer than --context ", N,
                  o->backtest ? str(" + --horizon ", H) : std::string(), " = ", need,
                  " that the forecast needs");
      const int64_t origin = o->backtest ? L - 1 - H : L - 1;
      const std::vector<float> z = scale_series(d, sp.scaler);
      const std::vector<double> full = predict_origins(m, z.data(), L, {origin}, 1);
      const int64_t Q = sp.num_quantiles(), pi = sp.point_index();
      std::vector<double> f(full.begin(), full.begin() + H * Q);
      // Evaluations first (they can fail on short data), then outputs.
      std::string eval_text;
      if (o->evaluate) {
        const SplitRows split = split_rows(L, sp.val_fraction, sp.test_fraction);
        const ForecastEvaluation e = evaluate_part(m, d, split, Part::Test, o->batch_size);
        XLSTM_CHECK(e.origins.count() > 0, ValueError, o->data,
                    ": the test split holds no window (", L, " rows, test fraction ",
                    sp.test_fraction, ")");
        eval_text = format_evaluation(e, lf.model_name);
      }
      // Table (and CSV): one row per step.
      // (the time column only in a backtest: the times of future rows are not known)
      const bool times = o->backtest && !d.time.empty();
      std::string csv = "h";
      if (times) csv += "," + d.time_col;
      csv += ",forecast";
      for (double q : sp.quantiles) csv += str(",q", q);
      if (o->backtest) csv += ",actual";
      csv += "\n";
      for (int64_t h = 0; h < H; ++h) {
        const int64_t row = origin + 1 + h;
        csv += std::to_string(h + 1);
        if (times) csv += "," + d.time[(size_t)row];
        csv += str(",", f[(size_t)(h * Q + pi)]);
        for (int64_t k = 0; k < (int64_t)sp.quantiles.size(); ++k) csv += str(",", f[(size_t)(h * Q + k)]);
        if (o->backtest) csv += str(",", d.values[0][(size_t)row]);
        csv += "\n";
      }
      std::printf("forecast of '%s' from %s, origin: data row %lld%s%s, %lld steps%s\n",
                  sp.target.c_str(), o->data.c_str(), (long long)origin,
                  d.time.empty() ? "" : " = ", d.time.empty() ? "" : d.time[(size_t)origin].c_str(),
                  (long long)H, o->backtest ? " (backtest: the last H rows are held out)" : "");
      std::fputs(csv.c_str(), stdout);
      if (o->backtest) {
        const double* y = d.values[0].data();
        std::vector<double> act(y + origin + 1, y + origin + 1 + H), point(H), sn(H), lv(H);
        for (int64_t h = 0; h < H; ++h) point[(size_t)h] = f[(size_t)(h * Q + pi)];
        seasonal_naive_forecast(y, origin, H, sp.season, sn.data());
        last_value_forecast(y, origin, H, lv.data());
        const double scale = seasonal_naive_scale(y, origin + 1, sp.season,
                                                  o->data + " (rows before the backtest window)");
        std::printf("\nbacktest window (MASE scale: seasonal-naive MAE of the %lld rows before it = %.6g)\n",
                    (long long)(origin + 1), scale);
        std::printf("%-18s %12s %12s %9s\n", "", "MAE", "RMSE", "MASE");
        auto row = [&](const std::string& name, const std::vector<double>& p) {
          const ForecastMetrics fm = forecast_metrics(p.data(), act.data(), H, scale);
          std::printf("%-18s %12.5g %12.5g %9.4f\n", name.c_str(), fm.mae, fm.rmse, fm.mase);
        };
        row(lf.model_name, point);
        row(str("seasonal-naive(", sp.season, ")"), sn);
        row("last-value", lv);
      }
      if (!eval_text.empty()) std::printf("\n%s", eval_text.c_str());
      if (!o->out.empty()) {
        write_file_atomic(o->out, csv);
        std::printf("\nforecast CSV: %s\n", o->out.c_str());
      }
      if (!o->plot.empty()) {
        const int64_t hist = o->history > 0 ? o->history : std::max<int64_t>(N, 4 * H);
        save_forecast_plot(o->plot, d, origin, sp, f, H, hist,
                           str(o->backtest ? "backtest" : "forecast", ": ", sp.target, ", ", H,
                               " steps"));
        std::printf("plot: %s\n", o->plot.c_str());
      }
      return 0;
    };
  });
}

}  // namespace xlstm::cli
