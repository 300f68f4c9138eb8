// embedding: lookup vs float64 spec, gradient by finite differences (repeated ids included),
// accumulate semantics, bad ids rejected.
#include <gtest/gtest.h>
#include <omp.h>

#include <vector>

#include "cpu/embedding.h"
#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "ref/ops_ref.h"
#include "xlstm/error.h"

using namespace xlstm;
using test::expect_close;
using test::randn;

namespace {
constexpr int64_t N = 9, V = 11, D = 13;
// Repeats id 3 and uses both ends of the vocabulary.
const std::vector<int64_t> kIds = {3, 0, 10, 3, 7, 3, 1, 10, 5};
std::vector<float> to_f(const std::vector<double>& v) { return {v.begin(), v.end()}; }
}  // namespace

TEST(Embedding, ForwardMatchesRef) {
  Rng rng(1);
  auto W = randn<double>(V * D, rng);
  std::vector<double> want(N * D), got(N * D);
  ref::embedding_ref(N, V, D, kIds.data(), W.data(), want.data());
  embedding_forward<double>(N, V, D, kIds.data(), W.data(), got.data());
  expect_close("y f64", got.data(), want.data(), N * D, 0, 0);
  auto Wf = to_f(W);
  std::vector<float> gotf(N * D);
  embedding_forward<float>(N, V, D, kIds.data(), Wf.data(), gotf.data());
  expect_close("y f32", gotf.data(), want.data(), N * D, 1e-7, 1e-7);
}

TEST(Embedding, GradCheck) {
  Rng rng(2);
  auto W = randn<double>(V * D, rng), wy = randn<double>(N * D, rng);
  std::vector<double> y(N * D);
  auto loss = [&] {
    embedding_forward<double>(N, V, D, kIds.data(), W.data(), y.data());
    return test::dot(y.data(), wy.data(), N * D);
  };
  std::vector<double> dW(V * D, 0.0);
  embedding_backward<double>(N, V, D, kIds.data(), wy.data(), dW.data());
  test::expect_grad("dW", loss, W.data(), V * D, dW.data());

  auto dyf = to_f(wy);
  std::vector<float> dWf(V * D, 0.f);
  embedding_backward<float>(N, V, D, kIds.data(), dyf.data(), dWf.data());
  expect_close("dW f32", dWf.data(), dW.data(), V * D, 1e-6, 1e-5);
}

TEST(Embedding, BackwardAccumulates) {
  Rng rng(3);
  auto dy = randn<double>(N * D, rng);
  std::vector<double> once(V * D, 0.0), twice(V * D, 0.0);
  embedding_backward<double>(N, V, D, kIds.data(), dy.data(), once.data());
  for (int rep = 0; rep < 2; ++rep)
    embedding_backward<double>(N, V, D, kIds.data(), dy.data(), twice.data());
  for (auto& v : once) v *= 2;
  expect_close("dW doubled", twice.data(), once.data(), V * D, 1e-14, 1e-14);
}

TEST(Embedding, BadIdThrows) {
  std::vector<double> W(V * D, 0.0), y(N * D), dW(V * D, 0.0);
  for (int64_t bad : {V, int64_t(-1), int64_t(1000)}) {
    auto ids = kIds;
    ids[4] = bad;
    EXPECT_THROW(embedding_forward<double>(N, V, D, ids.data(), W.data(), y.data()), ValueError);
    EXPECT_THROW(embedding_backward<double>(N, V, D, ids.data(), y.data(), dW.data()), ValueError);
  }
  auto ids = kIds;
  ids[4] = 57;
  try {
    embedding_forward<double>(N, V, D, ids.data(), W.data(), y.data());
    FAIL() << "no throw";
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("57"), std::string::npos) << msg;
    EXPECT_NE(msg.find("row 4"), std::string::npos) << msg;
  }
}

// Sizes above the OpenMP threshold and over several 64-column blocks: the parallel paths.
TEST(Embedding, LargeParallelPath) {
  constexpr int64_t n = 301, v = 23, d = 229;
  Rng rng(5);
  std::vector<int64_t> ids(n);
  for (auto& id : ids) id = (int64_t)rng.below(v);
  auto W = randn<double>(v * d, rng), dy = randn<double>(n * d, rng);
  std::vector<double> want(n * d), y(n * d);
  ref::embedding_ref(n, v, d, ids.data(), W.data(), want.data());
  embedding_forward<double>(n, v, d, ids.data(), W.data(), y.data());
  expect_close("y", y.data(), want.data(), n * d, 0, 0);
  // dW[r] = sum of dy rows with id r, in row order: same bits for any thread count.
  std::vector<double> naive(v * d, 0.0), dW(v * d, 0.0), dW1(v * d, 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < d; ++j) naive[ids[r] * d + j] += dy[r * d + j];
  embedding_backward<double>(n, v, d, ids.data(), dy.data(), dW.data());
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  embedding_backward<double>(n, v, d, ids.data(), dy.data(), dW1.data());
  omp_set_num_threads(threads);
  expect_close("dW", dW.data(), naive.data(), v * d, 0, 0);
  expect_close("dW 1 thread", dW1.data(), naive.data(), v * d, 0, 0);
}
