// The forecaster (backbone + direct multi-horizon head), its spec, prediction and evaluation.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "cpu/linear.h"
#include "io/json_config.h"
#include "models/backbone.h"
#include "nn/init.h"
#include "tasks/forecast.h"

namespace xlstm {

using json = nlohmann::json;

// ------------------------------------------------------------------------------------ spec

int64_t ForecastSpec::point_index() const {
  int64_t best = 0;
  for (size_t k = 1; k < quantiles.size(); ++k)
    if (std::fabs(quantiles[k] - 0.5) < std::fabs(quantiles[(size_t)best] - 0.5)) best = (int64_t)k;
  return best;
}

void ForecastSpec::validate() const {
  XLSTM_CHECK(context >= 1, ValueError, "--context must be >= 1, got ", context);
  XLSTM_CHECK(horizon >= 1, ValueError, "--horizon must be >= 1, got ", horizon);
  XLSTM_CHECK(season >= 1, ValueError, "--season must be >= 1, got ", season);
  XLSTM_CHECK(context >= season, ValueError, "--context ", context, " must be >= --season ",
              season, " (the seasonal-naive baseline looks one season back)");
  for (size_t k = 0; k < quantiles.size(); ++k)
    XLSTM_CHECK(quantiles[k] > 0 && quantiles[k] < 1 && (k == 0 || quantiles[k] > quantiles[k - 1]),
                ValueError, "--quantiles must be strictly ascending values in (0, 1)");
  XLSTM_CHECK(quantiles.empty() == (loss != ForecastLoss::Pinball), ValueError,
              quantiles.empty() ? "the pinball loss needs --quantiles"
                                : "--quantiles are trained with the pinball loss, not --loss ",
              quantiles.empty() ? "" : forecast_loss_name(loss));
  XLSTM_CHECK(!target.empty(), ValueError, "--target COL is required");
}

json ForecastSpec::to_json() const {
  json j = {{"target", target},
            {"features", features},
            {"time_col", time_col},
            {"context", context},
            {"horizon", horizon},
            {"season", season},
            {"quantiles", quantiles},
            {"loss", forecast_loss_name(loss)},
            {"window_norm", window_norm_name(window_norm)},
            {"val_fraction", val_fraction},
            {"test_fraction", test_fraction}};
  if (!scaler.mean.empty()) j["scaler"] = scaler.to_json();
  return j;
}

ForecastSpec ForecastSpec::from_json(const json& j, const std::string& w) {
  using namespace json_cfg;
  check_object(j, w);
  ForecastSpec s;
  s.target = get_string(j, "target", w);
  if (has(j, "features"))
    for (auto& f : get_array(j, "features", w)) {
      XLSTM_CHECK(f.is_string(), ValueError, w, ": field 'features' must hold strings");
      s.features.push_back(f.get<std::string>());
    }
  s.time_col = get_string(j, "time_col", w, "");
  s.context = get_int(j, "context", w);
  s.horizon = get_int(j, "horizon", w);
  s.season = get_int(j, "season", w, 1);
  if (has(j, "quantiles"))
    for (auto& q : get_array(j, "quantiles", w)) {
      XLSTM_CHECK(q.is_number(), ValueError, w, ": field 'quantiles' must hold numbers");
      s.quantiles.push_back(q.get<double>());
    }
  s.loss = parse_forecast_loss(get_enum(j, "loss", w, {"mse", "mae", "pinball"}));
  s.window_norm = parse_window_norm(get_enum(j, "window_norm", w, {"meanstd", "mean", "none"}));
  s.val_fraction = get_number(j, "val_fraction", w, s.val_fraction);
  s.test_fraction = get_number(j, "test_fraction", w, s.test_fraction);
  try {
    s.validate();
  } catch (const ValueError& e) {
    throw ValueError(str(w, ": ", e.what()));
  }
  s.scaler = Scaler::from_json(get_object(j, "scaler", w), (size_t)s.columns(), w + ": scaler");
  return s;
}

// ------------------------------------------------------------------------------ the model

namespace {

template <class T>
void head_forward(int64_t B, int64_t D, int64_t O, const Tensor& last, const Tensor& W,
                  const Tensor& b, Tensor& out) {
  linear_forward<T>(B, D, O, last.data<T>(), W.data<T>(), b.data<T>(), out.data<T>());
}

template <class T>
void head_backward(int64_t B, int64_t N, int64_t D, int64_t O, const Tensor& last,
                   const Tensor& W, const Tensor& dout, Tensor& dW, Tensor& db, Tensor& dlast,
                   Tensor& dy) {
  // dy (B, N, D): zero except the last position, which gets the head's input gradient.
  dy.zero();
  linear_backward<T>(B, D, O, last.data<T>(), W.data<T>(), dout.data<T>(), dlast.data<T>(),
                     dW.data<T>(), db.data<T>());
  for (int64_t i = 0; i < B; ++i)
    std::memcpy(dy.data<T>() + (i * N + N - 1) * D, dlast.data<T>() + i * D,
                sizeof(T) * (size_t)D);
}

}  // namespace

Forecaster::Forecaster(const json& backbone_config, const ForecastSpec& spec,
                       const std::string& where, uint64_t seed, DType dtype)
    : backbone_json_(backbone_config), spec_(spec), dtype_(dtype) {
  spec_.validate();
  XLSTM_CHECK(dtype == DType::F32 || dtype == DType::F64, ValueError,
              "[forecaster] dtype must be F32 or F64");
  backbone_ = make_backbone(backbone_config, spec_.columns(), where, seed, dtype);
  D_ = backbone_->out_dim();
  const int64_t O = spec_.outputs();
  make_param(w_head_, dw_head_, {O, D_}, dtype);
  make_param(b_head_, db_head_, {O}, dtype);
  // torch.nn.Linear's default init, from a stream of its own so the backbone's init is the
  // same as the backbone built alone from `seed`.
  Rng rng(seed ^ 0x6865616466636173ull);
  const double bound = 1.0 / std::sqrt((double)D_);
  init_uniform(w_head_, rng, -bound, bound);
  init_uniform(b_head_, rng, -bound, bound);
}

Forecaster::~Forecaster() = default;

void Forecaster::collect_params(const std::string& prefix, std::vector<ParamRef>& out) {
  backbone_->collect_params(prefix + "backbone.", out);
  out.push_back({prefix + "head.weight", &w_head_, &dw_head_});
  out.push_back({prefix + "head.bias", &b_head_, &db_head_});
}

Tensor Forecaster::forward(const Tensor& x, Mode mode, Rng* rng) {
  const int64_t C = spec_.columns();
  XLSTM_CHECK(x.ndim() == 3 && x.dim(2) == C && x.dim(0) >= 1 && x.dim(1) >= 1 &&
                  x.dtype() == dtype_,
              ValueError, "[forecaster] x must be (B,N,C=", C, ") ", dtype_name(dtype_), ", got ",
              shape_str(x.shape()), " ", dtype_name(x.dtype()));
  B_ = x.dim(0);
  N_ = x.dim(1);
  Tensor y = backbone_->forward(x, mode, rng);  // (B, N, D)
  const size_t es = dtype_size(dtype_);
  if (!last_.defined() || last_.shape() != Shape({B_, D_})) last_ = Tensor::empty({B_, D_}, dtype_);
  for (int64_t b = 0; b < B_; ++b)
    std::memcpy(static_cast<char*>(last_.raw()) + b * D_ * es,
                static_cast<const char*>(y.raw()) + (b * N_ + N_ - 1) * D_ * es, es * (size_t)D_);
  const int64_t O = spec_.outputs();
  Tensor out = Tensor::empty({B_, O}, dtype_);
  if (dtype_ == DType::F32) head_forward<float>(B_, D_, O, last_, w_head_, b_head_, out);
  else head_forward<double>(B_, D_, O, last_, w_head_, b_head_, out);
  return out;
}

void Forecaster::backward(const Tensor& dout) {
  const int64_t O = spec_.outputs();
  XLSTM_CHECK(B_ > 0, ValueError, "[forecaster] backward before forward");
  XLSTM_CHECK(dout.shape() == Shape({B_, O}) && dout.dtype() == dtype_, ValueError,
              "[forecaster] dout must be (B,H*Q)=(", B_, ",", O, ") ", dtype_name(dtype_), ", got ",
              shape_str(dout.shape()), " ", dtype_name(dout.dtype()));
  if (!dy_.defined() || dy_.shape() != Shape({B_, N_, D_})) dy_ = Tensor({B_, N_, D_}, dtype_);
  if (!dlast_.defined() || dlast_.shape() != Shape({B_, D_})) dlast_ = Tensor({B_, D_}, dtype_);
  if (dtype_ == DType::F32)
    head_backward<float>(B_, N_, D_, O, last_, w_head_, dout, dw_head_, db_head_, dlast_, dy_);
  else
    head_backward<double>(B_, N_, D_, O, last_, w_head_, dout, dw_head_, db_head_, dlast_, dy_);
  backbone_->backward(dy_);
}

// ------------------------------------------------------------------- prediction, evaluation

std::vector<double> predict_origins(Forecaster& model, const float* z, int64_t rows,
                                    const std::vector<int64_t>& origins, int64_t batch_size) {
  const ForecastSpec& sp = model.spec();
  XLSTM_CHECK(model.dtype() == DType::F32, ValueError, "[predict] needs a float32 model");
  XLSTM_CHECK(batch_size >= 1, ValueError, "[predict] batch size must be >= 1");
  const int64_t N = sp.context, C = sp.columns(), O = sp.outputs();
  std::vector<double> r(origins.size() * (size_t)O);
  std::vector<float> level((size_t)batch_size), spread((size_t)batch_size);
  Tensor x;
  for (size_t i0 = 0; i0 < origins.size(); i0 += (size_t)batch_size) {
    const int64_t B = std::min<int64_t>(batch_size, (int64_t)(origins.size() - i0));
    if (!x.defined() || x.dim(0) != B) x = Tensor::empty({B, N, C}, DType::F32);
    gather_windows(z, rows, C, origins.data() + i0, B, N, sp.horizon, x.data<float>(), nullptr,
                   sp.window_norm, level.data(), spread.data());
    Tensor out = model.forward(x, Mode::Eval, nullptr);
    const float* o = out.data<float>();
    for (int64_t k = 0; k < B * O; ++k)
      r[i0 * (size_t)O + (size_t)k] = sp.scaler.unscale(
          0, (double)level[(size_t)(k / O)] + (double)spread[(size_t)(k / O)] * (double)o[k]);
  }
  return r;
}

ForecastEvaluation evaluate_part(Forecaster& model, const SeriesData& d, const SplitRows& s,
                                 Part p, int64_t batch_size) {
  const ForecastSpec& sp = model.spec();
  ForecastEvaluation e;
  e.part = p;
  e.horizon = sp.horizon;
  e.season = sp.season;
  e.origins = window_origins(s, p, sp.context, sp.horizon);
  const int64_t H = sp.horizon, Q = sp.num_quantiles(), P = sp.season;
  const double* y = d.values[0].data();
  e.mase_scale = seasonal_naive_scale(y, s.train_end, P, d.path + " (train rows)");
  if (e.origins.count() == 0) return e;
  std::vector<int64_t> origins;
  for (int64_t t = e.origins.first; t <= e.origins.last; ++t) origins.push_back(t);
  const std::vector<float> z = scale_series(d, sp.scaler);
  const std::vector<double> pred = predict_origins(model, z.data(), d.rows(), origins, batch_size);
  const size_t n = origins.size() * (size_t)H;
  std::vector<double> actual(n), point(n), snaive(n), last(n);
  int64_t inside = 0;
  const int64_t pi = sp.point_index();
  for (size_t i = 0; i < origins.size(); ++i) {
    const int64_t t = origins[i];
    seasonal_naive_forecast(y, t, H, P, snaive.data() + i * H);
    last_value_forecast(y, t, H, last.data() + i * H);
    for (int64_t h = 0; h < H; ++h) {
      const double a = y[t + 1 + h];
      actual[i * H + h] = a;
      const double* q = pred.data() + (i * H + h) * Q;
      point[i * H + h] = q[pi];
      if (Q > 1) inside += a >= std::min(q[0], q[Q - 1]) && a <= std::max(q[0], q[Q - 1]);
    }
  }
  e.model = forecast_metrics(point.data(), actual.data(), (int64_t)n, e.mase_scale);
  e.seasonal_naive = forecast_metrics(snaive.data(), actual.data(), (int64_t)n, e.mase_scale);
  e.last_value = forecast_metrics(last.data(), actual.data(), (int64_t)n, e.mase_scale);
  if (Q > 1) e.coverage = (double)inside / (double)n;
  return e;
}

std::string format_evaluation(const ForecastEvaluation& e, const std::string& model_name) {
  std::ostringstream os;
  char buf[256];
  const int64_t first_row = e.origins.first + 1, last_row = e.origins.last + e.horizon;
  std::snprintf(buf, sizeof buf,
                "%s split: %lld windows x %lld steps (targets in data rows %lld..%lld, 0-based)\n",
                part_name(e.part), (long long)e.origins.count(), (long long)e.horizon,
                (long long)first_row, (long long)last_row);
  os << buf;
  std::snprintf(buf, sizeof buf, "MASE scale: seasonal-naive (season %lld) MAE on the train rows = %.6g\n",
                (long long)e.season, e.mase_scale);
  os << buf;
  const int w = std::max<int>(18, (int)model_name.size() + 1);
  std::snprintf(buf, sizeof buf, "%-*s %12s %12s %9s\n", w, "", "MAE", "RMSE", "MASE");
  os << buf;
  auto row = [&](const std::string& name, const ForecastMetrics& m) {
    std::snprintf(buf, sizeof buf, "%-*s %12.5g %12.5g %9.4f\n", w, name.c_str(), m.mae, m.rmse,
                  m.mase);
    os << buf;
  };
  row(model_name, e.model);
  row(str("seasonal-naive(", e.season, ")"), e.seasonal_naive);
  row("last-value", e.last_value);
  if (e.coverage >= 0) {
    std::snprintf(buf, sizeof buf, "quantile band coverage: %.1f%% of actuals\n", 100 * e.coverage);
    os << buf;
  }
  return os.str();
}

json evaluation_json(const ForecastEvaluation& e) {
  auto m = [](const ForecastMetrics& x) {
    return json{{"mae", x.mae}, {"rmse", x.rmse}, {"mase", x.mase}, {"count", x.count}};
  };
  json j = {{"part", part_name(e.part)},
            {"windows", e.origins.count()},
            {"first_origin", e.origins.first},
            {"last_origin", e.origins.last},
            {"horizon", e.horizon},
            {"season", e.season},
            {"mase_scale", e.mase_scale},
            {"model", m(e.model)},
            {"seasonal_naive", m(e.seasonal_naive)},
            {"last_value", m(e.last_value)}};
  if (e.coverage >= 0) j["coverage"] = e.coverage;
  return j;
}

}  // namespace xlstm
