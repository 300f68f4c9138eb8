// Rng state <-> I64 tensor of shape (6): the 4 state words, the cached normal's bits and the
// has-spare flag. For checkpoints (trainer RNGs, batch samplers).
#pragma once
#include <string>

#include "xlstm/rng.h"
#include "xlstm/tensor.h"

namespace xlstm {

Tensor rng_state_tensor(const Rng& rng);
// ValueError naming `where` when the tensor is not I64 (6) or not a valid state.
void load_rng_state(Rng& rng, const Tensor& t, const std::string& where);

}  // namespace xlstm
