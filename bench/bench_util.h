// Shared pieces of the bench/*_bench.cpp programs.
//
// Every benchmark reports (besides Google Benchmark's real time per iteration):
//   GFLOP      GEMM work of ONE iteration in 1e9 flops (only the matrix products, 2*M*N*K each;
//              pointwise work, reductions and transposes are not counted)
//   tokens     B*T of one iteration (tokens/s = tokens / real time)
//   GFLOP/s    rate counter (GFLOP / real time)
//   threads    omp_get_max_threads() of the run (set OMP_NUM_THREADS; oneDNN and our kernels
//              both use the OpenMP runtime)
// bench/compare.py recomputes the rates from the median real time and divides by the
// `peak/sgemm_packed_1024` benchmark that every program registers (a oneDNN matmul with the
// weights packed once, 1024^3: the f32 GEMM ceiling of the machine at that thread count).
//
// Timed loops must not allocate: a Fixture holds every buffer, is built once per benchmark
// (not per repetition) and warmed up once (first touch, oneDNN primitive creation, packing).
#pragma once
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdlib>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <vector>

#include "xlstm/rng.h"
#include "xlstm/tensor.h"

namespace xlstm::bench {

inline int threads() { return omp_get_max_threads(); }

// Sets the counters described above. Call after the timed loop.
inline void set_counters(benchmark::State& st, double flops_per_iter, double tokens_per_iter) {
  st.counters["GFLOP"] = flops_per_iter / 1e9;
  st.counters["tokens"] = tokens_per_iter;
  st.counters["GFLOP/s"] = benchmark::Counter(flops_per_iter * (double)st.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
  st.counters["tokens/s"] = benchmark::Counter(tokens_per_iter * (double)st.iterations(),
                                               benchmark::Counter::kIsRate);
  st.counters["threads"] = threads();
}

// Keeps ONE fixture alive: the one of the benchmark that runs now. Google Benchmark runs all
// repetitions of a benchmark back to back, so each fixture is built and warmed up once and the
// previous one (hundreds of MiB for the large configurations) is freed first.
struct FixtureSlot {
  std::string key;
  std::shared_ptr<void> obj;
};
inline FixtureSlot& fixture_slot() {  // one slot for all fixture types and programs' benchmarks
  static FixtureSlot s;
  return s;
}
template <class F, class Make>
F& fixture(const std::string& key, Make make) {
  FixtureSlot& s = fixture_slot();
  if (!s.obj || s.key != key) {
    s.obj.reset();
    std::shared_ptr<F> f = make();
    s.obj = f;
    s.key = key;
  }
  return *static_cast<F*>(s.obj.get());
}

// Deterministic N(0, scale) values.
inline void fill_normal(float* p, int64_t n, uint64_t seed, double scale = 1.0) {
  Rng r(seed);
  for (int64_t i = 0; i < n; ++i) p[i] = (float)r.normal(0, scale);
}
inline Tensor randn(Shape s, uint64_t seed, double scale = 1.0) {
  Tensor t(std::move(s), DType::F32);
  fill_normal(t.data<float>(), t.numel(), seed, scale);
  return t;
}

// The ceiling: C(1024,1024) = A(1024,1024) * B with B packed once into oneDNN's blocked layout.
inline void BM_peak_sgemm_packed(benchmark::State& st) {
  using namespace dnnl;
  const int64_t M = 1024, N = 1024, K = 1024;
  std::vector<float> A((size_t)(M * K)), B((size_t)(K * N)), C((size_t)(M * N));
  fill_normal(A.data(), M * K, 1, 0.1);
  fill_normal(B.data(), K * N, 2, 0.1);
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  memory::desc a_md({M, K}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc b_any({K, N}, memory::data_type::f32, memory::format_tag::any);
  memory::desc b_md({K, N}, memory::data_type::f32, memory::format_tag::ba);
  memory::desc c_md({M, N}, memory::data_type::f32, memory::format_tag::ab);
  matmul::primitive_desc pd(matmul::desc(a_md, b_any, c_md), eng);
  memory a_m(a_md, eng, A.data()), b_user(b_md, eng, B.data()), c_m(c_md, eng, C.data());
  memory b_packed(pd.weights_desc(), eng);
  reorder(b_user, b_packed).execute(s, b_user, b_packed);
  matmul mm(pd);
  auto run = [&] {
    mm.execute(s, {{DNNL_ARG_SRC, a_m}, {DNNL_ARG_WEIGHTS, b_packed}, {DNNL_ARG_DST, c_m}});
    s.wait();
  };
  run();  // warm-up
  for (auto _ : st) {
    run();
    benchmark::DoNotOptimize(C.data());
  }
  set_counters(st, 2.0 * M * N * K, 0);
}

// Common settings: wall-clock time, `reps` repetitions of at least `min_time` seconds each
// (a single iteration longer than that is one repetition), median/min reported by compare.py.
// XLSTM_BENCH_QUICK=1 (bench/compare.py --quick): one repetition of about one iteration, to
// check that everything runs.
inline void timing(benchmark::internal::Benchmark* b, int reps = 3, double min_time = 0.3) {
  if (const char* q = std::getenv("XLSTM_BENCH_QUICK"); q && *q && *q != '0')
    reps = 1, min_time = 1e-3;
  b->UseRealTime()->Unit(benchmark::kMillisecond)->Repetitions(reps)->MinTime(min_time);
  b->ComputeStatistics("min", [](const std::vector<double>& v) {
    double m = v.empty() ? 0.0 : v[0];
    for (double x : v) m = x < m ? x : m;
    return m;
  });
}

}  // namespace xlstm::bench

// Registers the ceiling benchmark in a program (once per program).
#define XLSTM_BENCH_PEAK()                                                             \
  BENCHMARK(xlstm::bench::BM_peak_sgemm_packed)                                        \
      ->Name("peak/sgemm_packed_1024")                                                 \
      ->Apply([](benchmark::internal::Benchmark* b) { xlstm::bench::timing(b, 3, 0.2); })
