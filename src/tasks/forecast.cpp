// Training loop, checkpoints and figures of the forecasting task.
#include "tasks/forecast.h"


#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/rng_state.h"
#include "io/atomic_file.h"
#include "io/json_config.h"
#include "io/metrics.h"
#include "io/safetensors.h"
#include "models/lm.h"
#include "train/checkpoint.h"
#include "train/clip.h"
#include "train/optim.h"
#include "train/schedule.h"
#include "train/trainer.h"
#include "viz/loss_plot.h"
#include "viz/plot.h"

namespace xlstm {

namespace fs = std::filesystem;
using json = nlohmann::json;

json ForecastTrainConfig::to_json() const {
  return {{"task", "forecast"},     {"data", data},         {"model_name", model_name},
          {"batch_size", batch_size}, {"epochs", epochs},   {"steps", steps},
          {"minutes", minutes},     {"optimizer", optimizer}, {"lr", lr},
          {"min_lr", min_lr},       {"weight_decay", weight_decay}, {"beta1", beta1},
          {"beta2", beta2},         {"schedule", schedule}, {"warmup", warmup},
          {"clip", clip},           {"eval_every", eval_every}, {"patience", patience},
          {"log_every", log_every},
          {"seed", seed}};
}

ForecastTrainConfig ForecastTrainConfig::from_json(const json& j, const std::string& w) {
  using namespace json_cfg;
  check_object(j, w);
  ForecastTrainConfig c;
  c.data = get_string(j, "data", w);
  c.model_name = get_string(j, "model_name", w, c.model_name);
  c.batch_size = get_int(j, "batch_size", w, c.batch_size);
  c.epochs = get_int(j, "epochs", w, c.epochs);
  c.beta1 = get_number(j, "beta1", w, c.beta1);
  c.beta2 = get_number(j, "beta2", w, c.beta2);
  read_common_train_fields(j, w, c);
  return c;
}

// ------------------------------------------------------------------------- checkpoints

namespace {
bool exists(const std::string& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}
}  // namespace

// A whole directory written atomically (io/atomic_file.h), like train/checkpoint.cpp's
// save_checkpoint (which also writes a vocabulary a forecaster does not have).
void save_forecaster(const std::string& dir, Forecaster& model, const json& train,
                     const std::map<std::string, Tensor>& optim, const json& state) {
  write_dir_atomic(dir, [&](const std::string& tmp) {
    json cfg = {{"format", "xlstm-checkpoint"}, {"version", 1},
                {"task", "forecast"},           {"model", model.backbone_config()},
                {"forecast", model.spec().to_json()}, {"train", train}};
    write_file_atomic(tmp + "/config.json", cfg.dump(2) + "\n");
    std::map<std::string, Tensor> weights;
    for (auto& p : model.params()) weights[p.name] = *p.value;
    save_safetensors(tmp + "/model.safetensors", weights);
    if (!optim.empty()) save_safetensors(tmp + "/optimizer.safetensors", optim);
    write_file_atomic(tmp + "/state.json", state.dump(2) + "\n");
  });
}

LoadedForecaster load_forecaster(const std::string& path) {
  LoadedForecaster r;
  r.dir = resolve_checkpoint_dir(path);
  if (!exists(r.dir + "/model.safetensors") && exists(r.dir + ".old/model.safetensors"))
    r.dir += ".old";
  const std::string cw = r.dir + "/config.json";
  XLSTM_CHECK(exists(cw), IoError, cw, ": missing (not a complete checkpoint directory)");
  const json cfg = json_cfg::read_file(cw);
  json_cfg::check_object(cfg, cw);
  r.config = cfg;
  r.model_name = "model";
  if (cfg.contains("train") && cfg["train"].is_object() && cfg["train"].contains("model_name") &&
      cfg["train"]["model_name"].is_string())
    r.model_name = cfg["train"]["model_name"].get<std::string>();
  XLSTM_CHECK(cfg.value("format", "") == "xlstm-checkpoint", ValueError, cw,
              ": field 'format' must be \"xlstm-checkpoint\"");
  const std::string task = json_cfg::get_string(cfg, "task", cw, "lm");
  XLSTM_CHECK(task == "forecast", ValueError, cw, ": a '", task,
              "' checkpoint, not a forecaster (field 'task'); hint: train one with "
              "xlstm train --task forecast");
  const ForecastSpec spec = ForecastSpec::from_json(json_cfg::get_object(cfg, "forecast", cw),
                                                    cw + ": forecast");
  r.model = std::make_unique<Forecaster>(json_cfg::get_object(cfg, "model", cw), spec,
                                         cw + ": model", 0);
  const std::string mw = r.dir + "/model.safetensors";
  SafeTensorsFile f(mw);
  std::map<std::string, Tensor> w;
  for (auto& n : f.names()) w[n] = f.get(n);
  r.model->load_params(w, mw);
  return r;
}

// ---------------------------------------------------------------------------- plotting

void save_forecast_plot(const std::string& path, const SeriesData& d, int64_t origin,
                        const ForecastSpec& spec, const std::vector<double>& forecast, int64_t H,
                        int64_t history, const std::string& title) {
  const int64_t Q = spec.num_quantiles(), L = d.rows();
  XLSTM_CHECK(origin >= 0 && origin < L && H >= 1 && (int64_t)forecast.size() == H * Q,
              ValueError, "[forecast plot] origin ", origin, " / ", L, " rows, ", forecast.size(),
              " forecast values for H=", H, " Q=", Q);
  const double* y = d.values[0].data();
  LinePlot p;
  p.title = title;
  p.ylabel = d.columns[0];
  p.xlabel = d.time_col.empty()
                 ? str("row of ", fs::path(d.path).filename().string())
                 : str("row of ", fs::path(d.path).filename().string(), " (", d.time_col, " ",
                       d.time[(size_t)std::max<int64_t>(0, origin - history + 1)], " .. ",
                       d.time[(size_t)std::min(L - 1, origin + H)], ")");
  p.markers = LinePlot::Markers::Never;
  p.legend = LinePlot::Legend::TopLeft;
  Series hist{"history", {}, {}, 0x1f77b4}, act{"actual", {}, {}, 0x2ca02c},
      fc{Q > 1 ? str("forecast (q", spec.quantiles[(size_t)spec.point_index()], ")")
               : std::string("forecast"),
         {}, {}, 0xd62728};
  for (int64_t t = std::max<int64_t>(0, origin - history + 1); t <= origin; ++t) {
    hist.x.push_back((double)t);
    hist.y.push_back(y[t]);
  }
  // The actuals and the forecast start at the origin's value so the lines join the history.
  act.x.push_back((double)origin), act.y.push_back(y[origin]);
  fc.x.push_back((double)origin), fc.y.push_back(y[origin]);
  for (int64_t h = 0; h < H; ++h) {
    if (origin + 1 + h < L) act.x.push_back((double)(origin + 1 + h)), act.y.push_back(y[origin + 1 + h]);
    fc.x.push_back((double)(origin + 1 + h));
    fc.y.push_back(forecast[(size_t)(h * Q + spec.point_index())]);
  }
  p.series = {hist};
  if (act.x.size() > 1) p.series.push_back(act);
  p.series.push_back(fc);
  if (Q > 1) {
    Band b;
    b.label = str("q", spec.quantiles.front(), " .. q", spec.quantiles.back());
    b.rgb = 0xd62728;
    b.alpha = 0.2;
    for (int64_t h = 0; h < H; ++h) {
      b.x.push_back((double)(origin + 1 + h));
      b.lo.push_back(forecast[(size_t)(h * Q)]);
      b.hi.push_back(forecast[(size_t)(h * Q + Q - 1)]);
    }
    p.bands.push_back(b);
  }
  p.vlines.push_back({(double)origin, "forecast origin", 0x555555});
  save_line_plot(path, p);
}

// ---------------------------------------------------------------------------- training

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void validate(const ForecastTrainConfig& c) {
  XLSTM_CHECK(!c.data.empty(), ValueError, "--data FILE.csv is required");
  XLSTM_CHECK(!c.out.empty(), ValueError, "--out DIR is required");
  XLSTM_CHECK(c.batch_size >= 1, ValueError, "--batch-size must be >= 1, got ", c.batch_size);
  XLSTM_CHECK(c.epochs >= 1 || c.steps >= 1, ValueError, "--epochs or --steps must be >= 1");
  XLSTM_CHECK(c.steps >= 0 && c.minutes >= 0, ValueError, "--steps and --minutes must be >= 0");
  XLSTM_CHECK(std::isfinite(c.lr) && c.lr > 0, ValueError, "--lr must be > 0, got ", c.lr);
  XLSTM_CHECK(c.patience >= 0 && c.warmup >= 0 && c.eval_every >= 0, ValueError,
              "--patience, --warmup and --eval-every must be >= 0");
  XLSTM_CHECK(c.log_every >= 1, ValueError, "--log-every must be >= 1");
  c.spec.validate();
}

// Mean loss (scaled units) and MAE (target units) of the point forecast over all windows of
// `origins`, in batches of B.
struct ValResult {
  double loss = 0, mae = 0;
};

double batch_loss(const ForecastSpec& sp, int64_t B, const float* out, const float* y,
                  float* dout, double scale) {
  const int64_t H = sp.horizon;
  if (sp.loss == ForecastLoss::Pinball)
    return pinball_loss<float>(B * H, sp.num_quantiles(), out, y, sp.quantiles.data(), dout, scale);
  return point_loss<float>(sp.loss, B * H, out, y, dout, scale);
}


}  // namespace

