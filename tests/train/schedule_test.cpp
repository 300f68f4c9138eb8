// Learning-rate schedules (train/schedule.h): warm-up, cosine decay, constant, validation.
#include <gtest/gtest.h>

#include <cmath>

#include "train/schedule.h"
#include "xlstm/error.h"

using namespace xlstm;

TEST(Schedule, WarmupThenCosine) {
  ScheduleConfig c;
  c.lr = 1e-3, c.min_lr = 1e-4, c.warmup_steps = 10, c.total_steps = 110;
  LrSchedule s(c);
  EXPECT_DOUBLE_EQ(s.at(0), 1e-4 * 1.0);   // (0+1)/10 of lr from floor 0
  EXPECT_DOUBLE_EQ(s.at(4), 5e-4);
  EXPECT_DOUBLE_EQ(s.at(9), 1e-3);         // warm-up ends at lr
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);        // cosine starts at lr
  EXPECT_NEAR(s.at(60), 1e-4 + 0.9e-3 * 0.5, 1e-15);  // half way
  EXPECT_NEAR(s.at(109), 1e-4 + 0.9e-3 * 0.5 * (1 + std::cos(M_PI * 99 / 100)), 1e-15);
  EXPECT_DOUBLE_EQ(s.at(110), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(100000), 1e-4);
  for (int64_t t = 11; t < 110; ++t) EXPECT_LT(s.at(t), s.at(t - 1)) << t;  // monotone decay
  for (int64_t t = 1; t < 10; ++t) EXPECT_GT(s.at(t), s.at(t - 1)) << t;   // monotone warm-up
}

TEST(Schedule, WarmupFloorAndNoWarmup) {
  ScheduleConfig c;
  c.lr = 1.0, c.warmup_floor = 0.2, c.warmup_steps = 4, c.total_steps = 4;
  LrSchedule s(c);
  EXPECT_DOUBLE_EQ(s.at(0), 0.4);
  EXPECT_DOUBLE_EQ(s.at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.at(4), 0.0);  // total == warmup: straight to min_lr
  c.warmup_steps = 0, c.total_steps = 2, c.warmup_floor = 0;
  LrSchedule n(c);
  EXPECT_DOUBLE_EQ(n.at(0), 1.0);
  EXPECT_DOUBLE_EQ(n.at(1), 0.5);
  EXPECT_DOUBLE_EQ(n.at(2), 0.0);
}

TEST(Schedule, Constant) {
  ScheduleConfig c;
  c.kind = ScheduleKind::Constant, c.lr = 3e-4, c.warmup_steps = 3;  // total_steps unused
  LrSchedule s(c);
  EXPECT_DOUBLE_EQ(s.at(0), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(2), 3e-4);
  EXPECT_DOUBLE_EQ(s.at(1000000), 3e-4);
}

TEST(Schedule, Validation) {
  auto bad = [](auto f) {
    ScheduleConfig c;
    c.total_steps = 10;
    f(c);
    EXPECT_THROW(LrSchedule{c}, ValueError);
  };
  bad([](ScheduleConfig& c) { c.lr = -1; });
  bad([](ScheduleConfig& c) { c.lr = NAN; });
  bad([](ScheduleConfig& c) { c.min_lr = 1.0; });
  bad([](ScheduleConfig& c) { c.warmup_floor = 1.0; });
  bad([](ScheduleConfig& c) { c.warmup_steps = -1; });
  bad([](ScheduleConfig& c) { c.warmup_steps = 11; });
  bad([](ScheduleConfig& c) { c.total_steps = 0; });
  ScheduleConfig c;
  c.total_steps = 10;
  EXPECT_THROW(LrSchedule(c).at(-1), ValueError);
  EXPECT_EQ(parse_schedule_kind("cosine"), ScheduleKind::Cosine);
  EXPECT_EQ(parse_schedule_kind("constant"), ScheduleKind::Constant);
  EXPECT_THROW(parse_schedule_kind("linear"), ValueError);
}
