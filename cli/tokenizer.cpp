// `xlstm tokenizer-check`, `xlstm encode`, `xlstm decode`: the byte-level BPE tokenizer of a
// Hugging Face tokenizer.json (text/tokenizer.h).
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "data/text.h"
#include "text/tokenizer.h"
#include "xlstm/error.h"

namespace xlstm::cli {

namespace {

// One-line rendering of text for messages: control characters escaped, long text cut.
std::string escaped(const std::string& s, size_t max_bytes = 60) {
  size_t cut = std::min(max_bytes, s.size());
  while (cut > 0 && cut < s.size() && ((unsigned char)s[cut] & 0xC0) == 0x80) --cut;  // whole chars
  std::string r;
  for (size_t i = 0; i < cut; ++i) {
    const unsigned char c = (unsigned char)s[i];
    if (c == '\n') r += "\\n";
    else if (c == '\t') r += "\\t";
    else if (c == '\r') r += "\\r";
    else if (c == '"' || c == '\\') (r += '\\') += (char)c;
    else if (c < 0x20 || c == 0x7F) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02X", c);
      r += b;
    } else {
      r += (char)c;
    }
  }
  if (cut < s.size()) r += "...";
  return "\"" + r + "\"";
}

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string r;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) r += ' ';
    r += std::to_string(ids[i]);
  }
  return r;
}

// "1 2 3" or "1,2,3" -> ids; ValueError naming the bad item.
std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::string item;
  size_t n = 0;
  auto flush = [&] {
    if (item.empty()) return;
    ++n;
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    XLSTM_CHECK(used == item.size() && v >= 0 && v <= INT32_MAX, ValueError, "--ids: item ", n,
                " \"", item, "\" is not a token id (a non-negative integer)");
    ids.push_back((int32_t)v);
    item.clear();
  };
  for (char c : s) {
    if (c == ' ' || c == ',' || c == '\n' || c == '\t' || c == '\r') flush();
    else item += c;
  }
  flush();
  return ids;
}

struct RefLine {
  std::string text, decoded;
  std::vector<int32_t> ids;
};

RefLine parse_ref(const std::string& line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    throw ValueError(str(where, ": not valid JSON (", e.what(), ")"));
  }
  XLSTM_CHECK(j.is_object(), ValueError, where, ": expected a JSON object {\"text\", \"ids\", \"decoded\"}");
  RefLine r;
  for (const char* k : {"text", "decoded"}) {
    auto it = j.find(k);
    XLSTM_CHECK(it != j.end() && it->is_string(), ValueError, where, ": field '", k,
                "' is missing or not a string");
    (std::string(k) == "text" ? r.text : r.decoded) = it->get<std::string>();
  }
  auto it = j.find("ids");
  XLSTM_CHECK(it != j.end() && it->is_array(), ValueError, where,
              ": field 'ids' is missing or not a list");
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& v = (*it)[i];
    XLSTM_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= INT32_MAX,
                ValueError, where, ": ids[", i, "] is not a token id: ", v.dump());
    r.ids.push_back((int32_t)v.get<int64_t>());
  }
  return r;
}

// Empty string when equal, else a description of the first difference.
std::string compare_ids(const std::vector<int32_t>& want, const std::vector<int32_t>& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  if (i == want.size() && i == got.size()) return "";
  auto at = [&](const std::vector<int32_t>& v) { return i < v.size() ? std::to_string(v[i]) : std::string("end"); };
  return str("ids differ at position ", i, ": expected ", at(want), ", got ", at(got), " (",
             want.size(), " vs ", got.size(), " ids)");
}

std::string compare_text(const std::string& want, const std::string& got) {
  if (want == got) return "";
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  return str("decode differs at byte ", i, ": expected ", escaped(want.substr(i), 30), ", got ",
             escaped(got.substr(i), 30));
}

int run_check(const std::string& tok_file, const std::string& refs_file) {
  // Read and validate every line first, so a bad file gives one error and no partial report.
  std::ifstream in(refs_file, std::ios::binary);
  XLSTM_CHECK(in.good(), IoError, refs_file, ": cannot open for reading");
  std::vector<std::pair<int64_t, RefLine>> refs;
  std::string line;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno)
    if (!line.empty() && line != "\r")
      refs.emplace_back(lineno, parse_ref(line, str(refs_file, ":", lineno)));
  XLSTM_CHECK(!in.bad(), IoError, refs_file, ": read failed");
  XLSTM_CHECK(!refs.empty(), ValueError, refs_file, ": no reference lines");
  const Tokenizer tok = Tokenizer::from_file(tok_file);
  int64_t passed = 0, failed = 0;
  for (const auto& [lineno, r] : refs) {
    std::string why;
    try {
      why = compare_ids(r.ids, tok.encode(r.text, true));
      const std::string d = compare_text(r.decoded, tok.decode(r.ids, false));
      if (!d.empty()) why += (why.empty() ? "" : "; ") + d;
    } catch (const Error& e) {
      why += (why.empty() ? "" : "; ") + std::string(e.what());
    }
    if (why.empty()) {
      ++passed;
    } else {
      ++failed;
      std::cout << "FAIL line " << lineno << " " << escaped(r.text, 40) << ": " << why << "\n";
    }
  }
  std::cout << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace

