#include "tune/tune.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "io/atomic_file.h"
#include "io/json_config.h"
#include "xlstm/error.h"

extern char** environ;

namespace xlstm {

namespace fs = std::filesystem;
using json = nlohmann::json;

int64_t available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max<int64_t>(1, (int64_t)std::thread::hardware_concurrency());
}

std::string shell_join(const std::vector<std::string>& args) {
  std::string r;
  for (const auto& a : args) {
    if (!r.empty()) r += ' ';
    const bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
                                                          "OPQRSTUVWXYZ0123456789-_./=:,+@%") ==
                                         std::string::npos;
    if (plain) {
      r += a;
      continue;
    }
    r += '\'';
    for (char c : a) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
    r += '\'';
  }
  return r;
}

double read_trial_metric(const std::string& dir, const std::string& metric, int64_t max_step,
                         int64_t* step_out) {
  const std::string path = dir + "/metrics.jsonl";
  std::ifstream in(path);
  XLSTM_CHECK(in.good(), IoError, path, ": missing (the trial wrote no metrics)");
  std::string line;
  double val = std::nan("");
  int64_t at = -1;
  std::vector<std::string> keys;
  while (std::getline(in, line)) {
    json row;
    try {
      row = json::parse(line);
    } catch (const json::parse_error&) {
      continue;  // a line cut by a crash
    }
    if (!row.is_object() || !row.contains("step") || !row["step"].is_number_integer()) continue;
    if (keys.empty())
      for (auto it = row.begin(); it != row.end(); ++it) keys.push_back(it.key());
    const int64_t s = row["step"].get<int64_t>();
    if (s > max_step) continue;
    auto it = row.find(metric);
    if (it == row.end() || !it->is_number() || !std::isfinite(it->get<double>())) continue;
    val = it->get<double>();
    at = s;
  }
  if (at < 0) {
    std::string known;
    for (auto& k : keys) known += (known.empty() ? "" : ", ") + k;
    throw ValueError(str(path, ": no finite '", metric, "' at or before step ", max_step,
                         " (columns: ", known.empty() ? "none" : known,
                         "); hint: --metric names a column the trials log, and validation needs "
                         "--val-fraction > 0"));
  }
  if (step_out) *step_out = at;
  return val;
}

namespace {

using Clock = std::chrono::steady_clock;

std::string trial_dir_name(int64_t id) {
  char b[32];
  std::snprintf(b, sizeof b, "%03lld", (long long)id);
  return b;
}

// The step a trial's checkpoint has reached, or -1 without one.
int64_t checkpoint_step(const std::string& dir) {
  for (const std::string& d : {dir + "/checkpoint", dir + "/checkpoint.old"}) {
    const std::string p = d + "/state.json";
    std::error_code ec;
    if (!fs::exists(p, ec)) continue;
    try {
      json s = json_cfg::read_file(p);
      return json_cfg::get_int(s, "step", p);
    } catch (const Error&) {
      return -1;
    }
  }
  return -1;
}

// The child's error line: the last line starting with "error:", else the last non-empty one.
std::string last_error_line(const std::string& log) {
  std::ifstream in(log);
  std::string line, err, last;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto cr = line.rfind('\r');  // progress lines redrawn with \r
    if (cr != std::string::npos) line = line.substr(cr + 1);
    if (line.rfind("error:", 0) == 0) err = line;
    if (!line.empty()) last = line;
  }
  return !err.empty() ? err : (last.empty() ? "no output" : last);
}

double json_score(const json& v) { return v.is_number() ? v.get<double>() : std::nan(""); }

struct Job {
  int64_t trial = 0, rung = 0;
  pid_t pid = 0;
  Clock::time_point t0;
};

class Tuner {
 public:
  Tuner(const TuneConfig& cfg, const FlagLookup& lookup,
        const std::function<void(const TuneEvent&)>& on_event)
      : cfg_(cfg), lookup_(lookup), on_event_(on_event) {}

  TuneResult run();

