// Successive halving (the inner loop of Hyperband, Li et al. 2018): all trials start on a small
// step budget, the best 1/eta of them continue on an eta-times larger one, until the survivors
// have trained for the full budget.
//
// With n trials, full budget R steps, reduction factor eta >= 2 and smallest budget r_min:
//   K        = the largest k with eta^k <= n and R / eta^k >= r_min   (K + 1 rungs)
//   steps_k  = floor(R / eta^(K-k))       (steps_K = R; strictly increasing)
//   trials_k = floor(n / eta^k)           (trials entering rung k; trials_0 = n, >= 1)
// e.g. n = 27, R = 81, eta = 3: (3 steps, 27 trials) (9, 9) (27, 3) (81, 1).
// A rung's budget is the total step count a trial has reached at its end (a promoted trial
// continues from its checkpoint; it does not start over).
#pragma once
#include <cstdint>
#include <vector>

namespace xlstm {

struct Rung {
  int64_t steps = 0;   // cumulative optimizer steps at the end of the rung
  int64_t trials = 0;  // trials that train in this rung
};

// ValueError for n < 1, R < 1, eta < 2, r_min < 1 or r_min > R.
std::vector<Rung> halving_schedule(int64_t n, int64_t max_steps, int64_t eta, int64_t min_steps);

}  // namespace xlstm
