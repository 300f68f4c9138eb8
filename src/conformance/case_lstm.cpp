#include "conformance/kinds.h"

namespace xlstm::conformance {

void run_case_lstm(const Case& c, Comparer&, ImplPrecision) { not_yet(c); }

}  // namespace xlstm::conformance
