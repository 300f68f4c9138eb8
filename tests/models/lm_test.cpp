// Language models behind the LanguageModel interface: step-wise generation gives the same
// logits as re-running the full sequence (xLSTM with mLSTM + sLSTM blocks, and LSTM), the
// parameter gradient of the LM matches finite differences, sampling is deterministic.
#include <gtest/gtest.h>

#include <cmath>

#include "cpu/xent.h"
#include "harness/compare.h"
#include "infer/sample.h"
#include "models/lm.h"
#include "models/presets.h"

using namespace xlstm;

namespace {

nlohmann::json tiny(const std::string& preset, int64_t V) {
  ModelOverrides o;
  o.width = 32;
  o.blocks = 3;
  o.heads = 2;
  o.context = 16;
  if (preset.rfind("xlstm", 0) == 0) o.slstm_at = "1";
  auto j = model_preset(preset, V, o);
  if (j.contains("mlstm_block")) j["mlstm_block"]["mlstm"]["chunk_size"] = 4;
  return j;
}

// Random non-zero weights everywhere (the official init zeroes gates and norms).
void perturb(LanguageModel& m, uint64_t seed) {
  Rng rng(seed);
  for (auto& p : m.params()) {
    float* v = p.value->data<float>();
    for (int64_t i = 0; i < p.value->numel(); ++i) v[i] += (float)rng.normal(0, 0.05);
  }
}

class StepMatchesForward : public ::testing::TestWithParam<std::string> {};

TEST_P(StepMatchesForward, Logits) {
  const int64_t V = 11, B = 2, S = 13;
  auto m = make_language_model(tiny(GetParam(), V), "test", 3);
  perturb(*m, 4);
  Rng rng(5);
  Tensor ids({B, S}, DType::I64);
  for (int64_t i = 0; i < B * S; ++i) ids.data<int64_t>()[i] = (int64_t)rng.below(V);
  Tensor full = m->forward(ids, Mode::Eval, nullptr);  // (B, S, V)
  // prefill the first 5 tokens, then step the rest
  const int64_t P = 5;
  Tensor pre({B, P}, DType::I64);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < P; ++t) pre.data<int64_t>()[b * P + t] = ids.data<int64_t>()[b * S + t];
  auto st = m->new_state(B);
  Tensor last = m->prefill(pre, *st);
  for (int64_t b = 0; b < B; ++b)
    test::expect_close("prefill", last.data<float>() + b * V,
                       full.data<float>() + (b * S + P - 1) * V, V, 2e-5, 1e-4);
  for (int64_t t = P; t < S; ++t) {
    Tensor tok({B}, DType::I64);
    for (int64_t b = 0; b < B; ++b) tok.data<int64_t>()[b] = ids.data<int64_t>()[b * S + t];
    Tensor l = m->step(tok, *st);
    for (int64_t b = 0; b < B; ++b)
      test::expect_close("step " + std::to_string(t), l.data<float>() + b * V,
                         full.data<float>() + (b * S + t) * V, V, 2e-5, 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, StepMatchesForward,
                         ::testing::Values("xlstm-1-1-tiny", "mlstm-tiny", "slstm-tiny", "lstm-tiny"),
                         [](const auto& i) {
                           std::string n = i.param;
                           for (auto& c : n) if (c == '-') c = '_';
                           return n;
                         });

TEST(LanguageModel, GradientMatchesFiniteDifferences) {
  // float model, so a loose check on a few parameters through the whole LM + loss
  const int64_t V = 7, B = 2, S = 6;
  auto m = make_language_model(tiny("xlstm-1-1-tiny", V), "test", 1);
  perturb(*m, 2);
  Rng rng(3);
  Tensor ids({B, S}, DType::I64), tgt({B * S}, DType::I64);
  for (int64_t i = 0; i < B * S; ++i) {
    ids.data<int64_t>()[i] = (int64_t)rng.below(V);
    tgt.data<int64_t>()[i] = (int64_t)rng.below(V);
  }
  auto loss = [&] {
    Tensor l = m->forward(ids, Mode::Eval, nullptr);
    return xent_forward_backward<float>(B * S, V, l.data<float>(), tgt.data<int64_t>(), -1, nullptr);
  };
  Tensor logits = m->forward(ids, Mode::Eval, nullptr);
  Tensor dl({B, S, V}, DType::F32);
  xent_forward_backward<float>(B * S, V, logits.data<float>(), tgt.data<int64_t>(), -1, dl.data<float>());
  m->zero_grad();
  m->backward(dl);
  int checked = 0;
  for (auto& p : m->params()) {
    float* v = p.value->data<float>();
    const float* g = p.grad->data<float>();
    for (int64_t i = 0; i < p.value->numel(); i += std::max<int64_t>(1, p.value->numel() / 3)) {
      const float x0 = v[i];
      const double h = 1e-2;
      v[i] = x0 + (float)h;
      const double lp = loss();
      v[i] = x0 - (float)h;
      const double lm = loss();
      v[i] = x0;
      const double num = (lp - lm) / (2 * h);
      EXPECT_NEAR(g[i], num, 2e-3 + 2e-2 * std::fabs(num)) << p.name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 30);
}

TEST(Sampling, GreedyTopKTopPAndDeterminism) {
  const float logits[5] = {0.1f, 2.0f, 1.9f, -1.0f, 0.5f};
  Rng rng(1);
  SamplingConfig g;
  g.temperature = 0;
  EXPECT_EQ(sample_token(logits, 5, g, rng, {}), 1);
  SamplingConfig k1;
  k1.top_k = 1;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_token(logits, 5, k1, rng, {}), 1);
  SamplingConfig p;
  p.top_p = 0.5;  // the top token alone has < 0.5 of the mass, top two have more
  for (int i = 0; i < 50; ++i) {
    const int64_t t = sample_token(logits, 5, p, rng, {});
    EXPECT_TRUE(t == 1 || t == 2) << t;
  }
  SamplingConfig pen;
  pen.temperature = 0;
  pen.repetition_penalty = 100;
  EXPECT_EQ(sample_token(logits, 5, pen, rng, {1}), 2);
  // same seed, same draws
  SamplingConfig s;
  Rng a(7), b(7);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(sample_token(logits, 5, s, a, {}), sample_token(logits, 5, s, b, {}));
  SamplingConfig bad;
  bad.top_p = 0;
  EXPECT_THROW(validate(bad), ValueError);
  bad = SamplingConfig{};
  bad.temperature = -1;
  EXPECT_THROW(validate(bad), ValueError);
}

TEST(Generate, SameSeedSameText) {
  auto m = make_language_model(tiny("xlstm-1-1-tiny", 9), "test", 1);
  perturb(*m, 2);
  SamplingConfig s;
  auto a = generate(*m, {1, 2, 3}, 20, s, 42, nullptr);
  auto b = generate(*m, {1, 2, 3}, 20, s, 42, nullptr);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 20u);
  EXPECT_THROW(generate(*m, {}, 5, s, 1, nullptr), ValueError);
}

TEST(Presets, KnownAndUnknown) {
  for (auto& n : model_preset_names()) {
    auto j = model_preset(n, 65);
    EXPECT_NO_THROW(make_language_model(j, n)) << n;
  }
  EXPECT_THROW(model_preset("gpt-small", 65), ValueError);
  ModelOverrides o;
  o.heads = 3;
  EXPECT_THROW(model_preset("xlstm-7-1-small", 65, o), ValueError);
}

}  // namespace
