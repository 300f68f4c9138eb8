// Float64 reference loops for the elementwise / norm / linear ops: the spec, written straight
// from the equations in src/cpu/<op>.h. Forward only (backward is checked by finite
// differences). Shapes and layouts are those of the matching kernel header.
#pragma once
#include <cstdint>

#include "cpu/activations.h"
#include "cpu/layernorm.h"

namespace xlstm::ref {

// y[n,o] = b[o] + sum_i x[n,i] W[o,i].  x (N,I), W (O,I), b (O) or null, y (N,O).
void linear_ref(int64_t N, int64_t I, int64_t O, const double* x, const double* W,
                const double* b, double* y);

// y[n,:] = W[ids[n],:].  W (V,D), y (N,D). ids assumed valid.
void embedding_ref(int64_t N, int64_t V, int64_t D, const int64_t* ids, const double* W,
                   double* y);

// y = (x - mean) / sqrt(var + eps) * s + b, biased var, s = w (Plain) or 1 + w (OnePlusWeight),
// w null -> s = 1, b null -> 0.  x, y (N,D).
void layernorm_ref(int64_t N, int64_t D, const double* x, const double* w, const double* b,
                   double eps, NormScale scale, double* y);

// layernorm of every (n, head) slice of DH values; w, b per feature (NH*DH). x, y (N,NH*DH).
void multihead_norm_ref(int64_t N, int64_t NH, int64_t DH, const double* x, const double* w,
                        const double* b, double eps, NormScale scale, double* y);

// y = x / sqrt(mean(x^2) + eps) * w (w null -> 1).  x, y (N,D).
void rmsnorm_ref(int64_t N, int64_t D, const double* x, const double* w, double eps, double* y);

// Causal depthwise conv with state, as in cpu/conv1d.h. x, y (B,T,F); w (F,K); bias (F) or
// null; state_in (B,K-1,F) or null (zeros); state_out (B,K-1,F) or null.
void conv1d_ref(int64_t B, int64_t T, int64_t F, int64_t K, const double* x, const double* w,
                const double* bias, const double* state_in, double* y, double* state_out);

// y = act(x) elementwise.
void act_ref(Act a, int64_t n, const double* x, double* y);

// y[n, h*O+o] = b[h*O+o] + sum_d x[n, h*I+d] W[h,o,d].  x (N,NH*I), W (NH,O,I), y (N,NH*O).
void headwise_ref(int64_t N, int64_t NH, int64_t I, int64_t O, const double* x, const double* W,
                  const double* b, double* y);

// Mean over non-ignored rows of -log softmax(logits[n])[targets[n]]; 0 if all ignored.
double xent_ref(int64_t N, int64_t V, const double* logits, const int64_t* targets,
                int64_t ignore_index);

}  // namespace xlstm::ref
