#include "io/metrics.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "xlstm/error.h"

namespace xlstm {

namespace {

std::string csv_quote(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string r = "\"";
  for (char c : s) {
    if (c == '"') r += '"';
    r += c;
  }
  return r + "\"";
}

std::string number_str(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip
  return std::string(buf, res.ptr);
}

std::string cell(const MetricValue& v) {
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v)) return number_str(*d);
  return csv_quote(std::get<std::string>(v));
}

// Parses CSV text (RFC 4180 quoting, quoted newlines allowed) into records.
std::vector<std::vector<std::string>> parse_csv(const std::string& s) {
  std::vector<std::vector<std::string>> recs;
  std::vector<std::string> rec;
  std::string f;
  bool quoted = false, any = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '"' && i + 1 < s.size() && s[i + 1] == '"') f += '"', ++i;
      else if (c == '"') quoted = false;
      else f += c;
    } else if (c == '"') {
      quoted = true, any = true;
    } else if (c == ',') {
      rec.push_back(f), f.clear(), any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      if (any || !f.empty()) rec.push_back(f), recs.push_back(rec);
      rec.clear(), f.clear(), any = false;
    } else {
      f += c, any = true;
    }
  }
  if (any || !f.empty()) rec.push_back(f), recs.push_back(rec);
  return recs;
}

std::string read_all(const std::string& path, bool& exists) {
  std::ifstream in(path, std::ios::binary);
  exists = in.good();
  if (!exists) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::FILE* open_or_throw(const std::string& path, const char* mode) {
  std::FILE* f = std::fopen(path.c_str(), mode);
  XLSTM_CHECK(f, IoError, path, ": cannot open for writing (", std::strerror(errno), ")");
  return f;
}

void write_or_throw(std::FILE* f, const std::string& s, const std::string& path) {
  const bool ok = std::fwrite(s.data(), 1, s.size(), f) == s.size() && std::fflush(f) == 0;
  XLSTM_CHECK(ok, IoError, path, ": write failed (", std::strerror(errno), ")");
}

}  // namespace

MetricsLogger::MetricsLogger(const std::string& dir, const std::string& stem, MetricsMode mode)
    : csv_path_(dir + "/" + stem + ".csv"), jsonl_path_(dir + "/" + stem + ".jsonl") {
  if (mode == MetricsMode::Append) {
    bool exists = false;
    const std::string text = read_all(csv_path_, exists);
    if (exists && !text.empty()) {
      auto recs = parse_csv(text);
      XLSTM_CHECK(!recs.empty() && !recs[0].empty(), IoError, csv_path_,
                  ": cannot append, the file has no header line");
      columns_ = recs[0];
      // A crash may have left a partial last line; end it so the next row starts cleanly.
      if (text.back() != '\n') {
        csv_ = open_or_throw(csv_path_, "ab");
        write_or_throw(csv_, "\n", csv_path_);
      }
    }
  }
  const char* m = mode == MetricsMode::Append ? "ab" : "wb";
  if (!csv_) csv_ = open_or_throw(csv_path_, m);
  try {
    jsonl_ = open_or_throw(jsonl_path_, m);
  } catch (...) {
    std::fclose(csv_);
    throw;
  }
}

MetricsLogger::~MetricsLogger() {
  if (csv_) std::fclose(csv_);
  if (jsonl_) std::fclose(jsonl_);
}

void MetricsLogger::log(const MetricRow& row) {
  XLSTM_CHECK(!row.empty(), ValueError, "[metrics] ", csv_path_, ": empty row");
  std::set<std::string> keys;
  for (auto& kv : row)
    XLSTM_CHECK(keys.insert(kv.first).second, ValueError, "[metrics] ", csv_path_,
                ": duplicate column '", kv.first, "'");
  if (columns_.empty()) {
    for (auto& kv : row) columns_.push_back(kv.first);
    std::string header;
    for (size_t i = 0; i < columns_.size(); ++i) header += (i ? "," : "") + csv_quote(columns_[i]);
    write_or_throw(csv_, header + "\n", csv_path_);
  }
  std::vector<const MetricValue*> cells(columns_.size(), nullptr);
  for (auto& kv : row) {
    size_t c = 0;
    while (c < columns_.size() && columns_[c] != kv.first) ++c;
    XLSTM_CHECK(c < columns_.size(), ValueError, "[metrics] ", csv_path_, ": column '", kv.first,
                "' is not in the header (columns are fixed by the first row)");
    cells[c] = &kv.second;
  }
  std::string line;
  nlohmann::json j = nlohmann::json::object();
  for (size_t c = 0; c < columns_.size(); ++c) {
    if (c) line += ',';
    if (!cells[c]) continue;
    line += cell(*cells[c]);
    const MetricValue& v = *cells[c];
    if (auto* i = std::get_if<int64_t>(&v)) j[columns_[c]] = *i;
    else if (auto* d = std::get_if<double>(&v)) j[columns_[c]] = std::isfinite(*d) ? nlohmann::json(*d) : nlohmann::json();
    else j[columns_[c]] = std::get<std::string>(v);
  }
  write_or_throw(csv_, line + "\n", csv_path_);
  write_or_throw(jsonl_, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                 jsonl_path_);
}

int MetricsTable::column(const std::string& name) const {
  for (size_t i = 0; i < columns.size(); ++i)
    if (columns[i] == name) return (int)i;
  return -1;
}

std::vector<double> MetricsTable::values(const std::string& name) const {
  const int c = column(name);
  XLSTM_CHECK(c >= 0, ValueError, "[metrics] no column '", name, "'");
  std::vector<double> r;
  for (auto& row : rows) r.push_back(row[(size_t)c]);
  return r;
}

MetricsTable read_metrics_csv(const std::string& path) {
  bool exists = false;
  const std::string text = read_all(path, exists);
  XLSTM_CHECK(exists, IoError, path, ": cannot open for reading");
  auto recs = parse_csv(text);
  XLSTM_CHECK(!recs.empty(), IoError, path, ": no header line");
  MetricsTable t;
  t.columns = recs[0];
  for (size_t r = 1; r < recs.size(); ++r) {
    std::vector<double> row(t.columns.size(), std::nan(""));
    for (size_t c = 0; c < t.columns.size() && c < recs[r].size(); ++c) {
      const std::string& s = recs[r][c];
      if (s.empty()) continue;
      char* end = nullptr;
      const double v = std::strtod(s.c_str(), &end);
      if (end && *end == '\0') row[c] = v;
    }
    t.rows.push_back(std::move(row));
  }
  return t;
}

void drop_metrics_after(const std::string& dir, int64_t step, const std::string& stem) {
  for (const char* ext : {".csv", ".jsonl"}) {
    const std::string path = dir + "/" + stem + ext;
    std::ifstream in(path);
    if (!in) continue;
    std::string line, kept;
    bool first = true;
    while (std::getline(in, line)) {
      int64_t s = -1;
      if (ext[1] == 'c') {
        if (first) { kept += line + "\n"; first = false; continue; }
        s = std::atoll(line.c_str());
      } else {
        const auto p = line.find("\"step\":");
        if (p != std::string::npos) s = std::atoll(line.c_str() + p + 7);
      }
      if (s >= 0 && s <= step) kept += line + "\n";
    }
    write_file_atomic(path, kept);
  }
}


}  // namespace xlstm
