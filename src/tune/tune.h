// Hyperparameter search behind `xlstm tune`: seeded random search over a SearchSpace, pruned
// by successive halving (tune/halving.h), with every trial an `xlstm train` child process.
//
// Trial i draws its flags from the space (one Rng seeded with `seed`, trials in order) and
// trains in <out>/trials/<iii>/ as
//     <exe> train <base_args> <drawn flags> --out <dir> --steps R [--stop-at steps_0] --threads T -q
// A promoted trial continues from its checkpoint with the same command plus --resume and the
// next rung's --stop-at. The learning-rate schedule is therefore always that of the full
// budget R, and a trial that survives to the end has trained exactly like one uninterrupted
// R-step run (the trainer's resume is bit-identical). Its score at a rung is the last value of
// `metric` logged at or before the rung's step in <dir>/metrics.jsonl (the trainer evaluates at
// every stop).
//
// At most `parallel` children run at once (each with `threads` OpenMP/BLAS threads). A rung
// ends when all its trials have finished; the best trials_{k+1} by score (ties: lower trial id)
// go on. A trial whose child fails (non-zero exit, e.g. divergence or a bad flag combination)
// gets no score, is never promoted and is reported with the child's last error line; a trial
// that stopped before its rung's step (--patience) keeps its last score and is not resumed.
//
// State: <out>/tune.json, rewritten atomically after every trial event (started, finished,
// failed). `resume` = true reloads it (settings left at their TuneConfig defaults are taken from
// it, the others must match it; parallel and threads may change), keeps every finished result and
// runs only what is missing; a trial interrupted mid-rung continues from its last checkpoint
// (or is collected without running when its checkpoint already reached the rung's step).
// At the end: <out>/results.csv (ranking, see TuneResult) and <out>/best.json.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tune/halving.h"
#include "tune/space.h"

namespace xlstm {

struct TuneConfig {
  std::string space_path;             // the search space JSON (read at start, kept in tune.json)
  std::string out;                    // the tune directory
  std::string exe;                    // the `xlstm` binary the trials run
  std::vector<std::string> base_args; // train flags every trial gets (--data, --model, ...)
  int64_t trials = 0;
  int64_t budget_steps = 0;           // R: the full budget of a trial
  int64_t eta = 3;
  int64_t min_steps = 1;              // smallest rung budget
  int64_t parallel = 1;               // P: trials at once
  int64_t threads = 1;                // T: threads per trial
  uint64_t seed = 0;                  // sampling seed (the trials' own --seed is a train flag)
  std::string metric = "val_loss";    // the key in the trial's metrics.jsonl
  bool maximize = false;              // higher metric is better (accuracy, F1, ...)
  bool resume = false;
  int64_t stop_after_jobs = 0;        // stop after this many trial runs as if interrupted (tests)
};

// One finished piece of work on a trial: a rung's training run.
struct TrialRun {
  int64_t rung = 0;
  int64_t steps = 0;      // steps the trial has reached (< the rung's budget after early stopping)
  double score = 0;       // NaN when failed
  double seconds = 0;
  bool failed = false;
  bool stopped_early = false;
};

struct Trial {
  int64_t id = 0;
  nlohmann::json params;          // the drawn values
  std::vector<std::string> flags; // params as train flags
  std::vector<TrialRun> runs;     // one per rung it trained in, in order
  int64_t launches = 0;           // child processes started for it (a resumed rung counts again)
  std::string error;              // the child's last error line when failed
  std::string dir;                // <out>/trials/<iii>
  bool failed() const { return !runs.empty() && runs.back().failed; }
};

struct TuneEvent {
  enum class Kind { Start, Finish, Fail, Collect, RungDone } kind = Kind::Start;
  int64_t rung = 0, rungs = 0, trial = -1, steps = 0;
  double score = 0, seconds = 0;
  int64_t done = 0, total = 0;    // jobs of this rung finished / to do
  std::string message;            // Fail: the error line
};

struct TuneRanked {
  int64_t rank = 0;               // 1 = best
  int64_t trial = 0;              // index into TuneResult::trials (= the trial id)
  std::string status;             // "finished", "stopped at rung k", "early stopped", "failed"
  int64_t steps = 0;
  double score = 0;               // NaN for failed trials
};

struct TuneResult {
  std::vector<Rung> schedule;
  std::vector<Trial> trials;
  // Best first: trials that reached a later rung before those stopped earlier; within a rung
  // by the score there (lower first, or higher with maximize; ties by trial id); failed last.
  std::vector<TuneRanked> ranking;
  bool complete = false;          // false when stopped by stop_after_jobs
  std::string results_csv, best_json, tune_json;
  std::vector<std::string> retrain_args;  // train flags that re-train the best trial (no --out)
  int64_t jobs_run = 0;           // child processes started by this call
};

// Validates the config (ValueError naming the flag), runs or resumes the search, writes
// tune.json / results.csv / best.json. `lookup` tells which train flags exist (for the space).
// Throws ValueError when every trial failed (with the first error), IoError for files.
TuneResult run_tune(const TuneConfig& cfg, const FlagLookup& lookup,
                    const std::function<void(const TuneEvent&)>& on_event);

// The score of a trial directory: the last finite `metric` in <dir>/metrics.jsonl with step <=
// `max_step`, and that row's step. IoError/ValueError naming the file when missing.
double read_trial_metric(const std::string& dir, const std::string& metric, int64_t max_step,
                         int64_t* step_out);

// CPUs this process may run on (sched_getaffinity).
int64_t available_cores();

// A command line for display: arguments quoted for a POSIX shell where needed.
std::string shell_join(const std::vector<std::string>& args);

}  // namespace xlstm
