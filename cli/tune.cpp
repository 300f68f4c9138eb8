// `xlstm tune`: hyperparameter search over `xlstm train` flags (random search + successive
// halving), every trial a child `xlstm train` process. The logic is in src/tune/tune.h.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/util.h"
#include "tune/tune.h"
#include "xlstm/error.h"

namespace xlstm::cli {

namespace fs = std::filesystem;

namespace {

// The train subcommand as the CLI defines it, on a scratch app: which flags exist, and a dry
// parse of the pass-through flags (so a typo fails here, not in every trial).
struct TrainFlags {
  CLI::App app;
  CLI::App* train = nullptr;
  std::function<int()> dummy;
  TrainFlags() {
    add_train(app, dummy);
    train = app.get_subcommand("train");
  }
  FlagInfo lookup(const std::string& key) {
    const CLI::Option* o = train->get_option_no_throw("--" + key);
    if (!o) return {false, true};
    return {true, o->get_type_size_max() > 0};
  }
  void check(const std::vector<std::string>& base) {
    std::vector<std::string> args = {"train"};
    args.insert(args.end(), base.begin(), base.end());
    args.insert(args.end(), {"--out", "tune-dry-parse"});
    std::reverse(args.begin(), args.end());  // CLI11 takes the vector reversed
    try {
      app.parse(args);
    } catch (const CLI::ParseError& e) {
      throw ValueError(str("train flags passed through tune: ", e.what(),
                           "; hint: every flag tune does not know goes to `xlstm train` (see "
                           "xlstm train --help)"));
    }
  }
};

// The binary the trials run: /proc/self/exe, shown relative to the working directory when it
// lies below it (so the printed re-train command reads like build/xlstm train ...).
std::string self_exe() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  XLSTM_CHECK(!ec, IoError, "/proc/self/exe: cannot find this program's path (", ec.message(), ")");
  const fs::path rel = fs::relative(p, fs::current_path(ec), ec);
  if (!ec && !rel.empty() && rel.begin()->string() != "..")
    return rel.has_parent_path() ? rel.string() : "./" + rel.string();
  return p.string();
}

std::string fmt_score(double v) {
  if (!std::isfinite(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.4f", v);
  return b;
}

std::string fmt_value(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4g", v.get<double>());
    return b;
  }
  return v.dump();
}

void print_table(const TuneResult& r, const std::string& metric) {
  std::vector<std::string> head = {"rank", "trial", "status", "steps", metric};
  std::vector<std::string> keys;
  if (!r.trials.empty())
    for (auto it = r.trials[0].params.begin(); it != r.trials[0].params.end(); ++it)
      keys.push_back(it.key());
  head.insert(head.end(), keys.begin(), keys.end());
  std::vector<std::vector<std::string>> rows = {head};
  for (const auto& k : r.ranking) {
    const Trial& t = r.trials[(size_t)k.trial];
    std::vector<std::string> row = {std::to_string(k.rank), std::to_string(t.id), k.status,
                                    std::to_string(k.steps), fmt_score(k.score)};
    for (const auto& key : keys) row.push_back(t.params.contains(key) ? fmt_value(t.params[key]) : "");
    rows.push_back(row);
  }
  std::vector<size_t> w(head.size(), 0);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) w[c] = std::max(w[c], row[c].size());
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c)
      line += row[c] + (c + 1 < row.size() ? std::string(w[c] - row[c].size() + 2, ' ') : "");
    std::printf("%s\n", line.c_str());
  }
}

}  // namespace

