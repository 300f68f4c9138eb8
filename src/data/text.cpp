#include "data/text.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json_config.h"
#include "text/tokenizer.h"
#include "text/unicode.h"
#include "core/rng_state.h"

namespace xlstm {

using nlohmann::json;

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  XLSTM_CHECK(f.good(), IoError, path, ": cannot open for reading (", std::strerror(errno), ")");
  std::stringstream ss;
  ss << f.rdbuf();
  XLSTM_CHECK(!f.bad(), IoError, path, ": read failed");
  std::string s = ss.str();
  XLSTM_CHECK(!s.empty(), IoError, path, ": file is empty; hint: give a text file with content");
  return s;
}

namespace {

// Decodes one strict UTF-8 sequence at s[pos]; advances pos. False (pos unchanged) if invalid.
bool decode_one(const std::string& s, size_t& pos, uint32_t& cp) {
  const size_t n = s.size();
  const auto b = [&](size_t i) { return (uint8_t)s[i]; };
  const uint8_t b0 = b(pos);
  if (b0 < 0x80) { cp = b0; ++pos; return true; }
  int len;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) len = 2, cp = b0 & 0x1F;
  else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // no overlongs
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // no overlongs
    if (b0 == 0xF4) hi = 0x8F;  // <= U+10FFFF
  } else {
    return false;
  }
  if (pos + (size_t)len > n) return false;
  for (int k = 1; k < len; ++k) {
    const uint8_t c = b(pos + (size_t)k);
    if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return false;
    cp = (cp << 6) | (c & 0x3F);
  }
  pos += (size_t)len;
  return true;
}

[[noreturn]] void invalid_utf8(const std::string& s, size_t pos, const std::string& where) {
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", (unsigned)(uint8_t)s[pos]);
  throw ValueError(str(where, ": invalid UTF-8 at byte offset ", pos, " (byte ", hex,
                       "); hint: convert the file to UTF-8 or use the byte vocabulary"));
}

std::string code_point_str(uint32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", (unsigned)cp);
  return buf;
}

// The character itself when printable, else an escape.
std::string printable(uint32_t cp) {
  if (cp == '\n') return "\\n";
  if (cp == '\t') return "\\t";
  if (cp == '\r') return "\\r";
  if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) return code_point_str(cp);
  std::string s;
  utf8_append(s, cp);
  return s;
}

}  // namespace

std::vector<uint32_t> utf8_decode(const std::string& s, const std::string& where) {
  std::vector<uint32_t> r;
  r.reserve(s.size());
  size_t pos = 0;
  uint32_t cp;
  while (pos < s.size()) {
    if (!decode_one(s, pos, cp)) invalid_utf8(s, pos, where);
    r.push_back(cp);
  }
  return r;
}

void utf8_append(std::string& out, uint32_t cp) {
  XLSTM_CHECK(cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF), ValueError,
              "[utf8] not a Unicode scalar value: ", code_point_str(cp));
  text::utf8_put(out, cp);
}

VocabKind parse_vocab_kind(const std::string& s) {
  if (s == "char") return VocabKind::Char;
  if (s == "byte") return VocabKind::Byte;
  if (s == "bpe") return VocabKind::Bpe;
  throw ValueError(str("[vocab] unknown vocabulary kind '", s, "'; choose char or byte"));
}

const char* vocab_kind_name(VocabKind k) {
  return k == VocabKind::Char ? "char" : k == VocabKind::Byte ? "byte" : "bpe";
}

Vocab Vocab::bpe(const std::string& tokenizer_json, int64_t model_vocab) {
  Vocab v;
  v.kind_ = VocabKind::Bpe;
  v.tok_ = std::make_shared<const Tokenizer>(Tokenizer::from_file(tokenizer_json));
  v.tokenizer_file_ = tokenizer_json;
  XLSTM_CHECK(model_vocab >= v.tok_->vocab_size(), ValueError, tokenizer_json, ": the tokenizer has ",
              v.tok_->vocab_size(), " ids, more than the model's ", model_vocab, " embedding rows");
  v.bpe_size_ = model_vocab;
  return v;
}

// ---------------------------------------------------------------------------------- Vocab

Vocab Vocab::from_code_points(std::vector<uint32_t> cps, const std::string& where) {
  std::sort(cps.begin(), cps.end());
  cps.erase(std::unique(cps.begin(), cps.end()), cps.end());
  XLSTM_CHECK(!cps.empty(), ValueError, where, ": no characters to build a vocabulary from");
  for (uint32_t cp : cps)
    XLSTM_CHECK(cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF), ValueError, where,
                ": not a Unicode scalar value: ", code_point_str(cp));
  Vocab v;
  v.kind_ = VocabKind::Char;
  v.symbols_ = std::move(cps);
  v.index_.assign((size_t)v.symbols_.back() + 1, -1);
  for (size_t i = 0; i < v.symbols_.size(); ++i) v.index_[v.symbols_[i]] = (int32_t)i;
  return v;
}

