// Truncated backpropagation through time (train/tbptt.h):
//  - the stream sampler's windows, written out by hand (segments, document ends, padding, wrap);
//  - a window from a fresh state is the normal training step (same loss and gradients);
//  - the state carried across windows gives the logits of one long forward;
//  - a document boundary restarts a stream from the zero state;
//  - the trainer with --tbptt and --doc-sep: loss falls, an interrupted and resumed run ends
//    with bit-identical weights (carried state and stream positions are in the checkpoint).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "cpu/xent.h"
#include "harness/compare.h"
#include "models/lm.h"
#include "models/presets.h"
#include "train/tbptt.h"
#include "train/trainer.h"

using namespace xlstm;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<const std::vector<int32_t>> iota_tokens(int n) {
  auto v = std::make_shared<std::vector<int32_t>>((size_t)n);
  std::iota(v->begin(), v->end(), 0);
  return v;
}

std::vector<int64_t> row(const Tensor& t, int64_t b) {
  const int64_t K = t.dim(1);
  return std::vector<int64_t>(t.data<int64_t>() + b * K, t.data<int64_t>() + (b + 1) * K);
}

using V = std::vector<int64_t>;

TEST(StreamSampler, WindowsByHand) {
  // 20 tokens 0..19, documents start at 0, 7, 15; 2 streams: [0,10) and [10,20); K = 4
  StreamSampler s(iota_tokens(20), 2, 4, {7, 15}, "test");
  StreamSampler::Window w;
  s.next(w);
  EXPECT_EQ(row(w.ids, 0), (V{0, 1, 2, 3}));
  EXPECT_EQ(row(w.targets, 0), (V{1, 2, 3, 4}));
  EXPECT_EQ(row(w.ids, 1), (V{10, 11, 12, 13}));
  EXPECT_EQ(row(w.targets, 1), (V{11, 12, 13, 14}));
  EXPECT_EQ(w.reset, (V{0, 1}));  // both streams start from zeros
  s.next(w);
  EXPECT_EQ(row(w.ids, 0), (V{4, 5, 0, 0}));      // document 0 ends at 6: padded
  EXPECT_EQ(row(w.targets, 0), (V{5, 6, -1, -1}));
  EXPECT_EQ(row(w.ids, 1), (V{15, 16, 17, 18}));  // document 2 starts at 15
  EXPECT_EQ(row(w.targets, 1), (V{16, 17, 18, 19}));
  EXPECT_EQ(w.reset, (V{1}));
  s.next(w);
  EXPECT_EQ(row(w.ids, 0), (V{7, 8, 0, 0}));      // document 1, cut by the segment end at 10
  EXPECT_EQ(row(w.targets, 0), (V{8, 9, -1, -1}));
  EXPECT_EQ(row(w.ids, 1), (V{10, 11, 12, 13}));  // stream 1 wrapped
  EXPECT_EQ(w.reset, (V{0, 1}));
  // state round trip
  Tensor st = s.state_tensor();
  StreamSampler s2(iota_tokens(20), 2, 4, {7, 15}, "test");
  s2.load_state(st, "ck");
  StreamSampler::Window a, b;
  s.next(a);
  s2.next(b);
  EXPECT_EQ(row(a.ids, 0), row(b.ids, 0));
  EXPECT_EQ(a.reset, b.reset);
  EXPECT_EQ(row(a.ids, 0), (V{0, 1, 2, 3}));  // stream 0 wrapped
  EXPECT_THROW(StreamSampler(iota_tokens(3), 2, 4, {}, "tiny"), ValueError);
  EXPECT_EQ(document_starts({1, 2, 9, 9, 3, 9, 9, 4, 9, 9}, {9, 9}), (V{0, 4, 7}));
}

