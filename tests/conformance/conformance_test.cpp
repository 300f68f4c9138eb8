// Every case of ../shared/conformance, in the case dtype (strict tolerances) and in float32
// (the cases' *_fp32_impl tolerances). Skips with a message when the folder is absent.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "conformance/runner.h"
#include "harness/compare.h"

namespace fs = std::filesystem;
using namespace xlstm;

namespace {

std::vector<std::string> case_files() {
  std::vector<std::string> r;
  const std::string d = test::shared_dir();
  if (d.empty() || !fs::is_directory(d + "/conformance")) return r;
  for (auto& e : fs::directory_iterator(d + "/conformance"))
    if (e.path().extension() == ".safetensors") r.push_back(e.path().stem().string());
  std::sort(r.begin(), r.end());
  return r;
}

class Conformance : public ::testing::TestWithParam<std::string> {};

void run_case(const std::string& name, conformance::ImplPrecision prec) {
  const std::string file = test::shared_dir() + "/conformance/" + name + ".safetensors";
  int status = 0;
  const std::string line = conformance::run_one(file, prec, &status);
  if (status == -1) GTEST_SKIP() << line << " (kind not supported by this build yet)";
  EXPECT_EQ(status, 1) << line;
}

TEST_P(Conformance, CaseDtype) { run_case(GetParam(), conformance::ImplPrecision::Same); }
TEST_P(Conformance, Float32) { run_case(GetParam(), conformance::ImplPrecision::F32); }

INSTANTIATE_TEST_SUITE_P(Cases, Conformance, ::testing::ValuesIn(case_files()),
                         [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Conformance);

TEST(ConformanceFolder, Present) {
  if (case_files().empty())
    GTEST_SKIP() << "no conformance cases: ../shared/conformance is absent (set XLSTM_SHARED_DIR)";
  SUCCEED();
}

}  // namespace
