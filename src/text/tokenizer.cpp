// Tokenizer: tokenizer.json parsing, added tokens, the encode pipeline and decoding (see
// tokenizer.h). Names follow Hugging Face `tokenizers` (AddedVocabulary, find_matches, ...)
// so the two can be read side by side.
#include "text/tokenizer.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "io/json_config.h"
#include "text/bpe.h"
#include "text/unicode.h"
#include "xlstm/error.h"

namespace xlstm {

using nlohmann::json;
using text::NormForm;

namespace {

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct AddedToken {
  std::string content;
  bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = true;
  bool operator==(const AddedToken& o) const {
    return content == o.content && special == o.special && single_word == o.single_word &&
           lstrip == o.lstrip && rstrip == o.rstrip && normalized == o.normalized;
  }
};

// Byte trie of added-token patterns: the longest pattern starting at a position (the
// leftmost-longest matching of aho-corasick when scanned left to right). A repeated pattern
// keeps its first id.
class PatternTrie {
 public:
  PatternTrie() { std::fill(std::begin(root_), std::end(root_), -1); }
  bool empty() const { return nodes_.empty(); }
  void add(std::string_view p, int32_t id) {
    if (p.empty()) return;
    int32_t node = root_[(uint8_t)p[0]];
    if (node < 0) {
      node = root_[(uint8_t)p[0]] = (int32_t)nodes_.size();
      nodes_.emplace_back();
    }
    for (size_t k = 1; k < p.size(); ++k) {
      int32_t next = child(node, (uint8_t)p[k]);
      if (next < 0) {
        next = (int32_t)nodes_.size();
        nodes_[(size_t)node].kids.emplace_back((uint8_t)p[k], next);
        nodes_.emplace_back();
      }
      node = next;
    }
    if (nodes_[(size_t)node].id < 0) nodes_[(size_t)node].id = id;
  }
  // Length of the longest pattern at s[p..] (0 if none) and its id.
  size_t longest(std::string_view s, size_t p, int32_t& id) const {
    int32_t node = root_[(uint8_t)s[p]];
    size_t best = 0;
    for (size_t k = p + 1; node >= 0; ++k) {
      if (nodes_[(size_t)node].id >= 0) {
        best = k - p;
        id = nodes_[(size_t)node].id;
      }
      if (k == s.size()) break;
      node = child(node, (uint8_t)s[k]);
    }
    return best;
  }

 private:
  struct Node {
    int32_t id = -1;
    std::vector<std::pair<uint8_t, int32_t>> kids;
  };
  int32_t child(int32_t node, uint8_t b) const {
    for (const auto& [c, n] : nodes_[(size_t)node].kids)
      if (c == b) return n;
    return -1;
  }
  int32_t root_[256];
  std::vector<Node> nodes_;
};

struct Split {
  int32_t id;  // added token id, -1 for text
  size_t begin, end;
};

// One pre-tokenizer step; ByteLevel is always the last one.
struct PreTokStep {
  enum class Kind { SplitGpt2, ByteLevel } kind;
  bool add_prefix_space = false;  // ByteLevel
  bool use_regex = true;          // ByteLevel
};

uint32_t prev_char(std::string_view s, size_t end, size_t& start) {  // char ending at `end`
  size_t i = end - 1;
  while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80) --i;
  start = i;
  uint32_t cp;
  text::utf8_decode_valid((const unsigned char*)s.data() + i, cp);
  return cp;
}

// ------------------------------------------------------------------------- JSON helpers

struct Where {
  std::string file;
  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw ValueError(str(file, ": ", path, " ", what));
  }
};

std::string brief(const json& v) { return json_cfg::brief(v); }

// obj[key] or nullptr when absent or null.
const json* opt(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

const json& req(const json& obj, const char* key, const std::string& path, const Where& w) {
  const json* v = opt(obj, key);
  if (!v) w.fail(path + "." + key, "is missing");
  return *v;
}

void expect_object(const json& j, const std::string& path, const Where& w) {
  if (!j.is_object()) w.fail(path, "must be a JSON object, got " + brief(j));
}

bool get_bool(const json& obj, const char* key, const std::string& path, const Where& w,
              bool def) {
  const json* v = opt(obj, key);
  if (!v) return def;
  if (!v->is_boolean()) w.fail(path + "." + key, "must be true or false, got " + brief(*v));
  return v->get<bool>();
}

std::string get_string(const json& obj, const char* key, const std::string& path,
                       const Where& w) {
  const json& v = req(obj, key, path, w);
  if (!v.is_string()) w.fail(path + "." + key, "must be a string, got " + brief(v));
  return v.get<std::string>();
}

int32_t get_id(const json& v, const std::string& path, const Where& w) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
    w.fail(path, "must be a non-negative integer id, got " + brief(v));
  return (int32_t)v.get<int64_t>();
}