nlohmann::json tiny(const std::string& preset, int64_t V) {
  ModelOverrides o;
  o.width = 16;
  o.blocks = 2;
  o.heads = 2;
  o.context = 16;
  if (preset.rfind("xlstm", 0) == 0) o.slstm_at = "1";
  auto j = model_preset(preset, V, o);
  if (j.contains("mlstm_block")) j["mlstm_block"]["mlstm"]["chunk_size"] = 4;
  return j;
}

void perturb(LanguageModel& m) {
  Rng rng(2);
  for (auto& p : m.params()) {
    float* v = p.value->data<float>();
    for (int64_t i = 0; i < p.value->numel(); ++i) v[i] += (float)rng.normal(0, 0.05);
  }
}

std::vector<std::vector<float>> grads(LanguageModel& m) {
  std::vector<std::vector<float>> g;
  for (auto& p : m.params()) g.emplace_back(p.grad->data<float>(), p.grad->data<float>() + p.grad->numel());
  return g;
}

class TbpttModel : public ::testing::TestWithParam<std::string> {};

// K == the full length: one window from a fresh state is the normal training step.
TEST_P(TbpttModel, FullLengthWindowEqualsNormalStep) {
  const int64_t Vs = 9, B = 2, K = 12;
  auto m = make_language_model(tiny(GetParam(), Vs), "test", 1);
  perturb(*m);
  // two streams of exactly K+1 tokens each: the runner's first window is tokens[0..K) -> [1..K]
  auto tokens = std::make_shared<std::vector<int32_t>>();
  Rng rng(3);
  for (int64_t i = 0; i < B * (K + 1); ++i) tokens->push_back((int32_t)rng.below(Vs));
  TbpttRunner run(*m, std::make_unique<StreamSampler>(tokens, B, K, std::vector<int64_t>{}, "test"));
  m->zero_grad();
  const double l1 = run.micro_step(Mode::Eval, 1.0, nullptr);
  auto g1 = grads(*m);
  Tensor ids({B, K}, DType::I64), tgt({B, K}, DType::I64);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < K; ++t) {
      ids.data<int64_t>()[b * K + t] = (*tokens)[(size_t)(b * (K + 1) + t)];
      tgt.data<int64_t>()[b * K + t] = (*tokens)[(size_t)(b * (K + 1) + t + 1)];
    }
  m->zero_grad();
  Tensor logits = m->forward(ids, Mode::Eval, nullptr);
  Tensor dl({B, K, Vs}, DType::F32);
  const double l2 = xent_forward_backward<float>(B * K, Vs, logits.data<float>(), tgt.data<int64_t>(), -1,
                                                 dl.data<float>());
  m->backward(dl);
  auto g2 = grads(*m);
  EXPECT_NEAR(l1, l2, 1e-6 * std::fabs(l2));
  for (size_t i = 0; i < g1.size(); ++i)
    test::expect_close("grad " + std::to_string(i), g1[i].data(), g2[i].data(), (int64_t)g1[i].size(), 1e-6, 1e-4);
}

