// The search end to end with real `xlstm train` children on a tiny LSTM: the halving keeps the
// best trial of the first rung, the survivor's final score is what an uninterrupted run of the
// best flags gives (bit for bit), an interrupted search resumes without re-running finished
// trials and ends with the same results, and failing trials are reported, not fatal.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/json_config.h"
#include "tune/tune.h"
#include "xlstm/error.h"

using namespace xlstm;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/xlstm_tune_XXXXXX";
  return mkdtemp(tmpl);
}

FlagInfo any_flag(const std::string&) { return {true, true}; }

struct Fixture {
  std::string dir, data, space;
  Fixture() {
    dir = temp_dir();
    std::string text;
    for (int i = 0; i < 150; ++i) text += "the quick brown fox jumps over the lazy dog. ";
    data = dir + "/corpus.txt";
    std::ofstream(data) << text;
    space = dir + "/space.json";
    std::ofstream(space) << R"({"lr": {"log_uniform": [1e-3, 3e-2]}, "width": {"choice": [8, 16]}})";
  }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  TuneConfig config(const std::string& out) const {
    TuneConfig c;
    c.space_path = space;
    c.out = dir + "/" + out;
    c.exe = XLSTM_CLI;
    c.base_args = {"--data",       data, "--model",      "lstm-tiny", "--context", "16",
                   "--batch-size", "4",  "--eval-batches", "2",       "--warmup",  "2",
                   "--log-every",  "1"};
    c.trials = 4;
    c.budget_steps = 9;
    c.eta = 3;
    c.parallel = 1;
    c.threads = 1;
    c.seed = 11;
    return c;
  }
};

int run_cmd(const std::string& cmd) {
  const int st = std::system((cmd + " > /dev/null 2>&1").c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

double metric_at(const std::string& dir, int64_t step) {
  int64_t at = -1;
  const double v = read_trial_metric(dir, "val_loss", step, &at);
  EXPECT_EQ(at, step);
  return v;
}

}  // namespace

TEST(Tune, HalvingKeepsTheBestAndTheWinnerRetrainsBitForBit) {
  Fixture f;
  TuneConfig c = f.config("a");
  c.parallel = std::min<int64_t>(2, available_cores());
  TuneResult r = run_tune(c, any_flag, nullptr);
  ASSERT_TRUE(r.complete);
  ASSERT_EQ(r.schedule.size(), 2u);  // (3 steps, 4 trials), (9 steps, 1 trial)
  EXPECT_EQ(r.schedule[0].steps, 3);
  EXPECT_EQ(r.schedule[1].steps, 9);
  ASSERT_EQ(r.ranking.size(), 4u);
  // rung 1 scores, read from the trial directories: the survivor is their argmin
  int64_t best0 = -1;
  double s0 = INFINITY;
  for (const auto& t : r.trials) {
    ASSERT_FALSE(t.runs.empty()) << t.error;
    const double v = metric_at(t.dir, 3);
    EXPECT_EQ(t.runs[0].score, v);
    if (v < s0) s0 = v, best0 = t.id;
  }
  EXPECT_EQ(r.ranking[0].trial, best0);
  EXPECT_EQ(r.ranking[0].status, "finished");
  EXPECT_EQ(r.ranking[0].steps, 9);
  const Trial& w = r.trials[(size_t)best0];
  EXPECT_EQ(w.launches, 2);  // rung 1 fresh, rung 2 resumed
  EXPECT_EQ(r.ranking[0].score, metric_at(w.dir, 9));
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(r.ranking[i].status, "pruned after rung 1");
    EXPECT_EQ(r.ranking[i].steps, 3);
    EXPECT_EQ(r.trials[(size_t)r.ranking[i].trial].launches, 1);
    if (i > 1) {
      EXPECT_LE(r.ranking[i - 1].score, r.ranking[i].score);
    }
  }
  // best.json re-trains: an uninterrupted run of its args ends on the same validation loss
  const json b = json_cfg::read_file(r.best_json);
  EXPECT_EQ(b["trial"].get<int64_t>(), best0);
  EXPECT_TRUE(b.contains("model"));
  std::string cmd = std::string(XLSTM_CLI) + " train";
  for (const auto& a : b["args"]) cmd += " '" + a.get<std::string>() + "'";
  const std::string out = f.dir + "/retrain";
  ASSERT_EQ(run_cmd(cmd + " --threads 1 --out " + out), 0) << cmd;
  EXPECT_EQ(metric_at(out, 9), b["value"].get<double>());
  // results.csv: header + one row per trial, best first
  std::ifstream csv(r.results_csv);
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line.rfind("rank,trial,status,rung,steps,val_loss,seconds,lr,width,dir", 0), 0u) << line;
  int rows = 0;
  while (std::getline(csv, line)) {
    if (rows == 0) {
      EXPECT_EQ(line.rfind("1," + std::to_string(best0) + ",finished,2,9,", 0), 0u) << line;
    }
    ++rows;
  }
  EXPECT_EQ(rows, 4);
}