std::string type_of(const json& j, const std::string& path, const Where& w) {
  expect_object(j, path, w);
  return get_string(j, "type", path, w);
}

[[noreturn]] void unsupported(const Where& w, const std::string& path, const std::string& type,
                              const std::string& supported) {
  w.fail(path + ".type", "\"" + type + "\" is not supported (" + supported + ")");
}

}  // namespace

// ------------------------------------------------------------------------------- Impl

struct Tokenizer::Impl {
  std::string where;
  std::vector<NormForm> normalizers;
  std::vector<PreTokStep> pretok;
  text::BpeModel bpe;
  // Added vocabulary (tokenizers' AddedVocabulary).
  std::unordered_map<std::string, int32_t> added_map;  // content -> id
  std::unordered_map<int32_t, AddedToken> added_r;     // id -> token
  std::unordered_set<std::string> special_set;
  std::unordered_map<int32_t, std::string> added_decode_form;  // normalized form, if different
  PatternTrie raw_trie, norm_trie;
  // Post-processor templates (TemplateProcessing "single"), applied in order; a piece is either
  // the sequence ($A, is_seq) or fixed ids.
  struct Piece {
    bool is_seq;
    std::vector<int32_t> ids;
  };
  std::vector<std::vector<Piece>> templates;
  // Decoding: per id, the bytes it decodes to and flags.
  std::string dec_bytes;
  std::vector<uint32_t> dec_off;  // size vocab_size + 1
  std::vector<uint8_t> flags;     // kExists | kSpecial
  static constexpr uint8_t kExists = 1, kSpecial = 2;

  // Encode scratch, guarded by mu.
  mutable std::mutex mu;
  mutable std::vector<Split> splits1, splits2;
  mutable std::string norm, norm_tmp;
  mutable std::vector<std::string> prefixed;  // one per pre-tokenizer step

  std::optional<int32_t> token_to_id(std::string_view t) const {
    auto it = added_map.find(std::string(t));
    if (it != added_map.end()) return it->second;
    return bpe.token_to_id(t);
  }
  // The string decode works on: an added token's content (its normalized form when it is
  // normalized=true and the normalizer changes it, as tokenizers 0.23 does), else the model's.
  const std::string* decode_form(int32_t id) const {
    auto it = added_decode_form.find(id);
    return it != added_decode_form.end() ? &it->second : token_of(id);
  }
  const std::string* token_of(int32_t id) const {
    auto it = added_r.find(id);
    if (it != added_r.end()) return &it->second.content;
    return bpe.id_to_token(id);
  }
  int64_t vocab_size() const { return (int64_t)flags.size(); }
  bool exists(int32_t id) const {
    return id >= 0 && (size_t)id < flags.size() && (flags[(size_t)id] & kExists);
  }

  void normalize(std::string_view in, std::string& out) const {
    if (normalizers.empty()) {
      out.assign(in.data(), in.size());
      return;
    }
    text::normalize(normalizers[0], in, out);
    for (size_t k = 1; k < normalizers.size(); ++k) {
      text::normalize(normalizers[k], out, norm_tmp);
      out.swap(norm_tmp);
    }
  }