 private:
  void validate();
  void init_fresh();
  void load_resumed();
  json settings_json() const;
  void save_state();
  const TrialRun* result_at(const Trial& t, int64_t k) const;
  bool better(double a, double b) const { return cfg_.maximize ? a > b : a < b; }
  std::vector<int64_t> ranked_at(const std::vector<int64_t>& entrants, int64_t k) const;
  void run_rung(int64_t k, const std::vector<int64_t>& ids);
  pid_t launch(Trial& t, int64_t k);
  void finish(Job& j, int status);
  void collect(Trial& t, int64_t k);
  void kill_all();
  void emit(TuneEvent e) {
    if (on_event_) on_event_(e);
  }
  void rank_final();
  void write_outputs();

  TuneConfig cfg_;
  FlagLookup lookup_;
  std::function<void(const TuneEvent&)> on_event_;
  json space_json_;
  SearchSpace space_;
  TuneResult res_;
  std::vector<Job> running_;
  std::string state_path_;
  std::vector<int64_t> reached_;  // per trial: the last rung it was an entrant of
  int64_t jobs_finished_ = 0, rung_done_ = 0, rung_total_ = 0;
  bool stopping_ = false;
};

void Tuner::validate() {
  const TuneConfig& c = cfg_;
  XLSTM_CHECK(!c.out.empty(), ValueError, "--out DIR is required");
  XLSTM_CHECK(c.trials >= 1, ValueError, "--trials must be >= 1, got ", c.trials);
  XLSTM_CHECK(c.budget_steps >= 1, ValueError, "--budget-steps must be >= 1, got ", c.budget_steps);
  XLSTM_CHECK(c.eta >= 2, ValueError, "--eta must be >= 2, got ", c.eta);
  XLSTM_CHECK(c.parallel >= 1 && c.threads >= 1, ValueError,
              "--parallel and --threads must be >= 1, got ", c.parallel, " and ", c.threads);
  const int64_t cores = available_cores();
  XLSTM_CHECK(c.parallel * c.threads <= cores, ValueError, "--parallel ", c.parallel,
              " x --threads ", c.threads, " = ", c.parallel * c.threads, " exceeds the ", cores,
              " cores this process may use; hint: lower --parallel or --threads");
  XLSTM_CHECK(!c.metric.empty(), ValueError, "--metric must not be empty");
  XLSTM_CHECK(::access(c.exe.c_str(), X_OK) == 0, IoError, c.exe,
              ": cannot execute the trial binary");
  for (const auto& a : c.base_args) {
    if (a.size() < 2 || a[0] != '-') continue;
    const std::string k = normalize_flag_key(a.substr(0, a.find('=')));
    for (const auto& m : tune_managed_flags())
      XLSTM_CHECK(k != m && !(m == "quiet" && a == "-q"), ValueError, "train flag ", a,
                  " is set by tune itself; hint: --budget-steps sets the steps, --out the tune "
                  "directory, --threads the threads per trial");
  }
}

json Tuner::settings_json() const {
  return {{"trials", cfg_.trials},     {"budget_steps", cfg_.budget_steps},
          {"eta", cfg_.eta},           {"min_steps", cfg_.min_steps},
          {"seed", cfg_.seed},         {"metric", cfg_.metric},
          {"maximize", cfg_.maximize}, {"base_args", cfg_.base_args}};
}

void Tuner::init_fresh() {
  XLSTM_CHECK(!cfg_.space_path.empty(), ValueError, "--space FILE is required");
  XLSTM_CHECK(!fs::exists(state_path_), IoError, cfg_.out,
              ": already holds a tune run (tune.json); hint: --resume to continue it, or another "
              "--out");
  space_json_ = json_cfg::read_file(cfg_.space_path);
  space_ = parse_search_space(space_json_, cfg_.space_path, lookup_);
  std::error_code ec;
  fs::create_directories(cfg_.out + "/trials", ec);
  XLSTM_CHECK(fs::is_directory(cfg_.out + "/trials"), IoError, cfg_.out,
              ": cannot create the tune directory (", ec.message(), ")");
  Rng rng(cfg_.seed);
  for (int64_t i = 0; i < cfg_.trials; ++i) {
    Trial t;
    t.id = i;
    t.params = sample_params(space_, rng);
    t.flags = params_to_flags(space_, t.params);
    t.dir = cfg_.out + "/trials/" + trial_dir_name(i);
    res_.trials.push_back(std::move(t));
  }
  save_state();
}

