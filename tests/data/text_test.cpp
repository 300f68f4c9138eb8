// Text corpora (data/text.h): UTF-8, vocabularies, JSON round trip, split, samplers, errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <cstring>
#include <set>

#include "data/text.h"

using namespace xlstm;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("xlstm_text_test_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name, const std::string& content) const {
    std::ofstream(path / name, std::ios::binary) << content;
    return (path / name).string();
  }
};

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

#define EXPECT_MSG(stmt, ErrType, needle)                                                   \
  do {                                                                                      \
    std::string msg_ = "<no error>";                                                        \
    try {                                                                                   \
      stmt;                                                                                 \
    } catch (const ErrType& e) {                                                            \
      msg_ = e.what();                                                                      \
    }                                                                                       \
    EXPECT_NE(msg_.find(needle), std::string::npos) << "message: " << msg_;                 \
  } while (0)

}  // namespace

TEST(Utf8, DecodeAndEncodeRoundTrip) {
  const std::string s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\n";  // a é € 😀 \n
  auto cps = utf8_decode(s, "t");
  EXPECT_EQ(cps, (std::vector<uint32_t>{0x61, 0xE9, 0x20AC, 0x1F600, 0x0A}));
  std::string back;
  for (auto c : cps) utf8_append(back, c);
  EXPECT_EQ(back, s);
}

TEST(Utf8, InvalidSequencesNameTheByteOffset) {
  EXPECT_MSG(utf8_decode("ab\xFFx", "data.txt"), ValueError, "data.txt: invalid UTF-8 at byte offset 2");
  EXPECT_MSG(utf8_decode("\xC0\x80", "t"), ValueError, "byte offset 0");          // overlong
  EXPECT_MSG(utf8_decode("x\xED\xA0\x80", "t"), ValueError, "byte offset 1");     // surrogate
  EXPECT_MSG(utf8_decode("xy\xE2\x82", "t"), ValueError, "byte offset 2");        // truncated
  EXPECT_MSG(utf8_decode("\xF4\x90\x80\x80", "t"), ValueError, "byte offset 0");  // > U+10FFFF
  EXPECT_MSG(utf8_decode("a\x80", "t"), ValueError, "byte 0x80");                 // stray continuation
  std::string out;
  EXPECT_THROW(utf8_append(out, 0xD800), ValueError);
}

TEST(Vocab, CharVocabSortedEncodeDecode) {
  const std::string text = "hello, w\xC3\xB6rld\n";
  Vocab v = Vocab::from_text(text, "t");
  EXPECT_EQ(v.kind(), VocabKind::Char);
  // distinct: \n space , d e h l o r w ö -> 11, sorted by code point
  EXPECT_EQ(v.size(), 11);
  EXPECT_EQ(v.symbol(0), (uint32_t)'\n');
  EXPECT_EQ(v.symbol(1), (uint32_t)' ');
  EXPECT_EQ(v.symbol(10), 0xF6u);
  EXPECT_EQ(v.symbol_str(0), "\\n");
  auto ids = v.encode(text);
  EXPECT_EQ((int64_t)ids.size(), 13);
  EXPECT_EQ(v.decode(ids), text);
  std::vector<int64_t> ids64(ids.begin(), ids.end());
  EXPECT_EQ(v.decode(ids64.data(), ids64.size()), text);
  EXPECT_THROW(v.decode(std::vector<int32_t>{0, 11}), ValueError);
  EXPECT_THROW(v.symbol(-1), ValueError);
}

TEST(Vocab, UnknownCharacterNamesCharacterAndPosition) {
  Vocab v = Vocab::from_text("abc", "t");
  const std::string msg = error_of([&] { v.encode("ab\xC3\xA9z", "prompt"); });
  EXPECT_NE(msg.find("prompt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'\xC3\xA9' (U+00E9)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at character 2 (byte offset 2)"), std::string::npos) << msg;
  EXPECT_MSG(v.encode("a\xC3\xA9z", "p"), ValueError, "U+00E9");
  EXPECT_MSG(v.encode("abc\x07", "p"), ValueError, "'U+0007'");
}

TEST(Vocab, ByteVocab) {
  Vocab v = Vocab::bytes();
  EXPECT_EQ(v.size(), 256);
  const std::string s("\x00\xFFz\xC3", 4);  // not UTF-8: fine for bytes
  auto ids = v.encode(s);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 255, 'z', 0xC3}));
  EXPECT_EQ(v.decode(ids), s);
  EXPECT_EQ(v.symbol_str(255), "0xFF");
  EXPECT_EQ(parse_vocab_kind("byte"), VocabKind::Byte);
  EXPECT_EQ(parse_vocab_kind("bpe"), VocabKind::Bpe);
  EXPECT_THROW(parse_vocab_kind("wordpiece"), ValueError);
}

