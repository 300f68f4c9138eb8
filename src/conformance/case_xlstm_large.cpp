// Kind `xlstm_large` (README §5): xlstm.xlstm_large.model.xLSTMLarge, mode "train" (chunkwise
// kernel), logits, final (c, n, m) per block, and exact parameter gradients.
#include "conformance/kinds.h"
#include "models/xlstm_large.h"

namespace xlstm::conformance {

namespace {

template <class T>
void run(const Case& c, Comparer& cmp) {
  const DType dt = DTypeOf<T>::value;
  XLSTMLarge<T> model(xlstm_large_config_from_json(c.config(), c.path()));
  model.enable_training();
  std::map<std::string, Tensor> params;
  for (auto& [name, t] : c.with_prefix("param.", dt)) params[xlstm_large_hf_name(name)] = t;
  model.load_params(params, c.path());
  XLSTMLargeState state;
  Tensor logits = model.forward(c.get("input", DType::I64), Mode::Train, nullptr, &state);
  cmp.check("expected.output", logits);
  for (size_t l = 0; l < state.blocks.size(); ++l) {
    const MlstmState& s = state.blocks[l];
    const std::string p = str("expected.state_out.block_", l, ".");
    cmp.check(p + "c", s.c);
    cmp.check(p + "n", s.n);
    cmp.check(p + "m", s.m.reshape({s.m.dim(0), s.m.dim(1), 1}));
  }
  if (!c.has_grads()) return;
  model.zero_grad();
  model.backward(c.get("grad_output", dt, logits.shape()));
  // Official names: the embedding is `embedding.weight` there.
  for (auto& p : model.params()) {
    const std::string official =
        p.name == "backbone.embeddings.weight" ? "embedding.weight" : p.name;
    cmp.check("expected.grad.param." + official, *p.grad);
  }
}

}  // namespace

void run_case_xlstm_large(const Case& c, Comparer& cmp, ImplPrecision prec) {
  if (prec == ImplPrecision::Same && c.dtype() == DType::F64) run<double>(c, cmp);
  else run<float>(c, cmp);
}

}  // namespace xlstm::conformance
