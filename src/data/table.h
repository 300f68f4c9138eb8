// Tabular input files: RFC 4180 CSV (header row, quoted fields with "" escapes, commas and line
// breaks inside quotes, CRLF or LF) and JSON Lines (one JSON object per line), read into rows of
// strings. Errors name the file, the line and the column.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace xlstm {

struct Table {
  std::string path;                            // for messages
  std::vector<std::string> header;             // column names
  std::vector<std::vector<std::string>> rows;  // rows[r][c]; every row has header.size() cells
  std::vector<int64_t> lines;                  // lines[r]: 1-based line where data row r starts

  int64_t num_rows() const { return (int64_t)rows.size(); }
  // Index of column `name`; ValueError "<path>: missing column 'name' (columns: a, b, c)".
  int64_t column(const std::string& name) const;
  // -1 when absent.
  int64_t find_column(const std::string& name) const;
  // "<path>: line N, column 'name'" for messages about cell (r, c).
  std::string where(int64_t r, int64_t c) const;
  // The finite number in cell (r, c) (blanks around it allowed). ValueError naming the file,
  // line and column for an empty cell ("missing value") or anything that is not a finite
  // decimal number ("'abc' is not a number").
  double number(int64_t r, int64_t c) const;
};

// Parses CSV text. The first record is the header (a UTF-8 byte-order mark is dropped); blank
// lines are skipped. ValueError naming `path` and the line for: no header (empty input), an
// empty or repeated column name, a record with a different number of fields than the header,
// an unterminated quoted field, characters after a closing quote.
Table parse_csv(const std::string& text, const std::string& path);
// Reads and parses a CSV file. IoError for a missing, unreadable or empty file.
Table read_csv(const std::string& path);

// Reads JSON Lines: every non-blank line is a JSON object; the table has the `columns` asked
// for, in that order. Strings are taken as they are, numbers and booleans as their JSON text.
// ValueError naming the file and line for invalid JSON, a non-object line, a missing field
// (when `required`), or a null / array / object value; IoError for a missing, unreadable or
// empty (no non-blank line) file. A missing optional field is "".
Table read_jsonl(const std::string& path, const std::vector<std::string>& columns,
                 const std::vector<bool>& required);

// read_jsonl for *.jsonl / *.ndjson, read_csv otherwise; either way the result holds just
// `columns`, in that order (a required CSV column that is missing is a ValueError listing the
// file's columns; a missing optional one reads as "").
Table read_table(const std::string& path, const std::vector<std::string>& columns,
                 const std::vector<bool>& required);

}  // namespace xlstm
