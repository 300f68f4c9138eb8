// The forecasting task: metrics and baselines against hand-computed values, scaling, the split
// and the windows against brute-force definitions, loss gradients and the forecaster's
// gradients against finite differences, a tiny model that learns a sine wave, and checkpoints.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "harness/run_dir.h"
#include "io/json_config.h"
#include "models/backbone.h"
#include "tasks/forecast.h"
#include "viz/plot.h"

using namespace xlstm;
using json = nlohmann::json;
namespace fs = std::filesystem;

// fontconfig (under cairo's text) keeps its caches until exit; not ours to free.
extern "C" const char* __lsan_default_suppressions() { return "leak:libfontconfig.so\n"; }

namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/xlstm_forecast_XXXXXX";
  return mkdtemp(tmpl);
}

ForecastSpec spec_of(int64_t N, int64_t H, std::vector<double> q = {}, int64_t features = 0) {
  ForecastSpec s;
  s.target = "y";
  for (int64_t i = 0; i < features; ++i) s.features.push_back(str("f", i));
  s.context = N;
  s.horizon = H;
  s.quantiles = q;
  s.loss = q.empty() ? ForecastLoss::MSE : ForecastLoss::Pinball;
  s.scaler.mean.assign((size_t)s.columns(), 0.0);
  s.scaler.std.assign((size_t)s.columns(), 1.0);
  return s;
}

json tiny_lstm() { return {{"arch", "lstm"}, {"hidden_size", 6}, {"num_layers", 1}}; }

json tiny_xlstm() {
  ModelOverrides o;
  o.width = 8;
  o.blocks = 2;
  o.heads = 2;
  json j = backbone_preset("xlstm-1-1-tiny", o);
  j["mlstm_block"]["mlstm"]["chunk_size"] = 4;
  return j;
}

// --------------------------------------------------------------------------------- metrics

TEST(ForecastMetrics, HandComputed) {
  const double pred[] = {1, 2, 4}, actual[] = {1, 3, 1};  // errors 0, -1, 3
  ForecastMetrics m = forecast_metrics(pred, actual, 3, 2.0);
  EXPECT_DOUBLE_EQ(m.mae, 4.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.rmse, std::sqrt(10.0 / 3.0));
  EXPECT_DOUBLE_EQ(m.mase, 2.0 / 3.0);
  EXPECT_EQ(m.count, 3);
}

