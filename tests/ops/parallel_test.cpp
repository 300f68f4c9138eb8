// cpu/parallel.h: parallel_for visits every index once, on the team when worth it and inline
// (the calling thread, in order) otherwise or inside a region; parallel_region hands each body
// its own thread number and count (0 of 1 inline, also inside an enclosing region, where
// omp_get_thread_num() describes the outer team); OneThreadScope limits regions opened while it
// lives and restores the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <vector>

#include "cpu/parallel.h"

using namespace xlstm;

namespace {

struct Threads {  // sets the thread count for a test, restores it after
  int saved = omp_get_max_threads();
  explicit Threads(int n) { omp_set_num_threads(n); }
  ~Threads() { omp_set_num_threads(saved); }
};

}  // namespace

TEST(Parallel, ForVisitsEveryIndexOnce) {
  for (int threads : {1, 2})
    for (int64_t n : {0, 1, 5, 1000})
      for (bool worth : {false, true}) {
        Threads t(threads);
        std::vector<std::atomic<int>> seen((size_t)n);
        std::atomic<int> teams{0}, inline_calls{0};
        parallel_for(n, worth, [&](int64_t i) {
          seen[(size_t)i]++;
          if (omp_in_parallel()) teams++;
          else inline_calls++;
        });
        for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen[(size_t)i], 1) << i;
        const bool team = worth && threads > 1 && n > 1;
        EXPECT_EQ(teams.load(), team ? (int)n : 0) << "threads " << threads << " n " << n;
        EXPECT_EQ(inline_calls.load(), team ? 0 : (int)n);
      }
}

TEST(Parallel, ForInsideARegionRunsInline) {
  Threads t(2);
  std::vector<int> order;
#pragma omp parallel num_threads(2)
  {
    if (omp_get_thread_num() == 1) {
      parallel_for(6, true, [&](int64_t i) {
        order.push_back((int)i);  // no other thread may run this body: no race
        EXPECT_EQ(omp_get_thread_num(), 1);
      });
    }
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5}));
}

TEST(Parallel, RegionPassesItsOwnThreadNumbers) {
  Threads t(2);
  std::vector<std::atomic<int>> hit(2);
  parallel_region(true, [&](int th, int nth) {
    EXPECT_EQ(nth, 2);
    hit[(size_t)th]++;
  });
  EXPECT_EQ(hit[0], 1);
  EXPECT_EQ(hit[1], 1);
  int calls = 0;
  parallel_region(false, [&](int th, int nth) {
    EXPECT_EQ(th, 0);
    EXPECT_EQ(nth, 1);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
  // inside an enclosing region: (0, 1) for each caller, although omp_get_thread_num() is 1 there
  std::atomic<int> inner{0};
#pragma omp parallel num_threads(2)
  parallel_region(true, [&](int th, int nth) {
    EXPECT_EQ(th, 0);
    EXPECT_EQ(nth, 1);
    inner++;
  });
  EXPECT_EQ(inner.load(), 2);
}

TEST(Parallel, OneThreadScopeLimitsAndRestores) {
  Threads t(2);
  {
    const OneThreadScope one(true);
    EXPECT_EQ(omp_get_max_threads(), 1);
    int n = 0;
#pragma omp parallel
    {
#pragma omp atomic
      n++;
    }
    EXPECT_EQ(n, 1);
  }
  EXPECT_EQ(omp_get_max_threads(), 2);
  {
    const OneThreadScope none(false);
    EXPECT_EQ(omp_get_max_threads(), 2);
  }
  EXPECT_EQ(omp_get_max_threads(), 2);
}
