// `inspect_model` against independent references: the float32 modules stepped by the test
// itself (their states must equal the recorded ones), the cell equations applied to the
// recorded gates (they must give the recorded states), the gate ranges and the stabiliser
// identities; and the files `write_inspect` produces.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <fstream>

#include "inspect/inspect.h"
#include "models/presets.h"
#include "models/xlstm_config.h"
#include "models/xlstm_lm.h"
#include "nn/lstm.h"
#include "viz/plot.h"

using namespace xlstm;
using json = nlohmann::json;

namespace {

const std::string kText = "abcdefgh ijk.";

// A small model with every parameter perturbed, so that no gate sits at its initial value
// (zero recurrent kernels, zero gate weights).
LoadedModel make_model(const json& cfg, uint64_t seed) {
  LoadedModel m;
  m.vocab = Vocab::from_text(kText, "test");
  json c = cfg;
  c["vocab_size"] = m.vocab.size();
  m.model = make_language_model(c, "test", seed);
  Rng rng(seed + 100);
  for (auto& p : m.model->params()) {
    float* v = p.value->data<float>();
    for (int64_t k = 0; k < p.value->numel(); ++k) v[k] += (float)rng.normal(0.0, 0.3);
  }
  m.config = {{"model", c}};
  m.dir = "test-model";
  return m;
}

json lstm_config() {
  return {{"arch", "lstm"}, {"vocab_size", 1}, {"embedding_dim", 6}, {"hidden_size", 8},
          {"num_layers", 2}};
}

json xlstm_config() {
  ModelOverrides o;
  o.width = 16;
  o.blocks = 2;
  o.heads = 2;
  o.slstm_at = "1";  // block 0 mLSTM, block 1 sLSTM
  return model_preset("xlstm-1-1-tiny", 1, o);
}

std::vector<int64_t> some_ids(int64_t V, int n, uint64_t seed) {
  Rng r(seed);
  std::vector<int64_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back((int64_t)r.below((uint64_t)V));
  return ids;
}

// value of trace `t` at step s, row u
double at(const Trace& t, int64_t s, int64_t u) { return t.values[(size_t)(s * t.rows + u)]; }

std::map<std::string, Tensor> float_params(LoadedModel& m, const std::string& prefix) {
  std::map<std::string, Tensor> r;
  for (auto& p : m.model->params())
    if (p.name.rfind(prefix, 0) == 0) r[p.name.substr(prefix.size())] = *p.value;
  return r;
}

std::string temp_dir() {
  char tmpl[] = "/tmp/xlstm_inspect_XXXXXX";
  return mkdtemp(tmpl);
}

}  // namespace

TEST(Inspect, LstmTracesMatchTheFloatModulesAndTheEquations) {
  LoadedModel m = make_model(lstm_config(), 1);
  const int T = 14;
  const auto ids = some_ids(m.vocab.size(), T, 2);
  const InspectResult r = inspect_model(m, ids, -1);
  ASSERT_EQ(r.layers.size(), 2u);
  EXPECT_LT(r.max_state_err, 1e-12);
  EXPECT_LT(r.max_logit_err, 1e-4);
  // the float32 LSTM, stepped here, has the recorded h and c at every step
  LSTMConfig lc;
  lc.input_size = 6, lc.hidden_size = 8, lc.num_layers = 2;
  LSTM<float> ref(lc);
  ref.load_params(float_params(m, "lstm."), "test");
  const auto embp = float_params(m, "embedding.");
  const float* emb = embp.at("weight").data<float>();
  Tensor h({2, 1, 8}, DType::F32), c({2, 1, 8}, DType::F32);
  for (int t = 0; t < T; ++t) {
    std::vector<float> x(emb + ids[t] * 6, emb + ids[t] * 6 + 6);
    ref.step(Tensor::from<float>({1, 6}, x), h, c);
    for (int l = 0; l < 2; ++l)
      for (int u = 0; u < 8; ++u) {
        EXPECT_NEAR(at(r.layers[l].get("h"), t, u), h.data<float>()[l * 8 + u], 1e-5);
        EXPECT_NEAR(at(r.layers[l].get("c"), t, u), c.data<float>()[l * 8 + u], 1e-5);
      }
  }
  // the recorded gates give the recorded states; gates in their ranges
  for (const auto& L : r.layers) {
    const Trace &i = L.get("i"), &f = L.get("f"), &g = L.get("g"), &o = L.get("o"),
                &cs = L.get("c"), &hs = L.get("h");
    for (int t = 0; t < T; ++t)
      for (int u = 0; u < 8; ++u) {
        const double cp = t ? at(cs, t - 1, u) : 0.0;
        EXPECT_NEAR(at(cs, t, u), at(f, t, u) * cp + at(i, t, u) * at(g, t, u), 1e-12);
        EXPECT_NEAR(at(hs, t, u), at(o, t, u) * std::tanh(at(cs, t, u)), 1e-12);
        for (const Trace* q : {&i, &f, &o}) {
          EXPECT_GT(at(*q, t, u), 0.0);
          EXPECT_LT(at(*q, t, u), 1.0);
        }
        EXPECT_LE(std::fabs(at(g, t, u)), 1.0);
      }
  }
}

