// Forecasting data: CSV columns -> numbers, scaling, the chronological split and windows.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

#include "io/json_config.h"
#include "tasks/forecast.h"

namespace xlstm {

using json = nlohmann::json;

namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\r')) ++a;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r')) --b;
  return s.substr(a, b - a);
}

std::string quote(const std::string& s) {
  return "'" + (s.size() > 40 ? s.substr(0, 37) + "..." : s) + "'";
}

}  // namespace

bool parse_number_cell(const std::string& cell, double& out) {
  const std::string s = trim(cell);
  if (s.empty()) return false;
  // strtod also takes "nan", "inf", hex floats and leading blanks: allow only a decimal number.
  for (char ch : s)
    if (!((ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '+' || ch == 'e' ||
          ch == 'E'))
      return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v)) return false;
  out = v;
  return true;
}

SeriesData series_from_table(const std::string& path, const std::vector<std::string>& header,
                             const std::vector<std::vector<std::string>>& rows,
                             const std::vector<int64_t>& lines, const std::string& target,
                             const std::vector<std::string>& features,
                             const std::string& time_col) {
  XLSTM_CHECK(!target.empty(), ValueError, "--target COL is required (the column to forecast)");
  XLSTM_CHECK(lines.empty() || lines.size() == rows.size(), InternalError,
              "[series_from_table] lines/rows size mismatch");
  std::map<std::string, size_t> index;
  for (size_t c = 0; c < header.size(); ++c) index.emplace(trim(header[c]), c);
  std::string available;
  for (auto& h : header) available += (available.empty() ? "" : ", ") + trim(h);
  auto find = [&](const std::string& name, const char* what) {
    auto it = index.find(name);
    XLSTM_CHECK(it != index.end(), ValueError, path, ": no column ", quote(name), " (", what,
                "); the header has: ", available);
    return it->second;
  };
  std::vector<std::string> names = {target};
  for (auto& f : features) names.push_back(f);
  std::vector<size_t> cols;
  for (size_t i = 0; i < names.size(); ++i) {
    for (size_t j = 0; j < i; ++j)
      XLSTM_CHECK(names[j] != names[i], ValueError, path, ": column ", quote(names[i]),
                  " is named twice in --target/--features");
    XLSTM_CHECK(names[i] != time_col || time_col.empty(), ValueError, path, ": column ",
                quote(names[i]), " is the --time-col and cannot be forecast or used as a feature");
    cols.push_back(find(names[i], i == 0 ? "--target" : "--features"));
  }
  const size_t tcol = time_col.empty() ? 0 : find(time_col, "--time-col");
  XLSTM_CHECK(!rows.empty(), ValueError, path, ": no data rows (only a header)");
  SeriesData d;
  d.path = path;
  d.columns = names;
  d.time_col = time_col;
  d.values.assign(names.size(), std::vector<double>(rows.size()));
  if (!time_col.empty()) d.time.resize(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    const int64_t line = lines.empty() ? (int64_t)r + 2 : lines[r];
    const auto& row = rows[r];
    for (size_t i = 0; i < cols.size(); ++i) {
      XLSTM_CHECK(cols[i] < row.size(), ValueError, path, ": line ", line, ": column ",
                  quote(names[i]), " is missing (the row has ", row.size(), " of ",
                  header.size(), " cells)");
      const std::string& cell = row[cols[i]];
      XLSTM_CHECK(!trim(cell).empty(), ValueError, path, ": line ", line, ", column ",
                  quote(names[i]), ": missing value (empty cell); hint: fill or drop the row");
      XLSTM_CHECK(parse_number_cell(cell, d.values[i][r]), ValueError, path, ": line ", line,
                  ", column ", quote(names[i]), ": ", quote(cell),
                  " is not a finite number");
    }
    if (!time_col.empty()) {
      XLSTM_CHECK(tcol < row.size(), ValueError, path, ": line ", line, ": column ",
                  quote(time_col), " is missing");
      d.time[r] = trim(row[tcol]);
    }
  }
  return d;
}