void Tuner::load_resumed() {
  XLSTM_CHECK(fs::exists(state_path_), IoError, state_path_,
              ": nothing to resume (no tune.json in ", cfg_.out, ")");
  const json st = json_cfg::read_file(state_path_);
  const std::string w = state_path_;
  XLSTM_CHECK(st.is_object() && st.value("format", "") == "xlstm-tune", ValueError, w,
              ": field 'format' must be \"xlstm-tune\"");
  const json& saved = json_cfg::get_object(st, "settings", w);
  // Settings left at their defaults are taken from the saved run; others must match it.
  TuneConfig& c = cfg_;
  const TuneConfig def;
  if (c.trials == def.trials) c.trials = json_cfg::get_int(saved, "trials", w);
  if (c.budget_steps == def.budget_steps) c.budget_steps = json_cfg::get_int(saved, "budget_steps", w);
  if (c.eta == def.eta) c.eta = json_cfg::get_int(saved, "eta", w, def.eta);
  if (c.min_steps == def.min_steps) c.min_steps = json_cfg::get_int(saved, "min_steps", w, def.min_steps);
  if (c.seed == def.seed) c.seed = (uint64_t)json_cfg::get_int(saved, "seed", w, 0);
  if (c.metric == def.metric) c.metric = json_cfg::get_string(saved, "metric", w, def.metric);
  if (c.maximize == def.maximize) c.maximize = json_cfg::get_bool(saved, "maximize", w, false);
  if (c.base_args.empty() && saved.contains("base_args"))
    c.base_args = saved["base_args"].get<std::vector<std::string>>();
  const json now = settings_json();
  for (auto it = now.begin(); it != now.end(); ++it)
    XLSTM_CHECK(saved.contains(it.key()) && saved[it.key()] == it.value(), ValueError, w,
                ": the run was started with ", it.key(), " = ",
                saved.contains(it.key()) ? saved[it.key()].dump() : "(unset)",
                ", this command has ", it.value().dump(),
                "; hint: resume with the original settings, or start a new --out");
  space_json_ = json_cfg::get_object(st, "space", w);
  if (!c.space_path.empty()) {
    const json given = json_cfg::read_file(c.space_path);
    XLSTM_CHECK(given == space_json_, ValueError, c.space_path,
                ": differs from the space the run in ", c.out,
                " was started with; hint: leave out --space to resume with the saved one");
  }
  space_ = parse_search_space(space_json_, w + ": field 'space'", lookup_);
  const json& trials = json_cfg::get_array(st, "trials", w);
  XLSTM_CHECK((int64_t)trials.size() == c.trials, ValueError, w, ": has ", trials.size(),
              " trials, settings say ", c.trials);
  for (size_t i = 0; i < trials.size(); ++i) {
    const std::string tw = str(w, ": trial ", i);
    const json& tj = trials[i];
    Trial t;
    t.id = (int64_t)i;
    t.params = json_cfg::get_object(tj, "params", tw);
    t.flags = params_to_flags(space_, t.params);
    t.dir = c.out + "/trials/" + trial_dir_name(t.id);
    t.launches = json_cfg::get_int(tj, "launches", tw, 0);
    t.error = json_cfg::get_string(tj, "error", tw, "");
    for (const auto& rj : json_cfg::get_array(tj, "runs", tw)) {
      TrialRun r;
      r.rung = json_cfg::get_int(rj, "rung", tw);
      r.steps = json_cfg::get_int(rj, "steps", tw);
      r.score = rj.contains("score") ? json_score(rj["score"]) : std::nan("");
      r.seconds = json_cfg::get_number(rj, "seconds", tw, 0);
      r.failed = json_cfg::get_bool(rj, "failed", tw, false);
      r.stopped_early = json_cfg::get_bool(rj, "stopped_early", tw, false);
      t.runs.push_back(r);
    }
    res_.trials.push_back(std::move(t));
  }
}

