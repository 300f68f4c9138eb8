#include "data/table.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "xlstm/error.h"

namespace xlstm {

namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  XLSTM_CHECK(f.good(), IoError, path, ": cannot open for reading");
  std::stringstream ss;
  ss << f.rdbuf();
  XLSTM_CHECK(!f.bad(), IoError, path, ": read failed");
  return ss.str();
}

std::string brief(const std::string& s) {
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

bool blank(const std::string& s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r') return false;
  return true;
}

}  // namespace

int64_t Table::find_column(const std::string& name) const {
  for (size_t c = 0; c < header.size(); ++c)
    if (header[c] == name) return (int64_t)c;
  return -1;
}

int64_t Table::column(const std::string& name) const {
  const int64_t c = find_column(name);
  if (c >= 0) return c;
  std::string all;
  for (auto& h : header) all += (all.empty() ? "" : ", ") + h;
  throw ValueError(str(path, ": missing column '", name, "' (columns: ", all, ")"));
}

std::string Table::where(int64_t r, int64_t c) const {
  return str(path, ": line ", lines.at((size_t)r), ", column '", header.at((size_t)c), "'");
}

double Table::number(int64_t r, int64_t c) const {
  const std::string& s = rows.at((size_t)r).at((size_t)c);
  size_t a = 0, b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\t')) ++a;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r')) --b;
  XLSTM_CHECK(a < b, ValueError, where(r, c), ": missing value");
  const std::string t = s.substr(a, b - a);
  // strtod also takes hex floats, "inf" and "nan": accept plain decimals only.
  bool ok = true;
  for (char ch : t)
    ok &= (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '+' || ch == 'e' || ch == 'E';
  char* end = nullptr;
  errno = 0;
  const double v = ok ? std::strtod(t.c_str(), &end) : 0.0;
  ok = ok && end == t.c_str() + t.size() && errno != ERANGE && std::isfinite(v);
  XLSTM_CHECK(ok, ValueError, where(r, c), ": '", brief(t), "' is not a finite number");
  return v;
}

Table parse_csv(const std::string& text, const std::string& path) {
  Table t;
  t.path = path;
  size_t i = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
  std::vector<std::string> rec;
  std::string cell;
  int64_t line = 1, rec_line = 1;
  bool header_done = false;
  auto finish = [&](bool at_eof) {
    rec.push_back(cell);
    cell.clear();
    const bool empty_line = rec.size() == 1 && rec[0].empty();
    if (!empty_line) {
      if (!header_done) {
        for (size_t c = 0; c < rec.size(); ++c) {
          XLSTM_CHECK(!blank(rec[c]), ValueError, path, ": line ", rec_line, ": column ", c + 1,
                      " of the header has no name");
          for (size_t d = 0; d < c; ++d)
            XLSTM_CHECK(rec[d] != rec[c], ValueError, path, ": line ", rec_line, ": column '",
                        rec[c], "' appears twice in the header");
        }
        t.header = rec;
        header_done = true;
      } else {
        XLSTM_CHECK(rec.size() == t.header.size(), ValueError, path, ": line ", rec_line, " has ",
                    rec.size(), " fields, the header has ", t.header.size());
        t.rows.push_back(rec);
        t.lines.push_back(rec_line);
      }
    }
    rec.clear();
    (void)at_eof;
  };
  bool any = false;  // the current record has content (possibly an empty quoted field)
  while (i < text.size()) {
    const char ch = text[i];
    if (ch == '"' && cell.empty()) {
      // quoted field
      const int64_t qline = line;
      ++i;
      bool closed = false;
      while (i < text.size()) {
        const char q = text[i];
        if (q == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            cell += '"';
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        if (q == '\n') ++line;
        cell += q;
        ++i;
      }
      XLSTM_CHECK(closed, ValueError, path, ": line ", qline, ": unterminated quoted field");
      any = true;
      if (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r')
        throw ValueError(str(path, ": line ", line, ": unexpected character '", text[i],
                             "' after a closing quote; hint: double quotes inside a quoted field "
                             "are written \"\""));
      continue;
    }
    if (ch == ',') {
      rec.push_back(cell);
      cell.clear();
      any = true;
      ++i;
    } else if (ch == '\n' || ch == '\r') {
      if (ch == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      ++i;
      if (any || !cell.empty() || !rec.empty()) finish(false);
      else rec.clear();
      any = false;
      rec_line = ++line;
    } else {
      cell += ch;
      any = true;
      ++i;
    }
  }
  if (any || !cell.empty() || !rec.empty()) finish(true);
  XLSTM_CHECK(header_done, ValueError, path, ": empty file (no header line)");
  return t;
}

Table read_csv(const std::string& path) {
  const std::string text = read_all(path);
  XLSTM_CHECK(!text.empty(), IoError, path, ": empty file (no header line)");
  return parse_csv(text, path);
}

Table read_jsonl(const std::string& path, const std::vector<std::string>& columns,
                 const std::vector<bool>& required) {
  XLSTM_CHECK(columns.size() == required.size(), InternalError, "[read_jsonl] columns/required");
  const std::string text = read_all(path);
  Table t;
  t.path = path;
  t.header = columns;
  std::istringstream in(text);
  std::string ln;
  int64_t line = 0;
  while (std::getline(in, ln)) {
    ++line;
    if (line == 1 && ln.compare(0, 3, "\xEF\xBB\xBF") == 0) ln = ln.substr(3);
    if (blank(ln)) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(ln);
    } catch (const nlohmann::json::parse_error& e) {
      throw ValueError(str(path, ": line ", line, ": not valid JSON (", e.what(), ")"));
    }
    XLSTM_CHECK(j.is_object(), ValueError, path, ": line ", line,
                ": expected a JSON object like {\"text\": ..., \"label\": ...}");
    std::vector<std::string> row;
    for (size_t c = 0; c < columns.size(); ++c) {
      auto it = j.find(columns[c]);
      if (it == j.end()) {
        XLSTM_CHECK(!required[c], ValueError, path, ": line ", line, ": missing field '",
                    columns[c], "'");
        row.emplace_back();
        continue;
      }
      if (it->is_string()) row.push_back(it->get<std::string>());
      else if (it->is_number() || it->is_boolean()) row.push_back(it->dump());
      else
        throw ValueError(str(path, ": line ", line, ": field '", columns[c],
                             "' must be a string or a number, got ", brief(it->dump())));
    }
    t.rows.push_back(std::move(row));
    t.lines.push_back(line);
  }
  XLSTM_CHECK(!t.rows.empty(), IoError, path, ": empty file (no JSON lines)");
  return t;
}

Table read_table(const std::string& path, const std::vector<std::string>& columns,
                 const std::vector<bool>& required) {
  auto ends = [&](const char* e) {
    const std::string s(e);
    return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0;
  };
  if (ends(".jsonl") || ends(".ndjson")) return read_jsonl(path, columns, required);
  Table all = read_csv(path);
  Table t;
  t.path = path;
  t.header = columns;
  t.lines = all.lines;
  std::vector<int64_t> idx;
  for (size_t c = 0; c < columns.size(); ++c)
    idx.push_back(required[c] ? all.column(columns[c]) : all.find_column(columns[c]));
  for (auto& r : all.rows) {
    std::vector<std::string> row;
    for (int64_t k : idx) row.push_back(k >= 0 ? r[(size_t)k] : std::string());
    t.rows.push_back(std::move(row));
  }
  return t;
}

}  // namespace xlstm
