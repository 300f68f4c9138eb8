// UTF-8, character classes and normalization for the tokenizer (see unicode.h). ICU supplies
// the Unicode data: general categories, White_Space and the normalization forms.
#include "text/unicode.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/uchar.h>
#include <unicode/utypes.h>

#include <climits>
#include <cstring>
#include <vector>

#include "xlstm/error.h"

namespace xlstm::text {

// ------------------------------------------------------------------------------------- UTF-8

Utf8Step utf8_step(const unsigned char* s, size_t n) {
  const unsigned char b = s[0];
  if (b < 0x80) return {Utf8Status::Valid, 1, b};
  int need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the first continuation byte
  uint32_t cp;
  if (b >= 0xC2 && b <= 0xDF) {
    need = 2;
    cp = b & 0x1Fu;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 3;
    cp = b & 0x0Fu;
    if (b == 0xE0) lo = 0xA0;       // no overlongs
    else if (b == 0xED) hi = 0x9F;  // no surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 4;
    cp = b & 0x07u;
    if (b == 0xF0) lo = 0x90;       // no overlongs
    else if (b == 0xF4) hi = 0x8F;  // <= U+10FFFF
  } else {
    return {Utf8Status::Invalid, 1, 0};
  }
  for (int k = 1; k < need; ++k) {
    if ((size_t)k >= n) return {Utf8Status::Incomplete, k, 0};
    const unsigned char c = s[k];
    if (c < lo || c > hi) return {Utf8Status::Invalid, k, 0};
    lo = 0x80;
    hi = 0xBF;
    cp = (cp << 6) | (c & 0x3Fu);
  }
  return {Utf8Status::Valid, need, cp};
}

size_t utf8_first_invalid(std::string_view sv) {
  const unsigned char* s = (const unsigned char*)sv.data();
  const size_t n = sv.size();
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n) {  // skip ASCII eight bytes at a time
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    const Utf8Step st = utf8_step(s + i, n - i);
    if (st.status != Utf8Status::Valid) return i;
    i += (size_t)st.len;
  }
  return std::string_view::npos;
}

size_t utf8_append_lossy(std::string& out, std::string_view bytes, bool final) {
  static const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
  const unsigned char* s = (const unsigned char*)bytes.data();
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    size_t j = i;  // copy valid stretches in one append
    while (j < n) {
      if (s[j] < 0x80) {
        ++j;
        continue;
      }
      const Utf8Step st = utf8_step(s + j, n - j);
      if (st.status != Utf8Status::Valid) break;
      j += (size_t)st.len;
    }
    out.append(bytes.data() + i, j - i);
    i = j;
    if (i == n) break;
    const Utf8Step st = utf8_step(s + i, n - i);
    if (st.status == Utf8Status::Incomplete && !final) break;
    out.append(kReplacement, 3);
    i += (size_t)st.len;
  }
  return i;
}

void utf8_put(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += (char)cp;
  } else if (cp < 0x800) {
    out += (char)(0xC0 | (cp >> 6));
    out += (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += (char)(0xE0 | (cp >> 12));
    out += (char)(0x80 | ((cp >> 6) & 0x3F));
    out += (char)(0x80 | (cp & 0x3F));
  } else {
    out += (char)(0xF0 | (cp >> 18));
    out += (char)(0x80 | ((cp >> 12) & 0x3F));
    out += (char)(0x80 | ((cp >> 6) & 0x3F));
    out += (char)(0x80 | (cp & 0x3F));
  }
}

// ---------------------------------------------------------------------------- classes

namespace detail {

// 0 Letter, 1 Number, 2 Space, 3 Other. White_Space in ASCII: U+0009..U+000D and U+0020.
#define L 0
#define N 1
#define S 2
#define O 3
const uint8_t kAsciiClass[128] = {
    O, O, O, O, O, O, O, O, O, S, S, S, S, S, O, O,  // 0x00
    O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O,  // 0x10
    S, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O,  // 0x20  !"#$%&'()*+,-./
    N, N, N, N, N, N, N, N, N, N, O, O, O, O, O, O,  // 0x30 0-9 :;<=>?
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L,  // 0x40 @A-O
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O,  // 0x50 P-Z [\]^_
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L,  // 0x60 `a-o
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O,  // 0x70 p-z {|}~ DEL
};
#undef L
#undef N
#undef S
#undef O

namespace {

CharClass classify_icu(uint32_t cp) {
  if (u_hasBinaryProperty((UChar32)cp, UCHAR_WHITE_SPACE)) return CharClass::Space;
  const uint32_t m = U_GET_GC_MASK((UChar32)cp);
  if (m & U_GC_L_MASK) return CharClass::Letter;
  if (m & U_GC_N_MASK) return CharClass::Number;
  return CharClass::Other;
}

// Classes of the whole BMP, built once (65536 ICU lookups, well under a millisecond).
const uint8_t* bmp_classes() {
  static const std::vector<uint8_t> table = [] {
    std::vector<uint8_t> t(0x10000);
    for (uint32_t cp = 0; cp < 0x10000; ++cp) t[cp] = (uint8_t)classify_icu(cp);
    return t;
  }();
  return table.data();
}

}  // namespace

CharClass char_class_slow(uint32_t cp) {
  if (cp < 0x10000) return (CharClass)bmp_classes()[cp];
  return classify_icu(cp);
}

}  // namespace detail

bool is_white_space(uint32_t cp) { return char_class(cp) == CharClass::Space; }

bool is_word_char(uint32_t cp) {
  const UChar32 c = (UChar32)cp;
  if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL))
    return true;
  return (U_GET_GC_MASK(c) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}

// ------------------------------------------------------------------------ normalization

namespace {

const icu::Normalizer2& normalizer(NormForm form) {
  UErrorCode st = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  switch (form) {
    case NormForm::NFC: n = icu::Normalizer2::getNFCInstance(st); break;
    case NormForm::NFD: n = icu::Normalizer2::getNFDInstance(st); break;
    case NormForm::NFKC: n = icu::Normalizer2::getNFKCInstance(st); break;
    case NormForm::NFKD: n = icu::Normalizer2::getNFKDInstance(st); break;
  }
  XLSTM_CHECK(U_SUCCESS(st) && n, IoError, "[tokenizer] ICU normalization data unavailable: ",
              u_errorName(st));
  return *n;
}

bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

}  // namespace

void normalize(NormForm form, std::string_view in, std::string& out) {
  out.clear();
  if (is_ascii(in)) {  // ASCII is invariant under all four forms
    out.assign(in.data(), in.size());
    return;
  }
  XLSTM_CHECK(in.size() < (size_t)INT32_MAX, ValueError,
              "[tokenizer] text of ", in.size(), " bytes is too long to normalize (max 2 GiB)");
  const icu::Normalizer2& n = normalizer(form);
  const icu::StringPiece sp(in.data(), (int32_t)in.size());
  UErrorCode st = U_ZERO_ERROR;
  if (n.isNormalizedUTF8(sp, st) && U_SUCCESS(st)) {
    out.assign(in.data(), in.size());
    return;
  }
  st = U_ZERO_ERROR;
  icu::StringByteSink<std::string> sink(&out, (int32_t)in.size());
  n.normalizeUTF8(0, sp, sink, nullptr, st);
  XLSTM_CHECK(U_SUCCESS(st), ValueError, "[tokenizer] Unicode normalization failed: ",
              u_errorName(st));
}

}  // namespace xlstm::text