TEST(ForecastMetrics, SeasonalNaiveScale) {
  const double y[] = {1, 3, 2, 5, 4};  // lag 2: |2-1| + |5-3| + |4-2| = 5 over 3
  EXPECT_DOUBLE_EQ(seasonal_naive_scale(y, 5, 2, "t"), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(seasonal_naive_scale(y, 5, 1, "t"), (2.0 + 1 + 3 + 1) / 4.0);
  EXPECT_THROW(seasonal_naive_scale(y, 2, 2, "t"), ValueError);  // n <= P
  const double c[] = {7, 7, 7, 7};
  EXPECT_THROW(seasonal_naive_scale(c, 4, 1, "t"), ValueError);  // MASE undefined
}

TEST(ForecastMetrics, Baselines) {
  std::vector<double> y;
  for (int t = 0; t < 12; ++t) y.push_back(t * t);
  double out[5];
  // origin 5, season 3: h=1 -> y[3], h=2 -> y[4], h=3 -> y[5], h=4 -> y[3], h=5 -> y[4]
  seasonal_naive_forecast(y.data(), 5, 5, 3, out);
  const double want[] = {9, 16, 25, 9, 16};
  for (int h = 0; h < 5; ++h) EXPECT_EQ(out[h], want[h]) << h;
  seasonal_naive_forecast(y.data(), 5, 3, 1, out);  // P = 1 is the last value
  for (int h = 0; h < 3; ++h) EXPECT_EQ(out[h], 25);
  last_value_forecast(y.data(), 7, 4, out);
  for (int h = 0; h < 4; ++h) EXPECT_EQ(out[h], 49);
  EXPECT_THROW(seasonal_naive_forecast(y.data(), 1, 2, 3, out), ValueError);  // 2 rows < P
}

// ----------------------------------------------------------------------------- data, scaling

TEST(ForecastData, ParseNumberCell) {
  double v = 0;
  EXPECT_TRUE(parse_number_cell(" 12.5 ", v));
  EXPECT_EQ(v, 12.5);
  EXPECT_TRUE(parse_number_cell("-1e3", v));
  EXPECT_EQ(v, -1000);
  for (const char* bad : {"", "  ", "NA", "nan", "inf", "-inf", "1,5", "12abc", "0x10", "e", "1e999"})
    EXPECT_FALSE(parse_number_cell(bad, v)) << bad;
}

TEST(ForecastData, TableErrorsNameFileLineAndColumn) {
  const std::vector<std::string> header = {"date", "y", "x"};
  auto get = [&](std::vector<std::vector<std::string>> rows, const std::string& target,
                 std::vector<std::string> feats = {}) {
    return series_from_table("f.csv", header, rows, {}, target, feats, "date");
  };
  SeriesData d = get({{"a", "1", "2"}, {"b", "3", "4"}}, "y", {"x"});
  ASSERT_EQ(d.rows(), 2);
  EXPECT_EQ(d.columns, (std::vector<std::string>{"y", "x"}));
  EXPECT_EQ(d.values[1][1], 4);
  EXPECT_EQ(d.time[1], "b");
  auto message = [&](auto&& f) {
    try {
      f();
    } catch (const ValueError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string m = message([&] { get({{"a", "1", "2"}}, "z"); });
  EXPECT_NE(m.find("f.csv: no column 'z'"), std::string::npos) << m;
  EXPECT_NE(m.find("date, y, x"), std::string::npos) << m;
  m = message([&] { get({{"a", "1", "2"}, {"b", "", "4"}}, "y"); });
  EXPECT_NE(m.find("f.csv: line 3, column 'y': missing value"), std::string::npos) << m;
  m = message([&] { get({{"a", "1", "2"}, {"b", "3", "four"}}, "y", {"x"}); });
  EXPECT_NE(m.find("f.csv: line 3, column 'x': 'four' is not a finite number"), std::string::npos) << m;
  m = message([&] { get({{"a", "1"}}, "y", {"x"}); });
  EXPECT_NE(m.find("line 2"), std::string::npos) << m;
  m = message([&] { get({}, "y"); });
  EXPECT_NE(m.find("no data rows"), std::string::npos) << m;
  m = message([&] { get({{"a", "1", "2"}}, "date"); });
  EXPECT_NE(m.find("--time-col"), std::string::npos) << m;
  m = message([&] { get({{"a", "1", "2"}}, "y", {"y"}); });
  EXPECT_NE(m.find("named twice"), std::string::npos) << m;
}

TEST(ForecastData, ScalerFitsTrainRowsAndRoundTrips) {
  SeriesData d;
  d.path = "t";
  d.columns = {"y", "c"};
  d.values = {{1, 2, 3, 4, 100}, {5, 5, 5, 5, -3}};
  Scaler s = Scaler::fit(d, 4);  // the last row (test) must not influence the statistics
  EXPECT_DOUBLE_EQ(s.mean[0], 2.5);
  EXPECT_DOUBLE_EQ(s.std[0], std::sqrt(1.25));  // population std of 1..4
  EXPECT_DOUBLE_EQ(s.mean[1], 5);
  EXPECT_DOUBLE_EQ(s.std[1], 1);  // constant column
  for (size_t c = 0; c < 2; ++c)
    for (double v : d.values[c]) EXPECT_NEAR(s.unscale(c, s.scale(c, v)), v, 1e-12 * std::fabs(v));
  const std::vector<float> z = scale_series(d, s);
  EXPECT_FLOAT_EQ(z[2 * 1 + 0], (float)((2 - 2.5) / std::sqrt(1.25)));
  EXPECT_FLOAT_EQ(z[2 * 4 + 1], -8.0f);
  Scaler r = Scaler::from_json(json::parse(s.to_json().dump()), 2, "t");
  EXPECT_EQ(r.mean, s.mean);
  EXPECT_EQ(r.std, s.std);
  EXPECT_THROW(Scaler::from_json(s.to_json(), 3, "t"), ValueError);
  EXPECT_THROW(Scaler::from_json(json{{"mean", {0.0}}, {"std", {0.0}}}, 1, "t"), ValueError);
}

TEST(ForecastData, SplitBoundaries) {
  SplitRows s = split_rows(100, 0.15, 0.15);
  EXPECT_EQ(s.train_end, 70);
  EXPECT_EQ(s.val_end, 85);
  s = split_rows(7305, 0.15, 0.15);  // floor of each fraction, train takes the rest
  EXPECT_EQ(s.val_end, 7305 - 1095);
  EXPECT_EQ(s.train_end, 7305 - 1095 - 1095);
  s = split_rows(10, 0, 0.25);
  EXPECT_EQ(s.train_end, 8);
  EXPECT_EQ(s.val_end, 8);
  EXPECT_THROW(split_rows(10, 0.5, 0.5), ValueError);
  EXPECT_THROW(split_rows(10, -0.1, 0.2), ValueError);
}

TEST(ForecastData, WindowOriginsMatchBruteForce) {
  for (int64_t n : {30, 100, 101})
    for (int64_t N : {1, 4, 10})
      for (int64_t H : {1, 3, 7}) {
        const SplitRows s = split_rows(n, 0.2, 0.15);
        for (Part p : {Part::Train, Part::Val, Part::Test}) {
          const int64_t b = p == Part::Train ? 0 : p == Part::Val ? s.train_end : s.val_end;
          const int64_t e = p == Part::Train ? s.train_end : p == Part::Val ? s.val_end : n;
          std::vector<int64_t> want;
          for (int64_t t = 0; t < n; ++t) {
            bool ok = t - N + 1 >= 0;
            for (int64_t h = 1; h <= H; ++h) ok = ok && t + h >= b && t + h < e;
            if (ok) want.push_back(t);
          }
          const Origins o = window_origins(s, p, N, H);
          ASSERT_EQ(o.count(), (int64_t)want.size()) << n << " " << N << " " << H << " " << part_name(p);
          if (!want.empty()) {
            EXPECT_EQ(o.first, want.front());
            EXPECT_EQ(o.last, want.back());
          }
        }
      }
}

TEST(ForecastData, GatherWindows) {
  const int64_t L = 12, C = 2, N = 3, H = 2;
  std::vector<float> z((size_t)(L * C));
  for (int64_t i = 0; i < L * C; ++i) z[(size_t)i] = (float)i;
  const int64_t origins[] = {2, 9};
  std::vector<float> x((size_t)(2 * N * C)), y((size_t)(2 * H));
  gather_windows(z.data(), L, C, origins, 2, N, H, x.data(), y.data());
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t i = 0; i < N; ++i)
      for (int64_t c = 0; c < C; ++c)
        EXPECT_EQ(x[(size_t)((b * N + i) * C + c)], (float)((origins[b] - N + 1 + i) * C + c));
    for (int64_t h = 0; h < H; ++h) EXPECT_EQ(y[(size_t)(b * H + h)], (float)((origins[b] + 1 + h) * C));
  }
  const int64_t late[] = {10};  // targets beyond the data: fine without y, an error with it
  EXPECT_NO_THROW(gather_windows(z.data(), L, C, late, 1, N, H, x.data(), nullptr));
  EXPECT_THROW(gather_windows(z.data(), L, C, late, 1, N, H, x.data(), y.data()), ValueError);
  const int64_t early[] = {1};
  EXPECT_THROW(gather_windows(z.data(), L, C, early, 1, N, H, x.data(), nullptr), ValueError);
  // Mean window normalisation: the mean of the N target inputs is removed from the target
  // inputs and the targets (not from the other columns) and returned as the level.
  std::vector<float> xn(x.size()), yn(y.size()), level(2), spread(2);
  gather_windows(z.data(), L, C, origins, 2, N, H, xn.data(), yn.data(), WindowNorm::Mean, level.data(),
                 spread.data());
  for (int64_t b = 0; b < 2; ++b) {
    const double m = (double)(origins[b] - 1) * C;  // rows t-2, t-1, t: mean of 2r is 2(t-1)
    EXPECT_FLOAT_EQ(level[(size_t)b], (float)m);
    EXPECT_EQ(spread[(size_t)b], 1.0f);
    for (int64_t i = 0; i < N; ++i) {
      EXPECT_FLOAT_EQ(xn[(size_t)((b * N + i) * C)], (float)((origins[b] - N + 1 + i) * C - m));
      EXPECT_EQ(xn[(size_t)((b * N + i) * C + 1)], (float)((origins[b] - N + 1 + i) * C + 1));
    }
    for (int64_t h = 0; h < H; ++h)
      EXPECT_FLOAT_EQ(yn[(size_t)(b * H + h)], (float)((origins[b] + 1 + h) * C - m));
  }
  EXPECT_THROW(gather_windows(z.data(), L, C, origins, 2, N, H, xn.data(), yn.data(), WindowNorm::Mean),
               ValueError);  // no level buffer
  // MeanStd also divides by the population std of the target inputs: rows t-2..t hold 2r,
  // std = 2 sqrt(2/3); a flat window gets kMinSpread.
  gather_windows(z.data(), L, C, origins, 2, N, H, xn.data(), yn.data(), WindowNorm::MeanStd,
                 level.data(), spread.data());
  const double sd = 2 * std::sqrt(2.0 / 3.0);
  for (int64_t b = 0; b < 2; ++b) {
    const double m = (double)(origins[b] - 1) * C;
    EXPECT_FLOAT_EQ(spread[(size_t)b], (float)sd);
    EXPECT_FLOAT_EQ(xn[(size_t)(b * N * C)], (float)((-2.0) / sd));
    for (int64_t h = 0; h < H; ++h)
      EXPECT_FLOAT_EQ(yn[(size_t)(b * H + h)], (float)(((origins[b] + 1 + h) * C - m) / sd));
  }
  std::vector<float> flat((size_t)(L * C), 3.0f);
  gather_windows(flat.data(), L, C, origins, 1, N, H, xn.data(), yn.data(), WindowNorm::MeanStd,
                 level.data(), spread.data());
  EXPECT_EQ(level[0], 3.0f);
  EXPECT_FLOAT_EQ(spread[0], (float)kMinSpread);
  EXPECT_EQ(yn[0], 0.0f);
}

TEST(ForecastData, NamesAndQuantiles) {
  EXPECT_EQ(split_names(" a, b ,c"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(split_names("").empty());
  EXPECT_THROW(split_names("a,,b"), ValueError);
  EXPECT_EQ(parse_quantiles("0.1,0.5,0.9"), (std::vector<double>{0.1, 0.5, 0.9}));
  EXPECT_THROW(parse_quantiles("0.5,0.1"), ValueError);
  EXPECT_THROW(parse_quantiles("0,0.5"), ValueError);
  EXPECT_THROW(parse_quantiles("0.5,x"), ValueError);
  ForecastSpec s = spec_of(8, 2, {0.1, 0.45, 0.9});
  EXPECT_EQ(s.point_index(), 1);
  s.season = 9;  // longer than the context
  EXPECT_THROW(s.validate(), ValueError);
}

// ---------------------------------------------------------------------------------- losses

TEST(ForecastLoss, PinballValueAndGradient) {
  const double q[] = {0.1, 0.5, 0.9};
  // One target y = 1, predictions 0 (u = 1), 3 (u = -2), 1.5 (u = -0.5):
  // rho = 0.1 * 1, (0.5 - 1) * -2 = 1, (0.9 - 1) * -0.5 = 0.05 -> mean 1.15 / 3
  const double p1[] = {0, 3, 1.5}, y1[] = {1};
  EXPECT_NEAR(pinball_loss<double>(1, 3, p1, y1, q, nullptr, 1.0), 1.15 / 3, 1e-15);
  Rng rng(5);
  const int64_t n = 7, Q = 3;
  std::vector<double> pred = test::randn<double>(n * Q, rng), y = test::randn<double>(n, rng);
  std::vector<double> g((size_t)(n * Q));
  pinball_loss<double>(n, Q, pred.data(), y.data(), q, g.data(), 2.0);
  test::expect_grad("pinball", [&] { return 2.0 * pinball_loss<double>(n, Q, pred.data(), y.data(), q, nullptr, 1.0); },
                    pred.data(), n * Q, g.data(), 1e-9, 1e-6);
  // At a tie the gradient is the mean of both one-sided slopes, (1/2 - q) / (nQ) -- what the
  // central difference gives.
  const double p2[] = {1, 1, 1};
  double g2[3];
  pinball_loss<double>(1, 3, p2, y1, q, g2, 1.0);
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(g2[k], (0.5 - q[k]) / 3, 1e-15);
  // float instance agrees with double
  std::vector<float> pf(pred.begin(), pred.end()), yf(y.begin(), y.end()), gf((size_t)(n * Q));
  pinball_loss<float>(n, Q, pf.data(), yf.data(), q, gf.data(), 2.0);
  test::expect_close("pinball f32", gf.data(), g.data(), n * Q, 1e-6, 1e-5);
}

TEST(ForecastLoss, PointLossGradients) {
  Rng rng(6);
  const int64_t n = 9;
  std::vector<double> pred = test::randn<double>(n, rng), y = test::randn<double>(n, rng), g((size_t)n);
  for (ForecastLoss k : {ForecastLoss::MSE, ForecastLoss::MAE}) {
    point_loss<double>(k, n, pred.data(), y.data(), g.data(), 1.0);
    test::expect_grad(forecast_loss_name(k),
                      [&] { return point_loss<double>(k, n, pred.data(), y.data(), nullptr, 1.0); },
                      pred.data(), n, g.data(), 1e-9, 1e-6);
  }
  const double p[] = {1, 2}, t[] = {0, 4};
  EXPECT_DOUBLE_EQ(point_loss<double>(ForecastLoss::MSE, 2, p, t, nullptr, 1), (1 + 4) / 2.0);
  EXPECT_DOUBLE_EQ(point_loss<double>(ForecastLoss::MAE, 2, p, t, nullptr, 1), (1 + 2) / 2.0);
}

// ------------------------------------------------------------------------------- the model

// Float64 forecaster: the gradients of L = sum(out * w) for the head and a sample of backbone
// parameters against central differences (the head's chain into the backbone's last step).
class ForecasterArch : public ::testing::TestWithParam<std::string> {};

TEST_P(ForecasterArch, GradientsMatchFiniteDifferences) {
  const json cfg = GetParam() == "lstm" ? tiny_lstm() : tiny_xlstm();
  const ForecastSpec sp = spec_of(5, 3, {0.2, 0.8}, 1);
  Forecaster m(cfg, sp, "test", 3, DType::F64);
  Rng rng(4);
  for (auto& p : m.params()) {  // the official init zeroes some tensors: make every path live
    double* v = p.value->data<double>();
    for (int64_t i = 0; i < p.value->numel(); ++i) v[i] += rng.normal(0, 0.2);
  }
  const int64_t B = 2;
  Tensor x({B, sp.context, sp.columns()}, DType::F64), w({B, sp.outputs()}, DType::F64);
  test::fill_normal(x.data<double>(), x.numel(), rng);
  test::fill_normal(w.data<double>(), w.numel(), rng);
  auto loss = [&] {
    Tensor o = m.forward(x, Mode::Eval, nullptr);
    return test::dot(o.data<double>(), w.data<double>(), o.numel());
  };
  loss();
  m.zero_grad();
  m.backward(w);
  int checked = 0;
  for (auto& p : m.params()) {
    const int64_t n = p.value->numel(), step = std::max<int64_t>(1, n / 6);
    for (int64_t i = 0; i < n; i += step) {
      auto num = test::numeric_grad(loss, p.value->data<double>() + i, 1);
      EXPECT_NEAR(p.grad->data<double>()[i], num[0], 1e-7 + 1e-5 * std::fabs(num[0]))
          << p.name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
}

INSTANTIATE_TEST_SUITE_P(Archs, ForecasterArch, ::testing::Values("lstm", "xlstm"));

// ------------------------------------------------------------------ end to end, checkpoints

std::string write_sine_csv(const std::string& dir, int64_t rows, double noise) {
  Rng rng(11);
  std::string s = "t,value\n";
  for (int64_t t = 0; t < rows; ++t)
    s += str(t, ",", std::sin(2 * M_PI * (double)t / 20.0) + noise * rng.normal(), "\n");
  const std::string p = dir + "/sine.csv";
  std::ofstream(p) << s;
  return p;
}

// A tiny LSTM learns a clean sine wave (period 20) to a small fraction of its amplitude, far
// better than the last-value baseline; the saved best model reproduces the reported metrics.
TEST(ForecastTrain, TinyModelLearnsSineAndCheckpointRoundTrips) {
  const std::string dir = temp_dir();
  ForecastTrainConfig c;
  c.data = write_sine_csv(dir, 600, 0.0);
  c.out = dir + "/run";
  c.spec = spec_of(24, 4);
  c.spec.time_col = "t";
  c.spec.target = "value";
  c.spec.season = 20;
  c.batch_size = 32;
  c.epochs = 12;
  c.lr = 1e-2;
  c.warmup = 10;
  ForecastTrainResult r = train_forecaster(c, {{"arch", "lstm"}, {"hidden_size", 16}}, nullptr);
  EXPECT_GT(r.steps, 0);
  EXPECT_EQ(r.test.origins.count(), 90 - 4 + 1);  // 90 test rows, H = 4
  // amplitude 1: an MAE of 0.05 is 5% of it; last-value is ~0.3 at these horizons
  EXPECT_LT(r.test.model.mae, 0.05) << format_evaluation(r.test, "lstm");
  EXPECT_LT(r.test.model.mae, 0.3 * r.test.last_value.mae);
  for (const char* f : {"/best/model.safetensors", "/checkpoint/optimizer.safetensors", "/metrics.csv",
                        "/loss.png", "/forecast_test.png", "/test_metrics.json"})
    EXPECT_TRUE(fs::exists(c.out + f)) << f;
  // Round trip: the loaded best model gives exactly the metrics the trainer reported.
  LoadedForecaster lf = load_forecaster(c.out);
  EXPECT_EQ(lf.dir, c.out + "/best");
  const SeriesData d = load_series_csv(c.data, "value", {}, "t");
  const SplitRows s = split_rows(d.rows(), 0.15, 0.15);
  // (same batches: a GEMM over another number of rows may round differently)
  ForecastEvaluation e = evaluate_part(*lf.model, d, s, Part::Test, c.batch_size);
  EXPECT_EQ(e.model.mae, r.test.model.mae);
  EXPECT_EQ(e.model.rmse, r.test.model.rmse);
  EXPECT_EQ(e.seasonal_naive.mae, r.test.seasonal_naive.mae);
  // Training again into the same directory is refused.
  EXPECT_THROW(train_forecaster(c, {{"arch", "lstm"}, {"hidden_size", 16}}, nullptr), IoError);
}

struct Interrupt {};

// A run stopped right after a checkpoint (mid-epoch, dropout on, the best model and the
// early-stopping counter in flight) and resumed ends exactly as the uninterrupted run: the
// same weights (best and last), optimizer state, metrics rows and test metrics.
TEST(ForecastTrain, InterruptedAndResumedEqualsUninterrupted) {
  const std::string dir = temp_dir();
  ForecastTrainConfig c;
  c.data = write_sine_csv(dir, 300, 0.3);
  c.spec = spec_of(12, 3);
  c.spec.time_col = "t";
  c.spec.target = "value";
  c.spec.season = 10;
  c.batch_size = 16;
  c.epochs = 4;
  c.eval_every = 5;  // 12 steps per epoch: checkpoints fall inside epochs
  c.patience = 50;
  c.lr = 1e-2;
  c.warmup = 3;
  const json bb = {{"arch", "lstm"}, {"hidden_size", 8}, {"num_layers", 2}, {"dropout", 0.2}};
  c.out = dir + "/full";
  const ForecastTrainResult full = train_forecaster(c, bb, nullptr);
  ASSERT_EQ(full.steps, 48);

  c.out = dir + "/resumed";
  auto stop_at_15 = [](const ForecastProgress& p) {
    if (p.eval && p.step == 15) throw Interrupt{};
  };
  EXPECT_THROW(train_forecaster(c, bb, stop_at_15), Interrupt);
  ForecastTrainConfig r;
  r.out = c.out;  // everything else comes from the checkpoint
  const ForecastTrainResult res = train_forecaster(r, json::object(), nullptr, true);
  EXPECT_EQ(res.steps, full.steps);
  EXPECT_EQ(res.best_val_loss, full.best_val_loss);
  EXPECT_EQ(res.test.model.mae, full.test.model.mae);
  EXPECT_EQ(res.model_name, full.model_name);
  EXPECT_EQ(res.data, c.data);
  for (const char* f : {"/best/model.safetensors", "/checkpoint/model.safetensors",
                        "/checkpoint/optimizer.safetensors"})
    test::expect_same_safetensors(dir + "/full" + f, c.out + f);
  EXPECT_EQ(test::csv_rows_without(dir + "/full/metrics.csv", "elapsed_s"),
            test::csv_rows_without(c.out + "/metrics.csv", "elapsed_s"));
  // A larger --steps extends the finished run; resumed again, it stays extended.
  r.steps = 60;
  EXPECT_EQ(train_forecaster(r, json::object(), nullptr, true).steps, 60);
  r.steps = 0;
  EXPECT_EQ(train_forecaster(r, json::object(), nullptr, true).steps, 60);

  // --stop-at (how `xlstm tune` pauses a trial): stops with a checkpoint at that step; resumed,
  // the training trajectory is the uninterrupted one (the extra validation draws no random
  // numbers), so the last weights and optimizer state are identical.
  c.out = dir + "/stopped";
  c.stop_at = 17;
  const ForecastTrainResult part = train_forecaster(c, bb, nullptr);
  EXPECT_EQ(part.steps, 17);
  EXPECT_EQ(part.stop_reason, "stop_at");
  ForecastTrainConfig again;
  again.out = c.out;
  EXPECT_EQ(train_forecaster(again, json::object(), nullptr, true).steps, 48);
  for (const char* f : {"/checkpoint/model.safetensors", "/checkpoint/optimizer.safetensors"})
    test::expect_same_safetensors(dir + "/full" + f, c.out + f);
  c.stop_at = 0;

  // Bad resumes: nothing to resume, another series.
  ForecastTrainConfig none;
  none.out = dir + "/nothing";
  EXPECT_THROW(train_forecaster(none, json::object(), nullptr, true), IoError);
  const std::string other = dir + "/other";
  fs::create_directories(other);
  r.data = write_sine_csv(other, 320, 0.3);
  EXPECT_THROW(
      {
        try {
          train_forecaster(r, json::object(), nullptr, true);
        } catch (const ValueError& e) {
          EXPECT_NE(std::string(e.what()).find("not the series"), std::string::npos) << e.what();
          throw;
        }
      },
      ValueError);
}

TEST(ForecastCheckpoint, SaveLoadGivesIdenticalForecasts) {
  const std::string dir = temp_dir();
  ForecastSpec sp = spec_of(6, 3, {0.1, 0.5, 0.9}, 1);
  sp.scaler.mean = {10, -2};
  sp.scaler.std = {3, 0.5};
  sp.time_col = "t";
  Forecaster m(tiny_xlstm(), sp, "test", 7);
  Rng rng(8);
  for (auto& p : m.params()) {
    float* v = p.value->data<float>();
    for (int64_t i = 0; i < p.value->numel(); ++i) v[i] += (float)rng.normal(0, 0.1);
  }
  const int64_t L = 20;
  std::vector<float> z = test::randn<float>(L * 2, rng);
  const std::vector<int64_t> origins = {5, 9, 19};
  const std::vector<double> a = predict_origins(m, z.data(), L, origins, 2);
  save_forecaster(dir + "/ck", m, json{{"note", "test"}}, {}, json::object());
  LoadedForecaster lf = load_forecaster(dir + "/ck");
  EXPECT_EQ(lf.model->spec().to_json(), sp.to_json());
  const std::vector<double> b = predict_origins(*lf.model, z.data(), L, origins, 2);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << i;
  // window normalisation undone, then unscaled into the target's units: mean 10, std 3 (a
  // batch of one rounds differently)
  ASSERT_EQ(sp.window_norm, WindowNorm::MeanStd);
  Tensor x({1, 6, 2}, DType::F32);
  float level = 0, spread = 0;
  gather_windows(z.data(), L, 2, &origins[0], 1, 6, 3, x.data<float>(), nullptr, WindowNorm::MeanStd,
                 &level, &spread);
  double mean = 0;
  for (int64_t i = 0; i < 6; ++i) mean += z[(size_t)((origins[0] - 5 + i) * 2)];
  EXPECT_NEAR(level, mean / 6, 1e-6);
  Tensor o = m.forward(x, Mode::Eval, nullptr);
  EXPECT_NEAR(a[4], ((double)level + (double)spread * o.data<float>()[4]) * 3 + 10, 1e-5);
  // A language-model config is refused with a clear message.
  json cfg = json_cfg::read_file(dir + "/ck/config.json");
  cfg["task"] = "lm";
  std::ofstream(dir + "/ck/config.json") << cfg.dump();
  try {
    load_forecaster(dir + "/ck");
    ADD_FAILURE() << "no error";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("not a forecaster"), std::string::npos) << e.what();
  }
}

// The forecast figure: a PNG of the default size; the band and marker extensions of the line
// plot reject bad input.
TEST(ForecastPlot, WritesPngAndRejectsBadBands) {
  const std::string dir = temp_dir();
  SeriesData d;
  d.path = "s.csv";
  d.columns = {"y"};
  d.time_col = "t";
  d.values.assign(1, {});
  for (int t = 0; t < 40; ++t) d.values[0].push_back(std::sin(t / 3.0)), d.time.push_back(str("d", t));
  ForecastSpec sp = spec_of(8, 4, {0.1, 0.5, 0.9});
  std::vector<double> f;
  for (int h = 0; h < 4; ++h)
    for (double q : {-0.2, 0.0, 0.2}) f.push_back(std::sin((36 + h) / 3.0) + q);
  save_forecast_plot(dir + "/f.png", d, 35, sp, f, 4, 20, "t");
  int w = 0, h = 0;
  png_size(dir + "/f.png", w, h);
  EXPECT_EQ(w, 900);
  EXPECT_EQ(h, 540);
  EXPECT_THROW(save_forecast_plot(dir + "/g.png", d, 35, sp, f, 3, 20, "t"), ValueError);
  EXPECT_FALSE(fs::exists(dir + "/g.png"));
  LinePlot p;
  p.series = {{"a", {0, 1}, {0, 1}, 0}};
  p.bands = {{"band", {0, 1}, {0}, {1, 2}, 0, 0.3}};
  EXPECT_THROW(render_line_plot_png(p), ValueError);  // lo has 1 value for 2 x
  p.bands[0].lo = {0, 0};
  p.bands[0].alpha = 0;
  EXPECT_THROW(render_line_plot_png(p), ValueError);
  p.bands[0].alpha = 0.3;
  p.vlines = {{0.5, "origin", 0}};
  const std::string with = render_line_plot_png(p);
  p.bands.clear();
  EXPECT_NE(with, render_line_plot_png(p));
}

}  // namespace
