// GEMM backends on the shapes the recurrent engines use: the per-step recurrent product
// (M = batch, N = 4H, K = H, weights transposed), the whole-sequence input projection
// (M = B*T) and the weight-gradient product (K = B*T). Compares oneDNN's dnnl_sgemm (packs B
// on every call), Debian's OpenBLAS cblas_sgemm, and a oneDNN matmul primitive whose weights
// are reordered to the blocked layout once (what a recurrent loop can do). grad_tn/*: the
// weight-gradient product (transposed A) through oneDNN's sgemm and through gemm_tn.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/gemm_tn.h"
#include "xlstm/rng.h"

namespace {

std::vector<float> rnd(size_t n, uint64_t seed) {
  xlstm::Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = (float)r.normal(0, 0.1);
  return v;
}

void set_counters(benchmark::State& st, int64_t M, int64_t N, int64_t K) {
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * N * K * st.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}

// args: M, N, K. C(M,N) = A(M,K) * B(N,K)^T  (x * W^T, torch Linear layout)
void BM_dnnl_sgemm(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  auto A = rnd(M * K, 1), B = rnd(N * K, 2);
  std::vector<float> C(M * N);
  xlstm::set_sgemm_backend("onednn");
  for (auto _ : st) {
    xlstm::gemm<float>(xlstm::Trans::N, xlstm::Trans::T, M, N, K, 1.f, A.data(), K, B.data(), K,
                       0.f, C.data(), N);
    benchmark::DoNotOptimize(C.data());
  }
  set_counters(st, M, N, K);
}

void BM_openblas_sgemm(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  auto A = rnd(M * K, 1), B = rnd(N * K, 2);
  std::vector<float> C(M * N);
  xlstm::set_sgemm_backend("openblas");
  for (auto _ : st) {
    xlstm::gemm<float>(xlstm::Trans::N, xlstm::Trans::T, M, N, K, 1.f, A.data(), K, B.data(), K,
                       0.f, C.data(), N);
    benchmark::DoNotOptimize(C.data());
  }
  xlstm::set_sgemm_backend("onednn");
  set_counters(st, M, N, K);
}

void BM_dnnl_matmul_packed(benchmark::State& st) {
  using namespace dnnl;
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  auto A = rnd(M * K, 1), B = rnd(N * K, 2);
  std::vector<float> C(M * N);
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  memory::desc a_md({M, K}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc b_any({K, N}, memory::data_type::f32, memory::format_tag::any);
  memory::desc b_md({K, N}, memory::data_type::f32, memory::format_tag::ba);  // W^T view of (N,K)
  memory::desc c_md({M, N}, memory::data_type::f32, memory::format_tag::ab);
  matmul::primitive_desc pd(matmul::desc(a_md, b_any, c_md), eng);
  memory a_m(a_md, eng, A.data()), b_user(b_md, eng, B.data()), c_m(c_md, eng, C.data());
  memory b_packed(pd.weights_desc(), eng);
  reorder(b_user, b_packed).execute(s, b_user, b_packed);
  matmul mm(pd);
  for (auto _ : st) {
    mm.execute(s, {{DNNL_ARG_SRC, a_m}, {DNNL_ARG_WEIGHTS, b_packed}, {DNNL_ARG_DST, c_m}});
    s.wait();
    benchmark::DoNotOptimize(C.data());
  }
  set_counters(st, M, N, K);
}

void shapes(benchmark::internal::Benchmark* b) {
  // recurrent step: (B, 4H, H)
  b->Args({16, 2048, 512})->Args({64, 2048, 512})->Args({16, 4096, 1024})->Args({64, 4096, 1024});
  // single-token decode
  b->Args({1, 4096, 1024});
  // input projection over a sequence: (B*T, 4H, I)
  b->Args({16384, 2048, 512})->Args({8192, 4096, 1024});
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

// Weight-gradient shape: C (M, N) += A^T B, A stored (K, M) with row stride lda (a column block
// of a wider activation gradient), B (K, N). args: M, N, K, lda.
template <bool Ours>
void BM_grad_tn(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2), lda = st.range(3);
  auto A = rnd(K * lda, 1), B = rnd(K * N, 2);
  std::vector<float> C(M * N);
  for (auto _ : st) {
    if (Ours)
      xlstm::gemm_tn(M, N, K, A.data(), lda, B.data(), N, 0.f, C.data(), N);
    else
      xlstm::gemm<float>(xlstm::Trans::T, xlstm::Trans::N, M, N, K, 1.f, A.data(), lda, B.data(),
                         N, 0.f, C.data(), N);
    benchmark::DoNotOptimize(C.data());
  }
  set_counters(st, M, N, K);
}

void grad_shapes(benchmark::internal::Benchmark* b) {
  b->Args({512, 128, 4096, 2048});     // sLSTM dR per head (B 16, T 256, H 512, 4 heads)
  b->Args({128, 128, 4096, 512});      // headwise projection dW per head (sLSTM layer, D 512)
  b->Args({2048, 512, 16384, 2048});   // LSTM dW_ih (B 64, T 256, I = H = 512)
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

BENCHMARK(BM_dnnl_sgemm)->Apply(shapes);
BENCHMARK_TEMPLATE(BM_grad_tn, false)->Name("grad_tn/dnnl_sgemm")->Apply(grad_shapes);
BENCHMARK_TEMPLATE(BM_grad_tn, true)->Name("grad_tn/gemm_tn")->Apply(grad_shapes);
BENCHMARK(BM_openblas_sgemm)->Apply(shapes);
BENCHMARK(BM_dnnl_matmul_packed)->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();
