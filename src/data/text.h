// Text corpora for character-level language models: vocabulary (characters or bytes), encoding,
// train/validation split and batch samplers.
//
// Data flow: read_text_file -> Vocab::from_text (char) or Vocab::bytes() -> encode -> split
// (first 1-f of the token sequence = train, last f = validation) -> samplers producing int64
// windows (B, T+1): inputs are [:, 0:T], targets [:, 1:T+1] (split_window).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "xlstm/rng.h"
#include "xlstm/tensor.h"

namespace xlstm {

class Tokenizer;

// Whole file as bytes. IoError naming the file if it is missing, unreadable or empty.
std::string read_text_file(const std::string& path);

// Decodes strict UTF-8 (no overlongs, surrogates or code points > U+10FFFF) into code points.
// ValueError "<where>: invalid UTF-8 at byte offset N (...)" otherwise.
std::vector<uint32_t> utf8_decode(const std::string& s, const std::string& where);
// Appends the UTF-8 encoding of code point cp (cp must be a valid scalar value).
void utf8_append(std::string& out, uint32_t cp);

enum class VocabKind { Char, Byte, Bpe };
VocabKind parse_vocab_kind(const std::string& s);  // "char" | "byte" | "bpe"; ValueError otherwise
const char* vocab_kind_name(VocabKind k);

// Token id <-> symbol. Char: the distinct code points of a text, sorted ascending, id = rank.
// Byte: 256 symbols, id = byte value (encode never fails; decode may yield invalid UTF-8).
class Vocab {
 public:
  Vocab() = default;
  static Vocab from_text(const std::string& utf8, const std::string& where);  // char vocab
  static Vocab from_code_points(std::vector<uint32_t> cps, const std::string& where);  // sorts, dedups
  static Vocab bytes();
  // The byte-level BPE of a Hugging Face tokenizer.json (text/tokenizer.h): encode without
  // special tokens, decode with them. `model_vocab` = the embedding rows of the model it feeds
  // (>= the tokenizer's ids; xLSTM-7B pads 50277 to 50304); size() returns it.
  static Vocab bpe(const std::string& tokenizer_json, int64_t model_vocab);
  const std::string& tokenizer_file() const { return tokenizer_file_; }

  VocabKind kind() const { return kind_; }
  int64_t size() const {
    return kind_ == VocabKind::Byte ? 256 : kind_ == VocabKind::Bpe ? bpe_size_ : (int64_t)symbols_.size();
  }
  bool empty() const { return size() == 0; }
  // Code point (char) or byte value (byte) of token `id`; ValueError if out of range.
  uint32_t symbol(int64_t id) const;
  // Printable form of a symbol for messages and plots: the character itself, or an escape
  // ("\n", "\t", "U+0007") for control characters.
  std::string symbol_str(int64_t id) const;

  // ValueError naming the character (as text and U+XXXX), its character index and byte offset
  // when a character is not in the vocabulary; invalid UTF-8 likewise (char kind).
  std::vector<int32_t> encode(const std::string& text, const std::string& where = "text") const;
  // ValueError naming the position and id when an id is out of range.
  std::string decode(const int32_t* ids, size_t n) const;
  std::string decode(const int64_t* ids, size_t n) const;
  std::string decode(const std::vector<int32_t>& ids) const { return decode(ids.data(), ids.size()); }

  // JSON: {"format":"xlstm-vocab","version":1,"kind":"char","size":N,"symbols":["\n"," ","a",...]}
  // (byte: no "symbols"). Every symbol is one character; they must be strictly ascending.
  // bpe: {"kind":"bpe","size":N,"tokenizer":"tokenizer.json"}, the tokenizer file beside it.
  nlohmann::json to_json() const;
  // ValueError naming where + field. `dir`: where a bpe vocabulary's tokenizer file lives.
  static Vocab from_json(const nlohmann::json& j, const std::string& where,
                         const std::string& dir = "");
  void save(const std::string& path) const;  // atomic write (bpe: also copies tokenizer.json beside it)
  static Vocab load(const std::string& path);  // IoError (unreadable / not JSON), ValueError (content)

  bool operator==(const Vocab& o) const {
    return kind_ == o.kind_ && symbols_ == o.symbols_ && bpe_size_ == o.bpe_size_;
  }

