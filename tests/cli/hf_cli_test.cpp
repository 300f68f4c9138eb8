// `xlstm hf-check`, `generate --model HF_DIR` and `export-hf` through the real binary.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness/cli.h"
#include "harness/compare.h"
#include "io/safetensors.h"

using namespace xlstm;
namespace fs = std::filesystem;

namespace {

using Result = xlstm::test::CliResult;

Result run(const std::string& args) { return xlstm::test::run_cli(args); }

std::string hf(const std::string& name) { return test::shared_dir() + "/hf/" + name; }

std::string row_ids(const Tensor& t, int64_t b) {  // (B, S) I64 row as "a b c"
  std::ostringstream s;
  Tensor x = t.to(DType::I64);
  for (int64_t i = 0; i < x.dim(1); ++i) s << (i ? " " : "") << x.data<int64_t>()[b * x.dim(1) + i];
  return s.str();
}

void expect_one_error_line(const Result& r, const std::string& must_contain) {
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_LT(r.code, 128) << "crashed: " << r.out;
  EXPECT_NE(r.out.find("error: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(must_contain), std::string::npos) << r.out;
  EXPECT_LE(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

#define NEED_HF()                                             \
  if (test::shared_dir().empty() || !fs::exists(hf("xlstm_tiny_a"))) \
  GTEST_SKIP() << "no ../shared/hf"

}  // namespace

TEST(HfCli, HfCheckPassesEveryFixture) {
  NEED_HF();
  Result r = run("hf-check " + test::shared_dir() + "/hf");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("15 passed, 0 failed"), std::string::npos) << r.out;
}

TEST(HfCli, GreedyGenerationReproducesTransformers) {
  NEED_HF();
  SafeTensorsFile ref(hf("xlstm_tiny_a") + "/reference.safetensors");
  for (int64_t b = 0; b < 2; ++b) {
    const std::string prompt = row_ids(ref.get("prompt_ids"), b);
    Result r = run("generate --model " + hf("xlstm_tiny_a") + " --prompt-ids \"" + prompt +
                   "\" --tokens 32 --temperature 0 --ignore-eos");
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find(prompt + " " + row_ids(ref.get("generated_ids"), b)), std::string::npos)
        << r.out;
  }
}

TEST(HfCli, StreamFromStdinEqualsThePrompt) {
  NEED_HF();
  SafeTensorsFile ref(hf("xlstm_tiny_a") + "/reference.safetensors");
  const std::string prompt = row_ids(ref.get("prompt_ids"), 0);
  // 600 repetitions (~84 KB): more than one 64 KiB read, cut at newlines
  char tmpl[] = "/tmp/xlstm_hfcli_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  {
    std::ofstream f(dir + "/in.txt");
    for (int i = 0; i < 600; ++i) f << prompt << "\n";
  }
  std::string all;
  for (int i = 0; i < 600; ++i) all += prompt + " ";
  {
    std::ofstream f(dir + "/all.txt");
    f << all;
  }
  const std::string m = " --model " + hf("xlstm_tiny_a") + " --temperature 0 --ignore-eos --tokens 6";
  Result a = run("generate" + m + " --stream < " + dir + "/in.txt");
  ASSERT_EQ(a.code, 0) << a.out;
  EXPECT_NE(a.out.find("read 22200 tokens"), std::string::npos) << a.out;
  Result b = run("generate" + m + " --prompt-ids \"$(cat " + dir + "/all.txt)\"");
  ASSERT_EQ(b.code, 0) << b.out.substr(0, 200);
  const std::string tail_a = a.out.substr(a.out.rfind('\n', a.out.size() - 2) + 1);
  EXPECT_NE(b.out.find(tail_a.substr(0, tail_a.size() - 1)), std::string::npos) << tail_a;
  fs::remove_all(dir);
}

TEST(HfCli, SavedStateContinuesTheSameText) {
  NEED_HF();
  SafeTensorsFile ref(hf("xlstm_tiny_a") + "/reference.safetensors");
  const std::string prompt = row_ids(ref.get("prompt_ids"), 0);
  const std::string gen = row_ids(ref.get("generated_ids"), 0);
  char tmpl[] = "/tmp/xlstm_hfcli_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string m = " --model " + hf("xlstm_tiny_a") + " --temperature 0 --ignore-eos";
  Result a = run("generate" + m + " --prompt-ids \"" + prompt + "\" --tokens 16 --save-state " +
                 dir + "/s.safetensors");
  ASSERT_EQ(a.code, 0) << a.out;
  Result b = run("generate" + m + " --load-state " + dir + "/s.safetensors --tokens 16");
  ASSERT_EQ(b.code, 0) << b.out;
  std::string both = a.out.substr(prompt.size());
  both.pop_back();  // newline
  both += b.out;
  EXPECT_NE(both.find(gen), std::string::npos) << both << "\nwant " << gen;
  // the state does not fit another model
  expect_one_error_line(run("generate --model " + hf("xlstm_tiny_b_tied_bias") + " --load-state " +
                            dir + "/s.safetensors --tokens 2"),
                        "different model");
  fs::remove_all(dir);
}

TEST(HfCli, BadInputGivesOneErrorLine) {
  NEED_HF();
  char tmpl[] = "/tmp/xlstm_hfcli_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  fs::create_directories(dir + "/m");
  std::ofstream(dir + "/m/config.json") << "{\"model_type\": \"xlstm\", \"num_heads\": ";
  expect_one_error_line(run("generate --model " + dir + "/m --prompt-ids 1"), "config.json");
  std::ofstream(dir + "/m/config.json") << "{\"model_type\": \"xlstm\", \"hidden_size\": 64}";
  expect_one_error_line(run("generate --model " + dir + "/m --prompt-ids 1"), "model.safetensors");
  expect_one_error_line(run("generate --model " + hf("xlstm_tiny_a") + " --prompt hello"),
                        "not a token id");
  expect_one_error_line(run("hf-check " + dir + "/nothing"), "not a directory");
  expect_one_error_line(run("export-hf --checkpoint " + dir + "/none --out " + dir + "/o"), "none");
  EXPECT_FALSE(fs::exists(dir + "/o"));
  fs::remove_all(dir);
}
