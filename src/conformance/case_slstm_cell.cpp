// Kind `slstm_cell` (xlstm.blocks.slstm.cell.sLSTMCell, vanilla backend), conformance README §5.
// Also checks the checkpoint import: aux.cuda.* / aux.ext.* converted to the vanilla layout must
// equal param.* (README §6.3).
#include "conformance/kinds.h"
#include "nn/slstm.h"

namespace xlstm::conformance {

// Shared with case_slstm_layer.cpp.
SLSTMCellConfig slstm_cell_config(const nlohmann::json& j);
void slstm_check_aux_layouts(const Case& c, Comparer& cmp, const std::string& prefix, DType dt);

SLSTMCellConfig slstm_cell_config(const nlohmann::json& j) {
  XLSTM_CHECK(j.value("function", std::string("slstm")) == "slstm", NotImplementedError,
              "[slstm] function '", j.value("function", std::string()),
              "' is not supported; hint: only function=\"slstm\"");
  XLSTM_CHECK(!j.value("gradient_recurrent_cut", false), NotImplementedError,
              "[slstm] gradient_recurrent_cut=true is not supported");
  for (const char* k : {"gradient_recurrent_clipval", "forward_clipval"})
    XLSTM_CHECK(!j.contains(k) || j[k].is_null(), NotImplementedError, "[slstm] ", k,
                " is not supported; hint: leave it null");
  SLSTMCellConfig cfg;
  cfg.hidden_size = j.at("hidden_size").get<int64_t>();
  cfg.num_heads = j.at("num_heads").get<int64_t>();
  cfg.bias_init = j.value("bias_init", cfg.bias_init);
  cfg.recurrent_weight_init = j.value("recurrent_weight_init", cfg.recurrent_weight_init);
  cfg.block_idx = j.value("_block_idx", (int64_t)0);
  cfg.num_blocks = j.value("_num_blocks", (int64_t)1);
  return cfg;
}

void slstm_check_aux_layouts(const Case& c, Comparer& cmp, const std::string& prefix, DType dt) {
  const std::string pR = "param." + prefix + "_recurrent_kernel_", pB = "param." + prefix + "_bias_";
  const std::string cR = "aux.cuda." + prefix + "_recurrent_kernel_",
                    cB = "aux.cuda." + prefix + "_bias_";
  if (c.has(cR) && c.has(cB)) {
    std::map<std::string, Tensor> sd{{"_recurrent_kernel_", c.get(cR, dt)},
                                     {"_bias_", c.get(cB, dt)}};
    XLSTM_CHECK(slstm_param_layout(sd["_recurrent_kernel_"].shape()) == SlstmParamLayout::Cuda,
                ValueError, "[slstm] ", cR, " is not recognised as the CUDA layout");
    slstm_convert_state_dict(sd);
    cmp.check(pR, sd["_recurrent_kernel_"]);
    cmp.check(pB, sd["_bias_"]);
  }
  const std::string eR = "aux.ext." + prefix + "recurrent_kernel", eB = "aux.ext." + prefix + "bias";
  if (c.has(eR) && c.has(eB)) {
    std::map<std::string, Tensor> sd{{"recurrent_kernel", c.get(eR, dt)}, {"bias", c.get(eB, dt)}};
    slstm_convert_state_dict(sd);
    cmp.check(pR, sd.at("_recurrent_kernel_"));
    cmp.check(pB, sd.at("_bias_"));
  }
}

namespace {

template <class T>
void run(const Case& c, Comparer& cmp) {
  const DType dt = DTypeOf<T>::value;
  SLSTMCell<T> cell(slstm_cell_config(c.config()));
  auto params = c.with_prefix("param.", dt);
  slstm_convert_state_dict(params);
  cell.load_params(params, c.path());
  slstm_check_aux_layouts(c, cmp, "", dt);

  const Tensor x = c.get("input", dt);
  Tensor s0;
  if (c.has("state_in.slstm_state")) s0 = c.get("state_in.slstm_state", dt);
  auto o = cell.forward(x, s0);
  cmp.check("expected.output", o.output);
  cmp.check("expected.state_out.slstm_state", o.state);
  if (!c.has_grads()) return;

  Tensor ds;
  if (c.has("grad_state_out.slstm_state"))
    ds = c.get("grad_state_out.slstm_state", dt, o.state.shape());
  cell.zero_grad();
  auto g = cell.backward(c.get("grad_output", dt, o.output.shape()), ds);
  cmp.check("expected.grad.input", g.input);
  if (c.has("expected.grad.state_in.slstm_state"))
    cmp.check("expected.grad.state_in.slstm_state", g.state);
  for (auto& p : cell.params()) cmp.check("expected.grad.param." + p.name, *p.grad);
}

}  // namespace

void run_case_slstm_cell(const Case& c, Comparer& cmp, ImplPrecision prec) {
  if (prec == ImplPrecision::Same && c.dtype() == DType::F64) run<double>(c, cmp);
  else run<float>(c, cmp);
}

}  // namespace xlstm::conformance