TEST(Vocab, JsonRoundTripAndValidation) {
  TempDir d;
  Vocab v = Vocab::from_text("q\"\\\n\t \xE2\x82\xAC\xF0\x9F\x98\x80", "t");
  const std::string path = (d.path / "vocab.json").string();
  v.save(path);
  EXPECT_TRUE(Vocab::load(path) == v);
  Vocab b = Vocab::bytes();
  b.save(path);
  EXPECT_TRUE(Vocab::load(path) == b);

  EXPECT_MSG(Vocab::load((d.path / "nope.json").string()), IoError, "nope.json");
  EXPECT_MSG(Vocab::load(d.file("bad.json", "{not json")), IoError, "not valid JSON");
  auto load = [&](const std::string& j) { return Vocab::load(d.file("v.json", j)); };
  EXPECT_MSG(load(R"({"format":"x","version":1,"kind":"char","size":1,"symbols":["a"]})"), ValueError, "'format'");
  EXPECT_MSG(load(R"({"format":"xlstm-vocab","version":2,"kind":"char","size":1,"symbols":["a"]})"), ValueError, "version 2");
  EXPECT_MSG(load(R"({"format":"xlstm-vocab","version":1,"kind":"wordpiece","size":1,"symbols":["a"]})"), ValueError, "'kind'");
  EXPECT_MSG(load(R"({"format":"xlstm-vocab","version":1,"kind":"bpe","size":1})"), ValueError, "'tokenizer'");
  EXPECT_MSG(load(R"({"format":"xlstm-vocab","version":1,"kind":"char","size":2,"symbols":["a"]})"), ValueError, "'size'");
  EXPECT_MSG(load(R"({"format":"xlstm-vocab","version":1,"kind":"char","size":2,"symbols":["b","a"]})"), ValueError, "symbols[1]");
  EXPECT_MSG(load(R"({"format":"xlstm-vocab","version":1,"kind":"char","size":2,"symbols":["a","a"]})"), ValueError, "symbols[1]");
  EXPECT_MSG(load(R"({"format":"xlstm-vocab","version":1,"kind":"char","size":1,"symbols":["ab"]})"), ValueError, "exactly one character");
  EXPECT_MSG(load(R"({"format":"xlstm-vocab","version":1,"kind":"char","size":1,"symbols":[3]})"), ValueError, "symbols[0]");
  EXPECT_MSG(load(R"({"format":"xlstm-vocab","version":1,"kind":"byte","size":255})"), ValueError, "256");
  EXPECT_MSG(load(R"({"format":"xlstm-vocab","kind":"char"})"), ValueError, "missing field 'version'");
}

TEST(TextCorpus, ReadErrorsNameTheFile) {
  TempDir d;
  EXPECT_MSG(read_text_file((d.path / "missing.txt").string()), IoError, "missing.txt: cannot open");
  EXPECT_MSG(read_text_file(d.file("empty.txt", "")), IoError, "empty.txt: file is empty");
  EXPECT_MSG(TextCorpus::from_file(d.file("bin.txt", "ok\xFF"), VocabKind::Char), ValueError,
             "bin.txt: invalid UTF-8 at byte offset 2");
}

TEST(TextCorpus, SplitOnTokens) {
  TempDir d;
  std::string text;
  for (int i = 0; i < 50; ++i) text += "ab\xC3\xA9";  // 150 characters, 200 bytes
  const std::string path = d.file("c.txt", text);
  TextCorpus c = TextCorpus::from_file(path, VocabKind::Char, 0.1);
  EXPECT_EQ(c.vocab().size(), 3);
  EXPECT_EQ(c.size(Split::Train), 135);
  EXPECT_EQ(c.size(Split::Val), 15);
  auto all = c.vocab().encode(text);
  EXPECT_EQ(*c.tokens(Split::Train), std::vector<int32_t>(all.begin(), all.begin() + 135));
  EXPECT_EQ(*c.tokens(Split::Val), std::vector<int32_t>(all.begin() + 135, all.end()));
  TextCorpus b = TextCorpus::from_file(path, VocabKind::Byte, 0.25);
  EXPECT_EQ(b.size(Split::Train), 150);
  EXPECT_EQ(b.size(Split::Val), 50);
  TextCorpus z = TextCorpus::from_file(path, VocabKind::Char, 0.0);
  EXPECT_EQ(z.size(Split::Val), 0);
  EXPECT_THROW(TextCorpus::from_file(path, VocabKind::Char, 1.0), ValueError);
  EXPECT_THROW(TextCorpus::from_file(path, VocabKind::Char, -0.1), ValueError);
  // A given vocabulary that lacks a character of the file.
  EXPECT_MSG(TextCorpus::from_file(path, Vocab::from_text("ab", "v"), 0.1), ValueError,
             "c.txt: character '\xC3\xA9'");
}