  // AddedVocabulary::find_matches: splits covering s, added tokens by leftmost-longest match.
  void find_matches(std::string_view s, const PatternTrie& trie, std::vector<Split>& out) const {
    out.clear();
    if (trie.empty()) {
      out.push_back({-1, 0, s.size()});
      return;
    }
    size_t start_offset = 0, p = 0;
    while (p < s.size()) {
      int32_t id = -1;
      const size_t len = trie.longest(s, p, id);
      if (len == 0) {
        ++p;
        continue;
      }
      size_t start = p, stop = p + len;
      p = stop;
      const AddedToken& t = added_r.at(id);
      if (t.single_word) {
        size_t cs;
        uint32_t c;
        const bool start_space =
            start == 0 || !text::is_word_char(prev_char(s, start, cs));
        bool stop_space = stop == s.size();
        if (!stop_space) {
          text::utf8_decode_valid((const unsigned char*)s.data() + stop, c);
          stop_space = !text::is_word_char(c);
        }
        if (!start_space || !stop_space) continue;
      }
      if (t.lstrip) {  // include the whitespace before, unless a previous match took it
        size_t b = start, cs;
        while (b > 0 && text::is_white_space(prev_char(s, b, cs))) b = cs;
        start = std::max(b, start_offset);
      }
      if (t.rstrip) {
        while (stop < s.size()) {
          uint32_t c;
          const int l = text::utf8_decode_valid((const unsigned char*)s.data() + stop, c);
          if (!text::is_white_space(c)) break;
          stop += (size_t)l;
        }
      }
      if (start_offset < start) out.push_back({-1, start_offset, start});
      out.push_back({id, start, stop});
      start_offset = stop;
    }
    if (start_offset != s.size()) out.push_back({-1, start_offset, s.size()});
  }

  // Pre-tokenizer step k on piece, then the BPE model on every resulting pre-token.
  void pre_tokenize(std::string_view piece, size_t k, std::vector<int32_t>& ids) const {
    if (piece.empty()) return;
    if (k == pretok.size()) {
      bpe.encode_word(piece, ids);
      return;
    }
    const PreTokStep& st = pretok[k];
    if (st.kind == PreTokStep::Kind::SplitGpt2) {
      text::gpt2_split(piece, [&](size_t b, size_t e) { pre_tokenize(piece.substr(b, e - b), k + 1, ids); });
      return;
    }
    std::string_view s = piece;
    if (st.add_prefix_space && piece[0] != ' ') {
      std::string& buf = prefixed[k];
      buf.assign(1, ' ');
      buf.append(piece.data(), piece.size());
      s = buf;
    }
    if (st.use_regex)
      text::gpt2_split(s, [&](size_t b, size_t e) { bpe.encode_word(s.substr(b, e - b), ids); });
    else
      bpe.encode_word(s, ids);
  }

  void append_token_bytes(int32_t id, bool skip_special, std::string& out) const {
    if (skip_special && (flags[(size_t)id] & kSpecial)) return;
    out.append(dec_bytes, dec_off[(size_t)id], dec_off[(size_t)id + 1] - dec_off[(size_t)id]);
  }
};

// ---------------------------------------------------------------------------- loading

namespace {

std::vector<NormForm> parse_normalizer(const json& j, const std::string& path, const Where& w) {
  const std::string type = type_of(j, path, w);
  if (type == "NFC") return {NormForm::NFC};
  if (type == "NFD") return {NormForm::NFD};
  if (type == "NFKC") return {NormForm::NFKC};
  if (type == "NFKD") return {NormForm::NFKD};
  if (type == "Sequence") {
    const json& list = req(j, "normalizers", path, w);
    if (!list.is_array()) w.fail(path + ".normalizers", "must be a list, got " + brief(list));
    std::vector<NormForm> r;
    for (size_t i = 0; i < list.size(); ++i) {
      auto sub = parse_normalizer(list[i], str(path, ".normalizers[", i, "]"), w);
      r.insert(r.end(), sub.begin(), sub.end());
    }
    return r;
  }
  unsupported(w, path, type, "supported: NFC, NFD, NFKC, NFKD, a Sequence of these, or null");
}

PreTokStep parse_byte_level(const json& j, const std::string& path, const Where& w) {
  PreTokStep s{PreTokStep::Kind::ByteLevel};
  s.add_prefix_space = get_bool(j, "add_prefix_space", path, w, true);
  s.use_regex = get_bool(j, "use_regex", path, w, true);
  return s;
}

std::vector<PreTokStep> parse_pre_tokenizer(const json& j, const Where& w) {
  const std::string path = "pre_tokenizer";
  const std::string type = type_of(j, path, w);
  const std::string supported =
      "supported: ByteLevel, or a Sequence of Split with the GPT-2 pattern (behavior Isolated) "
      "followed by ByteLevel";
  if (type == "ByteLevel") return {parse_byte_level(j, path, w)};
  if (type != "Sequence") unsupported(w, path, type, supported);
  const json& list = req(j, "pretokenizers", path, w);
  if (!list.is_array() || list.empty())
    w.fail(path + ".pretokenizers", "must be a non-empty list, got " + brief(list));
  std::vector<PreTokStep> steps;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string p = str(path, ".pretokenizers[", i, "]");
    const std::string t = type_of(list[i], p, w);
    const bool last = i + 1 == list.size();
    if (t == "ByteLevel") {
      if (!last) w.fail(p, "ByteLevel must be the last pre-tokenizer of the Sequence");
      steps.push_back(parse_byte_level(list[i], p, w));
    } else if (t == "Split") {
      const json& pat = req(list[i], "pattern", p, w);
      const json* re = pat.is_object() ? opt(pat, "Regex") : nullptr;
      if (!re || !re->is_string() || re->get<std::string>() != kGpt2Pattern)
        w.fail(p + ".pattern", "is not supported (only {\"Regex\": the GPT-2 pattern " +
                                   std::string(kGpt2Pattern) + "}), got " + brief(pat));
      const std::string behavior = get_string(list[i], "behavior", p, w);
      if (behavior != "Isolated")
        w.fail(p + ".behavior", "\"" + behavior + "\" is not supported (only Isolated)");
      if (get_bool(list[i], "invert", p, w, false))
        w.fail(p + ".invert", "true is not supported (only false)");
      steps.push_back(PreTokStep{PreTokStep::Kind::SplitGpt2});
    } else {
      unsupported(w, p, t, supported);
    }
  }
  if (steps.back().kind != PreTokStep::Kind::ByteLevel)
    w.fail(path + ".pretokenizers", "must end with a ByteLevel pre-tokenizer");
  return steps;
}

