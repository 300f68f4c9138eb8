// The trainer end to end on a tiny model: loss falls, an interrupted and resumed run ends
// with bit-identical weights and optimizer state, the best checkpoint is kept, bad input is
// rejected without touching an existing checkpoint.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "models/presets.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

using namespace xlstm;
namespace fs = std::filesystem;

namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/xlstm_trainer_XXXXXX";
  return mkdtemp(tmpl);
}

std::string write_corpus(const std::string& dir) {
  std::string text;
  for (int i = 0; i < 400; ++i) text += "the quick brown fox jumps over the lazy dog. ";
  const std::string p = dir + "/corpus.txt";
  std::ofstream(p) << text;
  return p;
}

nlohmann::json tiny_model(const std::string& preset) {
  ModelOverrides o;
  o.width = 16;
  o.blocks = 2;
  o.heads = 2;
  o.context = 16;
  o.dropout = 0.1;  // exercises the dropout RNG across the resume
  if (preset.rfind("xlstm", 0) == 0) o.slstm_at = "1";
  return model_preset(preset, 1, o);
}

TrainConfig tiny_train(const std::string& data, const std::string& out) {
  TrainConfig c;
  c.data = data;
  c.out = out;
  c.batch_size = 4;
  c.context = 16;
  c.steps = 12;
  c.eval_every = 4;
  c.eval_batches = 2;
  c.log_every = 2;
  c.warmup = 3;
  c.lr = 3e-3;
  return c;
}

std::string file_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

class Resume : public ::testing::TestWithParam<std::string> {};

TEST_P(Resume, BitIdenticalWeights) {
  const std::string d = temp_dir();
  const std::string data = write_corpus(d);
  // uninterrupted
  TrainConfig a = tiny_train(data, d + "/a");
  TrainResult ra = train_language_model(a, tiny_model(GetParam()), false, nullptr);
  EXPECT_EQ(ra.steps, 12);
  // interrupted at step 6 (between evaluations), then resumed
  TrainConfig b = tiny_train(data, d + "/b");
  b.stop_at = 6;
  TrainResult rb = train_language_model(b, tiny_model(GetParam()), false, nullptr);
  EXPECT_EQ(rb.steps, 6);
  EXPECT_EQ(rb.stop_reason, "stop_at");
  TrainConfig b2;
  b2.out = d + "/b";
  TrainResult rb2 = train_language_model(b2, nlohmann::json(), true, nullptr);
  EXPECT_EQ(rb2.steps, 12);
  EXPECT_TRUE(file_bytes(d + "/a/checkpoint/model.safetensors") ==
              file_bytes(d + "/b/checkpoint/model.safetensors"))
      << "model weights differ after resume";
  EXPECT_TRUE(file_bytes(d + "/a/checkpoint/optimizer.safetensors") ==
              file_bytes(d + "/b/checkpoint/optimizer.safetensors"))
      << "optimizer state differs after resume";
  fs::remove_all(d);
}

INSTANTIATE_TEST_SUITE_P(Models, Resume, ::testing::Values("xlstm-1-1-tiny", "lstm-tiny"),
                         [](const auto& i) {
                           std::string n = i.param;
                           for (auto& c : n) if (c == '-') c = '_';
                           return n;
                         });

TEST(Trainer, LossFallsAndOutputsExist) {
  const std::string d = temp_dir();
  TrainConfig c = tiny_train(write_corpus(d), d + "/run");
  c.steps = 40;
  c.eval_every = 10;
  auto m = tiny_model("xlstm-1-1-tiny");
  m["dropout"] = 0.0;
  TrainResult r = train_language_model(c, m, false, nullptr);
  EXPECT_LT(r.best_val_loss, 2.3);  // ln(vocab ~ 30) = 3.3 at the start
  for (const char* f : {"/run/checkpoint/model.safetensors", "/run/best/model.safetensors",
                        "/run/metrics.csv", "/run/metrics.jsonl", "/run/loss.png"})
    EXPECT_TRUE(fs::exists(d + f)) << f;
  LoadedModel lm = load_model(d + "/run");
  EXPECT_EQ(lm.dir, d + "/run/best");
  fs::remove_all(d);
}

TEST(Trainer, BadInputLeavesCheckpointAlone) {
  const std::string d = temp_dir();
  const std::string data = write_corpus(d);
  TrainConfig c = tiny_train(data, d + "/run");
  c.steps = 4;
  train_language_model(c, tiny_model("lstm-tiny"), false, nullptr);
  const std::string before = file_bytes(d + "/run/checkpoint/model.safetensors");
  // a second fresh run into the same directory is refused
  EXPECT_THROW(train_language_model(c, tiny_model("lstm-tiny"), false, nullptr), IoError);
  // missing / empty data
  TrainConfig m = tiny_train(d + "/missing.txt", d + "/other");
  EXPECT_THROW(train_language_model(m, tiny_model("lstm-tiny"), false, nullptr), IoError);
  std::ofstream(d + "/empty.txt").close();
  m.data = d + "/empty.txt";
  EXPECT_THROW(train_language_model(m, tiny_model("lstm-tiny"), false, nullptr), IoError);
  // corpus shorter than the context
  std::ofstream(d + "/short.txt") << "abc";
  m.data = d + "/short.txt";
  EXPECT_THROW(train_language_model(m, tiny_model("lstm-tiny"), false, nullptr), ValueError);
  // resume without a checkpoint
  TrainConfig r;
  r.out = d + "/nothing";
  EXPECT_THROW(train_language_model(r, nlohmann::json(), true, nullptr), IoError);
  // a corrupt checkpoint is reported, and nothing is written over it
  std::ofstream(d + "/run/checkpoint/optimizer.safetensors", std::ios::trunc) << "garbage";
  TrainConfig rr;
  rr.out = d + "/run";
  EXPECT_THROW(train_language_model(rr, nlohmann::json(), true, nullptr), IoError);
  EXPECT_TRUE(file_bytes(d + "/run/checkpoint/model.safetensors") == before);
  fs::remove_all(d);
}

}  // namespace
