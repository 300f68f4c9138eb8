// Kind `slstm_layer` (xlstm.blocks.slstm.layer.sLSTMLayer, vanilla backend), README §5 and §6.1.
#include "conformance/kinds.h"
#include "nn/slstm.h"

namespace xlstm::conformance {

// Defined in case_slstm_cell.cpp.
SLSTMCellConfig slstm_cell_config(const nlohmann::json& j);
void slstm_check_aux_layouts(const Case& c, Comparer& cmp, const std::string& prefix, DType dt);

namespace {

template <class T>
void run(const Case& c, Comparer& cmp) {
  const DType dt = DTypeOf<T>::value;
  const auto& j = c.config();
  const SLSTMCellConfig cc = slstm_cell_config(j);
  SLSTMLayerConfig cfg;
  cfg.embedding_dim = j.at("embedding_dim").get<int64_t>();
  cfg.num_heads = cc.num_heads;
  cfg.conv1d_kernel_size = j.at("conv1d_kernel_size").get<int64_t>();
  cfg.group_norm_weight = j.value("group_norm_weight", true);
  cfg.dropout = j.value("dropout", 0.0);
  cfg.bias_init = cc.bias_init;
  cfg.recurrent_weight_init = cc.recurrent_weight_init;
  cfg.block_idx = cc.block_idx;
  cfg.num_blocks = cc.num_blocks;
  SLSTMLayer<T> m(cfg);
  auto params = c.with_prefix("param.", dt);
  slstm_convert_state_dict(params);
  m.load_params(params, c.path());
  slstm_check_aux_layouts(c, cmp, "slstm_cell.", dt);

  const Tensor x = c.get("input", dt);
  SLSTMLayerState s0;
  if (c.has("state_in.conv_state")) s0.conv = c.get("state_in.conv_state", dt);
  if (c.has("state_in.slstm_state")) s0.slstm = c.get("state_in.slstm_state", dt);
  auto o = m.forward(x, s0);
  cmp.check("expected.output", o.output);
  cmp.check("expected.state_out.slstm_state", o.state.slstm);
  if (c.has("expected.state_out.conv_state")) cmp.check("expected.state_out.conv_state", o.state.conv);
  if (!c.has_grads()) return;

  SLSTMLayerState ds;
  if (c.has("grad_state_out.slstm_state"))
    ds.slstm = c.get("grad_state_out.slstm_state", dt, o.state.slstm.shape());
  if (c.has("grad_state_out.conv_state"))
    ds.conv = c.get("grad_state_out.conv_state", dt, o.state.conv.shape());
  m.zero_grad();
  auto g = m.backward(c.get("grad_output", dt, o.output.shape()), ds);
  cmp.check("expected.grad.input", g.input);
  if (c.has("expected.grad.state_in.slstm_state"))
    cmp.check("expected.grad.state_in.slstm_state", g.state.slstm);
  if (c.has("expected.grad.state_in.conv_state"))
    cmp.check("expected.grad.state_in.conv_state", g.state.conv);
  for (auto& p : m.params()) cmp.check("expected.grad.param." + p.name, *p.grad);
}

}  // namespace

void run_case_slstm_layer(const Case& c, Comparer& cmp, ImplPrecision prec) {
  if (prec == ImplPrecision::Same && c.dtype() == DType::F64) run<double>(c, cmp);
  else run<float>(c, cmp);
}

}  // namespace xlstm::conformance