text::BpeConfig parse_model(const json& m, const Where& w) {
  const std::string path = "model";
  const std::string type = type_of(m, path, w);
  if (type != "BPE") w.fail(path + ".type", "\"" + type + "\" is not supported (only BPE)");
  if (const json* d = opt(m, "dropout"))
    w.fail(path + ".dropout", brief(*d) + " is not supported (only null)");
  if (get_bool(m, "byte_fallback", path, w, false))
    w.fail(path + ".byte_fallback", "true is not supported (only false)");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = opt(m, k))
      if (!(v->is_string() && v->get<std::string>().empty()))
        w.fail(path + "." + k, brief(*v) + " is not supported (only null)");
  text::BpeConfig c;
  c.fuse_unk = get_bool(m, "fuse_unk", path, w, false);
  c.ignore_merges = get_bool(m, "ignore_merges", path, w, false);
  if (const json* u = opt(m, "unk_token")) {
    if (!u->is_string()) w.fail(path + ".unk_token", "must be a string or null, got " + brief(*u));
    c.unk_token = u->get<std::string>();
  }
  const json& vocab = req(m, "vocab", path, w);
  if (!vocab.is_object()) w.fail(path + ".vocab", "must be an object {token: id}, got " + brief(vocab));
  c.vocab.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it)
    c.vocab.emplace_back(it.key(), get_id(it.value(), str(path, ".vocab[\"", it.key(), "\"]"), w));
  const json* merges = opt(m, "merges");
  if (merges && !merges->is_array())
    w.fail(path + ".merges", "must be a list, got " + brief(*merges));
  if (merges) {
    c.merges.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
      const json& e = (*merges)[i];
      const std::string p = str(path, ".merges[", i, "]");
      if (e.is_string()) {  // "a b"; "#version" lines are skipped as tokenizers does
        const std::string s = e.get<std::string>();
        if (s.rfind("#version", 0) == 0) continue;
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          w.fail(p, "must be two tokens separated by one space, got " + brief(e));
        c.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        c.merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else {
        w.fail(p, "must be \"a b\" or [\"a\", \"b\"], got " + brief(e));
      }
    }
  }
  return c;
}

