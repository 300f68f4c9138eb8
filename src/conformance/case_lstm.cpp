// Kind `lstm` (torch.nn.LSTM), conformance README §5.
#include "conformance/kinds.h"
#include "nn/lstm.h"

namespace xlstm::conformance {

namespace {

template <class T>
void run(const Case& c, Comparer& cmp) {
  const DType dt = DTypeOf<T>::value;
  const auto& j = c.config();
  LSTMConfig cfg;
  cfg.input_size = j.at("input_size").get<int64_t>();
  cfg.hidden_size = j.at("hidden_size").get<int64_t>();
  cfg.num_layers = j.at("num_layers").get<int64_t>();
  cfg.bias = j.at("bias").get<bool>();
  cfg.batch_first = j.at("batch_first").get<bool>();
  cfg.bidirectional = j.at("bidirectional").get<bool>();
  cfg.dropout = j.at("dropout").get<double>();
  cfg.proj_size = j.at("proj_size").get<int64_t>();
  LSTM<T> m(cfg);
  m.load_params(c.with_prefix("param.", dt), c.path());

  const Tensor x = c.get("input", dt);
  const bool has_state = c.has("state_in.h") || c.has("state_in.c");
  Tensor h0, c0;
  if (has_state) h0 = c.get("state_in.h", dt), c0 = c.get("state_in.c", dt);
  // dropout is 0 in every case; Eval also keeps the run deterministic.
  auto o = m.forward(x, h0, c0, LstmMode::Eval);
  cmp.check("expected.output", o.output);
  cmp.check("expected.state_out.h", o.h_n);
  cmp.check("expected.state_out.c", o.c_n);
  if (!c.has_grads()) return;

  Tensor dh_n, dc_n;
  if (c.has("grad_state_out.h")) dh_n = c.get("grad_state_out.h", dt, o.h_n.shape());
  if (c.has("grad_state_out.c")) dc_n = c.get("grad_state_out.c", dt, o.c_n.shape());
  m.zero_grad();
  auto g = m.backward(c.get("grad_output", dt, o.output.shape()), dh_n, dc_n);
  cmp.check("expected.grad.input", g.dx);
  if (has_state) {
    cmp.check("expected.grad.state_in.h", g.dh0);
    cmp.check("expected.grad.state_in.c", g.dc0);
  }
  for (auto& p : m.params()) cmp.check("expected.grad.param." + p.name, *p.grad);
}

}  // namespace

void run_case_lstm(const Case& c, Comparer& cmp, ImplPrecision prec) {
  if (prec == ImplPrecision::Same && c.dtype() == DType::F64)
    run<double>(c, cmp);
  else
    run<float>(c, cmp);
}

}  // namespace xlstm::conformance
