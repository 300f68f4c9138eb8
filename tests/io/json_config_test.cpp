// Typed JSON field access (io/json_config.h): values, defaults, and messages naming file + field.
#include <gtest/gtest.h>

#include <functional>

#include "io/json_config.h"

using namespace xlstm;
namespace jc = xlstm::json_cfg;

namespace {
std::string msg_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ValueError& e) {
    return e.what();
  }
  return "<no ValueError>";
}
}  // namespace

TEST(JsonConfig, TypedFields) {
  auto j = nlohmann::json::parse(
      R"({"hidden_size": 64, "f": 64.0, "lr": 0.001, "bias": true, "name": "x", "slstm_at": [1, 3],
          "nothing": null, "sub": {"a": 1}})");
  EXPECT_EQ(jc::get_int(j, "hidden_size", "config.json"), 64);
  EXPECT_EQ(jc::get_int(j, "f", "config.json"), 64);
  EXPECT_EQ(jc::get_number(j, "lr", "c"), 0.001);
  EXPECT_EQ(jc::get_number(j, "hidden_size", "c"), 64.0);
  EXPECT_TRUE(jc::get_bool(j, "bias", "c"));
  EXPECT_EQ(jc::get_string(j, "name", "c"), "x");
  EXPECT_EQ(jc::get_int_list(j, "slstm_at", "c"), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(jc::get_int(jc::get_object(j, "sub", "c"), "a", "c: sub"), 1);
  // Defaults for absent and null fields.
  EXPECT_EQ(jc::get_int(j, "absent", "c", 7), 7);
  EXPECT_EQ(jc::get_int(j, "nothing", "c", 7), 7);
  EXPECT_EQ(jc::get_string(j, "absent", "c", "d"), "d");
  EXPECT_FALSE(jc::get_bool(j, "absent", "c", false));
  EXPECT_EQ(jc::get_number(j, "absent", "c", 0.5), 0.5);
  EXPECT_EQ(jc::get_enum(j, "name", "c", {"x", "y"}), "x");
}

TEST(JsonConfig, ErrorsNameFileAndField) {
  auto j = nlohmann::json::parse(R"({"hidden_size": "abc", "lr": 1.5, "n": -2, "list": [1, "a"]})");
  EXPECT_EQ(msg_of([&] { jc::get_int(j, "hidden_size", "config.json"); }),
            "config.json: field 'hidden_size' must be an integer, got \"abc\"");
  EXPECT_EQ(msg_of([&] { jc::get_int(j, "missing", "config.json"); }),
            "config.json: missing field 'missing'");
  EXPECT_NE(msg_of([&] { jc::get_int(j, "lr", "c"); }).find("'lr' must be an integer, got 1.5"), std::string::npos);
  EXPECT_NE(msg_of([&] { jc::get_int_in(j, "n", "c", 0, 10); }).find("must be in [0, 10], got -2"), std::string::npos);
  EXPECT_NE(msg_of([&] { jc::get_bool(j, "lr", "c"); }).find("true or false"), std::string::npos);
  EXPECT_NE(msg_of([&] { jc::get_string(j, "lr", "c"); }).find("must be a string"), std::string::npos);
  EXPECT_NE(msg_of([&] { jc::get_int_list(j, "list", "c"); }).find("'list[1]'"), std::string::npos);
  EXPECT_NE(msg_of([&] { jc::get_enum(j, "hidden_size", "c", {"a", "b"}); }).find("one of a, b"), std::string::npos);
  EXPECT_NE(msg_of([&] { jc::check_known_fields(j, {"hidden_size", "lr", "n"}, "c"); }).find("unknown field 'list'"), std::string::npos);
  EXPECT_NE(msg_of([&] { jc::get_int(nlohmann::json::array(), "x", "c"); }).find("expected a JSON object"), std::string::npos);
  EXPECT_THROW(jc::read_file("/nonexistent/config.json"), IoError);
}
