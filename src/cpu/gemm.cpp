#include "cpu/gemm.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstring>

#include "cpu/parallel.h"
#include "xlstm/error.h"

namespace xlstm {

namespace {
bool g_use_openblas = false;
}

void set_sgemm_backend(const char* name) {
  if (std::strcmp(name, "onednn") == 0) g_use_openblas = false;
  else if (std::strcmp(name, "openblas") == 0) g_use_openblas = true;
  else throw ValueError(str("[gemm] unknown sgemm backend '", name, "'; hint: onednn or openblas"));
}
const char* sgemm_backend() { return g_use_openblas ? "openblas" : "onednn"; }

template <>
void gemm<float>(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
  if (g_use_openblas) {
    cblas_sgemm(CblasRowMajor, ta == Trans::T ? CblasTrans : CblasNoTrans,
                tb == Trans::T ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A,
                (int)lda, B, (int)ldb, beta, C, (int)ldc);
    return;
  }
  dnnl_status_t st;
  {
    // A small product runs on the calling thread: a fork of the team costs more than the work.
    const OneThreadScope one(2.0 * (double)M * (double)N * (double)K < kSerialFlops);
    st = dnnl_sgemm(ta == Trans::T ? 'T' : 'N', tb == Trans::T ? 'T' : 'N', M, N, K, alpha, A,
                    lda, B, ldb, beta, C, ldc);
  }
  if (st != dnnl_success) throw InternalError(str("[gemm] dnnl_sgemm failed with status ", (int)st));
}

template <>
void gemm<double>(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, double alpha,
                  const double* A, int64_t lda, const double* B, int64_t ldb, double beta,
                  double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0 ? 0.0 : beta * C[i * ldc + j];
    return;
  }
  cblas_dgemm(CblasRowMajor, ta == Trans::T ? CblasTrans : CblasNoTrans,
              tb == Trans::T ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A,
              (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

template <class T>
void gemm_ref(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
              int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        double a = ta == Trans::N ? A[i * lda + k] : A[k * lda + i];
        double b = tb == Trans::N ? B[k * ldb + j] : B[j * ldb + k];
        acc += a * b;
      }
      T& c = C[i * ldc + j];
      c = (T)(alpha * acc + (beta == T(0) ? 0.0 : (double)beta * c));
    }
}
template void gemm_ref<float>(Trans, Trans, int64_t, int64_t, int64_t, float, const float*,
                              int64_t, const float*, int64_t, float, float*, int64_t);
template void gemm_ref<double>(Trans, Trans, int64_t, int64_t, int64_t, double, const double*,
                               int64_t, const double*, int64_t, double, double*, int64_t);

}  // namespace xlstm