// The state carried across windows gives the logits of one long forward; a document boundary
// restarts the stream from zeros.
TEST_P(TbpttModel, CarriedStateEqualsOneLongForward) {
  const int64_t Vs = 9, K = 5, S = 3 * K;
  auto m = make_language_model(tiny(GetParam(), Vs), "test", 4);
  perturb(*m);
  Rng rng(5);
  Tensor ids({2, S}, DType::I64);
  for (int64_t i = 0; i < 2 * S; ++i) ids.data<int64_t>()[i] = (int64_t)rng.below(Vs);
  Tensor full = m->forward(ids, Mode::Eval, nullptr);
  auto st = m->new_state(2);
  for (int64_t w = 0; w < 3; ++w) {
    Tensor part({2, K}, DType::I64);
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t t = 0; t < K; ++t) part.data<int64_t>()[b * K + t] = ids.data<int64_t>()[b * S + w * K + t];
    Tensor l = m->forward_carry(part, Mode::Eval, nullptr, *st);
    for (int64_t b = 0; b < 2; ++b)
      test::expect_close("window " + std::to_string(w), l.data<float>() + b * K * Vs,
                         full.data<float>() + (b * S + w * K) * Vs, K * Vs, 2e-5, 1e-4);
  }
  // runner with one stream and a document starting at token 5: the second window is
  // tokens 5..8 from the zero state (the loss of a fresh forward), not a continuation
  auto tokens = std::make_shared<std::vector<int32_t>>();
  for (int64_t i = 0; i < 12; ++i) tokens->push_back((int32_t)rng.below(Vs));
  TbpttRunner run(*m, std::make_unique<StreamSampler>(tokens, 1, 4, std::vector<int64_t>{5}, "test"));
  run.micro_step(Mode::Eval, 1.0, nullptr);
  const double l2 = run.micro_step(Mode::Eval, 1.0, nullptr);
  Tensor w2({1, 4}, DType::I64), t2({1, 4}, DType::I64);
  for (int64_t t = 0; t < 4; ++t) {
    w2.data<int64_t>()[t] = (*tokens)[(size_t)(5 + t)];
    t2.data<int64_t>()[t] = (*tokens)[(size_t)(6 + t)];
  }
  Tensor lf = m->forward(w2, Mode::Eval, nullptr);
  const double ref = xent_forward_backward<float>(4, Vs, lf.data<float>(), t2.data<int64_t>(), -1, nullptr);
  EXPECT_NEAR(l2, ref, 1e-5 * std::fabs(ref));
}

INSTANTIATE_TEST_SUITE_P(Models, TbpttModel, ::testing::Values("xlstm-1-1-tiny", "lstm-tiny"),
                         [](const auto& i) {
                           std::string n = i.param;
                           for (auto& c : n) if (c == '-') c = '_';
                           return n;
                         });

std::string file_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(TbpttTrainer, LossFallsAndResumeIsBitIdentical) {
  char tmpl[] = "/tmp/xlstm_tbptt_XXXXXX";
  const std::string d = mkdtemp(tmpl);
  std::string text;
  for (int i = 0; i < 150; ++i) text += "the quick brown fox jumps over the lazy dog.\n\n";
  std::ofstream(d + "/c.txt") << text;
  auto cfg = [&](const std::string& out) {
    TrainConfig c;
    c.data = d + "/c.txt";
    c.out = d + "/" + out;
    c.batch_size = 4;
    c.tbptt = 16;
    c.doc_sep = "\n\n";
    c.steps = 40;
    c.eval_every = 10;
    c.eval_batches = 2;
    c.warmup = 3;
    c.lr = 1e-2;
    return c;
  };
  ModelOverrides o;
  o.width = 16;
  o.dropout = 0.1;
  const auto model = model_preset("lstm-tiny", 1, o);
  TrainResult a = train_language_model(cfg("a"), model, false, nullptr);
  EXPECT_EQ(a.steps, 40);
  // untrained: about ln(29 symbols) = 3.37 nats
  EXPECT_LT(a.last_val_loss, 0.75 * std::log(29.0)) << "the loss must fall";
  TrainConfig b = cfg("b");
  b.stop_at = 17;  // between evaluations: the carried state is mid-stream
  train_language_model(b, model, false, nullptr);
  TrainConfig b2;
  b2.out = d + "/b";
  TrainResult rb = train_language_model(b2, nlohmann::json(), true, nullptr);
  EXPECT_EQ(rb.steps, 40);
  EXPECT_TRUE(file_bytes(d + "/a/checkpoint/model.safetensors") ==
              file_bytes(d + "/b/checkpoint/model.safetensors"))
      << "weights differ after resume";
  TrainConfig bad = cfg("c");
  bad.doc_sep = "\x01";
  EXPECT_THROW(train_language_model(bad, model, false, nullptr), ValueError);  // not in the vocab
  fs::remove_all(d);
}

}  // namespace
