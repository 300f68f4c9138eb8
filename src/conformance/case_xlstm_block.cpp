// Kinds `mlstm_block` and `slstm_block` (xlstm.blocks.*.block), README §5.
#include "conformance/kinds.h"
#include "models/xlstm_config.h"

namespace xlstm::conformance {

namespace {

template <class T>
void run(const Case& c, Comparer& cmp, const BlockConfig& cfg) {
  const DType dt = DTypeOf<T>::value;
  XLSTMBlock<T> block(cfg);
  auto params = c.with_prefix("param.", dt);
  if (cfg.kind == BlockKind::SLSTM) {
    slstm_convert_state_dict(params);
    slstm_check_aux_layouts(c, cmp, "xlstm.slstm_cell.", dt);
  }
  block.load_params(params, c.path());
  Tensor y = block.forward(c.get("input", dt), Mode::Eval);
  cmp.check("expected.output", y);
  if (!c.has_grads()) return;
  block.zero_grad();
  Tensor dx = block.backward(c.get("grad_output", dt, y.shape()));
  cmp.check("expected.grad.input", dx);
  for (auto& p : block.params()) cmp.check("expected.grad.param." + p.name, *p.grad);
}

template <class F>
void dispatch(const Case& c, ImplPrecision prec, F&& f) {
  if (prec == ImplPrecision::Same && c.dtype() == DType::F64) f(double{});
  else f(float{});
}

}  // namespace

void run_case_mlstm_block(const Case& c, Comparer& cmp, ImplPrecision prec) {
  const BlockConfig cfg = mlstm_block_config_from_json(c.config(), c.path());
  dispatch(c, prec, [&](auto t) { run<decltype(t)>(c, cmp, cfg); });
}

void run_case_slstm_block(const Case& c, Comparer& cmp, ImplPrecision prec) {
  BlockConfig cfg = slstm_block_config_from_json(c.config(), c.path());
  dispatch(c, prec, [&](auto t) { run<decltype(t)>(c, cmp, cfg); });
}

}  // namespace xlstm::conformance
