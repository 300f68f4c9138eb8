// Float64 reference loops of the mLSTM kernel (XLSTM-SPEC §2), written straight from the
// equations: the recurrent form (§2.1) is the spec; the parallel (§2.2) and chunkwise (§2.3)
// forms are written the same naive way so the kernels can be compared form by form (the forms
// differ by eps*e^m effects, conformance README §6.6). Forward only: gradients are checked by
// finite differences. Layouts as in src/cpu/mlstm.h: q, k (B,NH,S,DHQK), v, h (B,NH,S,DHV),
// i, f (B,NH,S), c (B,NH,DHQK,DHV), n (B,NH,DHQK), m (B,NH). Initial state pointers null =
// zero state; final state pointers null = not wanted.
#pragma once
#include <cstdint>

#include "cpu/mlstm.h"

namespace xlstm::ref {

// m_t = max(logsig(f_t) + m_{t-1}, i_t); C_t = e^{logsig f + m_{t-1} - m_t} C_{t-1}
// + e^{i_t - m_t} k~ v^T; h_t = q~ C_t / (max(|q~ . n_t|, e^{-m_t}) + eps).
void mlstm_recurrent_ref(const MlstmDims& d, double eps, ScaleOn scale, const double* q,
                         const double* k, const double* v, const double* i, const double* f,
                         const double* c0, const double* n0, const double* m0, double* h,
                         double* c, double* n, double* m);

// h_t = sum_s Ct_ts v_s / (max(|sum_s Ct_ts|, e^{-m_t}) + eps), Ct_ts = q_t.k_s/sqrt(DHQK)
// e^{logD_ts - m_t}, logD_ts = F_t - F_s + i_s (s <= t), m_t = max_s logD_ts.
void mlstm_parallel_ref(const MlstmDims& d, double eps, const double* q, const double* k,
                        const double* v, const double* i, const double* f, double* h);

// Chunks of L (the last may be shorter); per chunk the boundary and per-position stabilisers
// of spec §2.3, with the state before the chunk.
void mlstm_chunkwise_ref(const MlstmDims& d, double eps, int64_t L, ScaleOn scale,
                         const double* q, const double* k, const double* v, const double* i,
                         const double* f, const double* c0, const double* n0, const double* m0,
                         double* h, double* c, double* n, double* m);

}  // namespace xlstm::ref