std::vector<std::string> split_names(const std::string& s) {
  std::vector<std::string> r;
  if (trim(s).empty()) return r;
  size_t a = 0;
  while (true) {
    const size_t b = s.find(',', a);
    const std::string item = trim(s.substr(a, b == std::string::npos ? std::string::npos : b - a));
    XLSTM_CHECK(!item.empty(), ValueError, "empty name in the list '", s, "'");
    r.push_back(item);
    if (b == std::string::npos) break;
    a = b + 1;
  }
  return r;
}

std::vector<double> parse_quantiles(const std::string& s) {
  std::vector<double> q;
  for (const std::string& item : split_names(s)) {
    double v = 0;
    XLSTM_CHECK(parse_number_cell(item, v) && v > 0 && v < 1, ValueError, "--quantiles: '", item,
                "' is not a number in (0, 1)");
    XLSTM_CHECK(q.empty() || v > q.back(), ValueError, "--quantiles '", s,
                "' must be strictly ascending");
    q.push_back(v);
  }
  return q;
}

// ------------------------------------------------------------------------------- scaling

Scaler Scaler::fit(const SeriesData& d, int64_t rows) {
  XLSTM_CHECK(rows >= 1 && rows <= d.rows(), ValueError, "[Scaler::fit] rows ", rows,
              " outside [1, ", d.rows(), "]");
  Scaler s;
  for (auto& col : d.values) {
    double mean = 0;
    for (int64_t t = 0; t < rows; ++t) mean += col[t];
    mean /= (double)rows;
    double var = 0;
    for (int64_t t = 0; t < rows; ++t) var += (col[t] - mean) * (col[t] - mean);
    double sd = std::sqrt(var / (double)rows);
    if (!(sd > 1e-12 * std::max(1.0, std::fabs(mean)))) sd = 1.0;  // constant column
    s.mean.push_back(mean);
    s.std.push_back(sd);
  }
  return s;
}

json Scaler::to_json() const { return {{"mean", mean}, {"std", std}}; }

Scaler Scaler::from_json(const json& j, size_t columns, const std::string& where) {
  Scaler s;
  for (const char* key : {"mean", "std"}) {
    const json& a = json_cfg::get_array(j, key, where);
    XLSTM_CHECK(a.size() == columns, ValueError, where, ": field '", key, "' has ", a.size(),
                " values for ", columns, " columns");
    auto& dst = key[0] == 'm' ? s.mean : s.std;
    for (size_t i = 0; i < a.size(); ++i) {
      XLSTM_CHECK(a[i].is_number() && std::isfinite(a[i].get<double>()), ValueError, where,
                  ": field '", key, "[", i, "]' must be a finite number");
      dst.push_back(a[i].get<double>());
      if (key[0] == 's')
        XLSTM_CHECK(dst.back() > 0, ValueError, where, ": field 'std[", i, "]' must be > 0");
    }
  }
  return s;
}

// ------------------------------------------------------------------------- split, windows

SplitRows split_rows(int64_t n, double val_fraction, double test_fraction) {
  XLSTM_CHECK(val_fraction >= 0 && val_fraction < 1 && test_fraction >= 0 && test_fraction < 1 &&
                  val_fraction + test_fraction < 1,
              ValueError, "--val-fraction ", val_fraction, " and --test-fraction ", test_fraction,
              " must be in [0, 1) with a sum below 1");
  SplitRows s;
  s.n = n;
  const int64_t n_test = (int64_t)std::floor((double)n * test_fraction);
  const int64_t n_val = (int64_t)std::floor((double)n * val_fraction);
  s.val_end = n - n_test;
  s.train_end = s.val_end - n_val;
  return s;
}

const char* part_name(Part p) {
  return p == Part::Train ? "train" : p == Part::Val ? "validation" : "test";
}