 private:
  VocabKind kind_ = VocabKind::Char;
  std::vector<uint32_t> symbols_;  // char: sorted code points
  std::vector<int32_t> index_;     // char: code point -> id, -1 if absent (size max_cp + 1)
  std::shared_ptr<const Tokenizer> tok_;  // bpe
  std::string tokenizer_file_;            // bpe: the tokenizer.json it was read from
  int64_t bpe_size_ = 0;
};

enum class Split { Train, Val };
const char* split_name(Split s);  // "train", "validation"

// An encoded text split into train (first) and validation (last) token sequences.
class TextCorpus {
 public:
  // Reads `path`; builds a char vocabulary from the whole file (or the byte vocabulary), encodes,
  // splits. val_fraction in [0, 1): n_val = floor(n * val_fraction), n_train = n - n_val.
  static TextCorpus from_file(const std::string& path, VocabKind kind, double val_fraction = 0.1);
  // With a given vocabulary (e.g. from a checkpoint): characters outside it are a ValueError.
  static TextCorpus from_file(const std::string& path, const Vocab& vocab, double val_fraction = 0.1);
  // Same from an in-memory string; `where` names it in messages.
  static TextCorpus from_text(const std::string& text, const Vocab& vocab, double val_fraction,
                              const std::string& where);

  const Vocab& vocab() const { return vocab_; }
  const std::string& source() const { return where_; }
  std::shared_ptr<const std::vector<int32_t>> tokens(Split s) const {
    return s == Split::Train ? train_ : val_;
  }
  int64_t size(Split s) const { return (int64_t)tokens(s)->size(); }

 private:
  Vocab vocab_;
  std::string where_;
  std::shared_ptr<const std::vector<int32_t>> train_, val_;
};

// Random windows of T+1 consecutive tokens: each row starts at a uniform offset in
// [0, n - T - 1], drawn with Rng::below in row order. The sampler's Rng state can be saved and
// restored, so a resumed run draws the same batches as an uninterrupted one.
class RandomWindowSampler {
 public:
  // ValueError when B < 1, T < 1, or the sequence has fewer than T+1 tokens (the message names
  // `what`, e.g. "train split of data.txt", the token count and T+1).
  RandomWindowSampler(std::shared_ptr<const std::vector<int32_t>> tokens, int64_t B, int64_t T,
                      uint64_t seed, const std::string& what);
  Tensor next();  // I64 (B, T+1)
  int64_t batch_size() const { return B_; }
  int64_t seq_len() const { return T_; }

  Rng::State rng_state() const { return rng_.state(); }
  void set_rng_state(const Rng::State& s) { rng_.set_state(s); }
  // The Rng state as an I64 tensor of shape (6) (4 words, spare bits, has_spare), for
  // checkpoints; load_state validates it (ValueError naming `where`).
  Tensor state_tensor() const;
  void load_state(const Tensor& t, const std::string& where);

 private:
  std::shared_ptr<const std::vector<int32_t>> tokens_;
  int64_t B_, T_;
  Rng rng_;
};

// Evaluation windows in order: window k covers tokens [k*T, k*T + T] (inputs never overlap, so
// every token after the first is predicted exactly once). Batches of up to B windows; the last
// batch may have fewer rows. max_batches > 0 stops early.
class SequentialSampler {
 public:
  SequentialSampler(std::shared_ptr<const std::vector<int32_t>> tokens, int64_t B, int64_t T,
                    int64_t max_batches, const std::string& what);
  // Writes the next batch, I64 (b, T+1) with 1 <= b <= B, into `out`; false when exhausted.
  bool next(Tensor& out);
  void reset() { pos_ = 0; batches_ = 0; }
  int64_t num_windows() const { return windows_; }
  int64_t num_batches() const;

 private:
  std::shared_ptr<const std::vector<int32_t>> tokens_;
  int64_t B_, T_, max_batches_, windows_;
  int64_t pos_ = 0, batches_ = 0;  // next window index, batches handed out
};

// (b, T+1) window -> inputs (b, T) and targets (b, T), I64 copies.
void split_window(const Tensor& window, Tensor& inputs, Tensor& targets);

}  // namespace xlstm
