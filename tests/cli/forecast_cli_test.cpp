// `xlstm train --task forecast` and `xlstm forecast` through the real binary: a tiny run end to
// end, and bad input -- one clear error line naming the file, line and column, a non-zero exit,
// and no output files left behind.
#include <gtest/gtest.h>

#include "harness/cli.h"
#include <stdlib.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "xlstm/error.h"

namespace fs = std::filesystem;
using xlstm::str;

namespace {

using Result = xlstm::test::CliResult;

Result run(const std::string& args) { return xlstm::test::run_cli(args); }

std::string temp_dir() {
  char tmpl[] = "/tmp/xlstm_fcli_XXXXXX";
  return mkdtemp(tmpl);
}

// "t,value,x" with a noisy sine in value and a second column.
std::string sine_csv(int rows) {
  std::string s = "t,value,x\n";
  for (int t = 0; t < rows; ++t)
    s += str(t, ",", std::sin(2 * M_PI * t / 16.0) + 0.05 * std::cos(7.0 * t), ",", t % 5, "\n");
  return s;
}

std::string write(const std::string& dir, const std::string& name, const std::string& content) {
  const std::string p = dir + "/" + name;
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

const char* kTrain = "train --task forecast --target value --context 16 --horizon 4 --model lstm-tiny "
                     "--width 8 --epochs 2 --batch-size 16 -q";

// One error line on stderr, exit 1, containing every piece of `want`.
void expect_error(const Result& r, const std::vector<std::string>& want) {
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(count_lines(r.out), 1) << r.out;
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  for (auto& w : want) EXPECT_NE(r.out.find(w), std::string::npos) << "missing '" << w << "' in: " << r.out;
}

TEST(ForecastCli, TrainForecastBacktestPlot) {
  const std::string d = temp_dir();
  const std::string csv = write(d, "sine.csv", sine_csv(300));
  Result r = run(str(kTrain, " --features x --time-col t --season 16 --data ", csv, " --out ", d, "/run"));
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* w : {"test split: ", "seasonal-naive(16)", "last-value", "MASE", "lstm-tiny"})
    EXPECT_NE(r.out.find(w), std::string::npos) << w << " in " << r.out;
  EXPECT_TRUE(fs::exists(d + "/run/best/model.safetensors"));
  EXPECT_TRUE(fs::exists(d + "/run/test_metrics.json"));
  // forecast beyond the end: H rows in the CSV, a plot
  r = run(str("forecast --checkpoint ", d, "/run --data ", csv, " --horizon 3 --out ", d,
              "/f.csv --plot ", d, "/f.png"));
  ASSERT_EQ(r.code, 0) << r.out;
  std::ifstream f(d + "/f.csv");
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(count_lines(ss.str()), 1 + 3) << ss.str();
  EXPECT_EQ(ss.str().rfind("h,forecast\n", 0), 0u) << ss.str();
  EXPECT_GT(fs::file_size(d + "/f.png"), 1000u);
  // backtest and the test-split evaluation: the model's test MAE equals the one train printed
  r = run(str("forecast --checkpoint ", d, "/run --data ", csv, " --backtest --evaluate"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("backtest window"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("h,t,forecast,actual\n"), std::string::npos) << r.out;
  // a horizon beyond the trained one
  expect_error(run(str("forecast --checkpoint ", d, "/run --data ", csv, " --horizon 5")),
               {"--horizon 5 exceeds the horizon 4"});
  // a missing checkpoint is named
  expect_error(run(str("forecast --checkpoint ", d, "/nothing --data ", csv)), {d + "/nothing"});
}

TEST(ForecastCli, BadInputLeavesNothingBehind) {
  const std::string d = temp_dir();
  const std::string good = sine_csv(200);
  auto with_cell = [&](int data_row, const std::string& cell) {  // replace `value` of a row
    std::stringstream in(good);
    std::string line, out;
    for (int i = -1; std::getline(in, line); ++i) {
      if (i == data_row) {
        const size_t a = line.find(','), b = line.find(',', a + 1);
        line = line.substr(0, a + 1) + cell + line.substr(b);
      }
      out += line + "\n";
    }
    return out;
  };
  struct Case {
    std::string name, content, extra;
    std::vector<std::string> want;
  };
  const std::vector<Case> cases = {
      {"missing.csv", with_cell(40, ""), "", {"missing.csv: line 42, column 'value': missing value"}},
      {"text.csv", with_cell(7, "abc"), "", {"text.csv: line 9, column 'value': 'abc' is not a finite number"}},
      {"nan.csv", with_cell(3, "nan"), "", {"nan.csv: line 5, column 'value'", "not a finite number"}},
      {"feature.csv", good, "--features x,nope", {"feature.csv: no column 'nope'", "t, value, x"}},
      {"short.csv", sine_csv(19), "", {"short.csv: 19 data rows, fewer than --context + --horizon = 20"}},
      {"ragged.csv", "t,value,x\n0,1,2\n1,2\n", "", {"ragged.csv: line 3"}},
      {"empty.csv", "", "", {"empty.csv: empty file"}},
      {"header.csv", "t,value,x\n", "", {"header.csv: no data rows"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string p = write(d, c.name, c.content);
    const std::string out = d + "/out_" + c.name;
    expect_error(run(str(kTrain, " ", c.extra, " --data ", p, " --out ", out)), c.want);
    EXPECT_FALSE(fs::exists(out)) << "output left behind in " << out;
  }
  // a missing target column, a missing file, missing required flags
  const std::string p = write(d, "ok.csv", good);
  expect_error(run(str("train --task forecast --target nope --context 16 --horizon 4 --data ", p,
                       " --out ", d, "/o1")),
               {"ok.csv: no column 'nope' (--target)"});
  expect_error(run(str(kTrain, " --data ", d, "/absent.csv --out ", d, "/o2")), {d + "/absent.csv"});
  expect_error(run(str("train --task forecast --target value --context 16 --data ", p, " --out ", d, "/o3")),
               {"--horizon"});
  expect_error(run(str("train --task forecast --target value --horizon 4 --data ", p, " --out ", d, "/o4")),
               {"--context"});
  expect_error(run(str(kTrain, " --quantiles 0.9,0.1 --data ", p, " --out ", d, "/o5")), {"ascending"});
  for (const char* o : {"/o1", "/o2", "/o3", "/o4", "/o5"}) EXPECT_FALSE(fs::exists(d + o)) << o;

  // `xlstm forecast` on bad data: the same messages, and no --out/--plot file written
  ASSERT_EQ(run(str(kTrain, " --data ", p, " --out ", d, "/run")).code, 0);
  const std::string bad = write(d, "bad.csv", with_cell(150, "x1"));
  expect_error(run(str("forecast --checkpoint ", d, "/run --data ", bad, " --out ", d, "/f.csv --plot ",
                       d, "/f.png")),
               {"bad.csv: line 152, column 'value': 'x1' is not a finite number"});
  const std::string few = write(d, "few.csv", sine_csv(10));
  expect_error(run(str("forecast --checkpoint ", d, "/run --data ", few, " --out ", d, "/f.csv")),
               {"few.csv: 10 data rows, fewer than --context 16"});
  EXPECT_FALSE(fs::exists(d + "/f.csv"));
  EXPECT_FALSE(fs::exists(d + "/f.png"));
}

// --resume: continues from the checkpoint with its own settings (the library test checks that
// the result equals an uninterrupted run); flags that would change the run are refused, and a
// directory without a checkpoint gives one error line.
TEST(ForecastCli, Resume) {
  const std::string d = temp_dir();
  const std::string p = write(d, "s.csv", sine_csv(200));
  ASSERT_EQ(run(str(kTrain, " --data ", p, " --out ", d, "/run")).code, 0);
  const Result r = run(str("train --task forecast --resume -q --out ", d, "/run"));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("forecast:   build/xlstm forecast --checkpoint " + d + "/run --data " + p +
                       " --horizon 4"),
            std::string::npos)
      << r.out;
  // the same command line plus --resume (as `xlstm tune` resumes trials): settings noted, kept
  const std::string again_cmd = str(kTrain, " --data ", p, " --season 3 --out ", d, "/run --resume");
  const Result again = run(std::string(again_cmd).replace(again_cmd.find(" -q"), 3, ""));
  EXPECT_EQ(again.code, 0) << again.out;
  EXPECT_NE(again.out.find("ignored: --target, --horizon, --season"), std::string::npos) << again.out;
  // without --task: the checkpoint's
  const Result plain = run(str("train --resume -q --out ", d, "/run"));
  EXPECT_EQ(plain.code, 0) << plain.out;
  EXPECT_NE(plain.out.find("forecast:   build/xlstm forecast"), std::string::npos) << plain.out;
  expect_error(run(str("train --task forecast --resume --out ", d, "/none")),
               {d + "/none/checkpoint: nothing to resume"});
  EXPECT_FALSE(fs::exists(d + "/none"));
  // A damaged checkpoint: one error line naming the file, nothing rewritten.
  const std::string ck = d + "/run/checkpoint";
  fs::resize_file(ck + "/optimizer.safetensors", fs::file_size(ck + "/optimizer.safetensors") / 2);
  const auto metrics_before = fs::last_write_time(d + "/run/metrics.csv");
  expect_error(run(str("train --resume --out ", d, "/run")), {ck + "/optimizer.safetensors"});
  EXPECT_EQ(fs::last_write_time(d + "/run/metrics.csv"), metrics_before);
  write(ck, "state.json", "{\"step\": 3");
  fs::remove(ck + "/optimizer.safetensors");
  expect_error(run(str("train --resume --out ", d, "/run")), {ck + "/optimizer.safetensors"});
}

}  // namespace
