// Comparing two training run directories (an interrupted-and-resumed run against an
// uninterrupted one): safetensors files tensor by tensor, and metrics CSV rows.
#pragma once
#include <string>
#include <vector>

namespace xlstm::test {

// Every tensor of safetensors file `a` is in `b` with identical bytes, and the names agree
// (GoogleTest failures name the file and the tensor).
void expect_same_safetensors(const std::string& a, const std::string& b);

// The rows of a metrics CSV (header included) with the column `drop` removed (e.g. elapsed_s,
// which wall-clock time makes differ between runs); each row's cells joined by ','.
std::vector<std::string> csv_rows_without(const std::string& path, const std::string& drop);

}  // namespace xlstm::test