Origins window_origins(const SplitRows& s, Part p, int64_t N, int64_t H) {
  const int64_t begin = p == Part::Train ? 0 : p == Part::Val ? s.train_end : s.val_end;
  const int64_t end = p == Part::Train ? s.train_end : p == Part::Val ? s.val_end : s.n;
  Origins o;
  o.first = std::max(N - 1, begin - 1);  // t + 1 >= begin, t - N + 1 >= 0
  o.last = end - 1 - H;                   // t + H <= end - 1
  if (o.last < o.first) o.last = o.first - 1;
  return o;
}

std::vector<float> scale_series(const SeriesData& d, const Scaler& sc) {
  const int64_t L = d.rows(), C = (int64_t)d.values.size();
  XLSTM_CHECK((int64_t)sc.mean.size() == C && (int64_t)sc.std.size() == C, ValueError,
              "[scale_series] scaler has ", sc.mean.size(), " columns, data has ", C);
  std::vector<float> z((size_t)(L * C));
  for (int64_t t = 0; t < L; ++t)
    for (int64_t c = 0; c < C; ++c) z[t * C + c] = (float)sc.scale(c, d.values[c][t]);
  return z;
}

WindowNorm parse_window_norm(const std::string& s) {
  if (s == "none") return WindowNorm::None;
  if (s == "mean") return WindowNorm::Mean;
  if (s == "meanstd") return WindowNorm::MeanStd;
  throw ValueError(str("--window-norm must be meanstd, mean or none, got '", s, "'"));
}

const char* window_norm_name(WindowNorm w) {
  return w == WindowNorm::MeanStd ? "meanstd" : w == WindowNorm::Mean ? "mean" : "none";
}

void gather_windows(const float* z, int64_t rows, int64_t C, const int64_t* origins, int64_t B,
                    int64_t N, int64_t H, float* x, float* y, WindowNorm norm, float* level,
                    float* spread) {
  XLSTM_CHECK(norm == WindowNorm::None || (level && spread), ValueError,
              "[gather_windows] window normalisation needs the level and spread buffers");
  for (int64_t b = 0; b < B; ++b) {
    const int64_t t = origins[b];
    XLSTM_CHECK(t - N + 1 >= 0 && t < rows && (!y || t + H < rows), ValueError,
                "[gather_windows] origin ", t, " with context ", N, " and horizon ", H,
                " outside the ", rows, " rows");
    float* xb = x + b * N * C;
    std::memcpy(xb, z + (t - N + 1) * C, sizeof(float) * (size_t)(N * C));
    if (y)
      for (int64_t h = 0; h < H; ++h) y[b * H + h] = z[(t + 1 + h) * C];
    if (norm != WindowNorm::None) {
      double m = 0, v = 0;
      for (int64_t i = 0; i < N; ++i) m += xb[i * C];
      m /= (double)N;
      for (int64_t i = 0; i < N; ++i) v += ((double)xb[i * C] - m) * ((double)xb[i * C] - m);
      const double sd = norm == WindowNorm::MeanStd ? std::max(std::sqrt(v / (double)N), kMinSpread) : 1.0;
      for (int64_t i = 0; i < N; ++i) xb[i * C] = (float)(((double)xb[i * C] - m) / sd);
      if (y)
        for (int64_t h = 0; h < H; ++h) y[b * H + h] = (float)(((double)y[b * H + h] - m) / sd);
      level[b] = (float)m;
      spread[b] = (float)sd;
    } else {
      if (level) level[b] = 0;
      if (spread) spread[b] = 1;
    }
  }
}

// ---------------------------------------------------------------------- metrics, baselines

double seasonal_naive_scale(const double* y, int64_t n, int64_t P, const std::string& where) {
  XLSTM_CHECK(P >= 1, ValueError, "--season must be >= 1, got ", P);
  XLSTM_CHECK(n > P, ValueError, where, ": ", n, " train rows, need more than --season ", P,
              " for the MASE scale");
  double s = 0;
  for (int64_t t = P; t < n; ++t) s += std::fabs(y[t] - y[t - P]);
  s /= (double)(n - P);
  XLSTM_CHECK(s > 0, ValueError, where, ": the train rows are constant at lag ", P,
              " (seasonal-naive MAE 0), so MASE is undefined");
  return s;
}

