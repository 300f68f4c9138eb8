// Unicode pieces of the byte-level BPE tokenizer (text/tokenizer.h): strict and lossy UTF-8,
// the character classes of the GPT-2 split regex, Unicode normalization (ICU), and the GPT-2
// pre-tokenizer as a hand-written scanner.
//
// Definitions follow what Hugging Face `tokenizers` uses, so results match it exactly:
//   - \p{L}, \p{N}: Unicode general categories L* and N* (Oniguruma, the engine of the
//     ByteLevel pre-tokenizer regex); \s: the White_Space property (Oniguruma and the Rust
//     regex crate agree); \w (Rust regex, used by AddedToken.single_word): Alphabetic, M*, Nd,
//     Pc, Join_Control. Classes come from ICU, so they follow ICU's Unicode version.
//   - Lossy UTF-8 is Rust's String::from_utf8_lossy: each maximal subpart of an ill-formed
//     sequence becomes one U+FFFD (Unicode's recommended practice).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace xlstm::text {

// ------------------------------------------------------------------------------------- UTF-8

enum class Utf8Status : uint8_t { Valid, Invalid, Incomplete };
struct Utf8Step {
  Utf8Status status;
  int len;      // Valid: bytes of the sequence; Invalid: bytes of the maximal subpart (>= 1);
                // Incomplete: bytes available (a valid prefix cut by the end of the buffer)
  uint32_t cp;  // Valid only
};
// Looks at the sequence starting at s[0] (n >= 1 bytes available).
Utf8Step utf8_step(const unsigned char* s, size_t n);

// Offset of the first byte that does not start a complete valid sequence, or npos if s is
// valid UTF-8 (no overlongs, surrogates, code points > U+10FFFF or truncated sequences).
size_t utf8_first_invalid(std::string_view s);

// Appends bytes[0..n) to out as text, each maximal ill-formed subpart replaced by U+FFFD. With
// final == false a trailing incomplete (but so far valid) sequence is left unconsumed so the
// next call can complete it. Returns the number of bytes consumed.
size_t utf8_append_lossy(std::string& out, std::string_view bytes, bool final);

// Appends the UTF-8 encoding of cp (a Unicode scalar value).
void utf8_put(std::string& out, uint32_t cp);

// Decodes the sequence at s[i] of known-valid UTF-8; returns its length.
inline int utf8_decode_valid(const unsigned char* s, uint32_t& cp) {
  const unsigned char b = s[0];
  if (b < 0x80) { cp = b; return 1; }
  if (b < 0xE0) { cp = ((b & 0x1Fu) << 6) | (s[1] & 0x3Fu); return 2; }
  if (b < 0xF0) { cp = ((b & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu); return 3; }
  cp = ((b & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
  return 4;
}

// ---------------------------------------------------------------------------- classes

// The partition of code points the GPT-2 regex sees: \p{L}, \p{N}, \s, and everything else.
enum class CharClass : uint8_t { Letter = 0, Number = 1, Space = 2, Other = 3 };

namespace detail {
extern const uint8_t kAsciiClass[128];
CharClass char_class_slow(uint32_t cp);  // table for the BMP, ICU above it
}  // namespace detail

inline CharClass char_class(uint32_t cp) {
  return cp < 128 ? (CharClass)detail::kAsciiClass[cp] : detail::char_class_slow(cp);
}
bool is_white_space(uint32_t cp);  // \s
bool is_word_char(uint32_t cp);    // \w of the Rust regex crate

// ------------------------------------------------------------------------ normalization

enum class NormForm : uint8_t { NFC, NFD, NFKC, NFKD };
// out = form(in); in must be valid UTF-8. Pure ASCII is returned as is without calling ICU.
void normalize(NormForm form, std::string_view in, std::string& out);

// ------------------------------------------------------------------------ GPT-2 split

// Calls emit(begin, end) (byte offsets into s) for every match of
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// over valid UTF-8 s, left to right, with the regex's semantics: alternatives tried in order at
// each position, greedy runs, and for a whitespace run followed by a non-space the run minus
// its last character (which then starts the next match, e.g. " " before a word). The matches
// tile s: every character belongs to exactly one.
template <class Emit>
void gpt2_split(std::string_view sv, Emit&& emit) {
  const unsigned char* s = (const unsigned char*)sv.data();
  const size_t n = sv.size();
  auto cls_at = [&](size_t p, int& len) {
    if (s[p] < 0x80) {
      len = 1;
      return (CharClass)detail::kAsciiClass[s[p]];
    }
    uint32_t c;
    len = utf8_decode_valid(s + p, c);
    return detail::char_class_slow(c);
  };
  auto run = [&](size_t p, CharClass k) {  // end of the run of class k starting at p
    int len;
    while (p < n && cls_at(p, len) == k) p += len;
    return p;
  };
  size_t i = 0;
  while (i < n) {
    // 's 't 're 've 'm 'll 'd (ASCII apostrophe, case-sensitive)
    if (s[i] == '\'' && i + 1 < n) {
      const unsigned char a = s[i + 1];
      if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        emit(i, i + 2);
        i += 2;
        continue;
      }
      if (i + 2 < n) {
        const unsigned char b = s[i + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
          emit(i, i + 3);
          i += 3;
          continue;
        }
      }
    }
    int len;
    const CharClass k = cls_at(i, len);
    size_t p = i + (size_t)len;
    // ' ?X+' with X one of \p{L}, \p{N}, [^\s\p{L}\p{N}]: a space followed by a non-space.
    if (s[i] == ' ' && p < n) {
      int len1;
      const CharClass k1 = cls_at(p, len1);
      if (k1 != CharClass::Space) {
        const size_t e = run(p + (size_t)len1, k1);
        emit(i, e);
        i = e;
        continue;
      }
    }
    if (k != CharClass::Space) {
      const size_t e = run(p, k);
      emit(i, e);
      i = e;
      continue;
    }
    // \s+(?!\S) | \s+
    size_t last = i;  // start of the run's last character
    size_t q = p;
    while (q < n) {
      int l2;
      if (cls_at(q, l2) != CharClass::Space) break;
      last = q;
      q += (size_t)l2;
    }
    const size_t e = (q == n || last == i) ? q : last;
    emit(i, e);
    i = e;
  }
}

}  // namespace xlstm::text
