#include "conformance/kinds.h"

namespace xlstm::conformance {

void run_case_mlstm_kernel(const Case& c, Comparer&, ImplPrecision) { not_yet(c); }

}  // namespace xlstm::conformance
