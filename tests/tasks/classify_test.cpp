// Sequence classification (tasks/classify.h): the weighted loss and its gradient, metrics on a
// hand-counted confusion matrix, class weights, masked pooling (padded batch == rows alone, for
// mean/last and uni/bidirectional), gradients through pooling and head, chunked/streamed
// inference == one pass, and length generalisation (trained on short, right on long).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "harness/compare.h"
#include "harness/run_dir.h"
#include "tasks/classify.h"

using namespace xlstm;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/xlstm_cls_XXXXXX";
  return mkdtemp(tmpl);
}

TEST(ClassifyLoss, WeightedCrossEntropyAndGradient) {
  const int64_t B = 3, C = 3;
  const float logits[B * C] = {0.5f, -1.0f, 2.0f, 0.1f, 0.2f, 0.3f, -2.0f, 1.0f, 0.0f};
  const int64_t y[B] = {2, 0, 1};
  const std::vector<double> w = {2.0, 1.0, 0.5};
  float d[B * C];
  const double l = weighted_xent(B, C, logits, y, w, d);
  // reference: sum_b w_yb * (logsumexp - logit_yb) / sum_b w_yb, written out
  double num = 0, den = 0;
  for (int64_t b = 0; b < B; ++b) {
    double z = 0;
    for (int64_t c = 0; c < C; ++c) z += std::exp((double)logits[b * C + c]);
    num += w[(size_t)y[b]] * (std::log(z) - logits[b * C + y[b]]);
    den += w[(size_t)y[b]];
  }
  EXPECT_NEAR(l, num / den, 1e-12);
  // gradient by central differences (in double on a copy)
  for (int64_t i = 0; i < B * C; ++i) {
    float lp[B * C], lm[B * C];
    std::copy(logits, logits + B * C, lp);
    std::copy(logits, logits + B * C, lm);
    lp[i] += 1e-3f;
    lm[i] -= 1e-3f;
    const double g = (weighted_xent(B, C, lp, y, w, nullptr) - weighted_xent(B, C, lm, y, w, nullptr)) /
                     (double)(lp[i] - lm[i]);
    EXPECT_NEAR(d[i], g, 1e-5) << i;
  }
}

TEST(ClassifyMetrics, HandCountedConfusion) {
  // true:  0 0 0 0 1 1 2 2 2 2      pred: 0 0 1 2 1 0 2 2 2 1
  const std::vector<int64_t> t = {0, 0, 0, 0, 1, 1, 2, 2, 2, 2}, p = {0, 0, 1, 2, 1, 0, 2, 2, 2, 1};
  ClassMetrics m = class_metrics(t, p, 3);
  EXPECT_DOUBLE_EQ(m.accuracy, 6.0 / 10.0);
  EXPECT_EQ(m.confusion[0], (std::vector<int64_t>{2, 1, 1}));
  EXPECT_EQ(m.confusion[2], (std::vector<int64_t>{0, 1, 3}));
  // class 0: P = 2/3, R = 2/4; class 1: P = 1/3, R = 1/2; class 2: P = 3/4, R = 3/4
  auto f1 = [](double p, double r) { return 2 * p * r / (p + r); };
  EXPECT_NEAR(m.f1[0], f1(2.0 / 3, 0.5), 1e-12);
  EXPECT_NEAR(m.f1[1], f1(1.0 / 3, 0.5), 1e-12);
  EXPECT_NEAR(m.f1[2], 0.75, 1e-12);
  EXPECT_NEAR(m.macro_f1, (f1(2.0 / 3, 0.5) + f1(1.0 / 3, 0.5) + 0.75) / 3, 1e-12);
  EXPECT_EQ(m.support, (std::vector<int64_t>{4, 2, 4}));
  const std::string s = format_metrics(m, {"a", "b", "c"});
  EXPECT_NE(s.find("accuracy 0.6000"), std::string::npos) << s;
  EXPECT_NE(s.find("confusion matrix"), std::string::npos) << s;
  // a class absent from truth and predictions does not count in the macro average
  ClassMetrics m2 = class_metrics({0, 1}, {0, 1}, 3);
  EXPECT_DOUBLE_EQ(m2.macro_f1, 1.0);
}

