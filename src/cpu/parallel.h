// Parallel loops for ops that run both on whole batches (training, prefill) and on one token
// (decode). An OpenMP construct whose if() clause is false, or whose team has one thread, still
// enters libgomp and makes a futex syscall on the way out (~1.3 us here, measured: a one-token
// step of a small xLSTM made ~130 of them per token). These helpers test first and run small
// loops inline on the calling thread, exactly as a team of one would (thread 0 of 1), so the
// results do not change.
#pragma once
#include <omp.h>

#include <cstdint>

namespace xlstm {

// True when a parallel region would get more than one thread: `worth` (the caller's size test),
// not already inside an active region, and more than one thread allowed.
inline bool go_parallel(bool worth) {
  return worth && omp_get_max_threads() > 1 && !omp_in_parallel();
}

// body(i) for i in [0, n): split statically over the threads when go_parallel(worth), else in
// order on the calling thread.
template <class F>
inline void parallel_for(int64_t n, bool worth, F&& body) {
  if (!go_parallel(worth && n > 1)) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) body(i);
}

// body(thread, threads) on every thread of a region when go_parallel(worth), else body(0, 1).
// The body must take its thread number and count from the arguments: inside an enclosing
// region omp_get_thread_num() / omp_get_num_threads() describe that region's team.
template <class F>
inline void parallel_region(bool worth, F&& body) {
  if (!go_parallel(worth)) return body(0, 1);
#pragma omp parallel
  body(omp_get_thread_num(), omp_get_num_threads());
}

// While alive, when `alone` and not inside a region, OpenMP regions opened by this thread get
// one thread: for library calls (oneDNN reads the thread count at every call) on products too
// small to pay for a fork/join of the team (3-4 us with spinning threads, ~22 us under
// OMP_WAIT_POLICY=passive, here).
class OneThreadScope {
 public:
  explicit OneThreadScope(bool alone)
      : team_(alone && !omp_in_parallel() ? omp_get_max_threads() : 1) {
    if (team_ > 1) omp_set_num_threads(1);
  }
  ~OneThreadScope() {
    if (team_ > 1) omp_set_num_threads(team_);
  }
  OneThreadScope(const OneThreadScope&) = delete;
  OneThreadScope& operator=(const OneThreadScope&) = delete;

 private:
  int team_;
};

// Products below this many flops run on one thread (a decode step's GEMV of a small model).
constexpr double kSerialFlops = double(1 << 20);

}  // namespace xlstm
