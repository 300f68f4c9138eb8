// Small helpers shared by the subcommands.
#pragma once
#include <omp.h>

#include <cstdio>
#include <initializer_list>
#include <string>

namespace xlstm::cli {

// Applies --threads (0 = leave OMP_NUM_THREADS / all cores).
inline void set_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

// "1h02m", "3m05s", "12s"
inline std::string fmt_duration(double s) {
  if (!(s >= 0)) return "?";
  long t = (long)(s + 0.5);
  char b[32];
  if (t >= 3600) std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(b, sizeof b, "%lds", t);
  return b;
}

// The escapes \n, \t and \\ in a flag value (e.g. --doc-sep '\n\n') -> the characters.
inline std::string unescape_flag(const std::string& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 'n' || s[i + 1] == 't' || s[i + 1] == '\\')) {
      r += s[i + 1] == 'n' ? '\n' : s[i + 1] == 't' ? '\t' : '\\';
      ++i;
    } else {
      r += s[i];
    }
  }
  return r;
}

// The training flags every task shares, from the parsed TrainConfig `t` into a task's config
// `c` (forecast, classify): optimizer, schedule, min_lr, clip, steps, minutes and seed always;
// lr, weight_decay, warmup, eval_every, log_every and patience only where given(flag) (each
// task keeps its own defaults for those).
template <class TrainCfg, class Given, class TaskCfg>
void copy_common_train_flags(const TrainCfg& t, const Given& given, TaskCfg& c) {
  c.optimizer = t.optimizer;
  c.schedule = t.schedule;
  c.min_lr = t.min_lr;
  c.clip = t.clip;
  c.steps = t.steps;
  c.minutes = t.minutes;
  c.seed = t.seed;
  if (given("--lr")) c.lr = t.lr;
  if (given("--weight-decay")) c.weight_decay = t.weight_decay;
  if (given("--warmup")) c.warmup = t.warmup;
  if (given("--eval-every")) c.eval_every = t.eval_every;
  if (given("--log-every")) c.log_every = t.log_every;
  if (given("--patience")) c.patience = t.patience;
}

// --resume takes every setting from the run's checkpoint, as the language-model task does (so
// the original command line plus --resume continues a run, as `xlstm tune` does): the flags
// among `task_flags` and the shared model / training flags that were given are named in a note
// on stderr (unless quiet), not applied. (--steps is not among them: a larger one extends the
// run.)
template <class Given>
void note_flags_ignored_on_resume(const Given& given, std::initializer_list<const char*> task_flags,
                                  const std::string& out, bool quiet) {
  std::string ignored;
  auto check = [&](const char* flag) {
    if (given(flag)) ignored += std::string(ignored.empty() ? "" : ", ") + flag;
  };
  for (const char* f : task_flags) check(f);
  for (const char* f : {"--model", "--config", "--width", "--blocks", "--heads", "--context",
                        "--dropout", "--slstm-at", "--batch-size", "--minutes",
                        "--optimizer", "--schedule", "--lr", "--min-lr", "--weight-decay",
                        "--warmup", "--clip", "--eval-every", "--log-every", "--patience",
                        "--seed", "--val-fraction"})
    check(f);
  if (!ignored.empty() && !quiet)
    std::fprintf(stderr, "note: --resume continues the run with the settings in %s/checkpoint; "
                 "ignored: %s\n", out.c_str(), ignored.c_str());
}

}  // namespace xlstm::cli
