// The command-line tool on bad input: one clear error line, a non-zero exit, no crash, no
// half-written output. Runs the real binary.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "harness/cli.h"
#include "harness/compare.h"
#include <nlohmann/json.hpp>

#include "io/safetensors.h"

using namespace xlstm;
namespace fs = std::filesystem;

namespace {

using Result = xlstm::test::CliResult;

Result run(const std::string& args) { return xlstm::test::run_cli(args); }

std::string temp_dir() {
  char tmpl[] = "/tmp/xlstm_cli_XXXXXX";
  return mkdtemp(tmpl);
}

std::string case_path(const std::string& name) {
  return test::shared_dir() + "/conformance/" + name + ".safetensors";
}

void expect_fail_line(const Result& r, const std::string& must_contain) {
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_LT(r.code, 128) << "crashed: " << r.out;
  EXPECT_NE(r.out.find(must_contain), std::string::npos) << r.out;
}

TEST(CliConformance, BadCaseFiles) {
  if (test::shared_dir().empty()) GTEST_SKIP() << "no ../shared/conformance";
  const std::string d = temp_dir();
  const std::string src = case_path("lstm_l1");
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  // truncated
  std::ofstream(d + "/truncated.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  auto r = run("conformance " + d + "/truncated.safetensors");
  expect_fail_line(r, "FAIL truncated");
  EXPECT_NE(r.out.find("0 passed, 1 failed"), std::string::npos) << r.out;
  // bad header
  std::ofstream(d + "/badheader.safetensors", std::ios::binary) << std::string("\x10\0\0\0\0\0\0\0{not json}      ", 24);
  expect_fail_line(run("conformance " + d + "/badheader.safetensors"), "not valid JSON");
  // missing tensor, wrong shape, wrong dtype, unknown kind: rewrite the case
  SafeTensorsFile f(src);
  auto rewrite = [&](const std::string& name, auto&& edit) {
    std::map<std::string, Tensor> t;
    for (auto& n : f.names()) t[n] = f.get(n).clone();
    auto md = f.metadata();
    edit(t, md);
    save_safetensors(d + "/" + name + ".safetensors", t, md);
  };
  rewrite("missing", [](auto& t, auto&) { t.erase("param.weight_hh_l0"); });
  expect_fail_line(run("conformance " + d + "/missing.safetensors"), "weight_hh_l0");
  rewrite("shape", [](auto& t, auto&) { t["input"] = Tensor({3, 7, 4}, DType::F64); });
  expect_fail_line(run("conformance " + d + "/shape.safetensors"), "(3,7,4)");
  rewrite("dtype", [](auto& t, auto&) { t["input"] = t["input"].to(DType::F32); });
  expect_fail_line(run("conformance " + d + "/dtype.safetensors"), "'input'");
  rewrite("kind", [](auto&, auto& md) {
    auto j = nlohmann::json::parse(md["case"]);
    j["kind"] = "gru";
    md["case"] = j.dump();
  });
  expect_fail_line(run("conformance " + d + "/kind.safetensors"), "unknown kind 'gru'");
  // a good case still passes
  r = run("conformance " + src);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("1 passed, 0 failed"), std::string::npos) << r.out;
  fs::remove_all(d);
}

TEST(CliTrain, BadInput) {
  const std::string d = temp_dir();
  expect_fail_line(run("train --data " + d + "/nope.txt --out " + d + "/run --steps 2"), "nope.txt");
  std::ofstream(d + "/empty.txt").close();
  expect_fail_line(run("train --data " + d + "/empty.txt --out " + d + "/run --steps 2"), "empty");
  std::ofstream(d + "/short.txt") << "hello";
  expect_fail_line(run("train --data " + d + "/short.txt --out " + d + "/run --steps 2"), "fewer");
  expect_fail_line(run("train --out " + d + "/run2 --resume"), "nothing to resume");
  expect_fail_line(run("train --data " + d + "/short.txt --out " + d + "/run3"), "--steps");
  expect_fail_line(run("train --data " + d + "/short.txt --out " + d + "/run4 --steps 2 --model gpt"),
                   "unknown model");
  std::ofstream(d + "/bad.json") << "{\"arch\": ";
  expect_fail_line(run("train --data " + d + "/short.txt --out " + d + "/run5 --steps 2 --config " + d + "/bad.json"),
                   "not valid JSON");
  // unwritable output directory: a path below a regular file
  std::string text;
  for (int i = 0; i < 200; ++i) text += "some text to train on. ";
  std::ofstream(d + "/ok.txt") << text;
  expect_fail_line(run("train --data " + d + "/ok.txt --out " + d + "/ok.txt/sub --steps 2"), "ok.txt/sub");
  fs::remove_all(d);
}

TEST(CliGenerate, BadInputAndRoundTrip) {
  const std::string d = temp_dir();
  std::string text;
  for (int i = 0; i < 300; ++i) text += "abc abd abe. ";
  std::ofstream(d + "/t.txt") << text;
  auto r = run("train --data " + d + "/t.txt --out " + d + "/run --model lstm-tiny --width 32 "
               "--context 16 --batch-size 4 --steps 3 --eval-every 3 -q --threads 1");
  ASSERT_EQ(r.code, 0) << r.out;
  // generation works and is deterministic for a seed
  auto g1 = run("generate --checkpoint " + d + "/run --prompt ab --tokens 20 --seed 3 --threads 1");
  auto g2 = run("generate --checkpoint " + d + "/run --prompt ab --tokens 20 --seed 3 --threads 1");
  EXPECT_EQ(g1.code, 0) << g1.out;
  EXPECT_EQ(g1.out, g2.out);
  // bf16 decode weights: runs (greedy, so the text is that of the rounded weights)
  auto gb = run("generate --checkpoint " + d + "/run --prompt ab --tokens 20 --temperature 0 --bf16 --threads 1");
  EXPECT_EQ(gb.code, 0) << gb.out;
  EXPECT_FALSE(gb.out.empty());
  // characters outside the vocabulary
  expect_fail_line(run("generate --checkpoint " + d + "/run --prompt xyz"), "'x'");
  // a config that does not match the weights (another width)
  fs::copy(d + "/run/best", d + "/other", fs::copy_options::recursive);
  {
    auto cfg = nlohmann::json::parse(std::ifstream(d + "/other/config.json"));
    cfg["model"]["hidden_size"] = 48;
    std::ofstream(d + "/other/config.json", std::ios::trunc) << cfg.dump();
  }
  expect_fail_line(run("generate --checkpoint " + d + "/other --prompt ab"), "model.safetensors");
  // a checkpoint with a file missing
  fs::remove(d + "/other/vocab.json");
  expect_fail_line(run("generate --checkpoint " + d + "/other --prompt ab"), "vocab.json");
  // missing checkpoint, corrupt weights
  expect_fail_line(run("generate --checkpoint " + d + "/none --prompt ab"), "no checkpoint");
  std::ofstream(d + "/run/best/model.safetensors", std::ios::trunc) << "junk";
  expect_fail_line(run("generate --checkpoint " + d + "/run/best --prompt ab"), "model.safetensors");
  expect_fail_line(run("generate --checkpoint " + d + "/run --prompt ab --top-p 0"), "--top-p");
  // --bf16 on a model without a bf16 decode
  auto r2 = run("train --data " + d + "/t.txt --out " + d + "/m --model mlstm-tiny --width 32 "
                "--context 16 --batch-size 4 --steps 1 --eval-every 1 -q --threads 1");
  ASSERT_EQ(r2.code, 0) << r2.out;
  expect_fail_line(run("generate --checkpoint " + d + "/m --prompt ab --bf16"), "bf16");
  fs::remove_all(d);
}

}  // namespace
