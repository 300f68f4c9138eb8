#include "conformance/runner.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <ostream>

#include "conformance/kinds.h"

namespace xlstm::conformance {

namespace fs = std::filesystem;

const std::map<std::string, KindRunner>& kind_runners() {
  static const std::map<std::string, KindRunner> m = {
      {"lstm", run_case_lstm},
      {"slstm_cell", run_case_slstm_cell},
      {"slstm_layer", run_case_slstm_layer},
      {"mlstm_kernel", run_case_mlstm_kernel},
      {"mlstm_layer", run_case_mlstm_layer},
      {"mlstm_block", run_case_mlstm_block},
      {"slstm_block", run_case_slstm_block},
      {"xlstm_lm", run_case_xlstm_lm},
      {"xlstm_lm_step", run_case_xlstm_lm_step},
      {"xlstm_large", run_case_xlstm_large},
  };
  return m;
}

std::string run_one(const std::string& file, ImplPrecision prec, int* status) {
  const std::string stem = fs::path(file).stem().string();
  try {
    Case c(file);
    auto& runners = kind_runners();
    auto it = runners.find(c.kind());
    if (it == runners.end()) {
      // Kinds of the format (conformance README §5) that this build does not implement yet
      // are skipped and counted; any other kind is a malformed case.
      static const char* kDocumented[] = {"lstm", "slstm_cell", "slstm_layer", "slstm_block",
                                          "mlstm_kernel", "mlstm_layer", "mlstm_block",
                                          "xlstm_lm", "xlstm_lm_step", "xlstm_large"};
      bool documented = false;
      for (const char* k : kDocumented) documented |= c.kind() == k;
      if (!documented) {
        *status = 0;
        return str("FAIL ", c.name(), " error: ", file, ": unknown kind '", c.kind(), "'");
      }
      *status = -1;
      return str("SKIP ", c.name(), " kind=", c.kind());
    }
    Comparer cmp(c, prec);
    it->second(c, cmp, prec);
    if (!cmp.ok()) {
      *status = 0;
      return str("FAIL ", c.name(), " ", cmp.failure());
    }
    if (cmp.checked() == 0) {
      *status = 0;
      return str("FAIL ", c.name(), " no tensor was compared");
    }
    *status = 1;
    char buf[128];
    std::snprintf(buf, sizeof buf, " max_abs_err=%.3g max_rel_err=%.3g", cmp.max_abs_err(),
                  cmp.max_rel_err());
    return str("PASS ", c.name(), buf);
  } catch (const std::exception& e) {
    *status = 0;
    return str("FAIL ", stem, " error: ", e.what());
  }
}

Summary run(const std::vector<std::string>& paths, ImplPrecision prec, std::ostream& out) {
  std::vector<std::string> files;
  for (auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> inner;
      for (auto& e : fs::directory_iterator(p))
        if (e.path().extension() == ".safetensors") inner.push_back(e.path().string());
      std::sort(inner.begin(), inner.end());
      files.insert(files.end(), inner.begin(), inner.end());
    } else {
      files.push_back(p);
    }
  }
  Summary s;
  for (auto& f : files) {
    int st = 0;
    out << run_one(f, prec, &st) << "\n" << std::flush;
    if (st == 1) ++s.passed;
    else if (st == 0) ++s.failed;
    else ++s.skipped;
  }
  out << s.passed << " passed, " << s.failed << " failed";
  if (s.skipped) out << ", " << s.skipped << " skipped";
  out << "\n";
  return s;
}

}  // namespace xlstm::conformance
