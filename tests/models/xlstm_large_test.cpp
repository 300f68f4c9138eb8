// xLSTM-Large and the Hugging Face format: gradients vs finite differences, streaming forms,
// the ../shared/hf fixtures (logits, states, teacher-forced steps, greedy, tie fallback), the
// loader's validation, sharded and bf16 checkpoints, batched generation and fine-tuning.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "infer/sample.h"
#include "io/safetensors.h"
#include "models/hf.h"
#include "models/hf_check.h"
#include "models/xlstm_large_lm.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

using namespace xlstm;
namespace fs = std::filesystem;

namespace {

XLSTMLargeConfig tiny(bool bias) {
  XLSTMLargeConfig c;
  c.vocab_size = 11;
  c.embedding_dim = 8;
  c.num_heads = 2;
  c.num_blocks = 2;
  c.use_bias = bias;
  c.qk_dim_factor = 0.5;
  c.v_dim_factor = 1.0;
  c.ffn_proj_factor = 1.3;
  c.ffn_round_up_to_multiple_of = 4;
  c.chunk_size = 3;
  c.gate_soft_cap = 2.0;  // small caps so that they bend the gradients
  c.output_logit_soft_cap = 3.0;
  return c;
}

// Every parameter perturbed (the HF init zeroes the gates).
template <class T>
void randomize(XLSTMLarge<T>& m, uint64_t seed) {
  Rng rng(seed);
  for (auto& p : m.params()) {
    T* v = p.value->template data<T>();
    for (int64_t i = 0; i < p.value->numel(); ++i) v[i] += (T)(0.4 * rng.normal());
  }
}

Tensor ids_tensor(const std::vector<int64_t>& v, int64_t B) {
  const int64_t S = (int64_t)v.size() / B;
  Tensor t({B, S}, DType::I64);
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

std::string temp_dir() {
  char tmpl[] = "/tmp/xlstm_large_XXXXXX";
  return mkdtemp(tmpl);
}

std::string hf_dir(const std::string& name) {
  const std::string s = test::shared_dir();
  return s.empty() ? "" : s + "/hf/" + name;
}

#define NEED_HF(name)                                                              \
  if (hf_dir(name).empty() || !fs::exists(hf_dir(name)))                          \
  GTEST_SKIP() << "no ../shared/hf/" << name << " (set XLSTM_SHARED_DIR)"

}  // namespace

TEST(XLSTMLarge, GradientsMatchFiniteDifferences) {
  for (bool bias : {false, true}) {
    XLSTMLarge<double> m(tiny(bias));
    randomize(m, 3);
    m.enable_training();
    Tensor ids = ids_tensor({1, 4, 7, 2, 9, 3, 0, 5, 10, 6, 8, 2, 4, 1}, 2);  // B=2, S=7
    Rng rng(5);
    auto w = test::randn<double>(2 * 7 * 11, rng);
    auto loss = [&] {
      Tensor l = m.forward(ids, Mode::Train);
      return test::dot(l.data<double>(), w.data(), l.numel());
    };
    loss();
    m.zero_grad();
    m.backward(Tensor::from<double>({2, 7, 11}, w));
    for (auto& p : m.params()) {
      SCOPED_TRACE(p.name);
      test::expect_grad(p.name, loss, p.value->data<double>(), p.value->numel(),
                        p.grad->data<double>(), 1e-7, 1e-5);
    }
  }
}

TEST(XLSTMLarge, StepAndSplitCallsEqualOneChunkwiseCall) {
  XLSTMLarge<double> m(tiny(true));
  randomize(m, 4);
  const int64_t S = 8, V = 11;
  Tensor ids = ids_tensor({3, 1, 4, 1, 5, 9, 2, 6}, 1);
  XLSTMLargeState full;
  Tensor ref = m.forward(ids, Mode::Eval, nullptr, &full);
  // token by token (the recurrent step form)
  XLSTMLargeState st;
  for (int64_t t = 0; t < S; ++t) {
    Tensor tok = ids_tensor({ids.data<int64_t>()[t]}, 1);
    Tensor l = m.forward(tok, Mode::Eval, t ? &st : nullptr, &st);
    test::expect_close("step logits", l.data<double>(), ref.data<double>() + t * V, V, 1e-9, 1e-9);
  }
  // 5 + 3 tokens (chunkwise with a carried state, partial chunks)
  XLSTMLargeState half;
  Tensor a = m.forward(ids_tensor({3, 1, 4, 1, 5}, 1), Mode::Eval, nullptr, &half);
  Tensor b = m.forward(ids_tensor({9, 2, 6}, 1), Mode::Eval, &half, &half);
  test::expect_close("split logits", b.data<double>(), ref.data<double>() + 5 * V, 3 * V, 1e-9, 1e-9);
  for (size_t l = 0; l < full.blocks.size(); ++l) {
    test::expect_close("C", half.blocks[l].c.data<double>(), full.blocks[l].c.data<double>(),
                       full.blocks[l].c.numel(), 1e-9, 1e-9);
    test::expect_close("C step", st.blocks[l].c.data<double>(), full.blocks[l].c.data<double>(),
                       full.blocks[l].c.numel(), 1e-9, 1e-9);
  }
}

// The float decode path (decode_step: one parallel region per token, the GEMV rows split among
// the threads) against the float64 model's chunkwise forward over the whole sequence; the same
// bits on 1 and 2 threads; a state or logits tensor the caller still holds is never written.
TEST(XLSTMLarge, DecodeStepMatchesFloat64ChunkwiseOnAnyThreadCount) {
  XLSTMLargeConfig c;
  c.vocab_size = 200;
  c.embedding_dim = 64;
  c.num_heads = 4;
  c.num_blocks = 2;
  c.ffn_proj_factor = 1.5;
  c.ffn_round_up_to_multiple_of = 16;
  c.chunk_size = 4;
  c.gate_soft_cap = 4.0;
  c.output_logit_soft_cap = 5.0;
  for (bool bias : {false, true}) {
    SCOPED_TRACE(bias ? "with biases" : "without biases");
    c.use_bias = bias;
    XLSTMLarge<double> md(c);
    randomize(md, 8);
    XLSTMLarge<float> mf(c);
    auto pd = md.params(), pf = mf.params();
    for (size_t i = 0; i < pd.size(); ++i)
      for (int64_t j = 0; j < pd[i].value->numel(); ++j)
        pf[i].value->data<float>()[j] = (float)pd[i].value->data<double>()[j];
    const int64_t B = 3, S = 7, V = c.vocab_size;
    Rng rng(9);
    std::vector<int64_t> idv((size_t)(B * S));
    for (auto& v : idv) v = (int64_t)(rng.uniform() * (double)V) % V;
    Tensor ids = ids_tensor(idv, B);
    XLSTMLargeState full;
    Tensor ref = md.forward(ids, Mode::Eval, nullptr, &full);
    std::vector<std::vector<float>> by_threads;
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      XLSTMLargeState st;
      std::vector<float> all;
      for (int64_t t = 0; t < S; ++t) {
        std::vector<int64_t> col;
        for (int64_t b = 0; b < B; ++b) col.push_back(idv[(size_t)(b * S + t)]);
        Tensor l = mf.forward(ids_tensor(col, B), Mode::Eval, t ? &st : nullptr, &st);
        ASSERT_EQ(l.shape(), Shape({B, 1, V}));
        for (int64_t b = 0; b < B; ++b)
          test::expect_close(str("step ", t, " row ", b), l.data<float>() + b * V,
                             ref.data<double>() + (b * S + t) * V, V, 2e-4, 1e-4);
        all.insert(all.end(), l.data<float>(), l.data<float>() + B * V);
      }
      for (size_t l = 0; l < full.blocks.size(); ++l) {
        test::expect_close("C", st.blocks[l].c.data<float>(), full.blocks[l].c.data<double>(),
                           full.blocks[l].c.numel(), 1e-4, 1e-4);
        test::expect_close("n", st.blocks[l].n.data<float>(), full.blocks[l].n.data<double>(),
                           full.blocks[l].n.numel(), 1e-4, 1e-4);
        test::expect_close("m", st.blocks[l].m.data<float>(), full.blocks[l].m.data<double>(),
                           full.blocks[l].m.numel(), 1e-5, 1e-5);
      }
      by_threads.push_back(all);
      // A state the caller still holds (a copy shares the tensors) keeps its values; the
      // stepped state is new. Logits the caller still holds are not overwritten either.
      XLSTMLargeState held = st;
      Tensor c0 = st.blocks[0].c.clone();
      Tensor tok = ids_tensor({1, 2, 3}, B);
      Tensor l1 = mf.forward(tok, Mode::Eval, &st, &st);
      Tensor l1c = l1.clone();
      Tensor l2 = mf.forward(tok, Mode::Eval, &st, &st);
      Tensor l3 = mf.forward(tok, Mode::Eval, &st, &st);
      EXPECT_EQ(std::memcmp(held.blocks[0].c.data<float>(), c0.data<float>(), c0.nbytes()), 0);
      EXPECT_NE(std::memcmp(st.blocks[0].c.data<float>(), c0.data<float>(), c0.nbytes()), 0);
      EXPECT_EQ(std::memcmp(l1.data<float>(), l1c.data<float>(), l1.nbytes()), 0);
      EXPECT_NE(l2.data<float>(), l3.data<float>());
      // the same step without a state out, and from the held state into a new one
      Tensor l4 = mf.forward(tok, Mode::Eval, &held, nullptr);
      XLSTMLargeState next;
      Tensor l5 = mf.forward(tok, Mode::Eval, &held, &next);
      EXPECT_EQ(std::memcmp(l4.data<float>(), l1c.data<float>(), l1.nbytes()), 0);
      EXPECT_EQ(std::memcmp(l5.data<float>(), l1c.data<float>(), l1.nbytes()), 0);
    }
    omp_set_num_threads(1);
    ASSERT_EQ(by_threads[0].size(), by_threads[1].size());
    EXPECT_EQ(std::memcmp(by_threads[0].data(), by_threads[1].data(),
                          sizeof(float) * by_threads[0].size()), 0)
        << "decode logits differ between 1 and 2 threads";
    // Logits::Last is the last position of Logits::All; Logits::None leaves the same state.
    XLSTMLargeState sa, sl, sn;
    Tensor la = mf.forward(ids, Mode::Eval, nullptr, &sa);
    Tensor ll = mf.forward(ids, Mode::Eval, nullptr, &sl, XLSTMLarge<float>::Logits::Last);
    Tensor ln = mf.forward(ids, Mode::Eval, nullptr, &sn, XLSTMLarge<float>::Logits::None);
    ASSERT_EQ(ll.shape(), Shape({B, 1, V}));
    EXPECT_FALSE(ln.defined());
    for (int64_t b = 0; b < B; ++b)
      test::expect_close(str("last row ", b), ll.data<float>() + b * V,
                         la.data<float>() + (b * S + S - 1) * V, V, 1e-5, 1e-5);
    for (size_t l = 0; l < sa.blocks.size(); ++l) {
      EXPECT_EQ(std::memcmp(sl.blocks[l].c.data<float>(), sa.blocks[l].c.data<float>(),
                            sa.blocks[l].c.nbytes()), 0);
      EXPECT_EQ(std::memcmp(sn.blocks[l].c.data<float>(), sa.blocks[l].c.data<float>(),
                            sa.blocks[l].c.nbytes()), 0);
    }
  }
}

