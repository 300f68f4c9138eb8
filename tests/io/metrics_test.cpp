// Metrics logger (io/metrics.h): CSV + JSONL rows, fixed columns, missing cells, append mode.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/metrics.h"
#include "xlstm/error.h"

using namespace xlstm;
namespace fs = std::filesystem;

namespace {
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("xlstm_metrics_test_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};
std::vector<std::string> lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> r;
  for (std::string l; std::getline(f, l);) r.push_back(l);
  return r;
}
}  // namespace

TEST(Metrics, WritesCsvAndJsonlRows) {
  TempDir d;
  {
    MetricsLogger m(d.path.string());
    m.log({{"step", int64_t(1)}, {"loss", 2.5}, {"lr", 1e-4}, {"note", std::string("a,\"b\"")}});
    // Rows are flushed: readable before the logger closes.
    EXPECT_EQ(lines(m.csv_path()).size(), 2u);
    m.log({{"loss", 0.1 + 0.2}, {"step", int64_t(2)}});  // other order, columns left out
    m.log({{"step", int64_t(3)}, {"loss", NAN}});
    EXPECT_THROW(m.log({{"step", int64_t(4)}, {"val_loss", 1.0}}), ValueError);
    EXPECT_THROW(m.log({{"step", int64_t(4)}, {"step", int64_t(5)}}), ValueError);
    EXPECT_THROW(m.log({}), ValueError);
  }
  auto csv = lines((d.path / "metrics.csv").string());
  ASSERT_EQ(csv.size(), 4u);
  EXPECT_EQ(csv[0], "step,loss,lr,note");
  EXPECT_EQ(csv[1], "1,2.5,1e-04,\"a,\"\"b\"\"\"");
  EXPECT_EQ(csv[2], "2,0.30000000000000004,,");  // shortest round-trip double
  EXPECT_EQ(csv[3], "3,nan,,");
  auto js = lines((d.path / "metrics.jsonl").string());
  ASSERT_EQ(js.size(), 3u);
  auto j0 = nlohmann::json::parse(js[0]);
  EXPECT_EQ(j0["step"], 1);
  EXPECT_EQ(j0["loss"], 2.5);
  EXPECT_EQ(j0["note"], "a,\"b\"");
  auto j1 = nlohmann::json::parse(js[1]);
  EXPECT_FALSE(j1.contains("lr"));
  EXPECT_EQ(j1["loss"].get<double>(), 0.1 + 0.2);
  EXPECT_TRUE(nlohmann::json::parse(js[2])["loss"].is_null());

  MetricsTable t = read_metrics_csv((d.path / "metrics.csv").string());
  EXPECT_EQ(t.columns, (std::vector<std::string>{"step", "loss", "lr", "note"}));
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.values("loss")[1], 0.1 + 0.2);
  EXPECT_TRUE(std::isnan(t.values("lr")[1]));
  EXPECT_TRUE(std::isnan(t.values("note")[0]));
  EXPECT_THROW(t.values("nope"), ValueError);
}

TEST(Metrics, AppendKeepsRowsAndHeader) {
  TempDir d;
  { MetricsLogger m(d.path.string(), "train"); m.log({{"step", int64_t(1)}, {"loss", 3.0}, {"val_loss", 3.5}}); }
  {
    MetricsLogger m(d.path.string(), "train", MetricsMode::Append);
    EXPECT_EQ(m.columns(), (std::vector<std::string>{"step", "loss", "val_loss"}));
    m.log({{"step", int64_t(2)}, {"loss", 2.0}});
    EXPECT_THROW(m.log({{"epoch", int64_t(1)}}), ValueError);
  }
  auto csv = lines((d.path / "train.csv").string());
  EXPECT_EQ(csv, (std::vector<std::string>{"step,loss,val_loss", "1,3,3.5", "2,2,"}));
  EXPECT_EQ(lines((d.path / "train.jsonl").string()).size(), 2u);
  { MetricsLogger m(d.path.string(), "train"); m.log({{"a", int64_t(1)}}); }  // truncate
  EXPECT_EQ(lines((d.path / "train.csv").string()).size(), 2u);
}

TEST(Metrics, AppendAfterPartialLine) {
  TempDir d;
  std::ofstream(d.path / "m.csv") << "step,loss\n1,2.0\n2,1.";  // crash mid-row
  { MetricsLogger m(d.path.string(), "m", MetricsMode::Append); m.log({{"step", int64_t(3)}, {"loss", 1.0}}); }
  auto csv = lines((d.path / "m.csv").string());
  ASSERT_EQ(csv.size(), 4u);
  EXPECT_EQ(csv[3], "3,1");
}

TEST(Metrics, Errors) {
  TempDir d;
  EXPECT_THROW(MetricsLogger((d.path / "no" / "dir").string()), IoError);
  EXPECT_THROW(read_metrics_csv((d.path / "none.csv").string()), IoError);
}
