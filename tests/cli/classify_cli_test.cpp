// `xlstm train --task classify` and `xlstm classify` through the real binary: a tiny end-to-end
// run, streaming, and bad input (one error line naming the file, line and field; exit != 0;
// no crash; no half-written output).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "harness/cli.h"

namespace fs = std::filesystem;

namespace {

using Result = xlstm::test::CliResult;

Result run(const std::string& args) { return xlstm::test::run_cli(args); }

void expect_fail_line(const Result& r, const std::string& must_contain) {
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_LT(r.code, 128) << "crashed: " << r.out;
  EXPECT_NE(r.out.find("error: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(must_contain), std::string::npos) << r.out;
  // one line
  EXPECT_LE(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

class ClassifyCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/xlstm_clscli_XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::ofstream f(dir_ + "/train.csv");
    f << "text,label\n";
    // "pos" rows mostly 'x', "neg" rows mostly 'y'; quoted fields with commas and quotes
    for (int i = 0; i < 120; ++i) {
      std::string s;
      for (int k = 0; k < 6 + i % 7; ++k) s += ((k * 7 + i) % 5 == 0) == (i % 2 == 0) ? 'y' : 'x';
      if (i % 10 == 0) f << "\"" << s << ", \"\"q\"\"\"," << (i % 2 ? "neg" : "pos") << "\n";
      else f << s << "," << (i % 2 ? "neg" : "pos") << "\n";
    }
    f.close();
    const Result r = run("train --task classify --data " + dir_ + "/train.csv --out " + dir_ +
                         "/run --model lstm-tiny --width 8 --steps 20 --eval-every 10 -q");
    ASSERT_EQ(r.code, 0) << r.out;
    trained_ = r.out;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string write(const std::string& name, const std::string& s) {
    std::ofstream(dir_ + "/" + name, std::ios::binary) << s;
    return dir_ + "/" + name;
  }
  static std::string dir_, trained_;
};
std::string ClassifyCli::dir_, ClassifyCli::trained_;

TEST_F(ClassifyCli, TrainsAndClassifies) {
  EXPECT_NE(trained_.find("classes: neg (weight 1) pos (weight 1)"), std::string::npos) << trained_;
  EXPECT_NE(trained_.find("confusion matrix"), std::string::npos) << trained_;
  for (const char* f : {"/run/best/model.safetensors", "/run/checkpoint/config.json", "/run/metrics.csv",
                        "/run/loss.png", "/run/val_metrics.json"})
    EXPECT_TRUE(fs::exists(dir_ + f)) << f;
  // labelled input: predictions + metrics
  const std::string in = write("in.jsonl", "{\"text\": \"xxxxxxx\", \"label\": \"pos\"}\n"
                                           "{\"text\": \"yyyyxyy\", \"label\": \"neg\"}\n");
  Result r = run("classify --checkpoint " + dir_ + "/run --input " + in);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("line,predicted,probability,label"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("accuracy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("macro-F1"), std::string::npos) << r.out;
  // unlabelled input: predictions only; unknown characters are fine
  r = run("classify --checkpoint " + dir_ + "/run --input " + write("u.csv", "text\nxxé€x\n"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("accuracy"), std::string::npos) << r.out;
  // stream: one prediction per line-document, same as the batch path
  r = run("classify --checkpoint " + dir_ + "/run --stream --input " + write("s.txt", "xxxxxxx\n\nyyyyxyy\n"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\n1\t"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n3\t"), std::string::npos) << r.out;  // document 2 is empty: skipped
  EXPECT_EQ(r.out.find("\n2\t"), std::string::npos) << r.out;
}

// --resume continues the finished run's checkpoint with its own settings (the library test
// checks bit-identity with an uninterrupted run); run-defining flags are refused.
TEST_F(ClassifyCli, Resume) {
  const Result r = run("train --task classify --resume -q --out " + dir_ + "/run");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("trained 20 steps"), std::string::npos) << r.out;
  const Result again = run("train --task classify --resume --max-len 9 --out " + dir_ + "/run");
  EXPECT_EQ(again.code, 0) << again.out;
  EXPECT_NE(again.out.find("ignored: --max-len"), std::string::npos) << again.out;
  const Result plain = run("train --resume -q --out " + dir_ + "/run");  // task from the checkpoint
  EXPECT_EQ(plain.code, 0) << plain.out;
  EXPECT_NE(plain.out.find("classify:   build/xlstm classify"), std::string::npos) << plain.out;
  expect_fail_line(run("train --task classify --resume --out " + dir_ + "/none"),
                   dir_ + "/none/checkpoint: nothing to resume");
  // A damaged checkpoint (a copy of the run): one error line naming the file.
  fs::copy(dir_ + "/run", dir_ + "/bad", fs::copy_options::recursive);
  std::ofstream(dir_ + "/bad/checkpoint/state.json") << "{\"step\": ";
  expect_fail_line(run("train --resume --out " + dir_ + "/bad"),
                   dir_ + "/bad/checkpoint/state.json");
}

TEST_F(ClassifyCli, BadInput) {
  const std::string run_dir = dir_ + "/run";
  // prediction-time problems
  expect_fail_line(run("classify --checkpoint " + run_dir + " --input " +
                       write("unk.csv", "text,label\nxx,pos\nyy,maybe\n")),
                   "unk.csv: line 3: label 'maybe' is not one of the model's classes (neg, pos)");
  expect_fail_line(run("classify --checkpoint " + run_dir + " --input " + write("empty.csv", "")),
                   "empty.csv: empty file");
  expect_fail_line(run("classify --checkpoint " + run_dir + " --input " + write("nocol.csv", "body\nxx\n")),
                   "nocol.csv: missing column 'text'");
  expect_fail_line(run("classify --checkpoint " + run_dir + " --input " + write("q.csv", "text\n\"open\n")),
                   "q.csv: line 2: unterminated quoted field");
  expect_fail_line(run("classify --checkpoint " + run_dir + " --input " + write("utf.csv", "text\nok\nbad\xff\n")),
                   "utf.csv: line 3: invalid UTF-8");
  expect_fail_line(run("classify --checkpoint " + run_dir + " --input " + dir_ + "/missing.csv"),
                   "missing.csv: cannot open");
  expect_fail_line(run("classify --checkpoint " + dir_ + "/nope --input " + dir_ + "/u.csv"),
                   "no checkpoint here");
  // training problems
  const std::string out = dir_ + "/bad_run";
  auto train = [&](const std::string& data, const std::string& extra = "") {
    return run("train --task classify --data " + data + " --out " + out + " --steps 2 -q " + extra);
  };
  expect_fail_line(train(write("one.csv", "text,label\na,x\nb,x\n")), "one.csv: only one class ('x')");
  expect_fail_line(train(write("miss.csv", "text,label\na,x\nb,\n")),
                   "miss.csv: line 3: missing value in field 'label'");
  expect_fail_line(train(write("ragged.csv", "text,label\na,x\nb\n")), "ragged.csv: line 3 has 1 fields");
  expect_fail_line(train(write("nolabel.csv", "text\na\nb\n")), "nolabel.csv: missing column 'label'");
  expect_fail_line(train(write("e.jsonl", "")), "e.jsonl: empty file");
  expect_fail_line(train(write("bad.jsonl", "{\"text\":\"a\",\"label\":\"x\"}\n[1]\n")),
                   "bad.jsonl: line 2: expected a JSON object");
  expect_fail_line(train(dir_ + "/train.csv", "--class-weights 1,2,3"), "--class-weights has 3 weights for 2 classes");
  expect_fail_line(train(dir_ + "/train.csv", "--pool max"), "--pool must be mean or last");
  expect_fail_line(train(dir_ + "/train.csv", "--model mlstm-tiny --bidirectional"), "--bidirectional is for the LSTM");
  EXPECT_FALSE(fs::exists(out + "/best")) << "no half-written run";
  // a bidirectional model cannot stream
  ASSERT_EQ(run("train --task classify --data " + dir_ + "/train.csv --out " + dir_ +
                "/bi --model lstm-tiny --width 8 --bidirectional --steps 2 -q").code, 0);
  expect_fail_line(run("classify --checkpoint " + dir_ + "/bi --stream --input " + write("s2.txt", "xxyx\n")),
                   "bidirectional model needs the whole sequence");
}

}  // namespace