TEST(Sampler, RandomWindowsAreContiguousDeterministicAndResumable) {
  auto toks = std::make_shared<std::vector<int32_t>>();
  for (int i = 0; i < 100; ++i) toks->push_back(i);
  const int64_t B = 4, T = 8;
  RandomWindowSampler a(toks, B, T, 42, "train"), b(toks, B, T, 42, "train"), c(toks, B, T, 43, "train");
  std::set<int64_t> starts;
  bool differs = false;
  for (int k = 0; k < 200; ++k) {
    Tensor x = a.next(), y = b.next(), z = c.next();
    ASSERT_EQ(x.shape(), (Shape{B, T + 1}));
    ASSERT_EQ(x.dtype(), DType::I64);
    const int64_t* p = x.data<int64_t>();
    EXPECT_EQ(std::memcmp(p, y.raw(), x.nbytes()), 0);
    differs = differs || std::memcmp(p, z.raw(), x.nbytes()) != 0;
    for (int64_t r = 0; r < B; ++r) {
      starts.insert(p[r * (T + 1)]);
      for (int64_t t = 1; t <= T; ++t) ASSERT_EQ(p[r * (T + 1) + t], p[r * (T + 1)] + t);
    }
  }
  EXPECT_TRUE(differs);
  EXPECT_EQ(*starts.begin(), 0);              // every start in [0, n-T-1] is reachable
  EXPECT_EQ(*starts.rbegin(), 100 - T - 1);
  EXPECT_EQ((int64_t)starts.size(), 100 - T);

  // Save the state, draw on; a fresh sampler restored from the state draws the same batches.
  Tensor st = a.state_tensor();
  Tensor n1 = a.next(), n2 = a.next();
  RandomWindowSampler r(toks, B, T, 7, "train");
  r.load_state(st, "ckpt");
  EXPECT_EQ(std::memcmp(r.next().raw(), n1.raw(), n1.nbytes()), 0);
  EXPECT_EQ(std::memcmp(r.next().raw(), n2.raw(), n2.nbytes()), 0);
  RandomWindowSampler q(toks, B, T, 7, "train");
  q.set_rng_state(b.rng_state());
  EXPECT_EQ(std::memcmp(q.next().raw(), b.next().raw(), n1.nbytes()), 0);
  EXPECT_THROW(r.load_state(Tensor({5}, DType::I64), "ckpt"), ValueError);
  EXPECT_THROW(r.load_state(Tensor({6}, DType::I64), "ckpt"), ValueError);  // all-zero state
}

TEST(Sampler, ShortCorpusIsAClearError) {
  auto toks = std::make_shared<std::vector<int32_t>>(10, 0);
  EXPECT_MSG(RandomWindowSampler(toks, 2, 10, 0, "train split of tiny.txt"), ValueError,
             "train split of tiny.txt has 10 tokens, fewer than sequence length + 1 = 11");
  EXPECT_NO_THROW(RandomWindowSampler(toks, 2, 9, 0, "t"));
  EXPECT_THROW(RandomWindowSampler(toks, 0, 4, 0, "t"), ValueError);
  EXPECT_THROW(SequentialSampler(toks, 1, 10, 0, "val"), ValueError);
}

TEST(Sampler, SequentialWindows) {
  auto toks = std::make_shared<std::vector<int32_t>>();
  for (int i = 0; i < 26; ++i) toks->push_back(i);
  SequentialSampler s(toks, 4, 4, 0, "val");  // (26-1)/4 = 6 windows: batches of 4 and 2
  EXPECT_EQ(s.num_windows(), 6);
  EXPECT_EQ(s.num_batches(), 2);
  Tensor w;
  ASSERT_TRUE(s.next(w));
  EXPECT_EQ(w.shape(), (Shape{4, 5}));
  EXPECT_EQ(w.data<int64_t>()[0], 0);
  EXPECT_EQ(w.data<int64_t>()[4], 4);   // window 0 = tokens 0..4
  EXPECT_EQ(w.data<int64_t>()[5], 4);   // window 1 starts where window 0's inputs end
  ASSERT_TRUE(s.next(w));
  EXPECT_EQ(w.shape(), (Shape{2, 5}));
  EXPECT_EQ(w.data<int64_t>()[9], 24);  // last target
  EXPECT_FALSE(s.next(w));
  s.reset();
  EXPECT_TRUE(s.next(w));
  SequentialSampler m(toks, 2, 4, 1, "val");
  EXPECT_EQ(m.num_batches(), 1);
  EXPECT_TRUE(m.next(w));
  EXPECT_FALSE(m.next(w));

  Tensor x, y;
  split_window(w, x, y);
  EXPECT_EQ(x.shape(), (Shape{2, 4}));
  EXPECT_EQ(x.data<int64_t>()[4], 4);  // row 1 inputs start at 4
  EXPECT_EQ(y.data<int64_t>()[0], 1);
  EXPECT_EQ(y.data<int64_t>()[7], 8);
}
