#include "tune/space.h"

#include <algorithm>
#include <cmath>

#include "io/json_config.h"
#include "xlstm/error.h"

namespace xlstm {

using json = nlohmann::json;

const std::vector<std::string>& tune_managed_flags() {
  static const std::vector<std::string> k = {"out",     "resume", "steps", "minutes",
                                             "stop-at", "threads", "quiet", "help"};
  return k;
}

std::string normalize_flag_key(const std::string& key) {
  size_t b = 0;
  while (b < key.size() && key[b] == '-') ++b;
  std::string s = key.substr(b);
  std::replace(s.begin(), s.end(), '_', '-');
  return s;
}

namespace {

const char* kDists = "log_uniform, uniform, int, log_int or choice";

// [lo, hi] of a range distribution: two finite numbers.
void read_range(const json& v, const std::string& where, const std::string& key,
                const std::string& dist, ParamSpec& p) {
  XLSTM_CHECK(v.is_array() && v.size() == 2 && v[0].is_number() && v[1].is_number(), ValueError,
              where, ": '", key, "': ", dist, " needs [lo, hi] (two numbers), got ",
              json_cfg::brief(v));
  p.lo = v[0].get<double>();
  p.hi = v[1].get<double>();
  XLSTM_CHECK(std::isfinite(p.lo) && std::isfinite(p.hi), ValueError, where, ": '", key, "': ",
              dist, " range must be finite, got ", json_cfg::brief(v));
}

bool is_integral(double d) { return std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15; }

void check_value(const json& v, const ParamSpec& p, const std::string& where) {
  if (p.is_switch) {
    XLSTM_CHECK(v.is_boolean(), ValueError, where, ": '", p.key, "': --", p.key,
                " takes no value, so it can only be true (pass it) or false, got ",
                json_cfg::brief(v));
  } else {
    XLSTM_CHECK(v.is_number() || v.is_string(), ValueError, where, ": '", p.key,
                "': values must be numbers or strings, got ", json_cfg::brief(v));
    if (v.is_number())
      XLSTM_CHECK(std::isfinite(v.get<double>()), ValueError, where, ": '", p.key,
                  "': values must be finite, got ", json_cfg::brief(v));
  }
}

}  // namespace

SearchSpace parse_search_space(const json& j, const std::string& where, const FlagLookup& lookup) {
  XLSTM_CHECK(j.is_object(), ValueError, where, ": a search space must be a JSON object "
              "{\"flag\": {\"distribution\": ...}}, got ", json_cfg::brief(j));
  XLSTM_CHECK(!j.empty(), ValueError, where, ": the search space is empty; hint: e.g. "
              "{\"lr\": {\"log_uniform\": [1e-4, 1e-2]}}");
  SearchSpace s;
  for (auto it = j.begin(); it != j.end(); ++it) {
    ParamSpec p;
    p.key = normalize_flag_key(it.key());
    const std::string& key = it.key();
    XLSTM_CHECK(!p.key.empty(), ValueError, where, ": empty key");
    for (const auto& m : tune_managed_flags())
      XLSTM_CHECK(p.key != m, ValueError, where, ": '", key, "': --", m,
                  " is set by tune itself and cannot be searched");
    const FlagInfo fi = lookup ? lookup(p.key) : FlagInfo{true, true};
    XLSTM_CHECK(fi.known, ValueError, where, ": '", key, "' is not an `xlstm train` flag (no --",
                p.key, "); hint: keys are train flags without the dashes, e.g. lr, width, dropout");
    p.is_switch = !fi.takes_value;
    for (const auto& q : s.params)
      XLSTM_CHECK(q.key != p.key, ValueError, where, ": '", key, "' names --", p.key, " twice");
    const json& v = it.value();
    if (!v.is_object()) {  // a fixed value
      check_value(v, p, where);
      p.kind = DistKind::Fixed;
      p.values = {v};
      s.params.push_back(p);
      continue;
    }
    XLSTM_CHECK(v.size() == 1, ValueError, where, ": '", key,
                "' must have exactly one distribution (", kDists, "), got ", json_cfg::brief(v));
    const std::string dist = v.begin().key();
    const json& a = v.begin().value();
    if (dist == "choice") {
      XLSTM_CHECK(a.is_array() && !a.empty(), ValueError, where, ": '", key,
                  "': choice needs a non-empty list of values, got ", json_cfg::brief(a));
      p.kind = DistKind::Choice;
      for (const auto& c : a) {
        check_value(c, p, where);
        p.values.push_back(c);
      }
    } else if (dist == "log_uniform" || dist == "uniform" || dist == "int" || dist == "log_int") {
      XLSTM_CHECK(!p.is_switch, ValueError, where, ": '", key, "': --", p.key,
                  " takes no value; use {\"choice\": [true, false]}");
      read_range(a, where, key, dist, p);
      if (dist == "uniform") {
        p.kind = DistKind::Uniform;
        XLSTM_CHECK(p.lo < p.hi, ValueError, where, ": '", key, "': uniform needs lo < hi, got [",
                    p.lo, ", ", p.hi, "]");
      } else if (dist == "log_uniform") {
        p.kind = DistKind::LogUniform;
        XLSTM_CHECK(p.lo > 0 && p.lo < p.hi, ValueError, where, ": '", key,
                    "': log_uniform needs 0 < lo < hi, got [", p.lo, ", ", p.hi, "]");
      } else {
        p.kind = dist == "int" ? DistKind::Int : DistKind::LogInt;
        XLSTM_CHECK(is_integral(p.lo) && is_integral(p.hi), ValueError, where, ": '", key, "': ",
                    dist, " needs integer bounds, got ", json_cfg::brief(a));
        XLSTM_CHECK(p.lo <= p.hi, ValueError, where, ": '", key, "': ", dist,
                    " needs lo <= hi, got [", p.lo, ", ", p.hi, "]");
        XLSTM_CHECK(p.kind == DistKind::Int || p.lo >= 1, ValueError, where, ": '", key,
                    "': log_int needs lo >= 1, got ", p.lo);
      }
    } else {
      throw ValueError(str(where, ": '", key, "': unknown distribution '", dist, "'; known: ",
                           kDists, " (or a plain value to fix the flag)"));
    }
    s.params.push_back(p);
  }
  std::sort(s.params.begin(), s.params.end(),
            [](const ParamSpec& a, const ParamSpec& b) { return a.key < b.key; });
  return s;
}

SearchSpace read_search_space(const std::string& path, const FlagLookup& lookup) {
  return parse_search_space(json_cfg::read_file(path), path, lookup);
}

json sample_param(const ParamSpec& p, Rng& rng) {
  switch (p.kind) {
    case DistKind::Fixed: return p.values[0];
    case DistKind::Choice: return p.values[(size_t)rng.below(p.values.size())];
    case DistKind::Uniform: return rng.uniform(p.lo, p.hi);
    case DistKind::LogUniform: {
      const double v = std::exp(rng.uniform(std::log(p.lo), std::log(p.hi)));
      return std::min(p.hi, std::max(p.lo, v));  // exp(log(x)) may round just outside
    }
    case DistKind::Int: {
      const int64_t lo = (int64_t)p.lo, n = (int64_t)p.hi - lo + 1;
      return lo + (int64_t)rng.below((uint64_t)n);
    }
    case DistKind::LogInt: {
      const double u = std::exp(rng.uniform(std::log(p.lo), std::log(p.hi + 1.0)));
      return std::min((int64_t)p.hi, std::max((int64_t)p.lo, (int64_t)std::floor(u)));
    }
  }
  throw InternalError("unknown distribution kind");
}

json sample_params(const SearchSpace& space, Rng& rng) {
  json r = json::object();
  for (const auto& p : space.params) r[p.key] = sample_param(p, rng);
  return r;
}

std::vector<std::string> params_to_flags(const SearchSpace& space, const json& params) {
  std::vector<std::string> r;
  for (const auto& p : space.params) {
    XLSTM_CHECK(params.contains(p.key), ValueError, "trial parameters lack '", p.key, "'");
    const json& v = params.at(p.key);
    if (p.is_switch) {
      if (v.is_boolean() && v.get<bool>()) r.push_back("--" + p.key);
      continue;
    }
    r.push_back("--" + p.key);
    r.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  }
  return r;
}

}  // namespace xlstm
