// One runner per case kind (conformance README §5), each in its own file case_<kind>.cpp.
#pragma once
#include "conformance/runner.h"

namespace xlstm::conformance {

void run_case_lstm(const Case& c, Comparer& cmp, ImplPrecision prec);
void run_case_slstm_cell(const Case& c, Comparer& cmp, ImplPrecision prec);
void run_case_slstm_layer(const Case& c, Comparer& cmp, ImplPrecision prec);
void run_case_mlstm_kernel(const Case& c, Comparer& cmp, ImplPrecision prec);
void run_case_mlstm_layer(const Case& c, Comparer& cmp, ImplPrecision prec);
void run_case_mlstm_block(const Case& c, Comparer& cmp, ImplPrecision prec);
void run_case_slstm_block(const Case& c, Comparer& cmp, ImplPrecision prec);
void run_case_xlstm_lm(const Case& c, Comparer& cmp, ImplPrecision prec);
void run_case_xlstm_lm_step(const Case& c, Comparer& cmp, ImplPrecision prec);
void run_case_xlstm_large(const Case& c, Comparer& cmp, ImplPrecision prec);

// Shared helper (case_slstm_cell.cpp): checks that the aux.cuda.* / aux.ext.* layouts of the
// sLSTM cell at `prefix` convert to the same parameters as param.*.
void slstm_check_aux_layouts(const Case& c, Comparer& cmp, const std::string& prefix, DType dt);


}  // namespace xlstm::conformance
