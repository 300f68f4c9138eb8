// BPE model (see bpe.h). The merge loop is `Word::merge_all` of Hugging Face tokenizers: a
// min-heap of candidate merges ordered by (rank, position), stale entries skipped when the pair
// at their position no longer merges into the same id.
#include "text/bpe.h"

#include <algorithm>
#include <cstring>

#include "text/unicode.h"
#include "xlstm/error.h"

namespace xlstm::text {

namespace {

struct ByteLevelTables {
  uint32_t cp[256];
  int16_t inv[512];  // every ByteLevel code point is < 512
  ByteLevelTables() {
    // Printable Latin-1 bytes map to themselves, the other 68 to U+0100.. in byte order.
    bool direct[256] = {};
    for (int b = '!'; b <= '~'; ++b) direct[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) cp[b] = direct[b] ? (uint32_t)b : 256 + n++;
    std::fill(std::begin(inv), std::end(inv), (int16_t)-1);
    for (int b = 0; b < 256; ++b) inv[cp[b]] = (int16_t)b;
  }
};

const ByteLevelTables& byte_level() {
  static const ByteLevelTables t;
  return t;
}

uint64_t hash_bytes(std::string_view s) {  // FNV-1a, never 0
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h ? h : 1;
}

uint64_t mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  return k;
}

}  // namespace

uint32_t byte_level_cp(uint8_t b) { return byte_level().cp[b]; }

int byte_level_byte(uint32_t cp) { return cp < 512 ? byte_level().inv[cp] : -1; }

// --------------------------------------------------------------------------- construction

BpeModel::BpeModel(BpeConfig&& c, const std::string& where) {
  constexpr int64_t kMaxId = int64_t(1) << 24;
  int64_t max_id = -1;
  for (const auto& [tok, id] : c.vocab) {
    XLSTM_CHECK(id >= 0 && id < kMaxId, ValueError, where, ".vocab[\"", tok, "\"]: id ", id,
                " is out of range [0, ", kMaxId, ")");
    max_id = std::max<int64_t>(max_id, id);
  }
  vocab_r_.assign((size_t)(max_id + 1), std::string());
  has_id_.assign((size_t)(max_id + 1), false);
  for (auto& [tok, id] : c.vocab) {
    XLSTM_CHECK(!has_id_[(size_t)id], ValueError, where, ".vocab: id ", id, " is used by both \"",
                vocab_r_[(size_t)id], "\" and \"", tok, "\"");
    has_id_[(size_t)id] = true;
    vocab_r_[(size_t)id] = std::move(tok);
  }
  vocab_.reserve(c.vocab.size() * 2);
  for (size_t id = 0; id < vocab_r_.size(); ++id)
    if (has_id_[id]) vocab_.emplace(std::string_view(vocab_r_[id]), (int32_t)id);

  size_t cap = 16;
  while (cap < c.merges.size() * 2) cap <<= 1;
  pairs_.assign(cap, PairSlot{kEmpty, 0, 0});
  pair_mask_ = cap - 1;
  std::string ab;
  for (size_t r = 0; r < c.merges.size(); ++r) {
    const auto& [a, b] = c.merges[r];
    ab.assign(a).append(b);
    auto ia = vocab_.find(a), ib = vocab_.find(b), inew = vocab_.find(ab);
    XLSTM_CHECK(ia != vocab_.end(), ValueError, where, ".merges[", r, "]: token \"", a,
                "\" is not in model.vocab");
    XLSTM_CHECK(ib != vocab_.end(), ValueError, where, ".merges[", r, "]: token \"", b,
                "\" is not in model.vocab");
    XLSTM_CHECK(inew != vocab_.end(), ValueError, where, ".merges[", r, "]: merged token \"",
                a + b, "\" is not in model.vocab");
    set_pair(ia->second, ib->second, (uint32_t)r, inew->second);  // a repeated pair: last wins
  }

  for (int b = 0; b < 256; ++b) {
    std::string ch;
    utf8_put(ch, byte_level_cp((uint8_t)b));
    auto it = vocab_.find(ch);
    byte_id_[b] = it == vocab_.end() ? -1 : it->second;
  }
  if (c.unk_token) {
    auto it = vocab_.find(*c.unk_token);
    XLSTM_CHECK(it != vocab_.end(), ValueError, where, ".unk_token \"", *c.unk_token,
                "\" is not in model.vocab");
    unk_id_ = it->second;
  }
  fuse_unk_ = c.fuse_unk;
  ignore_merges_ = c.ignore_merges;
  cache_.assign(1024, CacheSlot{0, 0, 0, 0, 0});
}

const BpeModel::PairSlot* BpeModel::find_pair(int32_t a, int32_t b) const {
  const uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  for (uint64_t i = mix(key) & pair_mask_;; i = (i + 1) & pair_mask_) {
    const PairSlot& s = pairs_[i];
    if (s.key == key) return &s;
    if (s.key == kEmpty) return nullptr;
  }
}

void BpeModel::set_pair(int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
  const uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  for (uint64_t i = mix(key) & pair_mask_;; i = (i + 1) & pair_mask_) {
    PairSlot& s = pairs_[i];
    if (s.key == key || s.key == kEmpty) {
      s = PairSlot{key, rank, new_id};
      return;
    }
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || (size_t)id >= vocab_r_.size() || !has_id_[(size_t)id]) return nullptr;
  return &vocab_r_[(size_t)id];
}