TEST(XLSTMLarge, ConfigRules) {
  // FFN width: the float round-up of FORMAT.md §2 (64 * 1.3 = 83.2 -> 128; 4096 * 2.667 -> 10944).
  XLSTMLargeConfig c;
  c.embedding_dim = 64;
  c.ffn_proj_factor = 1.3;
  EXPECT_EQ(c.ffn_dim(), 128);
  c.embedding_dim = 4096;
  c.ffn_proj_factor = 2.667;
  EXPECT_EQ(c.ffn_dim(), 10944);
  c.embedding_dim = 128;
  c.ffn_proj_factor = 0.6;
  c.ffn_round_up_to_multiple_of = 32;
  EXPECT_EQ(c.ffn_dim(), 96);
  // HF fields: hidden_size / embedding_dim must agree; null caps; unknown model_type.
  using nlohmann::json;
  EXPECT_THROW(xlstm_large_config_from_json(json{{"model_type", "xlstm"}, {"hidden_size", 64},
                                                 {"embedding_dim", 32}},
                                            "config.json"),
               ValueError);
  EXPECT_THROW(xlstm_large_config_from_json(json{{"model_type", "llama"}}, "config.json"), ValueError);
  auto cfg = xlstm_large_config_from_json(
      json{{"model_type", "xlstm"}, {"hidden_size", 64}, {"num_heads", 2}, {"num_hidden_layers", 3},
           {"vocab_size", 50}, {"gate_soft_cap", nullptr}, {"output_logit_soft_cap", nullptr}},
      "config.json");
  EXPECT_EQ(cfg.embedding_dim, 64);
  EXPECT_EQ(cfg.num_blocks, 3);
  EXPECT_EQ(cfg.gate_soft_cap, 0.0);
  EXPECT_EQ(cfg.output_logit_soft_cap, 0.0);
  EXPECT_EQ(cfg.qk_dim(), 32);
}

