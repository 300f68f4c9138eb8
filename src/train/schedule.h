// Learning-rate schedules, a pure function of the step (so a resumed run needs no state).
//
// Cosine (default): for step s = 0, 1, ... (the step about to be taken, 0-based)
//   s <  W:          lr_s = warmup_floor + (lr - warmup_floor) * (s + 1) / W
//   W <= s < S:      lr_s = min_lr + (lr - min_lr) * (1 + cos(pi * (s - W) / (S - W))) / 2
//   s >= S:          lr_s = min_lr
// with W = warmup_steps, S = total_steps. The warm-up reaches `lr` on its last step (s = W-1)
// and the first step never uses lr = 0 (unless lr itself is 0). W = 0 disables warm-up.
// Constant: the same warm-up, then lr forever.
#pragma once
#include <cstdint>
#include <string>

namespace xlstm {

enum class ScheduleKind { Cosine, Constant };

// "cosine" | "constant" -> kind; ValueError otherwise.
ScheduleKind parse_schedule_kind(const std::string& s);
const char* schedule_kind_name(ScheduleKind k);

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::Cosine;
  double lr = 1e-3;            // peak learning rate
  double min_lr = 0.0;         // cosine end value
  double warmup_floor = 0.0;   // warm-up start value
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;     // cosine: decays to min_lr at this step
};

class LrSchedule {
 public:
  // ValueError for negative/non-finite rates, min_lr or warmup_floor > lr, warmup_steps < 0,
  // and (cosine) total_steps < warmup_steps or total_steps < 1.
  explicit LrSchedule(const ScheduleConfig& cfg);
  double at(int64_t step) const;  // step >= 0 (ValueError otherwise)
  const ScheduleConfig& config() const { return cfg_; }

 private:
  ScheduleConfig cfg_;
};

}  // namespace xlstm
