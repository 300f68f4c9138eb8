// `xlstm tune` through the real binary: a tiny search finishes, prints its table and a re-train
// command that reproduces the best trial's validation loss; bad input gives one error line.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "harness/cli.h"
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/json_config.h"
#include "tune/tune.h"

using namespace xlstm;
namespace fs = std::filesystem;

namespace {

using Result = xlstm::test::CliResult;
using xlstm::test::run_shell;

Result run(const std::string& args) { return xlstm::test::run_cli(args); }

std::string temp_dir() {
  char tmpl[] = "/tmp/xlstm_tune_cli_XXXXXX";
  return mkdtemp(tmpl);
}

struct TuneSetup {
  std::string d, data, space, base;
  TuneSetup() {
    d = temp_dir();
    std::string text;
    for (int i = 0; i < 150; ++i) text += "the quick brown fox jumps over the lazy dog. ";
    data = d + "/corpus.txt";
    std::ofstream(data) << text;
    space = d + "/space.json";
    std::ofstream(space) << R"({"lr": {"log_uniform": [1e-3, 3e-2]}, "dropout": {"uniform": [0, 0.2]}})";
    base = "--data " + data + " --model lstm-tiny --width 8 --context 16 --batch-size 4 "
           "--eval-batches 2 --warmup 2";
  }
  ~TuneSetup() {
    std::error_code ec;
    fs::remove_all(d, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(d + "/" + name) << text;
    return d + "/" + name;
  }
};

// exit 1, one line "error: ..." containing `what`, no crash
void expect_error(const Result& r, const std::string& what) {
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find(what), std::string::npos) << r.out;
}

}  // namespace

TEST(TuneCli, TinySearchAndItsRetrainCommand) {
  TuneSetup s;
  const std::string out = s.d + "/tune";
  Result r = run("tune --space " + s.space + " --trials 4 --budget-steps 9 --parallel 1 --out " +
                 out + " " + s.base);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("schedule: 4 x 3 steps, 1 x 9 steps"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rank  trial  status"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("re-train: "), std::string::npos) << r.out;
  const auto best = json_cfg::read_file(out + "/best.json");
  const std::string cmd = best["command"].get<std::string>();
  EXPECT_NE(r.out.find(cmd), std::string::npos) << "printed command differs from best.json";
  EXPECT_NE(cmd.find("--out " + out + "/best-run"), std::string::npos) << cmd;
  // the printed command, run as printed (one thread like the trials), re-trains the winner
  Result t = run_shell(cmd + " --threads 1");
  ASSERT_EQ(t.code, 0) << t.out;
  int64_t at = 0;
  EXPECT_EQ(read_trial_metric(out + "/best-run", "val_loss", 9, &at), best["value"].get<double>());
  EXPECT_EQ(at, 9);
  // resuming a finished search prints the same table without training anything
  Result again = run("tune --out " + out + " --resume --parallel 1");
  ASSERT_EQ(again.code, 0) << again.out;
  EXPECT_EQ(again.out.find("training to step"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find(cmd), std::string::npos) << again.out;
}

TEST(TuneCli, BadInputOneErrorLine) {
  TuneSetup s;
  const std::string o = " --trials 2 --budget-steps 3 --out " + s.d + "/bad ";
  expect_error(run("tune --space " + s.write("a.json", "{\"lr\": ") + o + s.base), "not valid JSON");
  expect_error(run("tune --space " + s.d + "/missing.json" + o + s.base), "missing.json");
  expect_error(run("tune --space " + s.write("b.json", R"({"lr": {"normal": [0, 1]}})") + o + s.base),
               "'lr': unknown distribution 'normal'");
  expect_error(run("tune --space " + s.write("c.json", R"({"widht": {"choice": [8]}})") + o + s.base),
               "'widht' is not an `xlstm train` flag");
  expect_error(run("tune --space " + s.write("d.json", R"({"lr": {"uniform": [0.1, 0.01]}})") + o + s.base),
               "'lr': uniform needs lo < hi");
  expect_error(run("tune --space " + s.write("e.json", R"({"steps": {"int": [1, 5]}})") + o + s.base),
               "'steps'");
  expect_error(run("tune" + o + s.base), "--space FILE is required");
  expect_error(run("tune --space " + s.space + " --trials 0 --budget-steps 3 --out " + s.d + "/bad " + s.base),
               "--trials");
  expect_error(run("tune --space " + s.space + o + s.base + " --bogus 3"), "--bogus");
  expect_error(run("tune --space " + s.space + o + s.base + " --clip abc"), "abc");
  expect_error(run("tune --space " + s.space + o + s.base + " --steps 5"), "--steps is set by tune");
  expect_error(run("tune --space " + s.space + o + "--parallel 4096 " + s.base), "exceeds the");
  expect_error(run("tune --resume --out " + s.d + "/nothing"), "nothing to resume");
  EXPECT_FALSE(fs::exists(s.d + "/bad/tune.json"));
}
