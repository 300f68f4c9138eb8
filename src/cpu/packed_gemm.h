// oneDNN matmul primitives for the products of a recurrent loop: the same weights multiplied at
// every step by a small activation block (M = batch rows).
//
// dnnl_sgemm (gemm<float>) re-packs its B operand at every call: at M = 16-64 that costs about
// half the rate (~100 vs ~190 GFLOP/s per core, CPU-NOTES.md, docs/perf.md "GEMM backend"),
// and its per-row results depend on M. A PackedMatmul reorders W into oneDNN's packed layout
// once (pack(), once per call of the loop: the weights may change between calls) and then runs
// every step against it; each output row gets the same bits whatever M is.
//
// Each object owns its stream, so different PackedMatmuls may run on different threads at
// once (inside an OpenMP region a primitive runs on the calling thread alone).
#pragma once
#include <cstdint>
#include <memory>

#include "cpu/gemm.h"

namespace xlstm {

class PackedMatmul {
 public:
  PackedMatmul();
  ~PackedMatmul();
  PackedMatmul(PackedMatmul&&) noexcept;
  PackedMatmul& operator=(PackedMatmul&&) noexcept;

  // C (M, N) row stride ldc, written (accumulate = false) or accumulated, = A (M, K) row stride
  // lda · op(W) with W stored row-major as (K, N) (tw = Trans::N) or (N, K) (tw = Trans::T).
  // Rebuilds the primitive when any of these change; reorders W (read) into the packed copy.
  void pack(int64_t M, int64_t K, int64_t N, int64_t lda, int64_t ldc, Trans tw, bool accumulate,
            const float* W);
  // A: (M, lda) read; C: (M, ldc) written or accumulated, per pack().
  void run(const float* A, float* C);

 private:
  struct Impl;
  std::unique_ptr<Impl> p_;
};

// Weight-gradient products with nothing constant to pack: C (M, N) row stride N += A^T · Bm,
// A stored (K, M) row stride lda, Bm (K, N) row stride ldb (read); M, N the weight's shape, K =
// T*B rows. oneDNN's sgemm runs these at 180-190 GFLOP/s per core when its N is >= 1024 but
// 125-155 below (the LSTM's N is I or H: 128-512 in the benchmarks), and its matmul primitive
// at 155-175 either way. So from kGradDirectMinN on C is computed directly, and below it as the
// transposed product C^T (N, M) = Bm^T A into a scratch buffer, added to C transposed (a pass
// over M*N floats). Measured inside the LSTM backward in docs/perf.md ("Weight gradients").
inline constexpr int64_t kGradDirectMinN = 1024;
class GradMatmul {
 public:
  GradMatmul();
  ~GradMatmul();
  GradMatmul(GradMatmul&&) noexcept;
  GradMatmul& operator=(GradMatmul&&) noexcept;
  void run(int64_t M, int64_t K, int64_t N, const float* A, int64_t lda, const float* Bm,
           int64_t ldb, float* C);

 private:
  struct Impl;
  std::unique_ptr<Impl> p_;
};

}  // namespace xlstm
