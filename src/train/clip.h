// Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_ with norm_type = 2):
//   norm = sqrt(sum over all gradients of g^2)      (accumulated in double)
//   if max_norm > 0 and norm > max_norm: every g *= max_norm / (norm + 1e-6)
// A non-finite norm (NaN/Inf in some gradient) leaves the gradients untouched and is reported
// in the result, naming the first parameter with a non-finite gradient, so the trainer can stop
// with a clear message.
#pragma once
#include <string>
#include <vector>

#include "nn/module.h"

namespace xlstm {

struct ClipResult {
  double norm = 0;         // pre-clip global L2 norm
  bool finite = true;      // false: norm is NaN/Inf, nothing was scaled
  bool clipped = false;    // gradients were scaled
  std::string bad_param;   // first parameter whose gradient holds NaN/Inf (when !finite)
};

// Global L2 norm of all gradients (double accumulation; deterministic for a fixed thread count).
double grad_global_norm(const std::vector<ParamRef>& params);

// Clips in place; max_norm <= 0 only measures. F32 and F64 gradients.
ClipResult clip_grad_norm(const std::vector<ParamRef>& params, double max_norm);

}  // namespace xlstm
