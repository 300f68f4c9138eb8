// Row-major GEMM: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
// float goes to oneDNN's sgemm (measured faster than Debian's OpenBLAS here, docs/perf.md);
// double goes to OpenBLAS's dgemm (oneDNN has no f64 GEMM). beta = 0 overwrites C, beta = 1
// accumulates into C.
#pragma once
#include <cstdint>

namespace xlstm {

enum class Trans { N, T };

// A: op(A) is (M,K); stored (M,K) with lda >= K if Trans::N, or (K,M) with lda >= M if Trans::T.
// B: op(B) is (K,N); stored (K,N) with ldb >= N if Trans::N, or (N,K) with ldb >= K if Trans::T.
// C: (M,N) with ldc >= N, written (beta = 0) or accumulated (beta != 0).
template <class T>
void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Same with a plain loop nest in double precision: the oracle for tests.
template <class T>
void gemm_ref(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
              int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Which backend gemm<float> uses: "onednn" (default) or "openblas" (for benchmarks).
void set_sgemm_backend(const char* name);
const char* sgemm_backend();

}  // namespace xlstm