std::vector<Tokenizer::Impl::Piece> parse_template(const json& j, const std::string& path,
                                                   const Where& w, const Tokenizer::Impl& t) {
  const json& single = req(j, "single", path, w);
  if (!single.is_array())
    w.fail(path + ".single", "must be a list of pieces, got " + brief(single));
  const json* specials = opt(j, "special_tokens");
  std::vector<Tokenizer::Impl::Piece> pieces;
  for (size_t i = 0; i < single.size(); ++i) {
    const std::string p = str(path, ".single[", i, "]");
    const json& e = single[i];
    expect_object(e, p, w);
    if (const json* seq = opt(e, "Sequence")) {
      expect_object(*seq, p + ".Sequence", w);
      const std::string id = get_string(*seq, "id", p + ".Sequence", w);
      if (id != "A") w.fail(p + ".Sequence.id", "\"" + id + "\" is not valid in a single template (only A)");
      pieces.push_back({true, {}});
    } else if (const json* sp = opt(e, "SpecialToken")) {
      expect_object(*sp, p + ".SpecialToken", w);
      const std::string name = get_string(*sp, "id", p + ".SpecialToken", w);
      const json* entry = specials && specials->is_object() ? opt(*specials, name.c_str()) : nullptr;
      if (!entry) w.fail(path + ".special_tokens", "has no entry \"" + name + "\" used by " + p);
      const std::string ep = path + ".special_tokens[\"" + name + "\"]";
      expect_object(*entry, ep, w);
      const json& ids = req(*entry, "ids", ep, w);
      if (!ids.is_array()) w.fail(ep + ".ids", "must be a list of ids, got " + brief(ids));
      Tokenizer::Impl::Piece piece{false, {}};
      for (size_t k = 0; k < ids.size(); ++k) {
        const int32_t id = get_id(ids[k], str(ep, ".ids[", k, "]"), w);
        if (!t.exists(id)) w.fail(str(ep, ".ids[", k, "]"), str("id ", id, " has no token"));
        piece.ids.push_back(id);
      }
      pieces.push_back(std::move(piece));
    } else {
      w.fail(p, "must be {\"Sequence\": ...} or {\"SpecialToken\": ...}, got " + brief(e));
    }
  }
  return pieces;
}

void parse_post_processor(const json& j, const std::string& path, const Where& w,
                          Tokenizer::Impl& t) {
  const std::string type = type_of(j, path, w);
  if (type == "ByteLevel") return;  // offsets only
  if (type == "TemplateProcessing") {
    t.templates.push_back(parse_template(j, path, w, t));
    return;
  }
  if (type == "Sequence") {
    const json& list = req(j, "processors", path, w);
    if (!list.is_array()) w.fail(path + ".processors", "must be a list, got " + brief(list));
    for (size_t i = 0; i < list.size(); ++i)
      parse_post_processor(list[i], str(path, ".processors[", i, "]"), w, t);
    return;
  }
  unsupported(w, path, type, "supported: ByteLevel, TemplateProcessing, a Sequence of these, or null");
}

// tokenizers' AddedVocabulary::add_tokens (0.23) in file order, then the check that the id it
// assigns is the id the file states.
void load_added_tokens(const json& list, const Where& w, Tokenizer::Impl& t) {
  if (!list.is_array()) w.fail("added_tokens", "must be a list, got " + brief(list));
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string p = str("added_tokens[", i, "]");
    const json& e = list[i];
    expect_object(e, p, w);
    AddedToken a;
    a.content = get_string(e, "content", p, w);
    if (a.content.empty()) w.fail(p + ".content", "must not be empty");
    if (text::utf8_first_invalid(a.content) != std::string::npos)
      w.fail(p + ".content", "is not valid UTF-8");
    const int32_t file_id = get_id(req(e, "id", p, w), p + ".id", w);
    a.special = get_bool(e, "special", p, w, false);
    a.single_word = get_bool(e, "single_word", p, w, false);
    a.lstrip = get_bool(e, "lstrip", p, w, false);
    a.rstrip = get_bool(e, "rstrip", p, w, false);
    a.normalized = get_bool(e, "normalized", p, w, !a.special);
    auto known = t.added_map.find(a.content);
    const bool same = known != t.added_map.end() && t.added_r.count(known->second) &&
                      t.added_r.at(known->second) == a;
    if (!same) {
      int32_t id;
      if (auto k = t.token_to_id(a.content)) {
        id = *k;
      } else {  // next id after the model vocabulary and the added tokens so far
        const int64_t model_size = (int64_t)t.bpe.size();
        int64_t max = -1;
        for (const auto& kv : t.added_r) max = std::max<int64_t>(max, kv.first);
        id = (int32_t)(max < 0 ? model_size
                               : (max >= model_size || model_size == 0) ? max + 1 : model_size);
      }
      t.added_map[a.content] = id;
      if (a.special) t.special_set.insert(a.content);
      t.added_r[id] = a;
    }
    const int32_t got = *t.token_to_id(a.content);
    if (got != file_id)
      w.fail(p + ".id", str(file_id, " disagrees with the id ", got,
                           " that Hugging Face tokenizers assigns to \"", a.content,
                           "\" (the model vocabulary size and the order of added_tokens decide it)"));
  }
  // The two matchers: tokens matched in the raw text, and (normalized=true, by their normalized
  // form) in normalized text. A normalized token also decodes to its normalized form.
  std::vector<int32_t> ids;
  for (const auto& kv : t.added_r) ids.push_back(kv.first);
  std::sort(ids.begin(), ids.end());
  for (int32_t id : ids) {
    const AddedToken& a = t.added_r.at(id);
    if (a.normalized) {
      std::string n;
      t.normalize(a.content, n);
      t.norm_trie.add(n, id);
      if (n != a.content) t.added_decode_form[id] = n;
    } else {
      t.raw_trie.add(a.content, id);
    }
  }
}

