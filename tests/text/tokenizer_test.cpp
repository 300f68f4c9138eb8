// Byte-level BPE tokenizer (text/tokenizer.h) against independent expectations:
//   - every line of ../shared/hf/tokenizer-gpt-neox-20b/refs.jsonl (made by Hugging Face
//     tokenizers 0.23.2) and the id count/checksum of all of Tiny Shakespeare from the same
//     library (skipped with a message when ../shared is absent);
//   - a tiny tokenizer.json written here whose BPE results are derived by hand below;
//   - decode(encode(x)) == NFC(x) on random text, with NFC known per piece by construction;
//   - lossy UTF-8 against the Unicode standard's worked example (Table 3-8);
//   - the streaming decoder against whole decode; bad files and ids rejected with typed errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "harness/compare.h"
#include "text/tokenizer.h"
#include "xlstm/error.h"
#include "xlstm/rng.h"

using namespace xlstm;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("xlstm_tokenizer_test_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name, const std::string& content) const {
    std::ofstream(path / name, std::ios::binary) << content;
    return (path / name).string();
  }
};

#define EXPECT_MSG(stmt, ErrType, needle)                                   \
  do {                                                                      \
    std::string msg_ = "<no error>";                                        \
    try {                                                                   \
      stmt;                                                                 \
    } catch (const ErrType& e) {                                            \
      msg_ = e.what();                                                      \
    }                                                                       \
    EXPECT_NE(msg_.find(needle), std::string::npos) << "message: " << msg_; \
  } while (0)