// ---------------------------------------------------------------------------------- cache

const BpeModel::CacheSlot* BpeModel::cache_find(std::string_view key, uint64_t h) const {
  const size_t mask = cache_.size() - 1;
  for (size_t i = mix(h) & mask;; i = (i + 1) & mask) {
    const CacheSlot& s = cache_[i];
    if (s.hash == 0) return nullptr;
    if (s.hash == h && s.key_len == key.size() &&
        std::memcmp(cache_keys_.data() + s.key_off, key.data(), key.size()) == 0)
      return &s;
  }
}

void BpeModel::cache_insert(std::string_view key, uint64_t h, const int32_t* ids,
                            size_t n) const {
  if (key.size() > kMaxCachedLen || cache_count_ >= kMaxCacheEntries) return;
  if ((cache_count_ + 1) * 2 > cache_.size()) {  // grow at load 1/2
    std::vector<CacheSlot> old(cache_.size() * 2, CacheSlot{0, 0, 0, 0, 0});
    old.swap(cache_);
    const size_t mask = cache_.size() - 1;
    for (const CacheSlot& s : old) {
      if (s.hash == 0) continue;
      size_t i = mix(s.hash) & mask;
      while (cache_[i].hash != 0) i = (i + 1) & mask;
      cache_[i] = s;
    }
  }
  const size_t mask = cache_.size() - 1;
  size_t i = mix(h) & mask;
  while (cache_[i].hash != 0) i = (i + 1) & mask;
  cache_[i] = CacheSlot{h, (uint32_t)cache_keys_.size(), (uint32_t)key.size(),
                        (uint32_t)cache_vals_.size(), (uint32_t)n};
  cache_keys_.append(key.data(), key.size());
  cache_vals_.insert(cache_vals_.end(), ids, ids + n);
  ++cache_count_;
}

// ---------------------------------------------------------------------------------- merge

void BpeModel::encode_word(std::string_view bytes, std::vector<int32_t>& out) const {
  if (bytes.empty()) return;
  if (bytes.size() == 1 && byte_id_[(uint8_t)bytes[0]] >= 0) {
    out.push_back(byte_id_[(uint8_t)bytes[0]]);
    return;
  }
  const uint64_t h = hash_bytes(bytes);
  if (const CacheSlot* s = cache_find(bytes, h)) {
    const int32_t* v = cache_vals_.data() + s->val_off;
    out.insert(out.end(), v, v + s->val_len);
    return;
  }
  const size_t start = out.size();
  merge_all(bytes, out);
  cache_insert(bytes, h, out.data() + start, out.size() - start);
}

void BpeModel::merge_all(std::string_view bytes, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    mapped_.clear();
    for (unsigned char b : bytes) utf8_put(mapped_, byte_level_cp(b));
    auto it = vocab_.find(mapped_);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Initial symbols: one per byte; bytes without a vocabulary entry become unk (fused when
  // fuse_unk) or, without an unk token, are dropped, as HF's merge_word does.
  syms_.clear();
  bool pending_unk = false;
  auto add = [&](int32_t c) {
    const int32_t i = (int32_t)syms_.size();
    syms_.push_back(Sym{c, i - 1, -1, true});
    if (i > 0) syms_[(size_t)i - 1].next = i;
  };
  for (unsigned char b : bytes) {
    const int32_t id = byte_id_[b];
    if (id >= 0) {
      if (pending_unk) add(unk_id_);
      pending_unk = false;
      add(id);
    } else if (unk_id_ >= 0) {
      if (pending_unk && !fuse_unk_) add(unk_id_);
      pending_unk = true;
    }
  }
  if (pending_unk) add(unk_id_);

  auto lower = [](const Merge& a, const Merge& b) {  // heap top = smallest (rank, pos)
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  heap_.clear();
  for (size_t i = 0; i + 1 < syms_.size(); ++i)
    if (const PairSlot* m = find_pair(syms_[i].c, syms_[i + 1].c))
      heap_.push_back(Merge{m->rank, (int32_t)i, m->new_id});
  std::make_heap(heap_.begin(), heap_.end(), lower);
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), lower);
    const Merge top = heap_.back();
    heap_.pop_back();
    Sym& cur = syms_[(size_t)top.pos];
    if (!cur.alive || cur.next < 0) continue;
    const int32_t right_pos = cur.next;
    const Sym right = syms_[(size_t)right_pos];
    const PairSlot* m = find_pair(cur.c, right.c);
    if (!m || m->new_id != top.new_id) continue;  // stale entry
    cur.c = top.new_id;
    cur.next = right.next;
    syms_[(size_t)right_pos].alive = false;
    if (right.next >= 0) syms_[(size_t)right.next].prev = top.pos;
    if (cur.prev >= 0) {
      if (const PairSlot* p = find_pair(syms_[(size_t)cur.prev].c, cur.c)) {
        heap_.push_back(Merge{p->rank, cur.prev, p->new_id});
        std::push_heap(heap_.begin(), heap_.end(), lower);
      }
    }
    if (cur.next >= 0) {
      if (const PairSlot* p = find_pair(cur.c, syms_[(size_t)cur.next].c)) {
        heap_.push_back(Merge{p->rank, top.pos, p->new_id});
        std::push_heap(heap_.begin(), heap_.end(), lower);
      }
    }
  }
  for (const Sym& s : syms_)
    if (s.alive) out.push_back(s.c);
}

}  // namespace xlstm::text