// Per-id decode table: the ByteLevel decoder maps each character of a token back to its byte;
// a token with a character outside the byte alphabet decodes to its own UTF-8.
void build_decode_table(Tokenizer::Impl& t) {
  int64_t n = t.bpe.max_id() + 1;
  for (const auto& kv : t.added_r) n = std::max<int64_t>(n, (int64_t)kv.first + 1);
  t.flags.assign((size_t)n, 0);
  t.dec_off.assign((size_t)n + 1, 0);
  std::string bytes;
  for (int64_t id = 0; id < n; ++id) {
    t.dec_off[(size_t)id] = (uint32_t)t.dec_bytes.size();
    const std::string* tok = t.decode_form((int32_t)id);
    if (!tok) continue;
    t.flags[(size_t)id] = Tokenizer::Impl::kExists | (t.special_set.count(*tok) ? Tokenizer::Impl::kSpecial : 0);
    bytes.clear();
    bool all = true;
    const unsigned char* s = (const unsigned char*)tok->data();
    for (size_t i = 0; i < tok->size() && all;) {
      const text::Utf8Step st = text::utf8_step(s + i, tok->size() - i);
      const int b = st.status == text::Utf8Status::Valid ? text::byte_level_byte(st.cp) : -1;
      if (b < 0) all = false;
      else bytes += (char)b;
      i += (size_t)std::max(st.len, 1);
    }
    t.dec_bytes += all ? bytes : *tok;
  }
  t.dec_off[(size_t)n] = (uint32_t)t.dec_bytes.size();
}

std::shared_ptr<Tokenizer::Impl> load(const json& j, const Where& w) {
  if (!j.is_object()) w.fail("(top level)", "must be a JSON object, got " + brief(j));
  auto t = std::make_shared<Tokenizer::Impl>();
  t->where = w.file;
  if (const json* v = opt(j, "version"))
    if (!v->is_string() || v->get<std::string>() != "1.0")
      w.fail("version", brief(*v) + " is not supported (only \"1.0\")");
  if (const json* v = opt(j, "truncation")) w.fail("truncation", brief(*v) + " is not supported (only null)");
  if (const json* v = opt(j, "padding")) w.fail("padding", brief(*v) + " is not supported (only null)");
  if (const json* n = opt(j, "normalizer")) t->normalizers = parse_normalizer(*n, "normalizer", w);
  const json* pt = opt(j, "pre_tokenizer");
  if (!pt) w.fail("pre_tokenizer", "is null; a byte-level BPE tokenizer needs ByteLevel");
  t->pretok = parse_pre_tokenizer(*pt, w);
  t->prefixed.resize(t->pretok.size());
  const json* dec = opt(j, "decoder");
  if (!dec) w.fail("decoder", "is null; only the ByteLevel decoder is supported");
  const std::string dtype = type_of(*dec, "decoder", w);
  if (dtype != "ByteLevel") unsupported(w, "decoder", dtype, "only ByteLevel");
  t->bpe = text::BpeModel(parse_model(req(j, "model", "(top level)", w), w), w.file + ": model");
  if (const json* a = opt(j, "added_tokens")) load_added_tokens(*a, w, *t);
  build_decode_table(*t);
  if (const json* pp = opt(j, "post_processor")) parse_post_processor(*pp, "post_processor", w, *t);
  return t;
}

}  // namespace

