// Typed field access for JSON configs with errors that name the file and the field:
//   get_int(j, "hidden_size", "config.json")
//     -> ValueError "config.json: field 'hidden_size' must be an integer, got \"abc\""
//     -> ValueError "config.json: missing field 'hidden_size'"
// `where` is whatever locates the object for the user: a file name, or "config.json: block 2".
// Optional getters (with a default) treat an absent field and a JSON null alike.
#pragma once
#include <cmath>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "xlstm/error.h"

namespace xlstm::json_cfg {

using nlohmann::json;

// Parses a whole JSON file. IoError naming the file if it is unreadable or not valid JSON.
inline json read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  XLSTM_CHECK(f.good(), IoError, path, ": cannot open for reading");
  std::stringstream ss;
  ss << f.rdbuf();
  XLSTM_CHECK(!f.bad(), IoError, path, ": read failed");
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    throw IoError(str(path, ": not valid JSON (", e.what(), ")"));
  }
}

// A short rendering of a value for messages (long values are cut).
inline std::string brief(const json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

inline void check_object(const json& j, const std::string& where) {
  XLSTM_CHECK(j.is_object(), ValueError, where, ": expected a JSON object, got ", brief(j));
}

inline bool has(const json& j, const std::string& key) {
  return j.is_object() && j.contains(key) && !j.at(key).is_null();
}

inline const json& field(const json& j, const std::string& key, const std::string& where) {
  check_object(j, where);
  auto it = j.find(key);
  XLSTM_CHECK(it != j.end(), ValueError, where, ": missing field '", key, "'");
  return *it;
}

// Integers; an integral float such as 64.0 is accepted too.
inline int64_t as_int(const json& v, const std::string& key, const std::string& where) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned())
      XLSTM_CHECK(v.get<uint64_t>() <= (uint64_t)std::numeric_limits<int64_t>::max(), ValueError,
                  where, ": field '", key, "' is too large: ", brief(v));
    return v.get<int64_t>();
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return (int64_t)d;
  }
  throw ValueError(str(where, ": field '", key, "' must be an integer, got ", brief(v)));
}

inline int64_t get_int(const json& j, const std::string& key, const std::string& where) {
  return as_int(field(j, key, where), key, where);
}
inline int64_t get_int(const json& j, const std::string& key, const std::string& where,
                       int64_t def) {
  return has(j, key) ? get_int(j, key, where) : def;
}
// Integer in [lo, hi].
inline int64_t get_int_in(const json& j, const std::string& key, const std::string& where,
                          int64_t lo, int64_t hi) {
  const int64_t v = get_int(j, key, where);
  XLSTM_CHECK(v >= lo && v <= hi, ValueError, where, ": field '", key, "' must be in [", lo, ", ",
              hi, "], got ", v);
  return v;
}

inline double get_number(const json& j, const std::string& key, const std::string& where) {
  const json& v = field(j, key, where);
  XLSTM_CHECK(v.is_number(), ValueError, where, ": field '", key, "' must be a number, got ",
              brief(v));
  return v.get<double>();
}
inline double get_number(const json& j, const std::string& key, const std::string& where,
                         double def) {
  return has(j, key) ? get_number(j, key, where) : def;
}

inline bool get_bool(const json& j, const std::string& key, const std::string& where) {
  const json& v = field(j, key, where);
  XLSTM_CHECK(v.is_boolean(), ValueError, where, ": field '", key,
              "' must be true or false, got ", brief(v));
  return v.get<bool>();
}
inline bool get_bool(const json& j, const std::string& key, const std::string& where, bool def) {
  return has(j, key) ? get_bool(j, key, where) : def;
}

inline std::string get_string(const json& j, const std::string& key, const std::string& where) {
  const json& v = field(j, key, where);
  XLSTM_CHECK(v.is_string(), ValueError, where, ": field '", key, "' must be a string, got ",
              brief(v));
  return v.get<std::string>();
}
inline std::string get_string(const json& j, const std::string& key, const std::string& where,
                              const std::string& def) {
  return has(j, key) ? get_string(j, key, where) : def;
}
// String that must be one of `choices`.
inline std::string get_enum(const json& j, const std::string& key, const std::string& where,
                            std::initializer_list<const char*> choices) {
  const std::string s = get_string(j, key, where);
  std::string list;
  for (const char* c : choices) {
    if (s == c) return s;
    list += (list.empty() ? "" : ", ") + std::string(c);
  }
  throw ValueError(str(where, ": field '", key, "' must be one of ", list, "; got \"", s, "\""));
}

inline const json& get_array(const json& j, const std::string& key, const std::string& where) {
  const json& v = field(j, key, where);
  XLSTM_CHECK(v.is_array(), ValueError, where, ": field '", key, "' must be an array, got ",
              brief(v));
  return v;
}
inline const json& get_object(const json& j, const std::string& key, const std::string& where) {
  const json& v = field(j, key, where);
  XLSTM_CHECK(v.is_object(), ValueError, where, ": field '", key, "' must be an object, got ",
              brief(v));
  return v;
}

// Array of integers (e.g. "slstm_at": [1, 3]).
inline std::vector<int64_t> get_int_list(const json& j, const std::string& key,
                                         const std::string& where) {
  std::vector<int64_t> r;
  const json& a = get_array(j, key, where);
  for (size_t i = 0; i < a.size(); ++i) r.push_back(as_int(a[i], str(key, "[", i, "]"), where));
  return r;
}

// Rejects fields outside `known` (catches typos such as "hiden_size").
inline void check_known_fields(const json& j, std::initializer_list<const char*> known,
                               const std::string& where) {
  check_object(j, where);
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    XLSTM_CHECK(ok, ValueError, where, ": unknown field '", it.key(), "'");
  }
}

}  // namespace xlstm::json_cfg
