#include "conformance/kinds.h"
#include "models/xlstm_config.h"
#include "nn/mlstm.h"

namespace xlstm::conformance {

template <class T>
static void run(const Case& c, Comparer& cmp) {
  const DType dt = DTypeOf<T>::value;
  MLSTMLayer<T> layer(mlstm_layer_config_from_json(c.config(), c.path()));
  layer.load_params(c.with_prefix("param.", dt), c.path());
  Tensor x = c.get("input", dt);
  Tensor y = layer.forward(x, Mode::Eval);
  cmp.check("expected.output", y);
  if (!c.has_grads()) return;
  layer.zero_grad();
  Tensor dx = layer.backward(c.get("grad_output", dt, y.shape()));
  cmp.check("expected.grad.input", dx);
  for (auto& p : layer.params()) cmp.check("expected.grad.param." + p.name, *p.grad);
}

void run_case_mlstm_layer(const Case& c, Comparer& cmp, ImplPrecision prec) {
  if (prec == ImplPrecision::Same && c.dtype() == DType::F64) run<double>(c, cmp);
  else run<float>(c, cmp);
}

}  // namespace xlstm::conformance