TEST(Tune, ResumeDoesNotRedoFinishedTrials) {
  Fixture f;
  TuneResult full = run_tune(f.config("full"), any_flag, nullptr);
  ASSERT_TRUE(full.complete);

  TuneConfig c = f.config("part");
  c.stop_after_jobs = 2;
  TuneResult part = run_tune(c, any_flag, nullptr);
  EXPECT_FALSE(part.complete);
  EXPECT_EQ(part.jobs_run, 2);
  ASSERT_EQ(part.trials[0].runs.size(), 1u);
  ASSERT_EQ(part.trials[1].runs.size(), 1u);
  EXPECT_TRUE(part.trials[2].runs.empty());
  // A kill between trial 1's exit and the state update: its result is not in tune.json, but
  // its checkpoint reached the rung. Resume collects it without running it again.
  const std::string state = c.out + "/tune.json";
  json st = json_cfg::read_file(state);
  st["trials"][1]["runs"] = json::array();
  std::ofstream(state) << st.dump(2);

  TuneConfig rc;
  rc.out = c.out;
  rc.exe = XLSTM_CLI;
  rc.resume = true;
  rc.parallel = 1;
  rc.threads = 1;
  TuneResult res = run_tune(rc, any_flag, nullptr);
  ASSERT_TRUE(res.complete);
  const int64_t winner = res.ranking[0].trial;
  for (int64_t t = 0; t < 4; ++t) {
    // one child per rung the trial trained in, in the two calls together
    EXPECT_EQ(res.trials[(size_t)t].launches, t == winner ? 2 : 1) << "trial " << t;
  }
  EXPECT_EQ(res.jobs_run, 2 + 1);  // trials 2, 3 at rung 1, the winner at rung 2
  // the same search as the uninterrupted one
  ASSERT_EQ(res.ranking.size(), full.ranking.size());
  for (size_t i = 0; i < res.ranking.size(); ++i) {
    EXPECT_EQ(res.ranking[i].trial, full.ranking[i].trial);
    EXPECT_EQ(res.ranking[i].score, full.ranking[i].score);
  }
  // a finished search resumed again runs nothing
  TuneResult again = run_tune(rc, any_flag, nullptr);
  EXPECT_EQ(again.jobs_run, 0);
  EXPECT_EQ(again.ranking[0].score, full.ranking[0].score);
}

TEST(Tune, FailingTrialsAreReportedAndRankedLast) {
  Fixture f;
  std::ofstream(f.space) << R"({"optimizer": {"choice": ["adamw", "bogus"]}})";
  // a seed whose 4 draws mix both values
  SearchSpace s = read_search_space(f.space, any_flag);
  uint64_t seed = 0;
  for (;; ++seed) {
    Rng rng(seed);
    int bad = 0;
    for (int i = 0; i < 4; ++i) bad += sample_params(s, rng)["optimizer"] == "bogus";
    if (bad == 1 || bad == 2) break;
  }
  TuneConfig c = f.config("fail");
  c.seed = seed;
  TuneResult r = run_tune(c, any_flag, nullptr);
  ASSERT_TRUE(r.complete);
  bool seen_fail = false;
  for (const auto& k : r.ranking) {
    const Trial& t = r.trials[(size_t)k.trial];
    const bool bogus = t.params["optimizer"] == "bogus";
    EXPECT_EQ(k.status == "failed", bogus) << k.status;
    if (bogus) {
      seen_fail = true;
      EXPECT_TRUE(std::isnan(k.score));
      EXPECT_NE(t.error.find("bogus"), std::string::npos) << t.error;
    } else {
      EXPECT_FALSE(seen_fail) << "a scored trial ranked after a failed one";
    }
  }
  EXPECT_TRUE(seen_fail);
}

TEST(Tune, AllTrialsFailingIsAnError) {
  Fixture f;
  TuneConfig c = f.config("allfail");
  c.base_args.push_back("--optimizer");
  c.base_args.push_back("nope");
  try {
    run_tune(c, any_flag, nullptr);
    ADD_FAILURE() << "no error";
  } catch (const ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("all 4 trials failed"), std::string::npos) << m;
    EXPECT_NE(m.find("nope"), std::string::npos) << m;
  }
}

TEST(Tune, BadSettings) {
  Fixture f;
  auto msg = [&](TuneConfig c) -> std::string {
    try {
      run_tune(c, any_flag, nullptr);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  TuneConfig c = f.config("bad");
  c.parallel = available_cores() + 1;
  EXPECT_NE(msg(c).find("exceeds the"), std::string::npos) << msg(c);
  c = f.config("bad");
  c.base_args.push_back("--steps");
  c.base_args.push_back("5");
  EXPECT_NE(msg(c).find("--steps is set by tune"), std::string::npos) << msg(c);
  c = f.config("bad");
  c.eta = 1;
  EXPECT_NE(msg(c).find("--eta"), std::string::npos);
  c = f.config("bad");
  c.resume = true;
  EXPECT_NE(msg(c).find("nothing to resume"), std::string::npos) << msg(c);
  c = f.config("bad");
  c.exe = "/nonexistent/xlstm";
  EXPECT_NE(msg(c).find("/nonexistent/xlstm"), std::string::npos) << msg(c);
  EXPECT_FALSE(fs::exists(f.dir + "/bad/tune.json"));
  // a finished or started run is not overwritten, and resuming checks the settings
  TuneConfig ok = f.config("done");
  ok.stop_after_jobs = 1;
  run_tune(ok, any_flag, nullptr);
  ok.stop_after_jobs = 0;
  EXPECT_NE(msg(ok).find("already holds a tune run"), std::string::npos) << msg(ok);
  ok.resume = true;
  ok.budget_steps = 27;
  EXPECT_NE(msg(ok).find("budget_steps"), std::string::npos) << msg(ok);
  ok.budget_steps = 9;
  ok.eta = 2;
  EXPECT_NE(msg(ok).find("eta"), std::string::npos) << msg(ok);
}
