// The BPE model of Hugging Face `tokenizers` (models/bpe), specialised to byte-level input:
// a vocabulary (token string -> id), ranked merges (pair of ids -> rank, merged id) and the
// merge loop of `Word::merge_all`, with a cache of merged words.
//
// Byte level: the pre-tokenizer maps every byte b to one "ByteLevel" character (GPT-2's
// bytes_to_unicode); the model then starts from one symbol per character. This class takes
// the raw bytes and looks up the id of each byte's character directly, so the mapped string
// is never built (except for ignore_merges).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace xlstm::text {

// GPT-2 bytes_to_unicode: byte -> code point of its ByteLevel character, and the inverse
// (-1 for a code point outside the 256-character alphabet).
uint32_t byte_level_cp(uint8_t b);
int byte_level_byte(uint32_t cp);

struct BpeConfig {
  std::vector<std::pair<std::string, int32_t>> vocab;        // token -> id (model.vocab)
  std::vector<std::pair<std::string, std::string>> merges;   // (left, right) in rank order
  std::optional<std::string> unk_token;                      // must be in vocab when set
  bool fuse_unk = false;
  bool ignore_merges = false;  // a pre-token that is itself a vocabulary entry is one token
};

class BpeModel {
 public:
  BpeModel() = default;
  // ValueError "<where>.<field>..." (where = "file: model") for duplicate ids, ids < 0 or
  // >= 2^24, merge tokens or merge results missing from the vocabulary, an unk_token that is
  // not in it.
  BpeModel(BpeConfig&& c, const std::string& where);
  BpeModel(BpeModel&&) = default;
  BpeModel& operator=(BpeModel&&) = default;

  // Appends the ids of one pre-token given as raw bytes. Not thread-safe (cache and scratch
  // are shared); the Tokenizer serialises calls.
  void encode_word(std::string_view bytes, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The vocabulary entry with this id, nullptr if none.
  const std::string* id_to_token(int32_t id) const;
  size_t size() const { return vocab_.size(); }  // number of entries (HF get_vocab_size)
  int64_t max_id() const { return (int64_t)vocab_r_.size() - 1; }

 private:
  struct PairSlot {
    uint64_t key;  // (left << 32) | right; kEmpty when free
    uint32_t rank;
    int32_t new_id;
  };
  static constexpr uint64_t kEmpty = ~0ull;
  const PairSlot* find_pair(int32_t a, int32_t b) const;
  void set_pair(int32_t a, int32_t b, uint32_t rank, int32_t new_id);

  // Merged-word cache: raw pre-token bytes -> ids, open addressing over arenas. Bounded: words
  // longer than kMaxCachedLen bytes are not cached, and inserts stop at kMaxCacheEntries.
  struct CacheSlot {
    uint64_t hash;  // 0 when free
    uint32_t key_off, key_len, val_off, val_len;
  };
  static constexpr size_t kMaxCachedLen = 256;
  static constexpr size_t kMaxCacheEntries = size_t(1) << 16;
  const CacheSlot* cache_find(std::string_view key, uint64_t h) const;
  void cache_insert(std::string_view key, uint64_t h, const int32_t* ids, size_t n) const;

  void merge_all(std::string_view bytes, std::vector<int32_t>& out) const;

  std::vector<std::string> vocab_r_;  // by id ("" with has_id_ false for holes)
  std::unordered_map<std::string_view, int32_t> vocab_;  // keys view vocab_r_ (never resized)
  std::vector<bool> has_id_;
  std::vector<PairSlot> pairs_;
  uint64_t pair_mask_ = 0;
  int32_t byte_id_[256] = {};  // vocab id of each byte's ByteLevel character, -1 if absent
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false, ignore_merges_ = false;

  mutable std::vector<CacheSlot> cache_;
  mutable size_t cache_count_ = 0;
  mutable std::string cache_keys_;
  mutable std::vector<int32_t> cache_vals_;
  // Scratch of the merge loop (reused, grows only).
  struct Sym {
    int32_t c, prev, next;
    bool alive;
  };
  struct Merge {
    uint32_t rank;
    int32_t pos, new_id;
  };
  mutable std::vector<Sym> syms_;
  mutable std::vector<Merge> heap_;
  mutable std::string mapped_;
};

}  // namespace xlstm::text
