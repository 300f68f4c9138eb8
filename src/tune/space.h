// Search spaces of `xlstm tune`: which `xlstm train` flags to vary and how to draw them.
//
//   {"lr":       {"log_uniform": [1e-4, 1e-2]},   lo > 0, lo < hi; drawn as exp(U(log lo, log hi))
//    "dropout":  {"uniform": [0, 0.3]},           lo < hi; U(lo, hi)
//    "blocks":   {"int": [1, 4]},                 integers lo <= v <= hi, each equally likely
//    "width":    {"log_int": [32, 256]},          integers lo >= 1, log-uniform: floor(exp(U(log lo, log(hi+1))))
//    "model":    {"choice": ["lstm-tiny", "xlstm-1-1-tiny"]},  one of the listed values
//    "batch-size": 16}                            a plain value: fixed for every trial
//
// Keys are `xlstm train` flags without the leading "--" ("weight_decay" and "weight-decay" both
// mean --weight-decay). Values of a choice may be numbers, strings or true/false (true/false
// only for flags that take no value: true passes the flag, false leaves it out).
// Keys are drawn in alphabetical order from one seeded Rng, so a space and a seed fix every trial.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "xlstm/rng.h"

namespace xlstm {

enum class DistKind { LogUniform, Uniform, Int, LogInt, Choice, Fixed };

struct ParamSpec {
  std::string key;                  // the flag without "--", dashes (e.g. "weight-decay")
  DistKind kind = DistKind::Fixed;
  double lo = 0, hi = 0;            // LogUniform, Uniform, Int, LogInt: the closed range
  std::vector<nlohmann::json> values;  // Choice: the candidates; Fixed: the one value
  bool is_switch = false;           // the flag takes no value (only true/false allowed)
};

struct SearchSpace {
  std::vector<ParamSpec> params;    // sorted by key
};

// What the space parser needs to know about a train flag: nullopt-like `known` = false for an
// unknown flag; `takes_value` = false for a switch.
struct FlagInfo {
  bool known = false;
  bool takes_value = true;
};
using FlagLookup = std::function<FlagInfo(const std::string& flag_without_dashes)>;

// Flags a search space may not set: tune sets them itself (--out, --steps, --resume, ...).
const std::vector<std::string>& tune_managed_flags();

// Parses a space. ValueError naming `where` (the file) and the key for: a non-object space or
// entry, an empty space, an unknown flag (per `lookup`), a managed flag, an unknown
// distribution, a range that is not two finite numbers lo < hi (lo <= hi for int), log ranges
// with lo <= 0, an empty choice list, a choice value that is not a number/string/bool, a
// true/false for a flag that takes a value or a number/string for a switch.
SearchSpace parse_search_space(const nlohmann::json& j, const std::string& where,
                               const FlagLookup& lookup);
SearchSpace read_search_space(const std::string& path, const FlagLookup& lookup);

// One draw of every parameter: {"key": value} (numbers as JSON numbers, ints as integers).
nlohmann::json sample_params(const SearchSpace& space, Rng& rng);
// Draws of a single spec (exposed for tests).
nlohmann::json sample_param(const ParamSpec& p, Rng& rng);

// The train flags of a draw, in key order: {"lr": 0.001, "width": 64} -> --lr 0.001 --width 64.
// Doubles are written in the shortest form that reads back to the same double; a switch set to
// true gives just "--key", false gives nothing.
std::vector<std::string> params_to_flags(const SearchSpace& space, const nlohmann::json& params);

// "weight_decay" -> "weight-decay"; strips leading dashes.
std::string normalize_flag_key(const std::string& key);

}  // namespace xlstm
