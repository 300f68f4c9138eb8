// CSV (RFC 4180) and JSON Lines reading (data/table.h): quoting, line numbers in errors, numbers.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "data/table.h"
#include "xlstm/error.h"

using namespace xlstm;

namespace {

std::string tmp_file(const std::string& name, const std::string& content) {
  const std::string p = ::testing::TempDir() + name;
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Csv, QuotesEscapesLineBreaksAndCrlf) {
  Table t = parse_csv("\xEF\xBB\xBFtext,label\r\n\"hi, \"\"you\"\"\",ham\r\n\r\n\"two\nlines\",spam\nplain,\"\"\n",
                      "f.csv");
  ASSERT_EQ(t.header, (std::vector<std::string>{"text", "label"}));
  ASSERT_EQ(t.num_rows(), 3);
  EXPECT_EQ(t.rows[0][0], "hi, \"you\"");
  EXPECT_EQ(t.rows[1][0], "two\nlines");
  EXPECT_EQ(t.rows[1][1], "spam");
  EXPECT_EQ(t.rows[2][1], "");
  EXPECT_EQ(t.lines, (std::vector<int64_t>{2, 4, 6}));  // 1-based, a quoted line break counts
  EXPECT_EQ(t.column("label"), 1);
  EXPECT_EQ(t.find_column("nope"), -1);
  // no trailing newline, last field empty
  Table u = parse_csv("a,b\n1,", "g.csv");
  ASSERT_EQ(u.num_rows(), 1);
  EXPECT_EQ(u.rows[0][1], "");
}

TEST(Csv, ErrorsNameFileLineAndColumn) {
  EXPECT_NE(error_of([] { parse_csv("a,b\n1,2\n3\n", "f.csv"); }).find("f.csv: line 3 has 1 fields, the header has 2"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("a,b\n\"open,2\n", "f.csv"); }).find("f.csv: line 2: unterminated"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("a,b\n\"x\"y,2\n", "f.csv"); }).find("line 2: unexpected character 'y'"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("", "f.csv"); }).find("f.csv: empty file"), std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("a,a\n", "f.csv"); }).find("'a' appears twice"), std::string::npos);
  Table t = parse_csv("x,y\n1.5, 2e3 \n,abc\ninf,0x10\n", "n.csv");
  EXPECT_EQ(t.number(0, 0), 1.5);
  EXPECT_EQ(t.number(0, 1), 2000.0);
  EXPECT_NE(error_of([&] { t.number(1, 0); }).find("n.csv: line 3, column 'x': missing value"), std::string::npos);
  EXPECT_NE(error_of([&] { t.number(1, 1); }).find("n.csv: line 3, column 'y': 'abc' is not a finite number"),
            std::string::npos);
  EXPECT_THROW(t.number(2, 0), ValueError);
  EXPECT_THROW(t.number(2, 1), ValueError);
  EXPECT_NE(error_of([&] { t.column("z"); }).find("n.csv: missing column 'z' (columns: x, y)"), std::string::npos);
  EXPECT_NE(error_of([] { read_csv("/nonexistent/x.csv"); }).find("/nonexistent/x.csv: cannot open"), std::string::npos);
  const std::string empty = tmp_file("empty.csv", "");
  EXPECT_NE(error_of([&] { read_csv(empty); }).find("empty file"), std::string::npos);
  EXPECT_THROW(read_csv(empty), IoError);
}

TEST(Jsonl, FieldsAndErrors) {
  const std::string p = tmp_file("a.jsonl", "{\"text\": \"hi\", \"label\": \"ham\"}\n\n{\"text\": \"yo\", \"label\": 3}\n");
  Table t = read_table(p, {"text", "label"}, {true, true});
  ASSERT_EQ(t.num_rows(), 2);
  EXPECT_EQ(t.rows[1][1], "3");
  EXPECT_EQ(t.lines, (std::vector<int64_t>{1, 3}));
  Table o = read_table(p, {"text", "label", "id"}, {true, true, false});
  EXPECT_EQ(o.rows[0][2], "");
  const std::string bad = tmp_file("b.jsonl", "{\"text\": \"hi\"}\n");
  EXPECT_NE(error_of([&] { read_table(bad, {"text", "label"}, {true, true}); }).find("b.jsonl: line 1: missing field 'label'"),
            std::string::npos);
  const std::string broken = tmp_file("c.jsonl", "{\"text\": \"hi\", \"label\": \"a\"}\n{oops\n");
  EXPECT_NE(error_of([&] { read_table(broken, {"text", "label"}, {true, true}); }).find("c.jsonl: line 2: not valid JSON"),
            std::string::npos);
  // CSV through read_table: just the asked columns, in order
  const std::string c = tmp_file("d.csv", "label,extra,text\nham,1,hello\n");
  Table d = read_table(c, {"text", "label"}, {true, true});
  EXPECT_EQ(d.rows[0], (std::vector<std::string>{"hello", "ham"}));
  EXPECT_NE(error_of([&] { read_table(c, {"body"}, {true}); }).find("missing column 'body'"), std::string::npos);
}

}  // namespace