void Tuner::save_state() {
  json trials = json::array();
  std::vector<int64_t> running_rung(res_.trials.size(), -1);
  for (const auto& j : running_) running_rung[(size_t)j.trial] = j.rung;
  for (const auto& t : res_.trials) {
    json runs = json::array();
    for (const auto& r : t.runs)
      runs.push_back({{"rung", r.rung},
                      {"steps", r.steps},
                      {"score", std::isfinite(r.score) ? json(r.score) : json(nullptr)},
                      {"seconds", r.seconds},
                      {"failed", r.failed},
                      {"stopped_early", r.stopped_early}});
    json tj = {{"id", t.id},       {"params", t.params},    {"flags", t.flags},
               {"dir", t.dir},     {"launches", t.launches}, {"runs", runs}};
    if (!t.error.empty()) tj["error"] = t.error;
    if (running_rung[(size_t)t.id] >= 0) tj["running_rung"] = running_rung[(size_t)t.id];
    trials.push_back(tj);
  }
  json sched = json::array();
  for (const auto& r : res_.schedule) sched.push_back({{"steps", r.steps}, {"trials", r.trials}});
  json st = {{"format", "xlstm-tune"}, {"version", 1},         {"settings", settings_json()},
             {"space", space_json_},   {"schedule", sched},    {"trials", trials},
             {"complete", res_.complete}};
  write_file_atomic(state_path_, st.dump(2) + "\n");
}

// The result that ranks trial t at rung k: its run of rung k, or the last run of a trial that
// stopped early before k (it keeps that score). nullptr when it has none (yet).
const TrialRun* Tuner::result_at(const Trial& t, int64_t k) const {
  for (const auto& r : t.runs)
    if (r.rung == k) return &r;
  if (!t.runs.empty() && t.runs.back().stopped_early && !t.runs.back().failed &&
      t.runs.back().rung < k)
    return &t.runs.back();
  return nullptr;
}

std::vector<int64_t> Tuner::ranked_at(const std::vector<int64_t>& entrants, int64_t k) const {
  std::vector<int64_t> ok;
  for (int64_t id : entrants) {
    const TrialRun* r = result_at(res_.trials[(size_t)id], k);
    if (r && !r->failed && std::isfinite(r->score)) ok.push_back(id);
  }
  std::stable_sort(ok.begin(), ok.end(), [&](int64_t a, int64_t b) {
    const double sa = result_at(res_.trials[(size_t)a], k)->score;
    const double sb = result_at(res_.trials[(size_t)b], k)->score;
    if (sa != sb) return better(sa, sb);
    return a < b;
  });
  return ok;
}

pid_t Tuner::launch(Trial& t, int64_t k) {
  const int64_t target = res_.schedule[(size_t)k].steps, R = cfg_.budget_steps;
  const int64_t have = checkpoint_step(t.dir);
  std::error_code ec;
  if (have < 0) {  // a fresh start: clear whatever an interrupted attempt left
    fs::remove_all(t.dir, ec);
  }
  fs::create_directories(t.dir, ec);
  XLSTM_CHECK(fs::is_directory(t.dir), IoError, t.dir, ": cannot create the trial directory (",
              ec.message(), ")");
  std::vector<std::string> args = {cfg_.exe, "train"};
  args.insert(args.end(), cfg_.base_args.begin(), cfg_.base_args.end());
  args.insert(args.end(), t.flags.begin(), t.flags.end());
  for (const std::string& a : {std::string("--out"), t.dir, std::string("--steps"),
                               std::to_string(R), std::string("--threads"),
                               std::to_string(cfg_.threads), std::string("--quiet")})
    args.push_back(a);
  if (target < R) args.insert(args.end(), {"--stop-at", std::to_string(target)});
  if (have >= 0) args.push_back("--resume");
  const std::string log = t.dir + "/log.txt";
  {
    std::ofstream lf(log, std::ios::app);
    lf << "$ " << shell_join(args) << "\n";
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string s = *e;
    if (s.rfind("OMP_NUM_THREADS=", 0) == 0 || s.rfind("OPENBLAS_NUM_THREADS=", 0) == 0) continue;
    env.push_back(s);
  }
  env.push_back("OMP_NUM_THREADS=" + std::to_string(cfg_.threads));
  env.push_back("OPENBLAS_NUM_THREADS=" + std::to_string(cfg_.threads));
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, cfg_.exe.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  XLSTM_CHECK(rc == 0, IoError, cfg_.exe, ": cannot start a trial (", std::strerror(rc), ")");
  ++t.launches;
  ++res_.jobs_run;
  return pid;
}

