// Global-norm gradient clipping (train/clip.h): torch's clip_grad_norm_ semantics, double
// accumulation, non-finite reporting, thread-count independence.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>

#include "harness/compare.h"
#include "train/clip.h"

using namespace xlstm;

namespace {
struct Grads {
  std::vector<Tensor> v, g;
  std::vector<std::string> names;
  Grads(std::vector<Shape> shapes, DType dt, uint64_t seed) {
    Rng rng(seed);
    for (size_t i = 0; i < shapes.size(); ++i) {
      v.push_back(Tensor(shapes[i], dt));
      g.push_back(Tensor::from<double>(shapes[i], test::randn<double>(shape_numel(shapes[i]), rng)).to(dt));
      names.push_back("p" + std::to_string(i));
    }
  }
  std::vector<ParamRef> refs() {
    std::vector<ParamRef> r;
    for (size_t i = 0; i < v.size(); ++i) r.push_back({names[i], &v[i], &g[i]});
    return r;
  }
  double ref_norm() const {
    double s = 0;
    for (auto& t : g)
      for (double x : t.to_f64()) s += x * x;
    return std::sqrt(s);
  }
};
}  // namespace

TEST(Clip, NormAndScaling) {
  for (DType dt : {DType::F32, DType::F64}) {
    Grads gr({{7, 5}, {5}, {3, 2, 4}}, dt, 1);
    const double ref = gr.ref_norm();
    auto before = gr.g[0].to_f64();
    EXPECT_NEAR(grad_global_norm(gr.refs()), ref, 1e-12 * ref);
    ClipResult r = clip_grad_norm(gr.refs(), 1.0);
    EXPECT_TRUE(r.finite);
    EXPECT_TRUE(r.clipped);
    EXPECT_NEAR(r.norm, ref, 1e-12 * ref);
    const double coef = 1.0 / (ref + 1e-6);
    auto after = gr.g[0].to_f64();
    for (size_t i = 0; i < after.size(); ++i) EXPECT_NEAR(after[i], before[i] * coef, 1e-6);
    EXPECT_NEAR(gr.ref_norm(), 1.0, 1e-5);
  }
}

TEST(Clip, BelowThresholdOrDisabledLeavesGradients) {
  Grads gr({{4, 4}}, DType::F32, 2);
  auto before = gr.g[0].to_f64();
  ClipResult r = clip_grad_norm(gr.refs(), 1e6);
  EXPECT_FALSE(r.clipped);
  r = clip_grad_norm(gr.refs(), 0.0);  // 0: measure only
  EXPECT_FALSE(r.clipped);
  EXPECT_GT(r.norm, 0);
  EXPECT_EQ(gr.g[0].to_f64(), before);
}

TEST(Clip, NonFiniteIsReportedAndNothingScaled) {
  Grads gr({{3}, {4}, {2}}, DType::F32, 3);
  gr.g[1].data<float>()[2] = NAN;
  gr.g[2].data<float>()[0] = INFINITY;
  auto before = gr.g[0].to_f64();
  ClipResult r = clip_grad_norm(gr.refs(), 0.1);
  EXPECT_FALSE(r.finite);
  EXPECT_FALSE(r.clipped);
  EXPECT_EQ(r.bad_param, "p1");
  EXPECT_EQ(gr.g[0].to_f64(), before);
}

TEST(Clip, IndependentOfThreadCount) {
  Grads gr({{300000}, {1000}}, DType::F32, 4);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double n1 = grad_global_norm(gr.refs());
  omp_set_num_threads(3);
  const double n3 = grad_global_norm(gr.refs());
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(&n1, &n3, sizeof n1), 0);
}

TEST(Clip, EmptyAndWrongDtype) {
  EXPECT_EQ(clip_grad_norm({}, 1.0).norm, 0.0);
  Tensor v({2}, DType::I32), g({2}, DType::I32);
  EXPECT_THROW(grad_global_norm({{"ids", &v, &g}}), TypeError);
}
