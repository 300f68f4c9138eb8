// linear: kernel vs float64 spec, finite-difference gradients, accumulate semantics.
#include <gtest/gtest.h>
#include <omp.h>

#include <vector>

#include "cpu/linear.h"
#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "ref/ops_ref.h"

using namespace xlstm;
using test::expect_close;
using test::randn;

namespace {
constexpr int64_t N = 7, I = 13, O = 11;
std::vector<float> to_f(const std::vector<double>& v) { return {v.begin(), v.end()}; }
}  // namespace

TEST(Linear, ForwardMatchesRef) {
  Rng rng(1);
  auto x = randn<double>(N * I, rng), W = randn<double>(O * I, rng), b = randn<double>(O, rng);
  for (const double* bp : {(const double*)b.data(), (const double*)nullptr}) {
    std::vector<double> want(N * O), got(N * O);
    ref::linear_ref(N, I, O, x.data(), W.data(), bp, want.data());
    linear_forward<double>(N, I, O, x.data(), W.data(), bp, got.data());
    expect_close("y f64", got.data(), want.data(), N * O, 1e-12, 1e-12);
    auto xf = to_f(x), Wf = to_f(W), bf = to_f(b);
    std::vector<float> gotf(N * O);
    linear_forward<float>(N, I, O, xf.data(), Wf.data(), bp ? bf.data() : nullptr, gotf.data());
    expect_close("y f32", gotf.data(), want.data(), N * O, 1e-5, 1e-4);
  }
}

TEST(Linear, GradCheck) {
  Rng rng(2);
  auto x = randn<double>(N * I, rng), W = randn<double>(O * I, rng), b = randn<double>(O, rng);
  auto wy = randn<double>(N * O, rng);
  std::vector<double> y(N * O);
  auto loss = [&] {
    linear_forward<double>(N, I, O, x.data(), W.data(), b.data(), y.data());
    return test::dot(y.data(), wy.data(), N * O);
  };
  std::vector<double> dx(N * I), dW(O * I, 0.0), db(O, 0.0);
  linear_backward<double>(N, I, O, x.data(), W.data(), wy.data(), dx.data(), dW.data(), db.data());
  test::expect_grad("dx", loss, x.data(), N * I, dx.data());
  test::expect_grad("dW", loss, W.data(), O * I, dW.data());
  test::expect_grad("db", loss, b.data(), O, db.data());

  // The float kernel gives the same gradients to float precision.
  auto xf = to_f(x), Wf = to_f(W), dyf = to_f(wy);
  std::vector<float> dxf(N * I), dWf(O * I, 0.f), dbf(O, 0.f);
  linear_backward<float>(N, I, O, xf.data(), Wf.data(), dyf.data(), dxf.data(), dWf.data(),
                         dbf.data());
  expect_close("dx f32", dxf.data(), dx.data(), N * I, 1e-5, 1e-4);
  expect_close("dW f32", dWf.data(), dW.data(), O * I, 1e-5, 1e-4);
  expect_close("db f32", dbf.data(), db.data(), O, 1e-5, 1e-4);
}

TEST(Linear, BackwardAccumulatesParamGrads) {
  Rng rng(3);
  auto x = randn<double>(N * I, rng), W = randn<double>(O * I, rng), dy = randn<double>(N * O, rng);
  std::vector<double> dx1(N * I), dW1(O * I, 0.0), db1(O, 0.0);
  linear_backward<double>(N, I, O, x.data(), W.data(), dy.data(), dx1.data(), dW1.data(), db1.data());
  std::vector<double> dx2(N * I, 123.0), dW2(O * I, 0.0), db2(O, 0.0);
  for (int rep = 0; rep < 2; ++rep)
    linear_backward<double>(N, I, O, x.data(), W.data(), dy.data(), dx2.data(), dW2.data(),
                            db2.data());
  for (auto& v : dW1) v *= 2;
  for (auto& v : db1) v *= 2;
  expect_close("dx written", dx2.data(), dx1.data(), N * I, 1e-14, 1e-14);
  expect_close("dW doubled", dW2.data(), dW1.data(), O * I, 1e-13, 1e-13);
  expect_close("db doubled", db2.data(), db1.data(), O, 1e-13, 1e-13);

  // Null dx and db are skipped.
  std::vector<double> dW3(O * I, 0.0);
  linear_backward<double>(N, I, O, x.data(), W.data(), dy.data(), nullptr, dW3.data(), nullptr);
  for (auto& v : dW3) v *= 2;
  expect_close("dW (dx, db null)", dW3.data(), dW1.data(), O * I, 1e-13, 1e-13);
}

// Sizes above the OpenMP thresholds and over several 64-column blocks: the parallel paths.
TEST(Linear, LargeParallelPath) {
  constexpr int64_t n = 257, i = 33, o = 67;
  Rng rng(4);
  auto x = randn<double>(n * i, rng), W = randn<double>(o * i, rng), b = randn<double>(o, rng);
  auto wy = randn<double>(n * o, rng);
  std::vector<double> want(n * o), y(n * o);
  ref::linear_ref(n, i, o, x.data(), W.data(), b.data(), want.data());
  linear_forward<double>(n, i, o, x.data(), W.data(), b.data(), y.data());
  expect_close("y", y.data(), want.data(), n * o, 1e-12, 1e-12);
  auto loss = [&] {
    linear_forward<double>(n, i, o, x.data(), W.data(), b.data(), y.data());
    return test::dot(y.data(), wy.data(), n * o);
  };
  std::vector<double> dx(n * i), dW(o * i, 0.0), db(o, 0.0);
  linear_backward<double>(n, i, o, x.data(), W.data(), wy.data(), dx.data(), dW.data(), db.data());
  test::expect_grad("db", loss, b.data(), o, db.data(), 1e-6, 1e-6);
  // db does not depend on the thread count.
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<double> dx1(n * i), dW1(o * i, 0.0), db1(o, 0.0);
  linear_backward<double>(n, i, o, x.data(), W.data(), wy.data(), dx1.data(), dW1.data(), db1.data());
  omp_set_num_threads(threads);
  expect_close("db 1 thread", db1.data(), db.data(), o, 0, 0);
}

