// Search spaces: the parser's errors name the key; each distribution draws inside its bounds
// with the right distribution; a seed fixes the draws; flags read back to the drawn values.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "tune/space.h"
#include "xlstm/error.h"

using namespace xlstm;
using json = nlohmann::json;

namespace {

FlagInfo lookup(const std::string& k) {
  static const std::set<std::string> opts = {"lr", "width", "dropout", "blocks", "model",
                                             "weight-decay", "batch-size"};
  if (opts.count(k)) return {true, true};
  if (k == "switch") return {true, false};
  if (k == "steps" || k == "out" || k == "resume") return {true, true};
  return {false, true};
}

SearchSpace parse(const std::string& text) {
  return parse_search_space(json::parse(text), "space.json", lookup);
}

// The message of the ValueError `text` raises (fails the test when none is raised).
std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const ValueError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << text;
  return "";
}

void expect_error(const std::string& text, const std::string& a, const std::string& b = "") {
  const std::string m = error_of(text);
  EXPECT_NE(m.find("space.json"), std::string::npos) << m;
  EXPECT_NE(m.find(a), std::string::npos) << m;
  if (!b.empty()) {
    EXPECT_NE(m.find(b), std::string::npos) << m;
  }
}

ParamSpec spec(DistKind k, double lo, double hi) {
  ParamSpec p;
  p.key = "x";
  p.kind = k;
  p.lo = lo;
  p.hi = hi;
  return p;
}

}  // namespace

TEST(SearchSpace, ParsesEveryDistribution) {
  SearchSpace s = parse(R"({"lr": {"log_uniform": [1e-4, 1e-2]}, "dropout": {"uniform": [0, 0.3]},
      "blocks": {"int": [1, 4]}, "width": {"log_int": [16, 256]},
      "model": {"choice": ["lstm-tiny", "slstm-tiny"]}, "batch_size": 8,
      "switch": {"choice": [true, false]}})");
  ASSERT_EQ(s.params.size(), 7u);
  std::map<std::string, const ParamSpec*> by;
  for (auto& p : s.params) by[p.key] = &p;
  EXPECT_EQ(s.params[0].key, "batch-size");  // sorted, underscores become dashes
  EXPECT_EQ(by["lr"]->kind, DistKind::LogUniform);
  EXPECT_EQ(by["dropout"]->kind, DistKind::Uniform);
  EXPECT_EQ(by["blocks"]->kind, DistKind::Int);
  EXPECT_EQ(by["width"]->kind, DistKind::LogInt);
  EXPECT_EQ(by["model"]->kind, DistKind::Choice);
  EXPECT_EQ(by["batch-size"]->kind, DistKind::Fixed);
  EXPECT_TRUE(by["switch"]->is_switch);
  EXPECT_DOUBLE_EQ(by["lr"]->lo, 1e-4);
  EXPECT_DOUBLE_EQ(by["lr"]->hi, 1e-2);
}

TEST(SearchSpace, ErrorsNameTheKey) {
  expect_error("[1, 2]", "JSON object");
  expect_error("{}", "empty");
  expect_error(R"({"lr": {"gaussian": [0, 1]}})", "'lr'", "unknown distribution 'gaussian'");
  expect_error(R"({"lr": {"uniform": [0.3, 0.1]}})", "'lr'", "lo < hi");
  expect_error(R"({"lr": {"uniform": [0.1, 0.1]}})", "'lr'", "lo < hi");
  expect_error(R"({"lr": {"log_uniform": [0, 0.1]}})", "'lr'", "0 < lo");
  expect_error(R"({"lr": {"log_uniform": [-1, 0.1]}})", "'lr'", "0 < lo");
  expect_error(R"({"lr": {"uniform": [0.1]}})", "'lr'", "[lo, hi]");
  expect_error(R"({"lr": {"uniform": ["a", "b"]}})", "'lr'", "[lo, hi]");
  expect_error(R"({"lr": {"uniform": 3}})", "'lr'", "[lo, hi]");
  expect_error(R"({"lr": {"uniform": [0, 1], "int": [1, 2]}})", "'lr'", "exactly one");
  expect_error(R"({"blocks": {"int": [1.5, 4]}})", "'blocks'", "integer");
  expect_error(R"({"blocks": {"int": [4, 1]}})", "'blocks'", "lo <= hi");
  expect_error(R"({"width": {"log_int": [0, 8]}})", "'width'", "lo >= 1");
  expect_error(R"({"model": {"choice": []}})", "'model'", "non-empty");
  expect_error(R"({"model": {"choice": "lstm"}})", "'model'", "non-empty");
  expect_error(R"({"model": {"choice": [[1]]}})", "'model'", "numbers or strings");
  expect_error(R"({"model": {"choice": [true]}})", "'model'", "numbers or strings");
  expect_error(R"({"widht": {"choice": [1]}})", "'widht'", "not an `xlstm train` flag");
  expect_error(R"({"steps": {"int": [1, 9]}})", "'steps'", "set by tune");
  expect_error(R"({"out": "x"})", "'out'", "set by tune");
  expect_error(R"({"weight_decay": 0.1, "weight-decay": 0.2})", "--weight-decay", "twice");
  expect_error(R"({"switch": {"choice": [1, 2]}})", "'switch'", "takes no value");
  expect_error(R"({"switch": {"uniform": [0, 1]}})", "'switch'", "takes no value");
  expect_error(R"({"lr": null})", "'lr'", "numbers or strings");
}