ForecastMetrics forecast_metrics(const double* pred, const double* actual, int64_t n,
                                 double mase_scale) {
  ForecastMetrics m;
  m.count = n;
  if (n == 0) return m;
  double ae = 0, se = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = pred[i] - actual[i];
    ae += std::fabs(e);
    se += e * e;
  }
  m.mae = ae / (double)n;
  m.rmse = std::sqrt(se / (double)n);
  m.mase = m.mae / mase_scale;
  return m;
}

void seasonal_naive_forecast(const double* y, int64_t t, int64_t H, int64_t P, double* out) {
  XLSTM_CHECK(P >= 1 && t + 1 >= P, ValueError, "[seasonal_naive] origin ", t,
              " has fewer than ", P, " rows of history");
  for (int64_t h = 1; h <= H; ++h) out[h - 1] = y[t + h - P * ((h + P - 1) / P)];
}

void last_value_forecast(const double* y, int64_t t, int64_t H, double* out) {
  for (int64_t h = 0; h < H; ++h) out[h] = y[t];
}

// ---------------------------------------------------------------------------------- losses

ForecastLoss parse_forecast_loss(const std::string& s) {
  if (s == "mse") return ForecastLoss::MSE;
  if (s == "mae") return ForecastLoss::MAE;
  if (s == "pinball") return ForecastLoss::Pinball;
  throw ValueError(str("--loss must be mse, mae or pinball, got '", s, "'"));
}

const char* forecast_loss_name(ForecastLoss l) {
  return l == ForecastLoss::MSE ? "mse" : l == ForecastLoss::MAE ? "mae" : "pinball";
}

template <class T>
double point_loss(ForecastLoss kind, int64_t n, const T* pred, const T* target, T* dpred,
                  double scale) {
  XLSTM_CHECK(kind != ForecastLoss::Pinball, ValueError, "[point_loss] pinball needs quantiles");
  XLSTM_CHECK(n >= 1, ValueError, "[point_loss] n must be >= 1");
  double s = 0;
  const double inv = 1.0 / (double)n;
  for (int64_t i = 0; i < n; ++i) {
    const double e = (double)pred[i] - (double)target[i];
    if (kind == ForecastLoss::MSE) {
      s += e * e;
      if (dpred) dpred[i] = (T)(scale * 2.0 * e * inv);
    } else {
      s += std::fabs(e);
      if (dpred) dpred[i] = (T)(scale * (e > 0 ? inv : e < 0 ? -inv : 0.0));
    }
  }
  return s * inv;
}

template <class T>
double pinball_loss(int64_t n, int64_t Q, const T* pred, const T* target, const double* q,
                    T* dpred, double scale) {
  XLSTM_CHECK(n >= 1 && Q >= 1, ValueError, "[pinball_loss] n and Q must be >= 1");
  double s = 0;
  const double inv = 1.0 / (double)(n * Q);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < Q; ++k) {
      const double u = (double)target[i] - (double)pred[i * Q + k];  // y - p
      s += u >= 0 ? q[k] * u : (q[k] - 1.0) * u;
      if (dpred) {
        const double g = u > 0 ? -q[k] : u < 0 ? 1.0 - q[k] : 0.5 - q[k];
        dpred[i * Q + k] = (T)(scale * g * inv);
      }
    }
  return s * inv;
}

template double point_loss<float>(ForecastLoss, int64_t, const float*, const float*, float*, double);
template double point_loss<double>(ForecastLoss, int64_t, const double*, const double*, double*, double);
template double pinball_loss<float>(int64_t, int64_t, const float*, const float*, const double*,
                                    float*, double);
template double pinball_loss<double>(int64_t, int64_t, const double*, const double*,
                                     const double*, double*, double);

}  // namespace xlstm