Vocab Vocab::from_text(const std::string& utf8, const std::string& where) {
  XLSTM_CHECK(!utf8.empty(), ValueError, where, ": empty text, no vocabulary to build");
  // Distinct code points without materialising the decoded text.
  std::vector<bool> seen(0x110000, false);
  std::vector<uint32_t> cps;
  size_t pos = 0;
  uint32_t cp;
  while (pos < utf8.size()) {
    if (!decode_one(utf8, pos, cp)) invalid_utf8(utf8, pos, where);
    if (!seen[cp]) seen[cp] = true, cps.push_back(cp);
  }
  return from_code_points(std::move(cps), where);
}

Vocab Vocab::bytes() {
  Vocab v;
  v.kind_ = VocabKind::Byte;
  return v;
}

uint32_t Vocab::symbol(int64_t id) const {
  XLSTM_CHECK(id >= 0 && id < size(), ValueError, "[vocab] token id ", id, " outside [0, ", size(),
              ")");
  XLSTM_CHECK(kind_ != VocabKind::Bpe, ValueError, "[vocab] a BPE token is not one symbol");
  return kind_ == VocabKind::Byte ? (uint32_t)id : symbols_[(size_t)id];
}

std::string Vocab::symbol_str(int64_t id) const {
  if (kind_ == VocabKind::Bpe) return tok_->decode(std::vector<int32_t>{(int32_t)id});
  const uint32_t s = symbol(id);
  if (kind_ == VocabKind::Char) return printable(s);
  if (s >= 0x20 && s < 0x7F) return std::string(1, (char)s);
  if (s == '\n') return "\\n";
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", (unsigned)s);
  return buf;
}

std::vector<int32_t> Vocab::encode(const std::string& text, const std::string& where) const {
  if (kind_ == VocabKind::Bpe) {
    try {
      return tok_->encode(text, /*add_special_tokens=*/false);
    } catch (const ValueError& e) {
      throw ValueError(str(where, ": ", e.what()));
    }
  }
  std::vector<int32_t> ids;
  if (kind_ == VocabKind::Byte) {
    ids.resize(text.size());
    for (size_t i = 0; i < text.size(); ++i) ids[i] = (int32_t)(uint8_t)text[i];
    return ids;
  }
  XLSTM_CHECK(!symbols_.empty(), ValueError, where, ": encoding with an empty vocabulary");
  ids.reserve(text.size());
  size_t pos = 0;
  uint32_t cp;
  while (pos < text.size()) {
    const size_t at = pos;
    if (!decode_one(text, pos, cp)) invalid_utf8(text, at, where);
    const int32_t id = cp < index_.size() ? index_[cp] : -1;
    if (id < 0)
      throw ValueError(str(where, ": character '", printable(cp), "' (", code_point_str(cp),
                           ") at character ", ids.size(), " (byte offset ", at,
                           ") is not in the vocabulary of ", size(),
                           " characters; hint: rebuild the vocabulary from this text or use the "
                           "byte vocabulary"));
    ids.push_back(id);
  }
  return ids;
}

namespace {
template <class I>
std::string decode_impl(const Vocab& v, const I* ids, size_t n, const Tokenizer* tok) {
  if (tok) {
    std::vector<int32_t> v32(ids, ids + n);
    return tok->decode(v32);
  }
  std::string out;
  out.reserve(n);
  const int64_t V = v.size();
  for (size_t i = 0; i < n; ++i) {
    const int64_t id = (int64_t)ids[i];
    XLSTM_CHECK(id >= 0 && id < V, ValueError, "[vocab] decode: token id ", id, " at position ", i,
                " outside the vocabulary [0, ", V, ")");
    if (v.kind() == VocabKind::Byte) out += (char)(uint8_t)id;
    else utf8_append(out, v.symbol(id));
  }
  return out;
}
}  // namespace

std::string Vocab::decode(const int32_t* ids, size_t n) const {
  return decode_impl(*this, ids, n, tok_.get());
}
std::string Vocab::decode(const int64_t* ids, size_t n) const {
  return decode_impl(*this, ids, n, tok_.get());
}

json Vocab::to_json() const {
  json j;
  j["format"] = "xlstm-vocab";
  j["version"] = 1;
  j["kind"] = vocab_kind_name(kind_);
  j["size"] = size();
  if (kind_ == VocabKind::Bpe) j["tokenizer"] = "tokenizer.json";
  if (kind_ == VocabKind::Char) {
    json a = json::array();
    for (uint32_t cp : symbols_) {
      std::string s;
      utf8_append(s, cp);
      a.push_back(s);
    }
    j["symbols"] = a;
  }
  return j;
}

