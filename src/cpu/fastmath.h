// Pointwise math for the kernels. double: libm (matches torch to round-off). float: polynomial
// forms that GCC vectorises under `omp simd` (libm calls keep a loop scalar); ~1e-7 relative,
// exp(0) == 1 exactly (the sLSTM clamp tie rule depends on it).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace xlstm {

template <class T> struct PwMath;

template <> struct PwMath<double> {
  static double exp(double x) { return std::exp(x); }
  static double log1p_unit(double e) { return std::log1p(e); }
  static double tanh(double x) { return std::tanh(x); }
  static double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
  static double one_plus_erf(double u) { return 1.0 + std::erf(u); }
  static double exp_neg_half_sq(double x) { return std::exp(-0.5 * x * x); }
};

template <> struct PwMath<float> {
  static inline float exp(float x) {
    x = std::min(std::max(x, -86.0f), 88.0f);  // results stay normal floats (no denormals)
    const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x/ln2)
    float r = x - k * 0.693359375f;       // Cody-Waite: ln2 = 0.693359375 - 2.12194440e-4
    r = r + k * 2.12194440e-4f;
    float p = 1.0f / 5040.0f;             // Taylor to r^7 on |r| <= ln2/2: < 1e-8 relative
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
  }
  // log1p(e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3 (no cancellation).
  static inline float log1p_unit(float e) {
    const float s = e / (2.0f + e), s2 = s * s;
    float p = 1.0f / 15.0f;
    p = p * s2 + 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p;
  }
  static inline float tanh(float x) {
    const float a = std::fabs(x), x2 = x * x;
    float p = 62.0f / 2835.0f;  // Taylor to x^9 below 0.25
    p = p * x2 - 17.0f / 315.0f;
    p = p * x2 + 2.0f / 15.0f;
    p = p * x2 - 1.0f / 3.0f;
    const float small = x + x * x2 * p;
    const float t = exp(-2.0f * a);
    const float big = (1.0f - t) / (1.0f + t);
    return a < 0.25f ? small : (x < 0.0f ? -big : big);
  }
  static inline float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }
  // 1 + erf(u) (exact GELU: 0.5 x (1 + erf(x / sqrt 2))). erfc(|u|) = t exp(-u^2 + P(t)),
  // t = 1 / (1 + |u| / 2): the Chebyshev fit of Press et al., Numerical Recipes §6.2 (fractional
  // error < 1.2e-7 for every argument); then 1 + erf(u) = erfc(-u) for u < 0 (relative accuracy
  // kept in the tail, where 1 + erf is tiny) and 2 - erfc(u) otherwise. libm's erff keeps a
  // loop scalar.
  static inline float one_plus_erf(float u) {
    const float z = std::fabs(u), t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    // exp(p - z^2) with the exponent carried as s + e (s rounded, e its exact remainder:
    // z^2 = hi + lo by an FMA, p - hi = s + r by TwoSum), then exp(s) (1 + r - lo): the float
    // rounding of z^2 alone would cost a relative ulp(z^2) in the tail.
    const float hi = z * z, lo = std::fma(z, z, -hi);
    const float s = p - hi, bb = s - p, r = (p - (s - bb)) + (-hi - bb);
    const float ec = t * (exp(s) * (1.0f + (r - lo)));
    return u < 0.0f ? ec : 2.0f - ec;
  }
  static inline float exp_neg_half_sq(float x) { return exp(-0.5f * x * x); }
};

}  // namespace xlstm