// --------------------------------------------------------------------------- Tokenizer

Tokenizer Tokenizer::from_json_string(const std::string& json_text, const std::string& where) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    throw IoError(str(where, ": not valid JSON (", e.what(), ")"));
  }
  return Tokenizer(load(j, Where{where}));
}

Tokenizer Tokenizer::from_file(const std::string& tokenizer_json) {
  return Tokenizer(load(json_cfg::read_file(tokenizer_json), Where{tokenizer_json}));
}

std::vector<int32_t> Tokenizer::encode(std::string_view utf8, bool add_special_tokens) const {
  const size_t bad = text::utf8_first_invalid(utf8);
  if (bad != std::string_view::npos) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", (unsigned)(uint8_t)utf8[bad]);
    throw ValueError(str("[tokenizer] invalid UTF-8 in text at byte offset ", bad, " (byte ", hex,
                         "); hint: convert the input to UTF-8"));
  }
  const Impl& t = *impl_;
  std::vector<int32_t> ids;
  ids.reserve(utf8.size() / 3 + 8);
  {
    std::lock_guard<std::mutex> lock(t.mu);
    t.find_matches(utf8, t.raw_trie, t.splits1);
    for (const Split& s1 : t.splits1) {
      if (s1.id >= 0) {
        ids.push_back(s1.id);
        continue;
      }
      if (s1.end == s1.begin) continue;
      t.normalize(utf8.substr(s1.begin, s1.end - s1.begin), t.norm);
      const std::string_view norm = t.norm;
      t.find_matches(norm, t.norm_trie, t.splits2);
      for (const Split& s2 : t.splits2) {
        if (s2.id >= 0) ids.push_back(s2.id);
        else t.pre_tokenize(norm.substr(s2.begin, s2.end - s2.begin), 0, ids);
      }
    }
  }
  if (!add_special_tokens) return ids;
  for (const auto& tmpl : t.templates) {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 8);
    for (const auto& p : tmpl)
      out.insert(out.end(), p.is_seq ? ids.begin() : p.ids.begin(), p.is_seq ? ids.end() : p.ids.end());
    ids.swap(out);
  }
  return ids;
}

void Tokenizer::append_token_bytes(int32_t id, bool skip_special, std::string& out) const {
  XLSTM_CHECK(impl_->exists(id), ValueError, "[tokenizer] id ", id, " has no token (vocab_size ",
              impl_->vocab_size(), ")");
  impl_->append_token_bytes(id, skip_special, out);
}

std::string Tokenizer::decode(const int32_t* ids, size_t n, bool skip_special_tokens) const {
  const Impl& t = *impl_;
  std::string bytes;
  for (size_t i = 0; i < n; ++i) {
    XLSTM_CHECK(t.exists(ids[i]), ValueError, "[tokenizer] decode: id ", ids[i], " at position ",
                i, " has no token (vocab_size ", t.vocab_size(), ")");
    t.append_token_bytes(ids[i], skip_special_tokens, bytes);
  }
  std::string out;
  out.reserve(bytes.size());
  text::utf8_append_lossy(out, bytes, true);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  return decode(ids.data(), ids.size(), skip_special_tokens);
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size(); }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  return impl_->token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  XLSTM_CHECK(impl_->exists(id), ValueError, "[tokenizer] id ", id, " has no token (vocab_size ",
              impl_->vocab_size(), ")");
  return *impl_->token_of(id);
}

bool Tokenizer::is_special(int32_t id) const {
  return impl_->exists(id) && (impl_->flags[(size_t)id] & Impl::kSpecial);
}

// ------------------------------------------------------------------ TokenStreamDecoder

std::string TokenStreamDecoder::push(int32_t id) {
  tok_.append_token_bytes(id, skip_special_, pending_);
  std::string out;
  const size_t used = text::utf8_append_lossy(out, pending_, false);
  pending_.erase(0, used);
  return out;
}

std::string TokenStreamDecoder::flush() {
  std::string out;
  text::utf8_append_lossy(out, pending_, true);
  pending_.clear();
  return out;
}

}  // namespace xlstm