ForecastTrainResult train_forecaster(const ForecastTrainConfig& cfg_in,
                                     const json& backbone_in,
                                     const std::function<void(const ForecastProgress&)>& on_progress,
                                     bool resume) {
  const auto t0 = Clock::now();
  XLSTM_CHECK(!cfg_in.out.empty(), ValueError, "--out DIR is required");
  const std::string out = cfg_in.out, ck_dir = out + "/checkpoint", best_dir = out + "/best";
  ForecastTrainConfig cfg = cfg_in;
  json backbone_config = backbone_in;
  std::string ck_used;  // resume: the checkpoint directory read (checkpoint/ or its .old)
  Scaler saved_scaler;
  if (resume) {
    XLSTM_CHECK(exists(ck_dir + "/model.safetensors") || exists(ck_dir + ".old/model.safetensors"),
                IoError, ck_dir, ": nothing to resume (no checkpoint in ", out, ")");
    ck_used = exists(ck_dir + "/model.safetensors") ? ck_dir : ck_dir + ".old";
    const std::string cw = ck_used + "/config.json";
    XLSTM_CHECK(exists(cw), IoError, cw, ": missing (not a complete checkpoint directory)");
    const json c = json_cfg::read_file(cw);
    json_cfg::check_object(c, cw);
    const std::string task = json_cfg::get_string(c, "task", cw, "lm");
    XLSTM_CHECK(task == "forecast", ValueError, cw, ": a '", task,
                "' checkpoint, not a forecaster's (field 'task'); hint: resume it with its own --task");
    cfg = ForecastTrainConfig::from_json(json_cfg::get_object(c, "train", cw), cw + ": train");
    cfg.out = out;
    cfg.stop_at = cfg_in.stop_at;
    if (!cfg_in.data.empty()) cfg.data = cfg_in.data;
    cfg.spec = ForecastSpec::from_json(json_cfg::get_object(c, "forecast", cw), cw + ": forecast");
    saved_scaler = cfg.spec.scaler;
    XLSTM_CHECK(!saved_scaler.mean.empty(), ValueError, cw, ": field 'forecast.scaler' missing");
    backbone_config = json_cfg::get_object(c, "model", cw);
  } else {
    XLSTM_CHECK(!exists(ck_dir) && !exists(best_dir) && !exists(ck_dir + ".old") &&
                    !exists(best_dir + ".old"),
                IoError, out, ": already holds a checkpoint; hint: --resume to continue it, or "
                "another --out");
  }
  validate(cfg);
  // Data, split and scaling: every check on the input runs before anything is written.
  ForecastSpec spec = cfg.spec;
  const SeriesData d = load_series_csv(cfg.data, spec.target, spec.features, spec.time_col);
  const int64_t L = d.rows(), N = spec.context, H = spec.horizon;
  XLSTM_CHECK(L >= N + H, ValueError, cfg.data, ": ", L, " data rows, fewer than --context + --horizon = ",
              N + H, "; hint: a longer series or a smaller --context/--horizon");
  const SplitRows split = split_rows(L, spec.val_fraction, spec.test_fraction);
  const Origins tr = window_origins(split, Part::Train, N, H),
                va = window_origins(split, Part::Val, N, H),
                te = window_origins(split, Part::Test, N, H);
  auto need = [&](const Origins& o, Part p, int64_t begin, int64_t end, bool wanted) {
    XLSTM_CHECK(!wanted || o.count() >= 1, ValueError, cfg.data, ": the ", part_name(p),
                " part (rows ", begin, "..", end - 1, ", ", end - begin,
                " rows) holds no window of --context ", N, " + --horizon ", H,
                "; hint: a longer series, other --val-fraction/--test-fraction or a smaller "
                "--context/--horizon");
  };
  need(tr, Part::Train, 0, split.train_end, true);
  need(va, Part::Val, split.train_end, split.val_end, spec.val_fraction > 0);
  need(te, Part::Test, split.val_end, L, spec.test_fraction > 0);
  spec.scaler = Scaler::fit(d, split.train_end);
  if (resume)
    XLSTM_CHECK(spec.scaler.mean == saved_scaler.mean && spec.scaler.std == saved_scaler.std,
                ValueError, cfg.data, ": not the series the run in ", out,
                " trained on (its train rows give another scaler than the checkpoint's)");
  // MASE must be defined before training starts (the test evaluation needs it).
  seasonal_naive_scale(d.values[0].data(), split.train_end, spec.season, cfg.data + " (train rows)");
  const std::vector<float> z = scale_series(d, spec.scaler);
  const int64_t C = spec.columns();

  Forecaster model(backbone_config, spec, "model config", cfg.seed);
  auto params = model.params();
  OptimConfig oc;
  oc.kind = parse_optim_kind(cfg.optimizer);
  oc.lr = cfg.lr;
  oc.weight_decay = cfg.weight_decay;
  oc.beta1 = cfg.beta1;
  oc.beta2 = cfg.beta2;
  Optimizer opt(params, oc);
  const int64_t n_train = tr.count();
  const int64_t B = std::min(cfg.batch_size, n_train);
  const int64_t steps_per_epoch = std::max<int64_t>(1, n_train / B);
  // A larger --steps on resume extends the run (as for the language-model task; the schedule
  // is then the longer run's from here on).
  const int64_t run_steps = cfg.steps > 0 ? cfg.steps : cfg.epochs * steps_per_epoch;
  const bool extended = resume && cfg_in.steps > run_steps;
  if (extended) cfg.steps = cfg_in.steps;
  const int64_t total_steps = extended ? cfg.steps : run_steps;
  const int64_t eval_every = cfg.eval_every > 0 ? cfg.eval_every : steps_per_epoch;
  ScheduleConfig sc;
  sc.kind = parse_schedule_kind(cfg.schedule);
  sc.lr = cfg.lr;
  sc.min_lr = cfg.min_lr >= 0 ? cfg.min_lr : cfg.lr / 10;
  sc.warmup_steps = std::min(cfg.warmup, total_steps);
  sc.total_steps = total_steps;
  LrSchedule sched(sc);

  std::error_code ec;
  fs::create_directories(out, ec);
  XLSTM_CHECK(fs::is_directory(out), IoError, out, ": cannot create the output directory (",
              ec.message(), ")");

  ForecastTrainResult res;
  res.params = count_params(model);
  res.train_windows = n_train;
  res.val_windows = va.count();
  res.checkpoint_dir = ck_dir;
  res.best_dir = best_dir;
  res.plot_png = out + "/loss.png";
  res.eval_json = out + "/test_metrics.json";

  std::vector<int64_t> order;
  for (int64_t t = tr.first; t <= tr.last; ++t) order.push_back(t);
  std::vector<int64_t> val_origins;
  for (int64_t t = va.first; t <= va.last; ++t) val_origins.push_back(t);
  Rng shuffle_rng(cfg.seed + 1), drop_rng(cfg.seed + 2);
  // What a checkpoint adds to the optimizer's tensors: the two streams and the current
  // epoch's permutation of the train windows (each epoch reshuffles the previous one).
  auto optim_state = [&]() {
    std::map<std::string, Tensor> m = opt.state_dict();
    m["shuffle.rng"] = rng_state_tensor(shuffle_rng);
    m["dropout.rng"] = rng_state_tensor(drop_rng);
    Tensor o({(int64_t)order.size()}, DType::I64);
    std::memcpy(o.raw(), order.data(), order.size() * sizeof(int64_t));
    m["shuffle.order"] = o;
    return m;
  };
  Tensor x({B, N, C}, DType::F32), dout({B, spec.outputs()}, DType::F32);
  std::vector<float> y((size_t)(B * H)), level((size_t)B), spread((size_t)B);
  const json train_json = cfg.to_json();

  auto evaluate_val = [&]() {
    ValResult r;
    const int64_t nv = (int64_t)val_origins.size(), O = spec.outputs(), Q = spec.num_quantiles();
    const int64_t pi = spec.point_index();
    Tensor xv;
    std::vector<float> yv, level((size_t)B), spread((size_t)B);
    for (int64_t i0 = 0; i0 < nv; i0 += B) {
      const int64_t b = std::min(B, nv - i0);
      if (!xv.defined() || xv.dim(0) != b) xv = Tensor::empty({b, N, C}, DType::F32);
      yv.resize((size_t)(b * H));
      gather_windows(z.data(), L, C, val_origins.data() + i0, b, N, H, xv.data<float>(), yv.data(),
                     spec.window_norm, level.data(), spread.data());
      Tensor o = model.forward(xv, Mode::Eval, nullptr);
      r.loss += batch_loss(spec, b, o.data<float>(), yv.data(), nullptr, 1.0) * (double)b;
      for (int64_t k = 0; k < b * H; ++k)
        r.mae += std::fabs((double)o.data<float>()[k / H * O + (k % H) * Q + pi] - (double)yv[k]) *
                 (double)spread[(size_t)(k / H)];
    }
    r.loss /= (double)nv;
    r.mae = r.mae / (double)(nv * H) * spec.scaler.std[0];
    return r;
  };
  double elapsed_before = 0;  // resume: the run's seconds before this invocation
  auto state_json = [&](int64_t step, double best_val, int64_t bad) {
    return json{{"step", step}, {"total_steps", total_steps}, {"best_val", best_val},
                {"bad_evals", bad}, {"elapsed", elapsed_before + seconds_since(t0)}};
  };

  std::vector<Tensor> best;  // the best parameters so far (by validation loss)
  double best_val = -1, loss_avg = 0;
  int64_t bad_evals = 0, loss_n = 0, step = 0;
  if (resume) {
    auto read_weights = [](const std::string& path) {
      SafeTensorsFile f(path);
      std::map<std::string, Tensor> w;
      for (auto& n : f.names()) w[n] = f.get(n);
      return w;
    };
    const std::string mw = ck_used + "/model.safetensors", ow = ck_used + "/optimizer.safetensors",
                      sw = ck_used + "/state.json";
    model.load_params(read_weights(mw), mw);
    XLSTM_CHECK(exists(ow), IoError, ow, ": missing (the checkpoint cannot be resumed)");
    std::map<std::string, Tensor> optim = read_weights(ow);
    for (const char* name : {"shuffle.rng", "dropout.rng", "shuffle.order"})
      XLSTM_CHECK(optim.count(name), IoError, ow, ": missing tensor '", name, "'");
    load_rng_state(shuffle_rng, optim["shuffle.rng"], ow);
    load_rng_state(drop_rng, optim["dropout.rng"], ow);
    const Tensor& ord = optim["shuffle.order"];
    XLSTM_CHECK(ord.dtype() == DType::I64 && ord.shape() == Shape({(int64_t)order.size()}),
                ValueError, ow, ": tensor 'shuffle.order' must be I64 ",
                shape_str({(int64_t)order.size()}), " (the train windows), got ",
                dtype_name(ord.dtype()), " ", shape_str(ord.shape()));
    std::vector<int64_t> restored((size_t)ord.numel());
    std::memcpy(restored.data(), ord.raw(), restored.size() * sizeof(int64_t));
    std::vector<int64_t> sorted = restored;
    std::sort(sorted.begin(), sorted.end());
    XLSTM_CHECK(sorted == std::vector<int64_t>(order.begin(), order.end()), ValueError, ow,
                ": tensor 'shuffle.order' is not a permutation of the train windows");
    order = restored;
    optim.erase("shuffle.rng");
    optim.erase("dropout.rng");
    optim.erase("shuffle.order");
    opt.load_state_dict(optim, ow);
    XLSTM_CHECK(exists(sw), IoError, sw, ": missing (the checkpoint cannot be resumed)");
    const json st = json_cfg::read_file(sw);
    json_cfg::check_object(st, sw);
    step = json_cfg::get_int(st, "step", sw);
    XLSTM_CHECK(json_cfg::get_int(st, "total_steps", sw) == run_steps && step >= 0 &&
                    step <= run_steps,
                ValueError, sw, ": field 'step' / 'total_steps' (", step, " / ",
                json_cfg::get_int(st, "total_steps", sw), ") does not fit this run's ",
                run_steps, " steps");
    best_val = json_cfg::get_number(st, "best_val", sw);
    bad_evals = json_cfg::get_int(st, "bad_evals", sw);
    elapsed_before = json_cfg::get_number(st, "elapsed", sw, 0);
    if (best_val >= 0) {
      const std::string bw = best_dir + "/model.safetensors";
      XLSTM_CHECK(exists(bw), IoError, bw, ": missing (the best model so far)");
      std::map<std::string, Tensor> w = read_weights(bw);
      for (auto& p : params) {
        auto it = w.find(p.name);
        XLSTM_CHECK(it != w.end() && it->second.shape() == p.value->shape() &&
                        it->second.dtype() == p.value->dtype(),
                    ValueError, bw, ": tensor '", p.name, "' missing or of another shape / dtype");
        best.push_back(it->second.clone());
      }
    }
    drop_metrics_after(out, step);
  }
  const int64_t step0 = step;
  MetricsLogger metrics(out, "metrics", resume ? MetricsMode::Append : MetricsMode::Truncate);
  res.metrics_csv = metrics.csv_path();
  std::string reason = "steps";
  const auto t_loop = Clock::now();
  const double deadline = cfg.minutes > 0 ? cfg.minutes * 60.0 : 1e300;
  while (step < total_steps) {
    const int64_t k = step % steps_per_epoch;
    if (k == 0)  // a new epoch: reshuffle (Fisher-Yates with the run's own stream)
      for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[shuffle_rng.below(i)]);
    gather_windows(z.data(), L, C, order.data() + k * B, B, N, H, x.data<float>(), y.data(),
                   spec.window_norm, level.data(), spread.data());
    const double lr = sched.at(step);
    opt.set_lr(lr);
    model.zero_grad();
    Tensor o = model.forward(x, Mode::Train, &drop_rng);
    const double loss = batch_loss(spec, B, o.data<float>(), y.data(), dout.data<float>(), 1.0);
    if (!std::isfinite(loss))
      throw TrainingDiverged(str("training diverged: loss is ", loss, " at step ", step + 1,
                                 "; hint: lower --lr or keep --clip"));
    model.backward(dout);
    ClipResult cr = clip_grad_norm(params, cfg.clip);
    if (!cr.finite)
      throw TrainingDiverged(str("training diverged: non-finite gradient in '", cr.bad_param,
                                 "' at step ", step + 1, "; hint: lower --lr or keep --clip"));
    opt.step();
    ++step;
    loss_avg += loss;
    ++loss_n;
    const double run_s = seconds_since(t0), el = elapsed_before + run_s;
    const bool last = step == total_steps, out_of_time = run_s >= deadline;
    const bool stop_now = cfg.stop_at > 0 && step >= cfg.stop_at;
    const bool do_eval = step % eval_every == 0 || last || out_of_time || stop_now;
    ForecastProgress pr;
    pr.step = step;
    pr.total_steps = total_steps;
    pr.epoch = (step - 1) / steps_per_epoch + 1;
    pr.loss = loss;
    pr.lr = lr;
    pr.elapsed_s = el;
    pr.eta_s = (double)(total_steps - step) * seconds_since(t_loop) / (double)(step - step0);
    if (do_eval || step % cfg.log_every == 0) {
      MetricRow row = {{"step", step}, {"epoch", (double)step / (double)steps_per_epoch},
                       {"loss", loss_avg / (double)loss_n}, {"lr", lr}, {"grad_norm", cr.norm},
                       {"elapsed_s", el}};
      double vl = std::nan(""), vmae = std::nan("");
      if (do_eval) {
        if (!val_origins.empty()) {
          const ValResult v = evaluate_val();
          vl = v.loss, vmae = v.mae;
          if (best_val < 0 || vl < best_val) {
            best_val = vl;
            bad_evals = 0;
            best.clear();
            for (auto& p : params) best.push_back(p.value->clone());
            save_forecaster(best_dir, model, train_json, {}, state_json(step, best_val, 0));
          } else {
            ++bad_evals;
          }
        }
        pr.eval = true;
        save_forecaster(ck_dir, model, train_json, optim_state(),
                        state_json(step, best_val, bad_evals));
      }
      row.push_back({"val_loss", vl});
      row.push_back({"val_mae", vmae});
      metrics.log(row);
      loss_avg = 0;
      loss_n = 0;
      pr.val_loss = vl;
      pr.best_val = best_val;
      if (on_progress) on_progress(pr);
      if (do_eval)
        save_loss_plot(out + "/loss.png", metrics.csv_path(),
                       "forecaster: training and validation loss",
                       str(forecast_loss_name(spec.loss), " loss (normalised units)"));
    }
    if (!val_origins.empty() && cfg.patience > 0 && bad_evals >= cfg.patience) {
      reason = "early stopping";
      break;
    }
    if (stop_now && !last) {
      reason = "stop_at";
      break;
    }
    if (out_of_time && !last) {
      reason = "time";
      break;
    }
  }
  if (val_origins.empty()) {
    save_forecaster(best_dir, model, train_json, {}, state_json(step, best_val, 0));
  } else {
    for (size_t i = 0; i < params.size(); ++i)  // evaluate the best model, not the last
      std::memcpy(params[i].value->raw(), best[i].raw(), best[i].nbytes());
  }
  res.steps = step;
  res.data = cfg.data;
  res.model_name = cfg.model_name;
  res.horizon = H;
  res.epochs = (double)step / (double)steps_per_epoch;
  res.best_val_loss = best_val;
  res.stop_reason = reason;
  json ev = {{"model_name", cfg.model_name}, {"data", cfg.data}};
  if (te.count() > 0) {
    res.test = evaluate_part(model, d, split, Part::Test, cfg.batch_size);
    ev["test"] = evaluation_json(res.test);
    // A picture of the last test window: history, forecast, actuals.
    const int64_t t = te.last;
    const std::vector<double> f = predict_origins(model, z.data(), L, {t}, 1);
    save_forecast_plot(out + "/forecast_test.png", d, t, spec, f, H, std::max<int64_t>(N, 4 * H),
                       str("last test window: ", cfg.model_name, ", horizon ", H));
  }
  if (va.count() > 0) ev["validation"] = evaluation_json(evaluate_part(model, d, split, Part::Val, cfg.batch_size));
  write_file_atomic(res.eval_json, ev.dump(2) + "\n");
  res.seconds = seconds_since(t0);
  return res;
}

}  // namespace xlstm