TEST(Inspect, XlstmTracesMatchTheFloatModelAndTheEquations) {
  LoadedModel m = make_model(xlstm_config(), 3);
  const int T = 16;
  const auto ids = some_ids(m.vocab.size(), T, 4);
  const InspectResult r = inspect_model(m, ids, -1);
  ASSERT_EQ(r.layers.size(), 2u);
  ASSERT_EQ(r.layers[0].kind, "mlstm");
  ASSERT_EQ(r.layers[1].kind, "slstm");
  EXPECT_LT(r.max_state_err, 1e-10);
  EXPECT_LT(r.max_logit_err, 1e-4);
  // the float32 xLSTM stepped here: its carried states are the recorded ones
  XLSTMLM<float> ref(xlstm_lm_config_from_json(m.model->config(), "test"));
  ref.load_params(float_params(m, ""), "test");
  XLSTMLMState st;
  const Trace &mm = r.layers[0].get("m"), &cn = r.layers[0].get("C_norm");
  const int64_t NH = 2, I = mm.rows ? r.layers[0].get("h").rows : 0, DH = I / NH;
  ASSERT_EQ(mm.rows, NH);
  for (int t = 0; t < T; ++t) {
    ref.step(Tensor::from<int64_t>({1}, {ids[t]}), st);
    const Tensor& C = st.blocks[0].mlstm.cell.c;   // (1, NH, DH, DH)
    const Tensor& M = st.blocks[0].mlstm.cell.m;   // (1, NH)
    for (int h = 0; h < NH; ++h) {
      double norm = 0;
      for (int64_t k = 0; k < DH * DH; ++k) {
        const double v = C.data<float>()[h * DH * DH + k];
        norm += v * v;
      }
      EXPECT_NEAR(at(mm, t, h), M.data<float>()[h], 1e-4);
      EXPECT_NEAR(at(cn, t, h), std::sqrt(norm), 1e-4 * (1 + std::sqrt(norm)));
    }
    const Tensor& S = st.blocks[1].slstm.slstm;  // (4, 1, H): y, c, n, m
    const char* names[4] = {"h", "c", "n", "m"};
    for (int q = 0; q < 4; ++q)
      for (int u = 0; u < 16; ++u) {
        const double want = S.data<float>()[q * 16 + u];
        EXPECT_NEAR(at(r.layers[1].get(names[q]), t, u), want, 1e-4 * (1 + std::fabs(want)))
            << names[q] << " t=" << t << " u=" << u;
      }
  }
  // sLSTM: the cell equations on the recorded gates; one of i, f is exactly 1 (stabiliser)
  {
    const LayerTrace& L = r.layers[1];
    const Trace &i = L.get("i"), &f = L.get("f"), &z = L.get("z"), &o = L.get("o"),
                &c = L.get("c"), &n = L.get("n"), &h = L.get("h");
    for (int t = 0; t < T; ++t)
      for (int u = 0; u < 16; ++u) {
        const double cp = t ? at(c, t - 1, u) : 0, np = t ? at(n, t - 1, u) : 0;
        EXPECT_NEAR(at(c, t, u), at(f, t, u) * cp + at(i, t, u) * at(z, t, u), 1e-12);
        EXPECT_NEAR(at(n, t, u), at(f, t, u) * np + at(i, t, u), 1e-12);
        EXPECT_NEAR(at(h, t, u), at(o, t, u) * at(c, t, u) / at(n, t, u), 1e-12);
        EXPECT_EQ(std::max(at(i, t, u), at(f, t, u)), 1.0);
        for (const Trace* q : {&i, &f, &o}) {
          EXPECT_GE(at(*q, t, u), 0.0);
          EXPECT_LE(at(*q, t, u), 1.0);
        }
      }
  }
  // mLSTM: the stabiliser recursion on the recorded pre-activations
  {
    const LayerTrace& L = r.layers[0];
    const Trace &ir = L.get("i_raw"), &fr = L.get("f_raw"), &i = L.get("i"), &f = L.get("f"),
                &qn = L.get("qn"), &den = L.get("den");
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < NH; ++h) {
        const double x = at(fr, t, h);
        const double lsf = std::min(x, 0.0) - std::log1p(std::exp(-std::fabs(x)));
        const double mp = t ? at(mm, t - 1, h) : 0.0;
        const double m_t = std::max(lsf + mp, at(ir, t, h));
        EXPECT_NEAR(at(mm, t, h), m_t, 1e-12);
        EXPECT_NEAR(at(i, t, h), std::exp(at(ir, t, h) - m_t), 1e-12);
        EXPECT_NEAR(at(f, t, h), std::exp(lsf + mp - m_t), 1e-12);
        EXPECT_EQ(std::max(at(i, t, h), at(f, t, h)), 1.0);
        EXPECT_NEAR(at(den, t, h), std::max(std::fabs(at(qn, t, h)), std::exp(-m_t)) + 1e-6, 1e-12);
      }
  }
}

