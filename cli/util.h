// Small helpers shared by the subcommands.
#pragma once
#include <omp.h>

#include <string>

namespace xlstm::cli {

// Applies --threads (0 = leave OMP_NUM_THREADS / all cores).
inline void set_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

// "1h02m", "3m05s", "12s"
inline std::string fmt_duration(double s) {
  if (!(s >= 0)) return "?";
  long t = (long)(s + 0.5);
  char b[32];
  if (t >= 3600) std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(b, sizeof b, "%lds", t);
  return b;
}

// The escapes \n, \t and \\ in a flag value (e.g. --doc-sep '\n\n') -> the characters.
inline std::string unescape_flag(const std::string& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 'n' || s[i + 1] == 't' || s[i + 1] == '\\')) {
      r += s[i + 1] == 'n' ? '\n' : s[i + 1] == 't' ? '\t' : '\\';
      ++i;
    } else {
      r += s[i];
    }
  }
  return r;
}

}  // namespace xlstm::cli
