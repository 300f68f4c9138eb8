#include "core/rng_state.h"

#include <cstring>
#include <vector>

namespace xlstm {

Tensor rng_state_tensor(const Rng& rng) {
  const Rng::State s = rng.state();
  std::vector<int64_t> v(6);
  for (int i = 0; i < 4; ++i) std::memcpy(&v[(size_t)i], &s.s[i], 8);
  std::memcpy(&v[4], &s.spare, 8);
  v[5] = s.has_spare ? 1 : 0;
  return Tensor::from<int64_t>({6}, v);
}

void load_rng_state(Rng& rng, const Tensor& t, const std::string& where) {
  XLSTM_CHECK(t.defined() && t.dtype() == DType::I64 && t.shape() == Shape{6}, ValueError, where,
              ": rng state must be I64 (6)");
  const int64_t* v = t.data<int64_t>();
  Rng::State s;
  for (int i = 0; i < 4; ++i) std::memcpy(&s.s[i], &v[i], 8);
  XLSTM_CHECK((v[5] == 0 || v[5] == 1) && (s.s[0] | s.s[1] | s.s[2] | s.s[3]), ValueError, where,
              ": rng state is corrupt");
  std::memcpy(&s.spare, &v[4], 8);
  s.has_spare = v[5] == 1;
  rng.set_state(s);
}

}  // namespace xlstm
