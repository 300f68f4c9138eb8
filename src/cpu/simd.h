// Small AVX-512 helpers shared by the hand-written kernels.
#pragma once
#if defined(__AVX512F__)
#include <immintrin.h>

namespace xlstm {

// Tree sum of the 16 lanes. maskz forms throughout: GCC 12 warns about the undefined vectors
// inside _mm512_reduce_add_ps and the plain extract intrinsics.
inline float hsum16(__m512 v) {
  const __m512d d = _mm512_castps_pd(v);
  const __m256 s8 = _mm256_add_ps(_mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, d, 0)),
                                  _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, d, 1)));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}

}  // namespace xlstm
#endif
