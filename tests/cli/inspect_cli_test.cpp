// `xlstm inspect` through the real binary: a checkpoint of `xlstm train` is inspected into PNG
// and CSV files; bad input gives one error line and writes nothing.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "harness/cli.h"

#include "viz/plot.h"

using namespace xlstm;
namespace fs = std::filesystem;

namespace {

using Result = xlstm::test::CliResult;

Result run(const std::string& args) { return xlstm::test::run_cli(args); }

void expect_error(const Result& r, const std::string& what) {
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find(what), std::string::npos) << r.out;
}

// Removes the shared temporary directory when the test program ends.
struct TempRoot {
  std::string path;
  ~TempRoot() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

// One tiny trained xLSTM[1:1] (mLSTM block 0, sLSTM block 1) shared by the tests.
const std::string& checkpoint() {
  static std::string dir;
  static TempRoot root;
  if (!dir.empty()) return dir;
  char tmpl[] = "/tmp/xlstm_inspect_cli_XXXXXX";
  const std::string d = mkdtemp(tmpl);
  root.path = d;
  std::string text;
  for (int i = 0; i < 60; ++i) text += "the quick brown fox jumps over the lazy dog. ";
  std::ofstream(d + "/corpus.txt") << text;
  const Result r = run("train --data " + d + "/corpus.txt --model xlstm-1-1-tiny --width 16 "
                       "--blocks 2 --heads 2 --context 16 --batch-size 2 --steps 3 "
                       "--eval-batches 1 --threads 1 -q --out " + d + "/run");
  EXPECT_EQ(r.code, 0) << r.out;
  dir = d + "/run";
  return dir;
}

}  // namespace

TEST(InspectCli, WritesHeatmapsAndCsv) {
  const std::string out = checkpoint() + "/../inspect";
  const Result r = run("inspect --checkpoint " + checkpoint() + " --input 'the lazy dog' --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("read 12 of 12 characters"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layer 0 (mlstm): i_raw f_raw i f m C_norm qn den h o"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layer 1 (slstm): i_raw f_raw i f z o c n m h"), std::string::npos) << r.out;
  int png = 0, csv = 0;
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string p = e.path().string();
    if (e.path().extension() == ".png") {
      int w = 0, h = 0;
      png_size(p, w, h);
      EXPECT_GE(w, 900) << p;
      EXPECT_GE(h, 400) << p;
      ++png;
    } else if (e.path().extension() == ".csv") {
      std::ifstream in(p);
      std::string line;
      int rows = -1;
      while (std::getline(in, line)) ++rows;
      EXPECT_EQ(rows, 12) << p;
      ++csv;
    }
  }
  EXPECT_EQ(png, 20);
  EXPECT_EQ(csv, 20);
  // --layer and --max-steps
  const Result one = run("inspect --checkpoint " + checkpoint() + " --input 'the lazy dog' --layer 1 "
                         "--max-steps 5 --out " + out + "2");
  ASSERT_EQ(one.code, 0) << one.out;
  EXPECT_NE(one.out.find("read 5 of 12 characters"), std::string::npos) << one.out;
  EXPECT_TRUE(fs::exists(out + "2/layer1_slstm_f.png"));
  EXPECT_FALSE(fs::exists(out + "2/layer0_mlstm_f.png"));
}

TEST(InspectCli, BadInputOneErrorLine) {
  const std::string ck = checkpoint(), d = ck + "/../bad";
  std::ofstream(ck + "/../empty.txt").close();
  expect_error(run("inspect --checkpoint /nonexistent/run --input abc --out " + d), "/nonexistent/run");
  expect_error(run("inspect --checkpoint " + ck + " --input '' --out " + d), "--input is empty");
  expect_error(run("inspect --checkpoint " + ck + " --file " + ck + "/../empty.txt --out " + d), "empty.txt");
  expect_error(run("inspect --checkpoint " + ck + " --file " + ck + "/../nope.txt --out " + d), "nope.txt");
  expect_error(run("inspect --checkpoint " + ck + " --out " + d), "--input TEXT or --file FILE");
  expect_error(run("inspect --checkpoint " + ck + " --input a --file " + ck + "/../empty.txt --out " + d),
               "not both");
  expect_error(run("inspect --checkpoint " + ck + " --input abc --layer 2 --out " + d), "0..1");
  expect_error(run("inspect --checkpoint " + ck + " --input abc --max-steps 0 --out " + d), "--max-steps");
  expect_error(run("inspect --checkpoint " + ck + " --input 'xyZ' --out " + d), "--input");
  EXPECT_FALSE(fs::exists(d));
}