void Tuner::collect(Trial& t, int64_t k) {
  // The checkpoint already reached the rung's step (interrupted after the child finished).
  const int64_t target = res_.schedule[(size_t)k].steps;
  TrialRun r;
  r.rung = k;
  int64_t at = 0;
  try {
    r.score = read_trial_metric(t.dir, cfg_.metric, target, &at);
    r.steps = std::min(target, checkpoint_step(t.dir));
  } catch (const Error& e) {
    r.failed = true;
    r.score = std::nan("");
    t.error = e.what();
  }
  t.runs.push_back(r);
  ++rung_done_;
  save_state();
  TuneEvent ev;
  ev.kind = r.failed ? TuneEvent::Kind::Fail : TuneEvent::Kind::Collect;
  ev.rung = k, ev.rungs = (int64_t)res_.schedule.size(), ev.trial = t.id, ev.steps = r.steps;
  ev.score = r.score, ev.done = rung_done_, ev.total = rung_total_, ev.message = t.error;
  emit(ev);
}

void Tuner::finish(Job& j, int status) {
  Trial& t = res_.trials[(size_t)j.trial];
  const int64_t target = res_.schedule[(size_t)j.rung].steps;
  TrialRun r;
  r.rung = j.rung;
  r.seconds = std::chrono::duration<double>(Clock::now() - j.t0).count();
  const int64_t reached = checkpoint_step(t.dir);
  r.steps = std::max<int64_t>(0, reached);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    try {
      int64_t at = 0;
      r.score = read_trial_metric(t.dir, cfg_.metric, target, &at);
      if (reached < 0) r.steps = at;  // a task whose checkpoint has no state.json
      r.stopped_early = reached >= 0 && reached < target;
    } catch (const Error& e) {
      r.failed = true;
      t.error = e.what();
    }
  } else {
    r.failed = true;
    t.error = WIFSIGNALED(status) ? str("killed by signal ", WTERMSIG(status))
                                  : last_error_line(t.dir + "/log.txt");
  }
  if (r.failed) r.score = std::nan("");
  t.runs.push_back(r);
  ++jobs_finished_;
  ++rung_done_;
  TuneEvent ev;
  ev.kind = r.failed ? TuneEvent::Kind::Fail : TuneEvent::Kind::Finish;
  ev.rung = j.rung, ev.rungs = (int64_t)res_.schedule.size(), ev.trial = t.id;
  ev.steps = r.steps, ev.score = r.score, ev.seconds = r.seconds;
  ev.done = rung_done_, ev.total = rung_total_, ev.message = r.failed ? t.error : "";
  emit(ev);
}

void Tuner::kill_all() {
  for (auto& j : running_) ::kill(j.pid, SIGTERM);
  for (auto& j : running_) {
    int st = 0;
    ::waitpid(j.pid, &st, 0);
  }
  running_.clear();
}

