// The conformance runner behind `xlstm conformance PATH...`.
#pragma once
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "conformance/case.h"

namespace xlstm::conformance {

// Builds the module of a case, loads its param.* tensors, runs forward (and backward when the
// case has grads) and checks every expected.* tensor with `cmp`. Throws on malformed cases.
using KindRunner = std::function<void(const Case&, Comparer&, ImplPrecision)>;

// Kind name -> runner, for the kinds this build implements.
const std::map<std::string, KindRunner>& kind_runners();

struct Summary { int passed = 0, failed = 0, skipped = 0; };

// Runs every case found in `paths` (files, or folders scanned for *.safetensors, sorted). Prints
// one line per case to `out` ("PASS name max_abs_err=.. max_rel_err=..", "FAIL name ...",
// "SKIP name kind=...") and a final "N passed, M failed, K skipped" line.
Summary run(const std::vector<std::string>& paths, ImplPrecision prec, std::ostream& out);

// Runs one case file; returns the line that `run` prints for it.
std::string run_one(const std::string& file, ImplPrecision prec, int* status /*1 pass,0 fail,-1 skip*/);

}  // namespace xlstm::conformance
