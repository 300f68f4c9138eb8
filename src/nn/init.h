// Parameter initialisers shared by the modules (the official xlstm inits are built from these).
// Values are drawn in element order from `rng` in double and stored in the tensor's dtype, so
// float and double modules initialised from the same seed hold the same values.
#pragma once
#include <cmath>
#include <cstdint>

#include "xlstm/rng.h"
#include "xlstm/tensor.h"

namespace xlstm {

// N(0, std^2) into every element of t (F32 or F64).
void init_normal(Tensor& t, Rng& rng, double std);
// U(lo, hi) into every element of t (F32 or F64).
void init_uniform(Tensor& t, Rng& rng, double lo, double hi);

// xlstm small_init: std = sqrt(2 / (5 dim)).
inline double small_init_std(int64_t dim) { return std::sqrt(2.0 / (5.0 * (double)dim)); }
// xlstm wang_init: std = 2 / (num_blocks sqrt(dim)).
inline double wang_init_std(int64_t dim, int64_t num_blocks) {
  return 2.0 / ((double)num_blocks * std::sqrt((double)dim));
}

}  // namespace xlstm