void Tuner::run_rung(int64_t k, const std::vector<int64_t>& ids) {
  const int64_t target = res_.schedule[(size_t)k].steps;
  std::vector<int64_t> todo;
  for (int64_t id : ids) {
    const Trial& t = res_.trials[(size_t)id];
    if (!result_at(t, k)) todo.push_back(id);
  }
  rung_total_ = (int64_t)todo.size();
  rung_done_ = 0;
  size_t next = 0;
  while (next < todo.size() || !running_.empty()) {
    while (!stopping_ && next < todo.size() && (int64_t)running_.size() < cfg_.parallel) {
      Trial& t = res_.trials[(size_t)todo[next++]];
      if (checkpoint_step(t.dir) >= target) {
        collect(t, k);
        continue;
      }
      Job j;
      j.trial = t.id;
      j.rung = k;
      j.t0 = Clock::now();
      j.pid = launch(t, k);
      running_.push_back(j);
      save_state();
      TuneEvent ev;
      ev.kind = TuneEvent::Kind::Start;
      ev.rung = k, ev.rungs = (int64_t)res_.schedule.size(), ev.trial = t.id, ev.steps = target;
      ev.done = rung_done_, ev.total = rung_total_;
      emit(ev);
    }
    if (stopping_ && running_.empty()) return;
    bool any = false;
    for (size_t i = 0; i < running_.size();) {
      int st = 0;
      const pid_t p = ::waitpid(running_[i].pid, &st, WNOHANG);
      if (p == 0) {
        ++i;
        continue;
      }
      Job j = running_[i];
      running_.erase(running_.begin() + (std::ptrdiff_t)i);
      if (p < 0) st = 0x7f00;  // lost track of the child: report as failed
      finish(j, st);
      save_state();
      any = true;
      if (cfg_.stop_after_jobs > 0 && jobs_finished_ >= cfg_.stop_after_jobs) stopping_ = true;
    }
    if (!any && !running_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void Tuner::rank_final() {
  const int64_t K = (int64_t)res_.schedule.size() - 1;
  struct Key {
    int64_t id, rung;
    bool failed;
    double score;
  };
  std::vector<Key> keys;
  for (const auto& t : res_.trials) {
    Key k{t.id, reached_[(size_t)t.id], true, std::nan("")};
    if (!t.runs.empty()) {
      k.failed = t.runs.back().failed;
      k.score = t.runs.back().score;  // an early-stopped trial keeps its score in later rungs
    }
    keys.push_back(k);
  }
  std::stable_sort(keys.begin(), keys.end(), [&](const Key& a, const Key& b) {
    if (a.failed != b.failed) return !a.failed;
    if (a.rung != b.rung) return a.rung > b.rung;
    if (!a.failed && a.score != b.score) return better(a.score, b.score);
    return a.id < b.id;
  });
  res_.ranking.clear();
  for (size_t i = 0; i < keys.size(); ++i) {
    const Trial& t = res_.trials[(size_t)keys[i].id];
    TuneRanked r;
    r.rank = (int64_t)i + 1;
    r.trial = t.id;
    r.steps = t.runs.empty() ? 0 : t.runs.back().steps;
    r.score = keys[i].failed ? std::nan("") : keys[i].score;
    if (t.runs.empty()) r.status = "not run";
    else if (keys[i].failed) r.status = "failed";
    else if (t.runs.back().stopped_early) r.status = "early stopped";
    else if (keys[i].rung == K) r.status = "finished";
    else r.status = str("pruned after rung ", keys[i].rung + 1);
    res_.ranking.push_back(r);
  }
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string r = "\"";
  for (char c : s) r += c == '"' ? std::string("\"\"") : std::string(1, c);
  return r + "\"";
}

std::string value_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

void Tuner::write_outputs() {
  const int64_t R = cfg_.budget_steps;
  res_.results_csv = cfg_.out + "/results.csv";
  std::ostringstream csv;
  csv << "rank,trial,status,rung,steps," << csv_cell(cfg_.metric) << ",seconds";
  for (const auto& p : space_.params) csv << "," << csv_cell(p.key);
  csv << ",dir,error\n";
  for (const auto& r : res_.ranking) {
    const Trial& t = res_.trials[(size_t)r.trial];
    double secs = 0;
    for (const auto& run : t.runs) secs += run.seconds;
    char sb[64], tb[32];
    if (std::isfinite(r.score)) std::snprintf(sb, sizeof sb, "%.17g", r.score);
    else sb[0] = 0;
    std::snprintf(tb, sizeof tb, "%.2f", secs);
    csv << r.rank << "," << t.id << "," << csv_cell(r.status) << ","
        << reached_[(size_t)t.id] + 1 << "," << r.steps << "," << sb << "," << tb;
    for (const auto& p : space_.params)
      csv << "," << csv_cell(t.params.contains(p.key) ? value_text(t.params[p.key]) : "");
    csv << "," << csv_cell(t.dir) << "," << csv_cell(r.status == "failed" ? t.error : "") << "\n";
  }
  write_file_atomic(res_.results_csv, csv.str());

  res_.best_json = cfg_.out + "/best.json";
  const TuneRanked& best = res_.ranking.front();
  if (best.status == "failed" || best.status == "not run") return;
  const Trial& t = res_.trials[(size_t)best.trial];
  res_.retrain_args = cfg_.base_args;
  res_.retrain_args.insert(res_.retrain_args.end(), t.flags.begin(), t.flags.end());
  res_.retrain_args.push_back("--steps");
  res_.retrain_args.push_back(std::to_string(R));
  std::vector<std::string> cmd = {cfg_.exe, "train"};
  cmd.insert(cmd.end(), res_.retrain_args.begin(), res_.retrain_args.end());
  cmd.insert(cmd.end(), {"--out", cfg_.out + "/best-run"});
  json b = {{"metric", cfg_.metric},
            {"goal", cfg_.maximize ? "max" : "min"},
            {"value", best.score},
            {"trial", t.id},
            {"steps", best.steps},
            {"status", best.status},
            {"params", t.params},
            {"args", res_.retrain_args},
            {"threads", cfg_.threads},
            {"run_dir", t.dir},
            {"command", shell_join(cmd)}};
  try {  // the trained model's full config, for `xlstm train --config`
    const json ck = json_cfg::read_file(t.dir + "/checkpoint/config.json");
    if (ck.contains("model")) b["model"] = ck["model"];
  } catch (const Error&) {
  }
  write_file_atomic(res_.best_json, b.dump(2) + "\n");
}

TuneResult Tuner::run() {
  XLSTM_CHECK(!cfg_.out.empty(), ValueError, "--out DIR is required");
  state_path_ = cfg_.out + "/tune.json";
  res_.tune_json = state_path_;
  if (cfg_.resume) load_resumed();
  validate();
  res_.schedule = halving_schedule(cfg_.trials, cfg_.budget_steps, cfg_.eta, cfg_.min_steps);
  if (!cfg_.resume) init_fresh();
  const int64_t K = (int64_t)res_.schedule.size() - 1;
  reached_.assign((size_t)cfg_.trials, -1);
  try {
    std::vector<int64_t> entrants;
    for (int64_t i = 0; i < cfg_.trials; ++i) entrants.push_back(i);
    for (int64_t k = 0; k <= K && !entrants.empty(); ++k) {
      for (int64_t id : entrants) reached_[(size_t)id] = k;
      run_rung(k, entrants);
      if (stopping_) {
        save_state();
        rank_final();
        return res_;
      }
      const std::vector<int64_t> ranked = ranked_at(entrants, k);
      if (k == 0 && ranked.empty()) {
        const Trial& t0 = res_.trials.front();
        throw ValueError(str("all ", cfg_.trials, " trials failed; trial 0: ", t0.error,
                             " (log: ", t0.dir, "/log.txt); hint: check the train flags, then "
                             "start again with another --out"));
      }
      TuneEvent ev;
      ev.kind = TuneEvent::Kind::RungDone;
      ev.rung = k, ev.rungs = K + 1, ev.steps = res_.schedule[(size_t)k].steps;
      ev.done = (int64_t)ranked.size(), ev.total = (int64_t)entrants.size();
      if (!ranked.empty()) {
        ev.trial = ranked.front();
        ev.score = result_at(res_.trials[(size_t)ranked.front()], k)->score;
      }
      emit(ev);
      if (k < K) {
        const size_t keep = std::min(ranked.size(), (size_t)res_.schedule[(size_t)k + 1].trials);
        entrants.assign(ranked.begin(), ranked.begin() + (std::ptrdiff_t)keep);
      }
    }
  } catch (...) {
    kill_all();
    throw;
  }
  res_.complete = true;
  rank_final();
  write_outputs();
  save_state();
  return res_;
}

}  // namespace

TuneResult run_tune(const TuneConfig& cfg, const FlagLookup& lookup,
                    const std::function<void(const TuneEvent&)>& on_event) {
  Tuner t(cfg, lookup, on_event);
  return t.run();
}

}  // namespace xlstm
