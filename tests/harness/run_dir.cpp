#include "harness/run_dir.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "io/safetensors.h"

namespace xlstm::test {

void expect_same_safetensors(const std::string& a, const std::string& b) {
  SafeTensorsFile fa(a), fb(b);
  ASSERT_EQ(fa.names(), fb.names()) << a << " vs " << b;
  for (auto& n : fa.names()) {
    const Tensor ta = fa.get(n), tb = fb.get(n);
    ASSERT_EQ(ta.nbytes(), tb.nbytes()) << b << ": " << n;
    EXPECT_EQ(std::memcmp(ta.raw(), tb.raw(), ta.nbytes()), 0) << b << ": " << n;
  }
}

std::vector<std::string> csv_rows_without(const std::string& path, const std::string& drop) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::vector<std::string> rows;
  std::string line;
  int64_t col = -1;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    if (col < 0) col = std::find(cells.begin(), cells.end(), drop) - cells.begin();
    std::string kept;
    for (size_t i = 0; i < cells.size(); ++i)
      if ((int64_t)i != col) kept += cells[i] + ",";
    rows.push_back(kept);
  }
  return rows;
}

}  // namespace xlstm::test