TEST(SearchSpace, ReadFileErrorsNameTheFile) {
  const std::string p = "/tmp/xlstm_space_test_bad.json";
  FILE* f = std::fopen(p.c_str(), "w");
  std::fputs("{\"lr\": {\"uniform\": [0, 1]", f);
  std::fclose(f);
  try {
    read_search_space(p, lookup);
    ADD_FAILURE() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_search_space("/nonexistent/space.json", lookup), IoError);
}

TEST(SearchSpace, UniformDraws) {
  Rng rng(1);
  const ParamSpec p = spec(DistKind::Uniform, -0.5, 2.5);
  const int n = 20000;
  double sum = 0;
  int below_mid = 0;
  for (int i = 0; i < n; ++i) {
    const double v = sample_param(p, rng).get<double>();
    ASSERT_GE(v, -0.5);
    ASSERT_LT(v, 2.5);
    sum += v;
    below_mid += v < 1.0;
  }
  // mean 1.0, sd of the mean sqrt(9/12/n) = 0.006
  EXPECT_NEAR(sum / n, 1.0, 0.03);
  EXPECT_NEAR((double)below_mid / n, 0.5, 0.02);
}

TEST(SearchSpace, LogUniformDraws) {
  Rng rng(2);
  const ParamSpec p = spec(DistKind::LogUniform, 1e-4, 1e-2);
  const int n = 20000;
  int decade[2] = {0, 0};
  double sum_log = 0;
  for (int i = 0; i < n; ++i) {
    const double v = sample_param(p, rng).get<double>();
    ASSERT_GE(v, 1e-4);
    ASSERT_LE(v, 1e-2);
    sum_log += std::log10(v);
    ++decade[v < 1e-3 ? 0 : 1];
  }
  // log10 uniform on [-4, -2]: each decade holds half the draws (a plain uniform would put
  // 91% in the upper one)
  EXPECT_NEAR((double)decade[0] / n, 0.5, 0.02);
  EXPECT_NEAR(sum_log / n, -3.0, 0.02);
}

TEST(SearchSpace, IntDrawsCoverTheClosedRangeEvenly) {
  Rng rng(3);
  const ParamSpec p = spec(DistKind::Int, 1, 4);
  const int n = 8000;
  std::map<int64_t, int> count;
  for (int i = 0; i < n; ++i) {
    const json v = sample_param(p, rng);
    ASSERT_TRUE(v.is_number_integer());
    ++count[v.get<int64_t>()];
  }
  ASSERT_EQ(count.size(), 4u);
  for (auto& [v, c] : count) {
    EXPECT_GE(v, 1);
    EXPECT_LE(v, 4);
    EXPECT_NEAR((double)c / n, 0.25, 0.02) << v;
  }
}

TEST(SearchSpace, LogIntDraws) {
  Rng rng(4);
  const ParamSpec p = spec(DistKind::LogInt, 16, 255);
  const int n = 20000;
  int low = 0;
  std::set<int64_t> seen;
  for (int i = 0; i < n; ++i) {
    const int64_t v = sample_param(p, rng).get<int64_t>();
    ASSERT_GE(v, 16);
    ASSERT_LE(v, 255);
    seen.insert(v);
    low += v < 64;  // log2: [16, 64) is half of [16, 256)
  }
  EXPECT_NEAR((double)low / n, 0.5, 0.02);
  EXPECT_TRUE(seen.count(16) && seen.count(255));
}

TEST(SearchSpace, ChoiceAndFixed) {
  SearchSpace s = parse(R"({"model": {"choice": ["a", "b", "c"]}, "lr": 0.5})");
  Rng rng(5);
  std::map<std::string, int> count;
  for (int i = 0; i < 3000; ++i) {
    json d = sample_params(s, rng);
    EXPECT_EQ(d["lr"].get<double>(), 0.5);
    ++count[d["model"].get<std::string>()];
  }
  ASSERT_EQ(count.size(), 3u);
  for (auto& [v, c] : count) EXPECT_NEAR(c / 3000.0, 1.0 / 3, 0.03) << v;
}

TEST(SearchSpace, SeedFixesTheDrawsAndFlagsReadBack) {
  SearchSpace s = parse(R"({"lr": {"log_uniform": [1e-4, 1e-2]}, "dropout": {"uniform": [0, 0.3]},
      "blocks": {"int": [1, 4]}, "model": {"choice": ["lstm-tiny", "slstm-tiny"]},
      "switch": {"choice": [true, false]}})");
  Rng a(7), b(7), c(8);
  const json da = sample_params(s, a), db = sample_params(s, b), dc = sample_params(s, c);
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
  Rng r(9);
  for (int i = 0; i < 50; ++i) {
    const json d = sample_params(s, r);
    const auto f = params_to_flags(s, d);
    std::map<std::string, std::string> kv;
    bool has_switch = false;
    for (size_t k = 0; k < f.size(); ++k) {
      ASSERT_EQ(f[k].rfind("--", 0), 0u) << f[k];
      if (f[k] == "--switch") {
        has_switch = true;
        continue;
      }
      kv[f[k]] = f[k + 1];
      ++k;
    }
    EXPECT_EQ(has_switch, d["switch"].get<bool>());
    // doubles are written so that they read back exactly
    EXPECT_EQ(std::stod(kv["--lr"]), d["lr"].get<double>());
    EXPECT_EQ(std::stod(kv["--dropout"]), d["dropout"].get<double>());
    EXPECT_EQ(std::stoll(kv["--blocks"]), d["blocks"].get<int64_t>());
    EXPECT_EQ(kv["--model"], d["model"].get<std::string>());
  }
}
