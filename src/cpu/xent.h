// Softmax cross-entropy over the last dimension with an ignore index, mean over the rows whose
// target is not ignored (torch.nn.functional.cross_entropy, reduction="mean").
#pragma once
#include <cstdint>

namespace xlstm {

// logits: (N, V) read. targets: (N) read; each in [0, V) or == ignore_index (else ValueError).
// dlogits: (N, V) written, may be null: d(mean loss)/d logits, scaled by `dloss`.
// count: written, may be null: number of rows that are not ignored.
// Returns the mean loss (0 when every row is ignored).
template <class T>
double xent_forward_backward(int64_t N, int64_t V, const T* logits, const int64_t* targets,
                             int64_t ignore_index, T* dlogits, double dloss = 1.0,
                             int64_t* count = nullptr);

}  // namespace xlstm
