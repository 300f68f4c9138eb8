// `xlstm hf-check`: runs a Hugging Face `xlstm` model directory against the reference outputs
// that transformers produced for it (../shared/hf/<model>/reference.safetensors, README there):
//   logits        full forward of input_ids (B, 64)
//   state_prefill (C, n, m) of every block after that forward
//   gen_step_logits  teacher-forced: prefill prompt_ids, then one step per reference token
//   greedy        argmax of every step equals generated_ids (a flip is accepted only where the
//                 reference's top-2 margin is below the logit tolerance)
//   state_final   state after prompt + 31 generated tokens
// Each is one check; tolerances |a - r| <= atol + rtol |r| (float32 against HF float32).
#pragma once
#include <string>
#include <vector>

namespace xlstm {

struct HfCheckResult {
  std::string model;  // directory name
  std::string check;  // logits, state_prefill, gen_step_logits, greedy, state_final
  bool ok = false;
  std::string detail;  // errors and margins, one line
};

// Tolerances (docs/hf.md): float32 against transformers' float32. Both carry float32 error:
// against our float64 build, HF's logits are off by up to 9.4e-5 and ours by up to 2.7e-4
// (model B: per-head denominators near cancellation amplify the rounding of q and k), so the
// logit tolerance is the fixture generator's own 4.3e-4. States are compared relative to
// their scale (|C| up to ~18).
struct HfCheckTolerance {
  double logits_atol = 4.3e-4, logits_rtol = 1e-5;
  double state_atol = 1e-5, state_rtol = 1e-4;
};

// `dir`: one model directory. `reference`: its reference.safetensors ("" = <dir>/reference.safetensors).
// Throws IoError/ValueError when the model or the reference cannot be read.
std::vector<HfCheckResult> hf_check(const std::string& dir, const std::string& reference = "",
                                    const HfCheckTolerance& tol = HfCheckTolerance());

}  // namespace xlstm