void add_tokenizer(CLI::App& app, std::function<int()>& run) {
  // tokenizer-check
  {
    struct Opts { std::string tok, refs; };
    auto o = std::make_shared<Opts>();
    auto* s = app.add_subcommand(
        "tokenizer-check",
        "Check the tokenizer against reference encodings made by Hugging Face tokenizers: every "
        "line of REFS_JSONL is {\"text\", \"ids\", \"decoded\"} from encode(text, "
        "add_special_tokens=True) and decode(ids, skip_special_tokens=False). Prints a FAIL line "
        "per mismatch and 'N passed, M failed'; exits 0 only if none failed.");
    s->add_option("TOKENIZER_JSON", o->tok, "tokenizer.json (Hugging Face format)")->required();
    s->add_option("REFS_JSONL", o->refs, "reference encodings, one JSON object per line")->required();
    s->callback([o, &run] { run = [o] { return run_check(o->tok, o->refs); }; });
  }
  // encode
  {
    struct Opts {
      std::string tok, text, input;
      bool no_special = false, count = false;
    };
    auto o = std::make_shared<Opts>();
    auto* s = app.add_subcommand("encode",
                                 "Encode text with a tokenizer.json and print the token ids "
                                 "(space-separated, one line).");
    s->add_option("--tokenizer", o->tok, "tokenizer.json (Hugging Face format)")->required();
    auto* t = s->add_option("--text", o->text, "text to encode");
    auto* i = s->add_option("--input", o->input, "file to encode (UTF-8)");
    t->excludes(i);
    s->add_flag("--no-special", o->no_special, "do not add the post-processor's special tokens");
    s->add_flag("--count", o->count,
                "print the number of tokens and the encoding speed instead of the ids");
    s->callback([o, t, i, &run] {
      run = [o, t, i]() -> int {
        XLSTM_CHECK(t->count() + i->count() == 1, ValueError,
                    "encode: give the text with --text TEXT or --input FILE");
        const std::string text = i->count() ? read_text_file(o->input) : o->text;
        const auto t0 = std::chrono::steady_clock::now();
        const Tokenizer tok = Tokenizer::from_file(o->tok);
        const auto t1 = std::chrono::steady_clock::now();
        const std::vector<int32_t> ids = tok.encode(text, !o->no_special);
        const auto t2 = std::chrono::steady_clock::now();
        if (!o->count) {
          std::cout << ids_str(ids) << "\n";
          return 0;
        }
        const double load = std::chrono::duration<double>(t1 - t0).count();
        const double sec = std::chrono::duration<double>(t2 - t1).count();
        std::printf("%zu tokens from %zu bytes in %.4f s (%.0f tokens/s, %.2f MB/s); tokenizer "
                    "loaded in %.3f s\n",
                    ids.size(), text.size(), sec, ids.size() / std::max(sec, 1e-9),
                    text.size() / 1e6 / std::max(sec, 1e-9), load);
        return 0;
      };
    });
  }
  // decode
  {
    struct Opts {
      std::string tok, ids;
      bool skip_special = false;
    };
    auto o = std::make_shared<Opts>();
    auto* s = app.add_subcommand("decode", "Decode token ids with a tokenizer.json and print the text.");
    s->add_option("--tokenizer", o->tok, "tokenizer.json (Hugging Face format)")->required();
    s->add_option("--ids", o->ids, "token ids separated by spaces or commas, or - to read stdin")
        ->required();
    s->add_flag("--skip-special", o->skip_special, "leave out special tokens");
    s->callback([o, &run] {
      run = [o]() -> int {
        std::string src = o->ids;
        if (src == "-") src.assign(std::istreambuf_iterator<char>(std::cin), {});
        const std::vector<int32_t> ids = parse_ids(src);
        const Tokenizer tok = Tokenizer::from_file(o->tok);
        const std::string text = tok.decode(ids, o->skip_special);
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fputc('\n', stdout);
        return 0;
      };
    });
  }
}

}  // namespace xlstm::cli