// Weights in their stored dtype (inference from mapped checkpoints): F32 and BF16, the GEMV
// path (N <= kLinearGemvRows) and the panel path, on 1 and 2 threads, against float64 sums of
// the exactly widened weights.
TEST(Linear, MixedWeightsMatchWidenedReference) {
  Rng rng(7);
  const int64_t I = 300, O = 530;  // O > one 256-row panel; I not a multiple of 16
  auto x = test::randn<float>(64 * I, rng);
  auto wf = test::randn<float>(O * I, rng, 0, 0.1);
  auto b = test::randn<float>(O, rng);
  std::vector<uint16_t> wb(wf.size());
  for (size_t j = 0; j < wf.size(); ++j) wb[j] = f32_to_bf16(wf[j]);
  for (DType dt : {DType::F32, DType::BF16}) {
    for (int threads : {1, 2}) {
      for (int64_t N : {1, 3, 4, 5, 64}) {
        omp_set_num_threads(threads);
        std::vector<float> y((size_t)(N * O));
        linear_forward_mixed(N, I, O, x.data(), dt == DType::F32 ? (const void*)wf.data() : wb.data(),
                             dt, b.data(), y.data());
        std::vector<double> ref((size_t)(N * O));
        for (int64_t n = 0; n < N; ++n)
          for (int64_t o = 0; o < O; ++o) {
            double s = b[o];
            for (int64_t i = 0; i < I; ++i)
              s += (double)x[n * I + i] *
                   (dt == DType::F32 ? (double)wf[o * I + i] : (double)bf16_to_f32(wb[o * I + i]));
            ref[(size_t)(n * O + o)] = s;
          }
        test::expect_close(str(dtype_name(dt), " N=", N, " threads=", threads), y.data(),
                           ref.data(), N * O, 1e-5, 1e-5);
      }
    }
  }
  omp_set_num_threads(1);
}

// The decode GEMV on weights at every 4-byte offset within a cache line (mapped safetensors put
// tensors at any multiple of 8 bytes; the f32 kernel realigns its loads), row lengths around the
// 16/32-element blocks, any row range and the accumulate form: against float64 sums, and bit
// for bit the same as the aligned weights, the whole range, and each batch row alone.
TEST(Linear, GemvRowsMisalignedRangesAccumulate) {
  Rng rng(11);
  for (int64_t I : {7, 16, 31, 48, 77, 768}) {
    const int64_t O = 37;
    auto x = test::randn<float>(4 * I, rng);
    auto wf = test::randn<float>(O * I, rng, 0, 0.1);
    auto b = test::randn<float>(O, rng);
    std::vector<float> base((size_t)(O * I + 64));
    float* aligned = base.data() + (16 - (reinterpret_cast<uintptr_t>(base.data()) % 64) / 4) % 16;
    std::copy(wf.begin(), wf.end(), aligned);
    std::vector<float> y_aligned((size_t)(4 * O));
    linear_gemv_rows(4, I, 0, O, x.data(), aligned, DType::F32, b.data(), y_aligned.data(), O);
    std::vector<double> ref((size_t)(4 * O));
    for (int64_t n = 0; n < 4; ++n)
      for (int64_t o = 0; o < O; ++o) {
        double s = b[o];
        for (int64_t i = 0; i < I; ++i) s += (double)x[n * I + i] * (double)wf[o * I + i];
        ref[(size_t)(n * O + o)] = s;
      }
    test::expect_close(str("aligned I=", I), y_aligned.data(), ref.data(), 4 * O, 1e-5, 1e-5);
    std::vector<float> store((size_t)(O * I + 64));
    for (int mis = 0; mis < 16; ++mis) {
      float* w = store.data() + (16 - (reinterpret_cast<uintptr_t>(store.data()) % 64) / 4) % 16 + mis;
      std::copy(wf.begin(), wf.end(), w);
      for (int64_t N : {1, 2, 3, 4}) {
        // rows in three uneven ranges, accumulated onto 1.0
        std::vector<float> y((size_t)(N * O), 1.f);
        for (auto [o0, o1] : {std::pair<int64_t, int64_t>{0, 5}, {5, 21}, {21, O}})
          linear_gemv_rows(N, I, o0, o1, x.data(), w, DType::F32, b.data(), y.data(), O, true);
        for (int64_t n = 0; n < N; ++n)
          for (int64_t o = 0; o < O; ++o)
            ASSERT_EQ(y[(size_t)(n * O + o)], 1.f + y_aligned[(size_t)(n * O + o)])
                << "I=" << I << " misalignment " << mis << " N=" << N << " n=" << n << " o=" << o;
      }
    }
  }
}
