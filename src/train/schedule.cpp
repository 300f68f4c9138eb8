#include "train/schedule.h"

#include <cmath>

#include "xlstm/error.h"

namespace xlstm {

ScheduleKind parse_schedule_kind(const std::string& s) {
  if (s == "cosine") return ScheduleKind::Cosine;
  if (s == "constant") return ScheduleKind::Constant;
  throw ValueError(str("[schedule] unknown lr schedule '", s, "'; choose cosine or constant"));
}

const char* schedule_kind_name(ScheduleKind k) {
  return k == ScheduleKind::Cosine ? "cosine" : "constant";
}

LrSchedule::LrSchedule(const ScheduleConfig& c) : cfg_(c) {
  auto ok = [](double x) { return std::isfinite(x) && x >= 0; };
  XLSTM_CHECK(ok(c.lr), ValueError, "[schedule] lr must be >= 0, got ", c.lr);
  XLSTM_CHECK(ok(c.min_lr) && c.min_lr <= c.lr, ValueError, "[schedule] min_lr must be in [0, lr=",
              c.lr, "], got ", c.min_lr);
  XLSTM_CHECK(ok(c.warmup_floor) && c.warmup_floor <= c.lr, ValueError,
              "[schedule] warmup floor must be in [0, lr=", c.lr, "], got ", c.warmup_floor);
  XLSTM_CHECK(c.warmup_steps >= 0, ValueError, "[schedule] warmup_steps must be >= 0, got ",
              c.warmup_steps);
  if (c.kind == ScheduleKind::Cosine) {
    XLSTM_CHECK(c.total_steps >= 1, ValueError,
                "[schedule] cosine schedule needs total_steps >= 1, got ", c.total_steps);
    XLSTM_CHECK(c.total_steps >= c.warmup_steps, ValueError, "[schedule] warmup_steps (",
                c.warmup_steps, ") must not exceed total_steps (", c.total_steps, ")");
  }
}

double LrSchedule::at(int64_t s) const {
  XLSTM_CHECK(s >= 0, ValueError, "[schedule] step must be >= 0, got ", s);
  const auto& c = cfg_;
  if (s < c.warmup_steps)
    return c.warmup_floor + (c.lr - c.warmup_floor) * (double)(s + 1) / (double)c.warmup_steps;
  if (c.kind == ScheduleKind::Constant) return c.lr;
  if (s >= c.total_steps) return c.min_lr;
  const double frac = (double)(s - c.warmup_steps) / (double)(c.total_steps - c.warmup_steps);
  return c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + std::cos(M_PI * frac));
}

}  // namespace xlstm