TEST(HfFixtures, AllChecksPass) {
  for (const char* name : {"xlstm_tiny_a", "xlstm_tiny_b_tied_bias"}) {
    NEED_HF(name);
    for (auto& r : hf_check(hf_dir(name))) EXPECT_TRUE(r.ok) << name << " " << r.check << " " << r.detail;
  }
}

TEST(HfFixtures, Float64BuildMatchesTransformersToItsOwnError) {
  // transformers' float32 logits are within 9.4e-5 of a float64 implementation (FORMAT.md §6);
  // our float64 build must be too.
  for (const char* name : {"xlstm_tiny_a", "xlstm_tiny_b_tied_bias"}) {
    NEED_HF(name);
    HfCheckpoint ck = load_hf_checkpoint(hf_dir(name), HfLoad::Owned);
    XLSTMLarge<double> md(ck.config);
    std::map<std::string, Tensor> p;
    for (auto& r : ck.model->params()) p[r.name] = *r.value;
    md.load_params(p, name);
    SafeTensorsFile ref(hf_dir(name) + "/reference.safetensors");
    Tensor l = md.forward(ref.get("input_ids").to(DType::I64), Mode::Eval);
    std::vector<double> r = ref.get("logits").to_f64();
    test::expect_close(name, l.data<double>(), r.data(), (int64_t)r.size(), 1.2e-4, 0);
  }
}

