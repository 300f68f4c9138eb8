// load_series_csv: data/table.h's RFC 4180 reader, then the numeric columns.
#include "data/table.h"
#include "tasks/forecast.h"

namespace xlstm {

SeriesData load_series_csv(const std::string& path, const std::string& target,
                           const std::vector<std::string>& features, const std::string& time_col) {
  const Table t = read_csv(path);
  return series_from_table(path, t.header, t.rows, t.lines, target, features, time_col);
}

}  // namespace xlstm