Vocab Vocab::from_json(const json& j, const std::string& where, const std::string& dir) {
  namespace jc = json_cfg;
  const std::string fmt = jc::get_string(j, "format", where);
  XLSTM_CHECK(fmt == "xlstm-vocab", ValueError, where, ": field 'format' must be \"xlstm-vocab\", got \"",
              fmt, "\"");
  const int64_t ver = jc::get_int(j, "version", where);
  XLSTM_CHECK(ver == 1, ValueError, where, ": unsupported vocabulary version ", ver, " (this build reads 1)");
  const VocabKind kind = parse_vocab_kind(jc::get_enum(j, "kind", where, {"char", "byte", "bpe"}));
  const int64_t size = jc::get_int(j, "size", where);
  if (kind == VocabKind::Bpe) {
    const std::string file = jc::get_string(j, "tokenizer", where);
    XLSTM_CHECK(file.find('/') == std::string::npos && !file.empty(), ValueError, where,
                ": field 'tokenizer' must be a file name beside the vocabulary");
    return bpe((dir.empty() ? std::string(".") : dir) + "/" + file, size);
  }
  if (kind == VocabKind::Byte) {
    XLSTM_CHECK(size == 256, ValueError, where, ": byte vocabulary must have size 256, got ", size);
    return bytes();
  }
  const json& a = jc::get_array(j, "symbols", where);
  XLSTM_CHECK((int64_t)a.size() == size && size > 0, ValueError, where, ": field 'size' is ", size,
              " but 'symbols' has ", a.size(), " entries (must be equal and > 0)");
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string field = str("symbols[", i, "]");
    XLSTM_CHECK(a[i].is_string(), ValueError, where, ": field '", field, "' must be a string");
    const std::vector<uint32_t> c = utf8_decode(a[i].get<std::string>(), str(where, ": ", field));
    XLSTM_CHECK(c.size() == 1, ValueError, where, ": field '", field,
                "' must be exactly one character, got ", c.size());
    XLSTM_CHECK(cps.empty() || c[0] > cps.back(), ValueError, where, ": field '", field,
                "' is out of order or repeated (symbols must be strictly ascending code points)");
    cps.push_back(c[0]);
  }
  return from_code_points(std::move(cps), where);
}

void Vocab::save(const std::string& path) const {
  if (kind_ == VocabKind::Bpe) {
    const std::string dir = std::filesystem::path(path).parent_path().string();
    const std::string dst = (dir.empty() ? std::string(".") : dir) + "/tokenizer.json";
    std::error_code ec;
    if (!std::filesystem::equivalent(tokenizer_file_, dst, ec)) {
      std::ifstream in(tokenizer_file_, std::ios::binary);
      XLSTM_CHECK(in.good(), IoError, tokenizer_file_, ": cannot open for reading");
      std::stringstream ss;
      ss << in.rdbuf();
      write_file_atomic(dst, ss.str());
    }
  }
  write_file_atomic(path, to_json().dump(1) + "\n");
}

Vocab Vocab::load(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return from_json(json_cfg::read_file(path), path, dir);
}

// ----------------------------------------------------------------------------- TextCorpus

const char* split_name(Split s) { return s == Split::Train ? "train" : "validation"; }

TextCorpus TextCorpus::from_text(const std::string& text, const Vocab& vocab, double val_fraction,
                                 const std::string& where) {
  XLSTM_CHECK(val_fraction >= 0 && val_fraction < 1, ValueError, where,
              ": validation fraction must be in [0, 1), got ", val_fraction);
  XLSTM_CHECK(!text.empty(), ValueError, where, ": empty text");
  XLSTM_CHECK(!vocab.empty(), ValueError, where, ": empty vocabulary");
  std::vector<int32_t> ids = vocab.encode(text, where);
  const int64_t n = (int64_t)ids.size();
  const int64_t n_val = (int64_t)std::floor((double)n * val_fraction);
  TextCorpus c;
  c.vocab_ = vocab;
  c.where_ = where;
  c.val_ = std::make_shared<const std::vector<int32_t>>(ids.begin() + (n - n_val), ids.end());
  ids.resize((size_t)(n - n_val));
  c.train_ = std::make_shared<const std::vector<int32_t>>(std::move(ids));
  return c;
}

TextCorpus TextCorpus::from_file(const std::string& path, const Vocab& vocab, double val_fraction) {
  return from_text(read_text_file(path), vocab, val_fraction, path);
}

