// `xlstm tokenizer-check`, `encode`, `decode`: the real binary on the shared GPT-NeoX tokenizer
// and its Hugging Face reference encodings, and on bad input (one "error:" line, non-zero exit).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "harness/cli.h"
#include "harness/compare.h"

using namespace xlstm;
namespace fs = std::filesystem;

namespace {

using Result = xlstm::test::CliResult;

Result run(const std::string& args) { return xlstm::test::run_cli(args); }

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/xlstm_tokcli_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name, const std::string& content) const {
    std::ofstream(path + "/" + name, std::ios::binary) << content;
    return path + "/" + name;
  }
};

std::string neox() {
  const std::string d = test::shared_dir() + "/hf/tokenizer-gpt-neox-20b";
  return !test::shared_dir().empty() && fs::exists(d + "/tokenizer.json") ? d : "";
}

// Bad input: non-zero exit without crashing, exactly one line "error: ..." naming `needle`.
void expect_one_error_line(const Result& r, const std::string& needle) {
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_LT(r.code, 128) << "crashed: " << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
}

TEST(CliTokenizer, CheckPassesOnSharedReferences) {
  const std::string d = neox();
  if (d.empty()) GTEST_SKIP() << "no ../shared/hf/tokenizer-gpt-neox-20b (set XLSTM_SHARED_DIR)";
  const Result r = run("tokenizer-check " + d + "/tokenizer.json " + d + "/refs.jsonl");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "91 passed, 0 failed\n");
}

TEST(CliTokenizer, CheckReportsMismatches) {
  const std::string d = neox();
  if (d.empty()) GTEST_SKIP() << "no ../shared/hf/tokenizer-gpt-neox-20b (set XLSTM_SHARED_DIR)";
  TempDir t;
  const std::string refs = t.file(
      "refs.jsonl",
      "{\"text\": \"Hello, world!\", \"ids\": [12092, 13, 1533, 2], \"decoded\": \"Hello, world!\"}\n"
      "{\"text\": \"Hello, world!\", \"ids\": [12092, 13, 1533, 3], \"decoded\": \"Hello, world!\"}\n"
      "\n"
      "{\"text\": \"x\", \"ids\": [89], \"decoded\": \"y\"}\n");
  const Result r = run("tokenizer-check " + d + "/tokenizer.json " + refs);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("FAIL line 2 \"Hello, world!\": ids differ at position 3: expected 3, got 2"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FAIL line 4 \"x\": decode differs at byte 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n1 passed, 2 failed\n"), std::string::npos) << r.out;
}

TEST(CliTokenizer, EncodeDecode) {
  const std::string d = neox();
  if (d.empty()) GTEST_SKIP() << "no ../shared/hf/tokenizer-gpt-neox-20b (set XLSTM_SHARED_DIR)";
  const std::string tok = " --tokenizer " + d + "/tokenizer.json";
  Result r = run("encode" + tok + " --text 'Hello, world!'");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "12092 13 1533 2\n");
  r = run("decode" + tok + " --ids '12092 13 1533 2 0'");
  EXPECT_EQ(r.out, "Hello, world!<|endoftext|>\n");
  r = run("decode" + tok + " --ids 12092,13,0 --skip-special");
  EXPECT_EQ(r.out, "Hello,\n");
  TempDir t;
  const std::string in = t.file("in.txt", "before<|endoftext|>after");
  r = run("encode" + tok + " --input " + in);
  EXPECT_EQ(r.out, "9131 0 6438\n");
  r = run("encode" + tok + " --input " + in + " --count");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("3 tokens from 24 bytes in ", 0), 0u) << r.out;
}

TEST(CliTokenizer, BadInput) {
  TempDir t;
  expect_one_error_line(run("encode --tokenizer " + t.path + "/none.json --text hi"), "none.json");
  const std::string unigram = t.file(
      "unigram.json",
      R"({"pre_tokenizer": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"},)"
      R"( "model": {"type": "Unigram", "vocab": []}})");
  expect_one_error_line(run("encode --tokenizer " + unigram + " --text hi"),
                        "unigram.json: model.type \"Unigram\" is not supported (only BPE)");
  const std::string cut = t.file("cut.json", R"({"model": {"type": "BPE", "vocab": {"a": 0)");
  expect_one_error_line(run("decode --tokenizer " + cut + " --ids 0"), "cut.json: not valid JSON");
  const std::string d = neox();
  if (d.empty()) GTEST_SKIP() << "no ../shared/hf/tokenizer-gpt-neox-20b (set XLSTM_SHARED_DIR)";
  const std::string tok = d + "/tokenizer.json";
  expect_one_error_line(run("decode --tokenizer " + tok + " --ids '1 x 2'"), "item 2 \"x\"");
  expect_one_error_line(run("decode --tokenizer " + tok + " --ids '1 50277'"), "id 50277");
  expect_one_error_line(run("encode --tokenizer " + tok), "--text");
  expect_one_error_line(run("encode --tokenizer " + tok + " --input " + t.path + "/no.txt"),
                        "no.txt");
  const std::string latin1 = t.file("latin1.txt", "a\xff" "b");
  expect_one_error_line(run("encode --tokenizer " + tok + " --input " + latin1), "byte offset 1");
  expect_one_error_line(run("tokenizer-check " + tok + " " + t.path + "/none.jsonl"), "none.jsonl");
  const std::string bad = t.file("bad.jsonl", "{\"text\": \"a\", \"ids\": [66], \"decoded\": \"a\"}\n{\"text\": 1}\n");
  expect_one_error_line(run("tokenizer-check " + tok + " " + bad), "bad.jsonl:2: field 'text'");
  const std::string notjson = t.file("nj.jsonl", "{\"text\": \"a\", \"ids\": [66], \"decoded\": \"a\"}\n{oops\n");
  expect_one_error_line(run("tokenizer-check " + tok + " " + notjson), "nj.jsonl:2: not valid JSON");
  const std::string empty = t.file("empty.jsonl", "");
  expect_one_error_line(run("tokenizer-check " + tok + " " + empty), "no reference lines");
}

}  // namespace