std::string neox_dir() {
  const std::string d = test::shared_dir();
  if (d.empty() || !fs::exists(d + "/hf/tokenizer-gpt-neox-20b/tokenizer.json")) return "";
  return d + "/hf/tokenizer-gpt-neox-20b";
}

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += (char)cp;
  } else if (cp < 0x800) {
    s += (char)(0xC0 | (cp >> 6));
    s += (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += (char)(0xE0 | (cp >> 12));
    s += (char)(0x80 | ((cp >> 6) & 0x3F));
    s += (char)(0x80 | (cp & 0x3F));
  } else {
    s += (char)(0xF0 | (cp >> 18));
    s += (char)(0x80 | ((cp >> 12) & 0x3F));
    s += (char)(0x80 | ((cp >> 6) & 0x3F));
    s += (char)(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's bytes_to_unicode, written out again here: printable Latin-1 bytes stand for
// themselves, the other 68 bytes for U+0100, U+0101, ... in byte order.
std::string byte_char(int b) {
  auto direct = [](int x) {
    return (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
  };
  if (direct(b)) return utf8((uint32_t)b);
  int n = 0;
  for (int x = 0; x < b; ++x) n += !direct(x);
  return utf8(256u + (uint32_t)n);
}

// The tiny tokenizer: ids 0..255 are the byte characters (id = byte value), then merges
//   rank 0 "a a"->256  1 "b c"->257  2 "a b"->258  3 "aa a"->259  4 "Ġ a"->260
//   rank 5 "ab c"->261  6 "Ġa bc"->262
// added tokens <bos> 263 (special), <sep> 264 (special, lstrip, rstrip), xyz 265 (single_word),
// NFC normalizer, ByteLevel pre-tokenizer without prefix space, template "<bos> $A".
json tiny_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"a", "a"}, {"b", "c"}, {"a", "b"}, {"aa", "a"}, {"Ġ", "a"}, {"ab", "c"}, {"Ġa", "bc"}};
  json jm = json::array();
  int id = 256;
  for (const auto& [l, r] : merges) {
    vocab[l + r] = id++;
    jm.push_back(json::array({l, r}));
  }
  auto added = [](int i, const std::string& c, bool special, bool lstrip, bool rstrip,
                  bool single_word, bool normalized) {
    return json{{"id", i},          {"content", c},         {"special", special},
                {"lstrip", lstrip}, {"rstrip", rstrip},     {"single_word", single_word},
                {"normalized", normalized}};
  };
  return json{
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", json::array({added(263, "<bos>", true, false, false, false, false),
                                    added(264, "<sep>", true, true, true, false, false),
                                    added(265, "xyz", false, false, false, true, true)})},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({json{{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}},
                                json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", json::array()},
        {"special_tokens", {{"<bos>", {{"id", "<bos>"}, {"ids", {263}}, {"tokens", {"<bos>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"fuse_unk", false},
        {"byte_fallback", false}, {"vocab", vocab}, {"merges", jm}}}};
}

Tokenizer tiny() { return Tokenizer::from_json_string(tiny_json().dump(), "tiny.json"); }

using Ids = std::vector<int32_t>;

// ------------------------------------------------------------------------- hand-derived

TEST(TinyTokenizer, MergesDerivedByHand) {
  const Tokenizer t = tiny();
  // "aaa": both (a,a) have rank 0, the leftmost merges first -> [aa, a] -> rank 3 -> aaa.
  EXPECT_EQ(t.encode("aaa", false), (Ids{259}));
  // "aaaa": [aa, a, a] -> the queued (a,a) at 1 is stale, (a,a) at 2 merges -> [aa, aa];
  // (aa,aa) is no merge, so the queued (aa,a) is stale too.
  EXPECT_EQ(t.encode("aaaa", false), (Ids{256, 256}));
  // "abc": (b,c) rank 1 beats (a,b) rank 2; (a,bc) is no merge.
  EXPECT_EQ(t.encode("abc", false), (Ids{'a', 257}));
  EXPECT_EQ(t.encode("ab", false), (Ids{258}));
  // " abc" is one pre-token: bc first, then Ġa (rank 4), then Ġa+bc (rank 6).
  EXPECT_EQ(t.encode("x abc", false), (Ids{'x', 262}));
  // " aaa": aa at 1, then aa+a = aaa; (Ġ, aaa) is no merge.
  EXPECT_EQ(t.encode("x aaa", false), (Ids{'x', ' ', 259}));
  // GPT-2 split: "  b" -> " " + " b"; trailing spaces stay together; "'s" is a contraction.
  EXPECT_EQ(t.encode("a  b", false), (Ids{'a', ' ', ' ', 'b'}));
  EXPECT_EQ(t.encode("it's", false), (Ids{'i', 't', '\'', 's'}));
  EXPECT_EQ(t.encode("", false), (Ids{}));
  // The template adds <bos> only with add_special_tokens.
  EXPECT_EQ(t.encode("ab"), (Ids{263, 258}));
  EXPECT_EQ(t.encode(""), (Ids{263}));
}

TEST(TinyTokenizer, AddedTokensAndNormalization) {
  const Tokenizer t = tiny();
  // <sep> strips the whitespace on both sides into itself.
  EXPECT_EQ(t.encode("x <sep>  y", false), (Ids{'x', 264, 'y'}));
  EXPECT_EQ(t.encode("<bos><bos>", false), (Ids{263, 263}));
  // xyz is single_word: not inside a word, fine next to punctuation or spaces.
  EXPECT_EQ(t.encode("xyz", false), (Ids{265}));
  EXPECT_EQ(t.encode("axyz", false), (Ids{'a', 'x', 'y', 'z'}));
  EXPECT_EQ(t.encode("xyz!", false), (Ids{265, '!'}));
  EXPECT_EQ(t.encode("a xyz", false), (Ids{'a', ' ', 265}));
  // NFC: e + U+0301 becomes U+00E9 (bytes C3 A9, ids = byte values).
  EXPECT_EQ(t.encode("e\xCC\x81", false), (Ids{0xC3, 0xA9}));
  EXPECT_EQ(t.encode("\xC3\xA9", false), (Ids{0xC3, 0xA9}));
  // Lookups.
  EXPECT_EQ(t.vocab_size(), 266);
  EXPECT_EQ(t.token_to_id("<sep>"), std::optional<int32_t>(264));
  EXPECT_EQ(t.token_to_id("Ġa"), std::optional<int32_t>(260));
  EXPECT_EQ(t.token_to_id("nope"), std::nullopt);
  EXPECT_EQ(t.id_to_token(' '), "Ġ");
  EXPECT_EQ(t.id_to_token(262), "Ġabc");
  EXPECT_TRUE(t.is_special(263));
  EXPECT_FALSE(t.is_special(265));
}

TEST(TinyTokenizer, Decode) {
  const Tokenizer t = tiny();
  EXPECT_EQ(t.decode(Ids{263, 'a', 257, 262}), "<bos>abc abc");
  EXPECT_EQ(t.decode(Ids{263, 'a', 257, 264, 265}, true), "abcxyz");
  EXPECT_EQ(t.decode(Ids{0xC3, 0xA9}), "\xC3\xA9");
  // Unicode 15, section 3.9, Table 3-8: U+FFFD for each maximal subpart of ill-formed input.
  const std::string bad = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
  Ids ids;
  for (unsigned char c : bad) ids.push_back(c);
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(t.decode(ids), "a" + r + r + r + "b" + r + "c" + r + r + "d");
  EXPECT_EQ(t.decode(Ids{0xE2, 0x82}), r);  // truncated at the end: one U+FFFD
  EXPECT_EQ(t.decode(Ids{0xED, 0xA0, 0x80}), r + r + r);  // a surrogate: three
}

// ---------------------------------------------------------------------- round trips

// Random text from pieces whose NFC form is known: stable pieces (ASCII, precomposed letters,
// CJK, emoji, many kinds of whitespace and punctuation) and decomposed pairs with their
// composition. No piece starts with a combining mark, so pieces normalize independently.
std::pair<std::string, std::string> random_text(Rng& rng, int max_pieces) {
  static const std::vector<std::pair<std::string, std::string>> pieces = {
      {"a", "a"}, {"Z", "Z"}, {"hello", "hello"}, {" ", " "}, {"   ", "   "}, {"\t", "\t"},
      {"\n", "\n"}, {"\r\n", "\r\n"}, {"'s", "'s"}, {"'ll", "'ll"}, {"'", "'"}, {"42", "42"},
      {"3.14", "3.14"}, {"!?", "!?"}, {"<|endoftext|>", "<|endoftext|>"}, {"\xC2\xA0", "\xC2\xA0"},
      {"\xE3\x80\x80", "\xE3\x80\x80"}, {"\xE2\x80\x8B", "\xE2\x80\x8B"}, {"\xC3\xA9", "\xC3\xA9"},
      {"e\xCC\x81", "\xC3\xA9"}, {"A\xCC\x8A", "\xC3\x85"}, {"\xE2\x84\xAB", "\xC3\x85"},
      {"\xE1\x84\x80\xE1\x85\xA1", "\xEA\xB0\x80"}, {"\xE4\xB8\xAD\xE6\x96\x87", "\xE4\xB8\xAD\xE6\x96\x87"},
      {"\xCE\xB1\xCE\xB2", "\xCE\xB1\xCE\xB2"}, {"\xD1\x8F", "\xD1\x8F"}, {"\xF0\x9F\x99\x82", "\xF0\x9F\x99\x82"},
      {"\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD", "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD"}, {"\xE2\x80\x94", "\xE2\x80\x94"},
      {"\xD9\xA3", "\xD9\xA3"}, {"\xC2\xB2", "\xC2\xB2"}, {"\xF0\x9D\x90\x80", "\xF0\x9D\x90\x80"},
      {"\xE0\xA4\xB9\xE0\xA4\xBF", "\xE0\xA4\xB9\xE0\xA4\xBF"}, {"\xEE\x80\x80", "\xEE\x80\x80"},
  };
  std::string raw, nfc;
  const int n = (int)(rng.uniform() * max_pieces);
  for (int i = 0; i < n; ++i) {
    const auto& p = pieces[(size_t)(rng.uniform() * pieces.size()) % pieces.size()];
    raw += p.first;
    nfc += p.second;
  }
  return {raw, nfc};
}

void check_round_trip(const Tokenizer& t, uint64_t seed) {
  Rng rng(seed);
  for (int k = 0; k < 300; ++k) {
    const auto [raw, nfc] = random_text(rng, 30);
    const Ids ids = t.encode(raw, false);
    ASSERT_EQ(t.decode(ids), nfc) << "text: " << raw;
    // Streaming: one push per id, then flush, gives the same text.
    TokenStreamDecoder sd(t);
    std::string streamed;
    for (int32_t id : ids) streamed += sd.push(id);
    streamed += sd.flush();
    ASSERT_EQ(streamed, nfc) << "text: " << raw;
  }
}

TEST(TinyTokenizer, RoundTripRandomText) { check_round_trip(tiny(), 1); }

TEST(TinyTokenizer, StreamingEqualsDecodeOnRandomBytes) {
  const Tokenizer t = tiny();
  Rng rng(7);
  for (int k = 0; k < 500; ++k) {
    Ids ids;
    const int n = (int)(rng.uniform() * 12);
    for (int i = 0; i < n; ++i) {  // mostly bytes >= 0x80 to hit split and broken sequences
      const double u = rng.uniform();
      ids.push_back(u < 0.7 ? 0x80 + (int32_t)(rng.uniform() * 128) % 128
                            : (int32_t)(rng.uniform() * 266) % 266);
    }
    TokenStreamDecoder sd(t);
    std::string s;
    for (int32_t id : ids) s += sd.push(id);
    s += sd.flush();
    ASSERT_EQ(s, t.decode(ids));
  }
  // A character split over tokens comes out only when complete.
  TokenStreamDecoder sd(t);
  EXPECT_EQ(sd.push('a'), "a");
  EXPECT_EQ(sd.push(0xE2), "");
  EXPECT_EQ(sd.push(0x82), "");
  EXPECT_EQ(sd.push(0xAC), "\xE2\x82\xAC");
  EXPECT_EQ(sd.push(0xF0), "");
  EXPECT_MSG(sd.push(999), ValueError, "999");
  EXPECT_EQ(sd.push('b'), "\xEF\xBF\xBD" "b");  // the cut sequence became U+FFFD
  EXPECT_EQ(sd.flush(), "");
}

// ------------------------------------------------------------------------ errors

TEST(TinyTokenizer, BadFilesAreRejected) {
  TempDir d;
  auto with = [&](const std::string& name, auto edit) {
    json j = tiny_json();
    edit(j);
    return d.file(name, j.dump());
  };
  auto load = [](const std::string& f) { Tokenizer::from_file(f); };
  std::string f = with("unigram.json", [](json& j) { j["model"]["type"] = "Unigram"; });
  EXPECT_MSG(load(f), ValueError, f + ": model.type \"Unigram\" is not supported (only BPE)");
  EXPECT_MSG(load(with("wp.json", [](json& j) { j["model"]["type"] = "WordPiece"; })), ValueError,
             "model.type \"WordPiece\"");
  EXPECT_MSG(load(with("norm.json", [](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; })),
             ValueError, "normalizer.type \"Lowercase\" is not supported");
  EXPECT_MSG(load(with("pre.json", [](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}}; })),
             ValueError, "pre_tokenizer.type \"Metaspace\"");
  EXPECT_MSG(load(with("seq.json",
                       [](json& j) {
                         j["pre_tokenizer"] = {{"type", "Sequence"},
                                               {"pretokenizers", {{{"type", "Digits"}}}}};
                       })),
             ValueError, "pre_tokenizer.pretokenizers[0].type \"Digits\"");
  EXPECT_MSG(load(with("split.json",
                       [](json& j) {
                         j["pre_tokenizer"] = {
                             {"type", "Sequence"},
                             {"pretokenizers",
                              {{{"type", "Split"}, {"pattern", {{"Regex", "\\d+"}}}, {"behavior", "Isolated"}},
                               {{"type", "ByteLevel"}, {"use_regex", false}}}}};
                       })),
             ValueError, "pre_tokenizer.pretokenizers[0].pattern");
  EXPECT_MSG(load(with("dec.json", [](json& j) { j["decoder"] = {{"type", "WordPiece"}}; })),
             ValueError, "decoder.type \"WordPiece\"");
  EXPECT_MSG(load(with("drop.json", [](json& j) { j["model"]["dropout"] = 0.1; })), ValueError,
             "model.dropout 0.1");
  EXPECT_MSG(load(with("bf.json", [](json& j) { j["model"]["byte_fallback"] = true; })),
             ValueError, "model.byte_fallback");
  EXPECT_MSG(load(with("m1.json", [](json& j) { j["model"]["merges"] = {"a b c"}; })), ValueError,
             "model.merges[0]");
  EXPECT_MSG(load(with("m2.json", [](json& j) { j["model"]["merges"] = {"a zz"}; })), ValueError,
             "model.merges[0]: token \"zz\" is not in model.vocab");
  EXPECT_MSG(load(with("noid.json", [](json& j) { j["added_tokens"][0]["id"] = 300; })),
             ValueError, "added_tokens[0].id 300 disagrees with the id 263");
  EXPECT_MSG(load(with("tr.json", [](json& j) { j["truncation"] = {{"max_length", 8}}; })),
             ValueError, "truncation");
  EXPECT_MSG(load(with("novocab.json", [](json& j) { j["model"].erase("vocab"); })), ValueError,
             "model.vocab is missing");
  // Truncated, empty and missing files.
  const std::string text = tiny_json().dump();
  f = d.file("cut.json", text.substr(0, text.size() / 2));
  EXPECT_MSG(load(f), IoError, f + ": not valid JSON");
  EXPECT_MSG(load(d.file("empty.json", "")), IoError, "empty.json");
  EXPECT_MSG(load((d.path / "missing.json").string()), IoError, "missing.json");
}

TEST(TinyTokenizer, BadIdsAndText) {
  const Tokenizer t = tiny();
  EXPECT_MSG(t.decode(Ids{'a', 266}), ValueError, "id 266 at position 1 has no token");
  EXPECT_MSG(t.decode(Ids{-1}), ValueError, "id -1");
  EXPECT_MSG(t.id_to_token(5000), ValueError, "5000");
  EXPECT_FALSE(t.is_special(-3));
  EXPECT_MSG(t.encode("a\xFF" "b"), ValueError, "invalid UTF-8 in text at byte offset 1");
  EXPECT_MSG(t.encode("ab\xE2\x82"), ValueError, "byte offset 2");
  EXPECT_MSG(t.encode("\xED\xA0\x80"), ValueError, "byte offset 0");  // a surrogate
}

// ------------------------------------------------------------------ GPT-NeoX reference

TEST(NeoxTokenizer, ReferenceLines) {
  const std::string d = neox_dir();
  if (d.empty()) GTEST_SKIP() << "no ../shared/hf/tokenizer-gpt-neox-20b (set XLSTM_SHARED_DIR)";
  const Tokenizer t = Tokenizer::from_file(d + "/tokenizer.json");
  EXPECT_EQ(t.vocab_size(), 50277);
  EXPECT_EQ(t.token_to_id("<|endoftext|>"), std::optional<int32_t>(0));
  std::ifstream in(d + "/refs.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const json j = json::parse(line);
    const std::string text = j["text"];
    const Ids want = j["ids"].get<Ids>();
    EXPECT_EQ(t.encode(text), want) << "line " << n << ": " << text;
    EXPECT_EQ(t.decode(want), j["decoded"].get<std::string>()) << "line " << n;
    TokenStreamDecoder sd(t);
    std::string s;
    for (int32_t id : want) s += sd.push(id);
    EXPECT_EQ(s + sd.flush(), j["decoded"].get<std::string>()) << "line " << n;
  }
  EXPECT_EQ(n, 91);
}

TEST(NeoxTokenizer, TinyShakespeareMatchesHuggingFace) {
  const std::string d = neox_dir();
  const std::string data = test::shared_dir() + "/data/tinyshakespeare.txt";
  if (d.empty() || !fs::exists(data)) GTEST_SKIP() << "no ../shared (set XLSTM_SHARED_DIR)";
  const Tokenizer t = Tokenizer::from_file(d + "/tokenizer.json");
  std::ifstream in(data, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  const Ids ids = t.encode(text);
  // From Hugging Face tokenizers 0.23.2 (its npm build) on the same file: the id count and
  // FNV-1a 64 over the ids as decimal text joined by single spaces.
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string s = (i ? " " : "") + std::to_string(ids[i]);
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  }
  EXPECT_EQ(ids.size(), 340240u);
  EXPECT_EQ(h, 0x4ab3ce296c41244bull);
  EXPECT_EQ(t.decode(ids), text);
}

TEST(NeoxTokenizer, RoundTripRandomText) {
  const std::string d = neox_dir();
  if (d.empty()) GTEST_SKIP() << "no ../shared/hf/tokenizer-gpt-neox-20b (set XLSTM_SHARED_DIR)";
  check_round_trip(Tokenizer::from_file(d + "/tokenizer.json"), 2);
}

}  // namespace