TEST(ClassifyWeights, ParseForms) {
  const std::vector<std::string> cls = {"ham", "spam"};
  EXPECT_EQ(parse_class_weights("none", cls, {30, 10}), (std::vector<double>{1, 1}));
  auto a = parse_class_weights("auto", cls, {30, 10});
  EXPECT_DOUBLE_EQ(a[0], 40.0 / 60.0);
  EXPECT_DOUBLE_EQ(a[1], 40.0 / 20.0);
  EXPECT_EQ(parse_class_weights("1,3", cls, {1, 1}), (std::vector<double>{1, 3}));
  EXPECT_EQ(parse_class_weights("spam=2.5", cls, {1, 1}), (std::vector<double>{1, 2.5}));
  EXPECT_THROW(parse_class_weights("1,2,3", cls, {1, 1}), ValueError);
  EXPECT_THROW(parse_class_weights("eggs=2", cls, {1, 1}), ValueError);
  EXPECT_THROW(parse_class_weights("1,-1", cls, {1, 1}), ValueError);
}

ClassifierSpec tiny_spec(const std::string& kind, Pool pool) {
  ClassifierSpec s;
  ModelOverrides o;
  o.width = kind == "lstm" || kind == "bilstm" ? 6 : 8;
  o.blocks = 2;
  o.heads = 2;
  const std::string preset = kind == "bilstm" ? "lstm-tiny" : kind == "xlstm" ? "xlstm-1-1-tiny" : kind + "-tiny";
  s.backbone = backbone_preset(preset, o, kind == "bilstm");
  if (s.backbone.contains("mlstm_block")) s.backbone["mlstm_block"]["mlstm"]["chunk_size"] = 4;
  s.vocab_rows = 7;
  s.embedding_dim = 5;
  s.pool = pool;
  s.classes = {"x", "y", "z"};
  return s;
}

void perturb(Module& m, uint64_t seed) {
  Rng rng(seed);
  for (auto& p : m.params()) {
    float* v = p.value->data<float>();
    for (int64_t i = 0; i < p.value->numel(); ++i) v[i] += (float)rng.normal(0, 0.1);
  }
}

struct PoolCase {
  std::string kind;
  Pool pool;
};

class ClassifierPooling : public ::testing::TestWithParam<PoolCase> {};

