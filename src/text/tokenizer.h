// Byte-level BPE tokenizer read from a Hugging Face `tokenizer.json` (GPT-2 / GPT-NeoX style),
// producing the same ids as the `tokenizers` library's encode/decode. docs/tokenizer.md lists
// what is supported and how each part maps to `tokenizers`.
//
// Encode pipeline (as `tokenizers` runs it):
//   1. added tokens with normalized=false are cut out of the raw text (leftmost-longest match,
//      honouring single_word, lstrip, rstrip);
//   2. each remaining piece is normalized (NFC/NFD/NFKC/NFKD or a sequence, via ICU), then
//      added tokens with normalized=true are cut out of it;
//   3. each remaining piece is pre-tokenized (ByteLevel: optional prefix space, the GPT-2
//      split regex) and every pre-token is merged by the BPE model;
//   4. the post-processor adds its special tokens (TemplateProcessing) if add_special_tokens.
// Decode: ids -> token strings -> ByteLevel decoder (each character back to its byte; a token
// with characters outside the byte alphabet, e.g. an added token, is taken as its UTF-8) ->
// lossy UTF-8 (each ill-formed subpart becomes U+FFFD, like Rust's from_utf8_lossy).
//
// Differences from `tokenizers`, on purpose: invalid UTF-8 input to encode() throws ValueError
// (Python strings cannot hold it); an id with no token throws ValueError in decode() instead of
// being dropped; a tokenizer.json whose added_tokens ids disagree with the ids `tokenizers`
// would assign is rejected instead of loaded with a warning.
//
// Thread safety: all methods are const and may be called from several threads; encode() calls
// serialise on the word cache. Copies share the loaded data (cheap).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xlstm {

class Tokenizer {
 public:
  // Reads and validates a tokenizer.json. IoError naming the file if it is missing, unreadable
  // or not valid JSON; ValueError naming the file and the JSON field for anything unsupported
  // or inconsistent, e.g. `tokenizer.json: model.type "Unigram" is not supported (only BPE)`.
  static Tokenizer from_file(const std::string& tokenizer_json);
  // The same from JSON text; `where` names it in messages.
  static Tokenizer from_json_string(const std::string& json_text, const std::string& where);

  // Token ids of UTF-8 text; add_special_tokens applies the post-processor's template.
  // ValueError "[tokenizer] invalid UTF-8 in text at byte offset N" for ill-formed input.
  std::vector<int32_t> encode(std::string_view utf8, bool add_special_tokens = true) const;
  // Text of ids; skip_special_tokens drops added tokens marked special. ValueError naming the
  // position and the id when an id has no token.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  std::string decode(const int32_t* ids, size_t n, bool skip_special_tokens = false) const;

  // Largest id (model vocabulary and added tokens) + 1: the embedding rows a model needs.
  int64_t vocab_size() const;
  // Added tokens first, then the model vocabulary (as `tokenizers` token_to_id).
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token string (ByteLevel characters for model tokens, e.g. "Ġthe"); ValueError if the
  // id has no token.
  std::string id_to_token(int32_t id) const;
  // True for added tokens marked "special" (what decode(..., true) skips).
  bool is_special(int32_t id) const;
  // Appends the bytes id decodes to (before UTF-8 repair), unless skip_special and the id is
  // special. ValueError if the id has no token. Used by TokenStreamDecoder.
  void append_token_bytes(int32_t id, bool skip_special, std::string& out) const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// Incremental decode for generation: push ids as they are sampled and print what comes back.
// A byte-level token can end inside a UTF-8 character; push() returns only complete text and
// keeps the tail until the next token completes it. The concatenation of every push() and a
// final flush() equals tokenizer.decode(all ids, skip_special_tokens), U+FFFD replacements
// included.
class TokenStreamDecoder {
 public:
  explicit TokenStreamDecoder(Tokenizer tokenizer, bool skip_special_tokens = false)
      : tok_(std::move(tokenizer)), skip_special_(skip_special_tokens) {}
  // ValueError if the id has no token (nothing is consumed then).
  std::string push(int32_t id);
  // The held-back bytes, an incomplete character as U+FFFD; the decoder is empty afterwards.
  std::string flush();

 private:
  Tokenizer tok_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace xlstm