void add_tune(CLI::App& app, std::function<int()>& run) {
  struct Opts {
    TuneConfig c;
    int64_t parallel = 0, threads = 0;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  o->c.eta = 3;
  auto* s = app.add_subcommand(
      "tune",
      "Hyperparameter search: random search over SPACE.json with successive halving; each "
      "trial is an `xlstm train` run with the drawn flags. Every option tune does not know is "
      "passed to train (--data, --model, --batch-size, ...). Writes DIR/tune.json (resumable), "
      "DIR/results.csv, DIR/best.json and one run directory per trial under DIR/trials/.");
  s->allow_extras();
  s->add_option("--space", o->c.space_path,
                "search space JSON: {\"lr\": {\"log_uniform\": [1e-4, 1e-2]}, \"width\": "
                "{\"choice\": [64, 128]}, ...}; keys are train flags; distributions log_uniform, "
                "uniform, int, log_int, choice (docs/tune.md)");
  s->add_option("--trials", o->c.trials, "number of sampled configurations");
  s->add_option("--out", o->c.out, "tune directory")->required();
  s->add_option("--budget-steps", o->c.budget_steps,
                "full training budget (optimizer steps) of a trial that survives every rung");
  s->add_option("--eta", o->c.eta, "halving factor: the best 1/eta of a rung go on with eta times the steps")
      ->capture_default_str();
  s->add_option("--min-steps", o->c.min_steps, "smallest rung budget in steps")->capture_default_str();
  s->add_option("--parallel", o->parallel,
                "trials at once (default: cores / --threads); parallel x threads <= cores");
  s->add_option("--threads", o->threads, "threads per trial (default 1)");
  s->add_option("--seed", o->c.seed, "sampling seed (the trials' training seed: put \"seed\": N in the space)")
      ->capture_default_str();
  s->add_option("--metric", o->c.metric,
                "column of the trials' metrics.jsonl to rank by (val_loss for language models)")
      ->capture_default_str();
  s->add_flag("--maximize", o->c.maximize, "higher --metric is better (default: lower is better)");
  s->add_flag("--resume", o->c.resume, "continue the search in --out; finished trials are not re-run");
  s->add_option("--stop-after", o->c.stop_after_jobs,
                "stop after this many trial runs as if interrupted (for tests)")
      ->group("");
  s->add_flag("-q,--quiet", o->quiet, "no progress lines");
  s->callback([o, s, &run] {
    const std::vector<std::string> extras = s->remaining();
    run = [o, extras]() -> int {
      TuneConfig c = o->c;
      c.base_args = extras;
      if (!c.resume) {
        XLSTM_CHECK(!c.space_path.empty(), ValueError, "--space FILE is required");
        XLSTM_CHECK(c.trials > 0, ValueError, "--trials N is required (N >= 1)");
        XLSTM_CHECK(c.budget_steps > 0, ValueError, "--budget-steps S is required (S >= 1)");
      }
      const int64_t cores = available_cores();
      c.threads = o->threads > 0 ? o->threads : 1;
      c.parallel = o->parallel > 0 ? o->parallel : std::max<int64_t>(1, cores / c.threads);
      c.exe = self_exe();
      auto flags = std::make_shared<TrainFlags>();
      if (!c.base_args.empty() || !c.resume) flags->check(c.base_args);
      FlagLookup lookup = [flags](const std::string& k) { return flags->lookup(k); };
      const bool quiet = o->quiet;
      bool said_hello = false;  // the header goes out with the first event, after validation
      auto on_event = [&](const TuneEvent& e) {
        if (quiet) return;
        if (!said_hello) {
          std::fprintf(stderr, "tune: %lld trial(s) at once, %lld thread(s) each, %lld cores\n",
                       (long long)c.parallel, (long long)c.threads, (long long)cores);
          said_hello = true;
        }
        char line[512];
        const std::string rung = str("[rung ", e.rung + 1, "/", e.rungs, "]");
        switch (e.kind) {
          case TuneEvent::Kind::Start:
            std::snprintf(line, sizeof line, "%s trial %lld: training to step %lld",
                          rung.c_str(), (long long)e.trial, (long long)e.steps);
            break;
          case TuneEvent::Kind::Finish:
          case TuneEvent::Kind::Collect:
            std::snprintf(line, sizeof line, "%s trial %lld: %s %s at step %lld (%s)  [%lld/%lld]",
                          rung.c_str(), (long long)e.trial, c.metric.c_str(),
                          fmt_score(e.score).c_str(), (long long)e.steps,
                          e.kind == TuneEvent::Kind::Collect ? "already trained"
                                                             : fmt_duration(e.seconds).c_str(),
                          (long long)e.done, (long long)e.total);
            break;
          case TuneEvent::Kind::Fail:
            std::snprintf(line, sizeof line, "%s trial %lld failed: %s  [%lld/%lld]", rung.c_str(),
                          (long long)e.trial, e.message.c_str(), (long long)e.done,
                          (long long)e.total);
            break;
          case TuneEvent::Kind::RungDone:
            std::snprintf(line, sizeof line,
                          "%s done at %lld steps: %lld of %lld trials scored, best trial %lld "
                          "(%s %s)",
                          rung.c_str(), (long long)e.steps, (long long)e.done, (long long)e.total,
                          (long long)e.trial, c.metric.c_str(), fmt_score(e.score).c_str());
            break;
        }
        std::fprintf(stderr, "%s\n", line);
        std::fflush(stderr);
      };
      TuneResult r = run_tune(c, lookup, on_event);
      if (!r.complete) {
        std::printf("stopped after %lld trial run(s); continue with: %s tune --out %s --resume\n",
                    (long long)r.jobs_run, c.exe.c_str(), c.out.c_str());
        return 0;
      }
      std::string sched;
      for (const auto& g : r.schedule)
        sched += str(sched.empty() ? "" : ", ", g.trials, " x ", g.steps, " steps");
      std::printf("schedule: %s\n", sched.c_str());
      print_table(r, c.metric);
      std::printf("results:  %s\n", r.results_csv.c_str());
      if (!r.retrain_args.empty()) {
        const TuneRanked& b = r.ranking.front();
        std::printf("best:     %s (trial %lld, %s %s after %lld steps)\n", r.best_json.c_str(),
                    (long long)b.trial, c.metric.c_str(), fmt_score(b.score).c_str(),
                    (long long)b.steps);
        std::vector<std::string> cmd = {c.exe, "train"};
        cmd.insert(cmd.end(), r.retrain_args.begin(), r.retrain_args.end());
        cmd.insert(cmd.end(), {"--out", c.out + "/best-run"});
        std::printf("re-train: %s\n", shell_join(cmd).c_str());
      }
      return 0;
    };
  });
}

}  // namespace xlstm::cli