// Padded batch logits == each row alone; padded ids never matter; gradients of a weighted loss
// on the padded batch match central differences (float32, a few entries per tensor).
TEST_P(ClassifierPooling, PaddedEqualsAloneAndGradients) {
  const auto pc = GetParam();
  Classifier m(tiny_spec(pc.kind, pc.pool), "test", 1);
  perturb(m, 2);
  const std::vector<int64_t> len = {7, 3, 1};
  const int64_t B = 3, S = 7, C = 3;
  Rng rng(3);
  Tensor ids({B, S}, DType::I64), lengths = Tensor::from<int64_t>({B}, len);
  for (int64_t i = 0; i < B * S; ++i) ids.data<int64_t>()[i] = 1 + (int64_t)rng.below(6);
  Tensor logits = m.forward(ids, lengths, Mode::Eval, nullptr);
  for (int64_t b = 0; b < B; ++b) {
    Tensor row({1, len[(size_t)b]}, DType::I64);
    std::copy(ids.data<int64_t>() + b * S, ids.data<int64_t>() + b * S + len[(size_t)b], row.data<int64_t>());
    Tensor lb = m.forward(row, Tensor(), Mode::Eval, nullptr);
    test::expect_close("row " + std::to_string(b), logits.data<float>() + b * C, lb.data<float>(), C, 1e-5, 1e-4);
  }
  const int64_t y[B] = {0, 2, 1};
  const std::vector<double> w = {1.0, 2.0, 0.5};
  auto loss = [&] {
    Tensor l = m.forward(ids, lengths, Mode::Eval, nullptr);
    return weighted_xent(B, C, l.data<float>(), y, w, nullptr);
  };
  Tensor l = m.forward(ids, lengths, Mode::Eval, nullptr);
  Tensor d({B, C}, DType::F32);
  weighted_xent(B, C, l.data<float>(), y, w, d.data<float>());
  m.zero_grad();
  m.backward(d);
  int checked = 0;
  for (auto& p : m.params()) {
    float* v = p.value->data<float>();
    const float* g = p.grad->data<float>();
    const int64_t n = p.value->numel();
    for (int64_t i = 0; i < n; i += std::max<int64_t>(1, n / 3)) {
      const float x0 = v[i];
      const double h = 1e-2;
      v[i] = x0 + (float)h;
      const double lp = loss();
      v[i] = x0 - (float)h;
      const double lm = loss();
      v[i] = x0;
      const double num = (lp - lm) / (2 * h);
      EXPECT_NEAR(g[i], num, 1e-3 + 2e-2 * std::fabs(num)) << pc.kind << " " << p.name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

INSTANTIATE_TEST_SUITE_P(Cases, ClassifierPooling,
                         ::testing::Values(PoolCase{"lstm", Pool::Mean}, PoolCase{"lstm", Pool::Last},
                                           PoolCase{"bilstm", Pool::Mean}, PoolCase{"bilstm", Pool::Last},
                                           PoolCase{"slstm", Pool::Last}, PoolCase{"mlstm", Pool::Mean},
                                           PoolCase{"xlstm", Pool::Mean}),
                         [](const auto& i) {
                           return i.param.kind + "_" + pool_name(i.param.pool);
                         });

// Chunked inference (the stream with carried state) gives the logits of one pass.
TEST(Classifier, ChunkedInferenceEqualsOnePass) {
  for (const char* kind : {"lstm", "xlstm"}) {
    for (Pool pool : {Pool::Mean, Pool::Last}) {
      Classifier m(tiny_spec(kind, pool), "test", 4);
      perturb(m, 5);
      Rng rng(6);
      std::vector<std::vector<int64_t>> seqs;
      for (int64_t n : {23, 5, 40}) {
        std::vector<int64_t> q((size_t)n);
        for (auto& v : q) v = (int64_t)rng.below(7);
        seqs.push_back(q);
      }
      auto full = m.predict_logits(seqs, 8);  // chunk 2048: one padded pass
      m.set_chunk(6);
      auto chunked = m.predict_logits(seqs, 8);  // 23 and 40 go through the stream
      ClassifyStream st = m.new_stream();
      for (size_t i = 0; i < seqs[2].size(); i += 7)  // pieces of 7 fed in chunks of 6
        m.feed(st, seqs[2].data() + i, std::min<int64_t>(7, (int64_t)(seqs[2].size() - i)));
      auto streamed = m.stream_logits(st);
      for (size_t i = 0; i < seqs.size(); ++i)
        test::expect_close(std::string(kind) + " chunked", chunked[i].data(), full[i].data(), 3, 1e-5, 1e-4);
      test::expect_close(std::string(kind) + " streamed", streamed.data(), full[2].data(), 3, 1e-5, 1e-4);
    }
  }
}

// Majority of 'a' vs 'b' in sequences of 5..20 characters; the trained model classifies
// sequences of 300..600 characters (read in chunks of 64 with the carried state).
TEST(Classifier, LengthGeneralisation) {
  const std::string d = temp_dir();
  Rng rng(11);
  auto make = [&](const std::string& path, int n, int lo, int hi) {
    std::ofstream f(path);
    f << "text,label\n";
    for (int i = 0; i < n; ++i) {
      const bool a = i % 2 == 0;
      const int len = lo + (int)rng.below((uint64_t)(hi - lo + 1));
      std::string s;
      for (int k = 0; k < len; ++k) s += (rng.uniform() < (a ? 0.75 : 0.25)) ? 'a' : 'b';
      f << s << "," << (a ? "A" : "B") << "\n";
    }
  };
  make(d + "/train.csv", 400, 5, 20);
  make(d + "/long.csv", 60, 300, 600);
  ClassifyTrainConfig c;
  c.data = d + "/train.csv";
  c.out = d + "/run";
  c.steps = 150;
  c.eval_every = 50;
  c.lr = 1e-2;
  c.warmup = 10;
  ModelOverrides o;
  o.width = 16;
  ClassifyTrainResult r = train_classifier(c, backbone_preset("lstm-tiny", o), nullptr);
  EXPECT_EQ(r.steps, 150);
  EXPECT_GE(r.val.accuracy, 0.85);
  LoadedClassifier lc = load_classifier(c.out);
  lc.model->set_chunk(64);
  const LabeledTexts lt = read_labeled_texts(d + "/long.csv", true);
  std::vector<std::vector<int64_t>> seqs(lt.texts.size());
  for (size_t i = 0; i < seqs.size(); ++i) lc.tokenizer.encode(lt.texts[i], seqs[i], "long");
  auto logits = lc.model->predict_logits(seqs, 16);
  int correct = 0;
  for (size_t i = 0; i < seqs.size(); ++i)
    correct += ((logits[i][0] > logits[i][1]) ? "A" : "B") == lt.labels[i];
  EXPECT_GE(correct, 57) << "of 60 long sequences";
  std::printf("short-trained model on 300..600 steps: %d/60 correct (validation on short: %.3f)\n",
              correct, r.val.accuracy);
  fs::remove_all(d);
}

struct Interrupt {};

// A run stopped after an evaluation (a checkpoint from the one before, mid-epoch, dropout on,
// the best model in flight) and resumed ends exactly as the uninterrupted run: the same weights
// (best and last), optimizer state and metrics rows (elapsed time aside).
TEST(ClassifyTrain, InterruptedAndResumedEqualsUninterrupted) {
  const std::string d = temp_dir();
  Rng rng(5);
  {
    std::ofstream f(d + "/train.csv");
    f << "text,label\n";
    for (int i = 0; i < 150; ++i) {
      const bool a = i % 3 == 0;
      std::string s;
      for (int k = 0, len = 4 + (int)rng.below(12); k < len; ++k)
        s += (rng.uniform() < (a ? 0.7 : 0.3)) ? 'a' : 'b';
      f << s << "," << (a ? "A" : "B") << "\n";
    }
  }
  ClassifyTrainConfig c;
  c.data = d + "/train.csv";
  c.steps = 40;
  c.batch_size = 16;  // 135 training rows: 9 batches per epoch
  c.eval_every = 7;
  c.log_every = 3;
  c.patience = 20;
  c.lr = 1e-2;
  c.warmup = 5;
  ModelOverrides o;
  o.width = 8;
  o.blocks = 2;  // dropout between the layers
  o.dropout = 0.2;
  const json bb = backbone_preset("lstm-tiny", o);
  c.out = d + "/full";
  const ClassifyTrainResult full = train_classifier(c, bb, nullptr);
  ASSERT_EQ(full.steps, 40);
  c.out = d + "/resumed";
  auto stop = [](const ClassifyProgress& p) {
    if (p.eval && p.step == 28) throw Interrupt{};  // the checkpoint is step 21 (3rd epoch)
  };
  EXPECT_THROW(train_classifier(c, bb, stop), Interrupt);
  ClassifyTrainConfig r;
  r.out = c.out;
  const ClassifyTrainResult res = train_classifier(r, json::object(), nullptr, true);
  EXPECT_EQ(res.steps, 40);
  EXPECT_EQ(res.best_val_f1, full.best_val_f1);
  EXPECT_EQ(res.val.accuracy, full.val.accuracy);
  for (const char* f : {"/best/model.safetensors", "/checkpoint/model.safetensors",
                        "/checkpoint/optimizer.safetensors"})
    test::expect_same_safetensors(d + "/full" + f, c.out + f);
  EXPECT_EQ(test::csv_rows_without(d + "/full/metrics.csv", "elapsed_s"),
            test::csv_rows_without(c.out + "/metrics.csv", "elapsed_s"));
  // A larger --steps extends the finished run; resumed again, it stays extended.
  r.steps = 50;
  EXPECT_EQ(train_classifier(r, json::object(), nullptr, true).steps, 50);
  r.steps = 0;
  EXPECT_EQ(train_classifier(r, json::object(), nullptr, true).steps, 50);
  // --stop-at (how `xlstm tune` pauses a trial): a checkpoint at that step; resumed, the same
  // last weights and optimizer state as the uninterrupted run (validation draws no randoms).
  c.out = d + "/stopped";
  c.stop_at = 23;
  const ClassifyTrainResult part = train_classifier(c, bb, nullptr);
  EXPECT_EQ(part.steps, 23);
  EXPECT_EQ(part.stop_reason, "stop_at");
  ClassifyTrainConfig again;
  again.out = c.out;
  EXPECT_EQ(train_classifier(again, json::object(), nullptr, true).steps, 40);
  for (const char* f : {"/checkpoint/model.safetensors", "/checkpoint/optimizer.safetensors"})
    test::expect_same_safetensors(d + "/full" + f, c.out + f);
  // Another training file: refused, naming it.
  {
    std::ofstream f(d + "/other.csv");
    f << "text,label\nxyz,A\nzzy,B\nabc,A\nqq,B\n";
  }
  r.data = d + "/other.csv";
  try {
    train_classifier(r, json::object(), nullptr, true);
    ADD_FAILURE() << "resume on other data was accepted";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("other.csv: not the data"), std::string::npos) << e.what();
  }
  ClassifyTrainConfig none;
  none.out = d + "/nothing";
  EXPECT_THROW(train_classifier(none, json::object(), nullptr, true), IoError);
  fs::remove_all(d);
}

TEST(ClassifyData, BadFiles) {
  const std::string d = temp_dir();
  auto write = [&](const std::string& name, const std::string& s) {
    std::ofstream(d + "/" + name) << s;
    return d + "/" + name;
  };
  auto err = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ClassifyTrainConfig c;
  c.out = d + "/run";
  c.steps = 1;
  c.data = write("one.csv", "text,label\nabc,x\ndef,x\n");
  EXPECT_NE(err([&] { train_classifier(c, backbone_preset("lstm-tiny", {}), nullptr); })
                .find("one.csv: only one class ('x')"), std::string::npos);
  EXPECT_NE(err([&] { read_labeled_texts(write("e.csv", "text,label\n,x\n"), true); })
                .find("e.csv: line 2: empty text"), std::string::npos);
  EXPECT_NE(err([&] { read_labeled_texts(write("m.jsonl", "{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"b\"}\n"), false); })
                .find("m.jsonl: line 2: missing value in field 'label'"), std::string::npos);
  EXPECT_NE(err([&] { read_labeled_texts(write("n.csv", "body,label\na,x\n"), true); })
                .find("n.csv: missing column 'text'"), std::string::npos);
  const LabeledTexts u = read_labeled_texts(write("u.csv", "text\nhello\n"), false);
  EXPECT_FALSE(u.has_labels);
  c.data = write("ok.csv", "text,label\nabc,x\ndef,y\n");
  c.val = write("val.csv", "text,label\nabc,z\n");
  EXPECT_NE(err([&] { train_classifier(c, backbone_preset("lstm-tiny", {}), nullptr); })
                .find("val.csv: line 2: label 'z' does not occur in the training data"), std::string::npos);
  fs::remove_all(d);
}

}  // namespace