TEST(Inspect, LayerSelectionAndBadInput) {
  LoadedModel m = make_model(xlstm_config(), 5);
  const auto ids = some_ids(m.vocab.size(), 5, 6);
  const InspectResult one = inspect_model(m, ids, 1);
  ASSERT_EQ(one.layers.size(), 1u);
  EXPECT_EQ(one.layers[0].index, 1);
  EXPECT_EQ(one.layers[0].kind, "slstm");
  try {
    inspect_model(m, ids, 2);
    ADD_FAILURE() << "no error";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("0..1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(inspect_model(m, ids, -2), ValueError);
  EXPECT_THROW(inspect_model(m, {}, -1), ValueError);
  EXPECT_THROW(inspect_model(m, {0, 99}, -1), ValueError);
}

TEST(Inspect, FilesHaveTheRightShape) {
  LoadedModel m = make_model(lstm_config(), 7);
  const std::string text = "abc de.fgh";
  auto ids32 = m.vocab.encode(text);
  const std::vector<int64_t> ids(ids32.begin(), ids32.end());
  const InspectResult r = inspect_model(m, ids, 1);
  EXPECT_EQ(r.labels[3], "\u2423");  // the space, visible
  const std::string root = temp_dir(), d = root + "/out";
  const auto files = write_inspect(r, d);
  ASSERT_EQ(files.size(), 12u);  // i f g o c h, PNG + CSV each
  for (const auto& f : files) {
    if (f.size() > 4 && f.substr(f.size() - 4) == ".png") {
      int w = 0, h = 0;
      png_size(f, w, h);
      EXPECT_GE(w, 900) << f;
      EXPECT_GE(h, 400) << f;
      continue;
    }
    std::ifstream in(f);
    std::string line;
    int rows = 0;
    std::getline(in, line);
    EXPECT_EQ(line.rfind("step,token,unit_0,", 0), 0u) << line;
    EXPECT_EQ(std::count(line.begin(), line.end(), ','), 2 + 8 - 1) << line;
    while (std::getline(in, line)) {
      EXPECT_EQ(std::count(line.begin(), line.end(), ','), 2 + 8 - 1) << line;
      EXPECT_EQ(line.rfind(std::to_string(rows) + ",\"", 0), 0u) << line;
      ++rows;
    }
    EXPECT_EQ(rows, (int)text.size()) << f;
  }
  // the CSV holds the traced values
  std::ifstream in(d + "/layer1_lstm_h.csv");
  std::string line;
  std::getline(in, line);
  std::getline(in, line);
  const double first = std::stod(line.substr(line.find("\",") + 2));
  EXPECT_EQ(first, at(r.layers[0].get("h"), 0, 0));
  std::filesystem::remove_all(root);
}
