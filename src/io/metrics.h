// Training metrics: one row per logged event, appended to <dir>/<stem>.csv and
// <dir>/<stem>.jsonl and flushed after every row (a crash loses at most the row being written).
//
// Columns are fixed by the first row (or, when appending to an existing CSV, by its header).
// A later row may leave columns out (e.g. val_loss only at evaluation steps): an empty CSV cell,
// and the key is absent from that JSONL line. A column the header does not have is a ValueError.
// Numbers are written with full precision (CSV: shortest round-trip form; NaN/Inf as nan/inf;
// JSONL: NaN/Inf as null).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace xlstm {

using MetricValue = std::variant<int64_t, double, std::string>;
using MetricRow = std::vector<std::pair<std::string, MetricValue>>;

enum class MetricsMode {
  Truncate,  // start new files
  Append,    // keep existing rows (resumed run); the CSV header, if present, fixes the columns
};

class MetricsLogger {
 public:
  // `dir` must exist. IoError naming the file if it cannot be opened, or (Append) if the
  // existing CSV has no header line.
  MetricsLogger(const std::string& dir, const std::string& stem = "metrics",
                MetricsMode mode = MetricsMode::Truncate);
  ~MetricsLogger();
  MetricsLogger(const MetricsLogger&) = delete;
  MetricsLogger& operator=(const MetricsLogger&) = delete;

  // ValueError for an empty row, duplicate keys, or keys outside the columns; IoError if a
  // write fails.
  void log(const MetricRow& row);

  const std::vector<std::string>& columns() const { return columns_; }
  const std::string& csv_path() const { return csv_path_; }
  const std::string& jsonl_path() const { return jsonl_path_; }

 private:
  std::string csv_path_, jsonl_path_;
  std::FILE* csv_ = nullptr;
  std::FILE* jsonl_ = nullptr;
  std::vector<std::string> columns_;
};

// A metrics CSV read back as numbers (for plots and tests): empty or non-numeric cells are NaN.
struct MetricsTable {
  std::vector<std::string> columns;
  std::vector<std::vector<double>> rows;
  int column(const std::string& name) const;  // index, or -1
  std::vector<double> values(const std::string& name) const;  // ValueError if absent
};
// IoError naming the file if it is missing or has no header.
MetricsTable read_metrics_csv(const std::string& path);

// For a resumed run: a run interrupted after its last checkpoint logged rows the resumed run
// will log again, so <dir>/<stem>.csv and .jsonl keep only the rows up to `step` (the first CSV
// column, the JSONL "step"); each file is rewritten atomically. Missing files are left alone.
void drop_metrics_after(const std::string& dir, int64_t step, const std::string& stem = "metrics");

}  // namespace xlstm
