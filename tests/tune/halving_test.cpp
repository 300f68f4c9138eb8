// Successive-halving schedules: hand-computed cases and the defining properties on a sweep.
#include <gtest/gtest.h>

#include <cmath>

#include "tune/halving.h"
#include "xlstm/error.h"

using namespace xlstm;

namespace {

std::vector<std::pair<int64_t, int64_t>> pairs(const std::vector<Rung>& r) {
  std::vector<std::pair<int64_t, int64_t>> p;
  for (auto& g : r) p.push_back({g.steps, g.trials});
  return p;
}

using P = std::vector<std::pair<int64_t, int64_t>>;

}  // namespace

TEST(Halving, HandComputed) {
  // (steps, trials) per rung, worked out on paper from the definition in halving.h.
  EXPECT_EQ(pairs(halving_schedule(27, 81, 3, 1)), (P{{3, 27}, {9, 9}, {27, 3}, {81, 1}}));
  EXPECT_EQ(pairs(halving_schedule(4, 9, 3, 1)), (P{{3, 4}, {9, 1}}));
  // min_steps caps the depth: 100/8 = 12 < 20, so only two halvings.
  EXPECT_EQ(pairs(halving_schedule(10, 100, 2, 20)), (P{{25, 10}, {50, 5}, {100, 2}}));
  EXPECT_EQ(pairs(halving_schedule(1, 50, 3, 1)), (P{{50, 1}}));
  // the budget caps the depth: 10 steps allow 1, 3, 10.
  EXPECT_EQ(pairs(halving_schedule(100, 10, 3, 1)), (P{{1, 100}, {3, 33}, {10, 11}}));
  EXPECT_EQ(pairs(halving_schedule(5, 7, 5, 1)), (P{{1, 5}, {7, 1}}));
  // floors: 30/9 = 3, 30/3 = 10; 20 trials -> 6 -> 2.
  EXPECT_EQ(pairs(halving_schedule(20, 30, 3, 1)), (P{{3, 20}, {10, 6}, {30, 2}}));
  // fewer trials than eta: no halving at all.
  EXPECT_EQ(pairs(halving_schedule(2, 30, 3, 1)), (P{{30, 2}}));
}

TEST(Halving, PropertiesOnASweep) {
  for (int64_t n = 1; n <= 40; n += 3)
    for (int64_t R : {1, 2, 5, 9, 30, 100, 1000})
      for (int64_t eta : {2, 3, 4})
        for (int64_t rmin : {1, 2, 7}) {
          if (rmin > R) continue;
          const auto s = halving_schedule(n, R, eta, rmin);
          const int64_t K = (int64_t)s.size() - 1;
          SCOPED_TRACE(testing::Message() << "n=" << n << " R=" << R << " eta=" << eta
                                          << " rmin=" << rmin);
          ASSERT_GE(K, 0);
          EXPECT_EQ(s.back().steps, R);
          EXPECT_EQ(s.front().trials, n);
          EXPECT_GE(s.front().steps, rmin);
          double p = 1;
          for (int64_t k = 0; k <= K; ++k) {
            p = std::pow((double)eta, (double)k);
            EXPECT_EQ(s[(size_t)k].trials, (int64_t)std::floor(n / p + 1e-9));
            EXPECT_GE(s[(size_t)k].trials, 1);
            EXPECT_EQ(s[(size_t)k].steps,
                      (int64_t)std::floor(R / std::pow((double)eta, (double)(K - k)) + 1e-9));
            if (k > 0) {
              EXPECT_GT(s[(size_t)k].steps, s[(size_t)k - 1].steps);
            }
          }
          // maximal: one more rung would leave no trial or a first budget below rmin
          const double q = std::pow((double)eta, (double)(K + 1));
          EXPECT_TRUE(n / q < 1 || std::floor(R / q) < rmin);
        }
}

TEST(Halving, RejectsBadArguments) {
  EXPECT_THROW(halving_schedule(0, 10, 3, 1), ValueError);
  EXPECT_THROW(halving_schedule(4, 0, 3, 1), ValueError);
  EXPECT_THROW(halving_schedule(4, 10, 1, 1), ValueError);
  EXPECT_THROW(halving_schedule(4, 10, 3, 0), ValueError);
  EXPECT_THROW(halving_schedule(4, 10, 3, 11), ValueError);
  try {
    halving_schedule(4, 10, 1, 1);
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("--eta"), std::string::npos) << e.what();
  }
}