TextCorpus TextCorpus::from_file(const std::string& path, VocabKind kind, double val_fraction) {
  XLSTM_CHECK(kind != VocabKind::Bpe, ValueError, path,
              ": a BPE vocabulary comes with a pretrained model; hint: --init-from HF_DIR");
  const std::string text = read_text_file(path);
  const Vocab v = kind == VocabKind::Byte ? Vocab::bytes() : Vocab::from_text(text, path);
  return from_text(text, v, val_fraction, path);
}

// ------------------------------------------------------------------------------- samplers

namespace {
void check_window(const std::shared_ptr<const std::vector<int32_t>>& tokens, int64_t B, int64_t T,
                  const std::string& what) {
  XLSTM_CHECK(tokens, ValueError, "[sampler] ", what, ": no token sequence");
  XLSTM_CHECK(B >= 1 && T >= 1, ValueError, "[sampler] ", what,
              ": batch size and sequence length must be >= 1, got B=", B, " T=", T);
  XLSTM_CHECK((int64_t)tokens->size() >= T + 1, ValueError, "[sampler] ", what, " has ",
              tokens->size(), " tokens, fewer than sequence length + 1 = ", T + 1,
              "; hint: use a shorter sequence length, a smaller validation fraction or more text");
}

void copy_window(const int32_t* src, int64_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}
}  // namespace

RandomWindowSampler::RandomWindowSampler(std::shared_ptr<const std::vector<int32_t>> tokens,
                                         int64_t B, int64_t T, uint64_t seed,
                                         const std::string& what)
    : tokens_(std::move(tokens)), B_(B), T_(T), rng_(seed) {
  check_window(tokens_, B, T, what);
}

Tensor RandomWindowSampler::next() {
  Tensor out({B_, T_ + 1}, DType::I64);
  int64_t* o = out.data<int64_t>();
  const uint64_t starts = (uint64_t)tokens_->size() - (uint64_t)T_;  // offsets 0 .. n-T-1
  for (int64_t b = 0; b < B_; ++b) {
    const uint64_t s = rng_.below(starts);
    copy_window(tokens_->data() + s, o + b * (T_ + 1), T_ + 1);
  }
  return out;
}

Tensor RandomWindowSampler::state_tensor() const { return rng_state_tensor(rng_); }

void RandomWindowSampler::load_state(const Tensor& t, const std::string& where) {
  load_rng_state(rng_, t, where + " (sampler rng state)");
}

SequentialSampler::SequentialSampler(std::shared_ptr<const std::vector<int32_t>> tokens, int64_t B,
                                     int64_t T, int64_t max_batches, const std::string& what)
    : tokens_(std::move(tokens)), B_(B), T_(T), max_batches_(max_batches) {
  check_window(tokens_, B, T, what);
  XLSTM_CHECK(max_batches >= 0, ValueError, "[sampler] ", what, ": max_batches must be >= 0, got ",
              max_batches);
  windows_ = ((int64_t)tokens_->size() - 1) / T;
}

int64_t SequentialSampler::num_batches() const {
  const int64_t n = (windows_ + B_ - 1) / B_;
  return max_batches_ > 0 ? std::min(n, max_batches_) : n;
}

bool SequentialSampler::next(Tensor& out) {
  if (pos_ >= windows_ || (max_batches_ > 0 && batches_ >= max_batches_)) return false;
  const int64_t b = std::min(B_, windows_ - pos_);
  if (!out.defined() || out.dtype() != DType::I64 || out.shape() != Shape{b, T_ + 1})
    out = Tensor({b, T_ + 1}, DType::I64);
  int64_t* o = out.data<int64_t>();
  for (int64_t r = 0; r < b; ++r)
    copy_window(tokens_->data() + (pos_ + r) * T_, o + r * (T_ + 1), T_ + 1);
  pos_ += b;
  ++batches_;
  return true;
}

void split_window(const Tensor& w, Tensor& inputs, Tensor& targets) {
  XLSTM_CHECK(w.defined() && w.dtype() == DType::I64 && w.ndim() == 2 && w.dim(1) >= 2, ValueError,
              "[split_window] window must be I64 (b, T+1) with T >= 1");
  const int64_t b = w.dim(0), T = w.dim(1) - 1;
  inputs = Tensor({b, T}, DType::I64);
  targets = Tensor({b, T}, DType::I64);
  const int64_t* s = w.data<int64_t>();
  int64_t* x = inputs.data<int64_t>();
  int64_t* y = targets.data<int64_t>();
  for (int64_t r = 0; r < b; ++r) {
    std::memcpy(x + r * T, s + r * (T + 1), (size_t)T * 8);
    std::memcpy(y + r * T, s + r * (T + 1) + 1, (size_t)T * 8);
  }
}

}  // namespace xlstm