TEST(HfFixtures, TieFallbackUsesTheEmbedding) {
  NEED_HF("xlstm_tiny_b_tied_bias__no_lm_head");
  HfCheckpoint a = load_hf_checkpoint(hf_dir("xlstm_tiny_b_tied_bias__no_lm_head"));
  HfCheckpoint b = load_hf_checkpoint(hf_dir("xlstm_tiny_b_tied_bias"));
  EXPECT_TRUE(a.tied_fallback);
  EXPECT_FALSE(b.tied_fallback);
  Tensor ids = ids_tensor({5, 9, 2, 200, 17, 3}, 2);
  Tensor la = a.model->forward(ids), lb = b.model->forward(ids);
  test::expect_close("tied logits", la.data<float>(), lb.data<float>(), la.numel(), 1e-6, 1e-6);
  auto r = hf_check(hf_dir("xlstm_tiny_b_tied_bias__no_lm_head"),
                    hf_dir("xlstm_tiny_b_tied_bias") + "/reference.safetensors");
  for (auto& x : r) EXPECT_TRUE(x.ok) << x.check << " " << x.detail;
}

namespace {

// A copy of fixture A in a temp dir, to damage.
std::string copy_fixture(const std::string& name) {
  const std::string d = temp_dir() + "/m";
  fs::create_directories(d);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(hf_dir(name) + "/" + f, d + "/" + f);
  for (auto& e : fs::directory_iterator(d))
    fs::permissions(e.path(), fs::perms::owner_read | fs::perms::owner_write);
  return d;
}

std::string load_error(const std::string& dir) {
  try {
    load_hf_checkpoint(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void rewrite_config(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  std::ifstream in(dir + "/config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  edit(j);
  std::ofstream(dir + "/config.json") << j.dump(1);
}

}  // namespace

TEST(HfLoader, RejectsBadInputWithTheFileAndField) {
  NEED_HF("xlstm_tiny_a");
  {  // a config/weights mismatch: 4 heads make the gate matrices (4, H)
    std::string d = copy_fixture("xlstm_tiny_a");
    rewrite_config(d, [](nlohmann::json& j) { j["num_heads"] = 4; });
    const std::string e = load_error(d);
    EXPECT_NE(e.find("igate_preact.weight"), std::string::npos) << e;
    EXPECT_NE(e.find("shape"), std::string::npos) << e;
  }
  {  // extra block in the config: missing tensors
    std::string d = copy_fixture("xlstm_tiny_a");
    rewrite_config(d, [](nlohmann::json& j) { j["num_blocks"] = 3; j["num_hidden_layers"] = 3; });
    EXPECT_NE(load_error(d).find("backbone.blocks.2."), std::string::npos);
  }
  {  // fewer blocks: unexpected tensors
    std::string d = copy_fixture("xlstm_tiny_a");
    rewrite_config(d, [](nlohmann::json& j) { j["num_blocks"] = 1; j["num_hidden_layers"] = 1; });
    EXPECT_NE(load_error(d).find("unexpected tensor"), std::string::npos);
  }
  {  // unknown model_type, malformed JSON, missing config
    std::string d = copy_fixture("xlstm_tiny_a");
    rewrite_config(d, [](nlohmann::json& j) { j["model_type"] = "mamba"; });
    EXPECT_NE(load_error(d).find("model_type"), std::string::npos);
    std::ofstream(d + "/config.json") << "{\"model_type\": \"xlstm\", ";
    EXPECT_NE(load_error(d).find("config.json"), std::string::npos);
    fs::remove(d + "/config.json");
    EXPECT_NE(load_error(d).find("config.json"), std::string::npos);
  }
  {  // truncated safetensors
    std::string d = copy_fixture("xlstm_tiny_a");
    fs::resize_file(d + "/model.safetensors", fs::file_size(d + "/model.safetensors") - 100);
    EXPECT_NE(load_error(d).find("model.safetensors"), std::string::npos);
  }
  {  // an index naming a shard that does not exist
    std::string d = copy_fixture("xlstm_tiny_a");
    fs::remove(d + "/model.safetensors");
    std::ofstream(d + "/model.safetensors.index.json")
        << R"({"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}})";
    const std::string e = load_error(d);
    EXPECT_NE(e.find("model-00002-of-00002.safetensors"), std::string::npos) << e;
    EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
  }
  {  // untied config without lm_head
    std::string d = copy_fixture("xlstm_tiny_a");
    SafeTensorsFile f(d + "/model.safetensors");
    std::map<std::string, Tensor> t;
    for (auto& n : f.names())
      if (n != "lm_head.weight") t[n] = f.get(n).clone();
    save_safetensors(d + "/model.safetensors", t);
    EXPECT_NE(load_error(d).find("lm_head.weight"), std::string::npos);
  }
}

TEST(HfLoader, ShardedAndBf16CheckpointsLoad) {
  NEED_HF("xlstm_tiny_a");
  HfCheckpoint a = load_hf_checkpoint(hf_dir("xlstm_tiny_a"));
  Tensor ids = ids_tensor({5, 9, 2, 200, 17, 3, 44, 1}, 2);
  Tensor ref = a.model->forward(ids);
  // sharded: every other tensor in a second file
  const std::string d = temp_dir();
  {
    SafeTensorsFile f(hf_dir("xlstm_tiny_a") + "/model.safetensors");
    std::map<std::string, Tensor> s1, s2;
    nlohmann::json map;
    int i = 0;
    for (auto& n : f.names()) {
      const bool second = (i++ % 2) == 1;
      (second ? s2 : s1)[n] = f.get(n).clone();
      map[n] = second ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
    }
    save_safetensors(d + "/model-00001-of-00002.safetensors", s1);
    save_safetensors(d + "/model-00002-of-00002.safetensors", s2);
    std::ofstream(d + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump();
    fs::copy_file(hf_dir("xlstm_tiny_a") + "/config.json", d + "/config.json");
  }
  HfCheckpoint sh = load_hf_checkpoint(d);
  Tensor ls = sh.model->forward(ids);
  test::expect_close("sharded", ls.data<float>(), ref.data<float>(), ref.numel(), 0, 0);
  // bf16: saved, mapped as bf16 views, equal to a float32 model of the rounded weights
  const std::string d16 = temp_dir() + "/bf16";
  save_hf_checkpoint(d16, *a.model, a.config_json, "", DType::BF16);
  HfCheckpoint b = load_hf_checkpoint(d16, HfLoad::Mapped);
  EXPECT_EQ(b.stored_dtype, DType::BF16);
  HfCheckpoint bo = load_hf_checkpoint(d16, HfLoad::Owned);  // widened to owned f32
  for (int64_t B : {1, 2}) {  // decode-sized (GEMV) and prefill-sized (panel GEMM) calls
    Tensor x = B == 1 ? ids_tensor({5, 9, 2, 200, 17, 3, 44, 1}, 1) : ids;
    Tensor l16 = b.model->forward(x), l32 = bo.model->forward(x);
    test::expect_close("bf16 views vs widened", l16.data<float>(), l32.data<float>(), l32.numel(),
                       2e-5, 1e-5);
  }
  Tensor step16 = b.model->forward(ids_tensor({5}, 1)), step32 = bo.model->forward(ids_tensor({5}, 1));
  test::expect_close("bf16 gemv", step16.data<float>(), step32.data<float>(), step32.numel(), 2e-5, 1e-5);
  // round trip in f32 is exact
  const std::string d32 = temp_dir() + "/f32";
  save_hf_checkpoint(d32, *a.model, a.config_json);
  Tensor lr = load_hf_checkpoint(d32).model->forward(ids);
  test::expect_close("f32 round trip", lr.data<float>(), ref.data<float>(), ref.numel(), 0, 0);
}

TEST(Generation, BatchOfDifferentLengthsEqualsSingleRuns) {
  NEED_HF("xlstm_tiny_b_tied_bias");
  HfCheckpoint ck = load_hf_checkpoint(hf_dir("xlstm_tiny_b_tied_bias"));
  XLSTMLargeLM lm(std::move(ck.model), nlohmann::json{{"arch", "xlstm-large"}});
  std::vector<std::vector<int64_t>> prompts = {{5, 9, 2, 200, 17, 3, 44}, {7}, {1, 2, 3, 4}};
  for (double temp : {0.0, 0.9}) {
    BatchOptions o;
    o.max_tokens = 12;
    o.sampling.temperature = temp;
    o.seed = 11;
    o.stop_ids = {42};
    BatchResult all = generate_batch(lm, prompts, o, nullptr);
    for (size_t b = 0; b < prompts.size(); ++b) {
      BatchOptions ob = o;
      ob.seed = o.seed + b;
      BatchResult one = generate_batch(lm, {prompts[b]}, ob, nullptr);
      EXPECT_EQ(all.tokens[b], one.tokens[0]) << "row " << b << " temperature " << temp;
      // the final states agree too
      StateTensors rb = state_row(all.state, (int64_t)b);
      for (auto& [n, t] : one.state)
        test::expect_close(n, rb.at(n).data<float>(), t.data<float>(), t.numel(), 1e-5, 1e-5);
    }
  }
  // A generation continued from a saved state equals one long generation.
  BatchOptions o;
  o.max_tokens = 10;
  o.sampling.temperature = 0;
  BatchResult full = generate_batch(lm, {prompts[0]}, o, nullptr);
  o.max_tokens = 4;
  BatchResult first = generate_batch(lm, {prompts[0]}, o, nullptr);
  GenerationStart start{first.state, first.logits};
  o.max_tokens = 6;
  BatchResult rest = generate_batch(lm, {{}}, o, nullptr, &start);
  std::vector<int64_t> joined = first.tokens[0];
  joined.insert(joined.end(), rest.tokens[0].begin(), rest.tokens[0].end());
  EXPECT_EQ(joined, full.tokens[0]);
}

TEST(FineTune, TrainsFromAHfDirectoryAndExportsBack) {
  const std::string tok = test::shared_dir() + "/hf/tokenizer-gpt-neox-20b/tokenizer.json";
  if (test::shared_dir().empty() || !fs::exists(tok)) GTEST_SKIP() << "no GPT-NeoX tokenizer.json";
  const std::string root = temp_dir();
  XLSTMLargeConfig c;
  c.vocab_size = 50304;
  c.embedding_dim = 16;
  c.num_heads = 2;
  c.num_blocks = 1;
  c.chunk_size = 8;
  XLSTMLarge<float> m(c);
  Rng rng(2);
  m.reset_parameters(rng);
  save_hf_checkpoint(root + "/base", m, nlohmann::json(), tok);
  {
    std::ofstream f(root + "/data.txt");
    for (int i = 0; i < 40; ++i) f << "To be, or not to be, that is the question. ";
  }
  TrainConfig t;
  t.data = root + "/data.txt";
  t.out = root + "/run";
  t.init_from = root + "/base";
  t.batch_size = 2;
  t.context = 16;
  t.steps = 4;
  t.eval_every = 2;
  t.eval_batches = 1;
  t.warmup = 0;
  t.lr = 1e-2;
  TrainResult r = train_language_model(t, nlohmann::json::object(), false, nullptr);
  EXPECT_EQ(r.steps, 4);
  EXPECT_LT(r.best_val_loss, std::log(50304.0));
  export_hf(r.best_dir, root + "/hf");
  LoadedModel ours = load_model(r.best_dir);
  HfCheckpoint back = load_hf_checkpoint(root + "/hf");
  EXPECT_FALSE(back.tokenizer_json.empty());
  Tensor ids = ids_tensor({510, 3158, 8516, 30013, 15}, 1);
  Tensor a = ours.model->forward(ids, Mode::Eval, nullptr), b = back.model->forward(ids);
  test::expect_close("exported", b.data<float>(), a.data<float>(), a.numel(), 0, 0);
  // the weights moved away from the base model
  HfCheckpoint base = load_hf_checkpoint(root + "/base");
  Tensor l0 = base.model->forward(ids);
  double diff = 0;
  for (int64_t i = 0; i < l0.numel(); ++i) diff = std::max(diff, (double)std::fabs(l0.data<float>()[i] - b.data<float>()[i]));
  EXPECT_GT(diff, 1e-3);
}

namespace {
// f32 -> IEEE half by truncation (test helper; normal range only).
uint16_t to_half(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const int exp = (int)((u >> 23) & 0xff) - 127 + 15;
  if (exp <= 0) return (uint16_t)sign;  // flush tiny values
  return (uint16_t)(sign | ((uint32_t)exp << 10) | ((u >> 13) & 0x3ffu));
}
}  // namespace

// weight_mode "fused" (FORMAT.md §3): the fixtures rewritten with each block's q|k|v|o, i|f and
// gate|up tensors concatenated by rows load into the same model (identical logits); a fused
// tensor of the wrong size names the file and the tensor.
TEST(HfLoader, FusedWeightLayoutLoads) {
  for (const char* name : {"xlstm_tiny_a", "xlstm_tiny_b_tied_bias"}) {
    SCOPED_TRACE(name);
    NEED_HF(name);
    const std::string src = hf_dir(name), d = temp_dir();
    SafeTensorsFile f(src + "/model.safetensors");
    std::map<std::string, Tensor> t;
    for (auto& n : f.names()) t[n] = f.get(n).clone();
    const std::vector<std::pair<std::string, std::vector<std::string>>> groups = {
        {"mlstm_layer.qkv_opreact", {"mlstm_layer.q", "mlstm_layer.k", "mlstm_layer.v",
                                     "mlstm_layer.ogate_preact"}},
        {"mlstm_layer.ifgate_preact", {"mlstm_layer.igate_preact", "mlstm_layer.fgate_preact"}},
        {"ffn.proj_up_gate_z", {"ffn.proj_up_gate", "ffn.proj_up"}}};
    int fused_count = 0;
    for (int64_t b = 0;; ++b) {
      const std::string pre = str("backbone.blocks.", b, ".");
      if (!t.count(pre + "mlstm_layer.q.weight")) break;
      for (auto& [fused, parts] : groups)
        for (const char* kind : {".weight", ".bias"}) {
          if (!t.count(pre + parts[0] + kind)) continue;
          std::vector<float> rows;
          Shape sh = t.at(pre + parts[0] + kind).shape();
          sh[0] = 0;
          for (auto& part : parts) {
            const Tensor& x = t.at(pre + part + kind);
            rows.insert(rows.end(), x.data<float>(), x.data<float>() + x.numel());
            sh[0] += x.dim(0);
            t.erase(pre + part + kind);
          }
          t[pre + fused + kind] = Tensor::from<float>(sh, rows);
          ++fused_count;
        }
    }
    EXPECT_GE(fused_count, 6);
    save_safetensors(d + "/model.safetensors", t);
    nlohmann::json cfg = json_cfg::read_file(src + "/config.json");
    cfg["weight_mode"] = "fused";
    std::ofstream(d + "/config.json") << cfg.dump();
    HfCheckpoint single = load_hf_checkpoint(src), fused = load_hf_checkpoint(d);
    Tensor ids = ids_tensor({5, 9, 2, 200, 17, 3, 44, 1}, 2);
    Tensor a = single.model->forward(ids), b = fused.model->forward(ids);
    test::expect_close("fused layout", b.data<float>(), a.data<float>(), a.numel(), 0, 0);
    HfCheckpoint owned = load_hf_checkpoint(d, HfLoad::Owned);  // copies out of the views
    Tensor c = owned.model->forward(ids);
    test::expect_close("fused layout, owned", c.data<float>(), a.data<float>(), a.numel(), 0, 0);
    // a fused tensor one row short
    Tensor& qkv = t.at("backbone.blocks.0.mlstm_layer.qkv_opreact.weight");
    Shape sh = qkv.shape();
    sh[0] -= 1;
    std::vector<float> cut(qkv.data<float>(), qkv.data<float>() + sh[0] * sh[1]);
    t["backbone.blocks.0.mlstm_layer.qkv_opreact.weight"] = Tensor::from<float>(sh, cut);
    save_safetensors(d + "/model.safetensors", t);
    try {
      load_hf_checkpoint(d);
      ADD_FAILURE() << "a short fused tensor was accepted";
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("qkv_opreact.weight' has " + std::to_string(sh[0]) +
                                           " rows"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(HfLoader, Float16WeightsAreWidened) {
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xC000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x0200), std::ldexp(1.0f, -15));  // a subnormal with the top bit set
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7C00)));
  NEED_HF("xlstm_tiny_a");
  const std::string d = temp_dir();
  SafeTensorsFile f(hf_dir("xlstm_tiny_a") + "/model.safetensors");
  std::map<std::string, Tensor> t;
  for (auto& n : f.names()) {
    Tensor src = f.get(n);
    Tensor h = Tensor::empty(src.shape(), DType::F16);
    for (int64_t i = 0; i < src.numel(); ++i)
      static_cast<uint16_t*>(h.raw())[i] = to_half(src.data<float>()[i]);
    t[n] = h;
  }
  save_safetensors(d + "/model.safetensors", t);
  fs::copy_file(hf_dir("xlstm_tiny_a") + "/config.json", d + "/config.json");
  HfCheckpoint h = load_hf_checkpoint(d), a = load_hf_checkpoint(hf_dir("xlstm_tiny_a"));
  for (auto& p : h.model->params()) EXPECT_EQ(p.value->dtype(), DType::F32) << p.name;
  Tensor ids = ids_tensor({5, 9, 2, 200, 17, 3}, 1);
  Tensor lh = h.model->forward(ids), la = a.model->forward(ids);
  test::expect_close("f16 model", lh.data<float>(), la.data<float>(), la.numel(), 0.05, 0.01);
}
