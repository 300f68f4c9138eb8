// Kind mlstm_kernel (conformance README §5): the bare mLSTM kernels of mlstm_kernels and of
// xlstm's own backends. Our backward is exact, so `expected.grad.*` (autograd) is compared and
// `expected.grad_custbw.*` (the official hand-written backward that treats the normaliser and
// m as constants, README §6.5) is ignored on purpose; see cpu/mlstm.h.
#include <string>

#include "conformance/kinds.h"
#include "cpu/mlstm.h"

namespace xlstm::conformance {

namespace {

struct Spec {
  MlstmForm form;
  ScaleOn scale;
  bool step;  // tensors lack the S axis (or have S = 1 with extra unit axes)
};

Spec spec_of(const Case& c, const std::string& fn) {
  if (fn == "parallel") return {MlstmForm::Parallel, ScaleOn::Q, false};
  if (fn == "chunkwise") return {MlstmForm::Chunkwise, ScaleOn::Q, false};
  if (fn == "recurrent_step") return {MlstmForm::Recurrent, ScaleOn::Q, true};
  if (fn == "xlstm_parallel_stabilized_simple") return {MlstmForm::Parallel, ScaleOn::K, false};
  if (fn == "xlstm_recurrent_step_stabilized_simple") return {MlstmForm::Recurrent, ScaleOn::K, true};
  throw NotImplementedError(str(c.path(), ": mlstm_kernel function '", fn,
                                "' is not supported; hint: see conformance README §5"));
}

}  // namespace

void run_case_mlstm_kernel(const Case& c, Comparer& cmp, ImplPrecision prec) {
  const std::string fn = c.config().at("function").get<std::string>();
  const Spec sp = spec_of(c, fn);
  const DType dt = prec == ImplPrecision::Same && c.dtype() == DType::F64 ? DType::F64 : DType::F32;

  // Every case is brought to the kernel layout: q, k (B,NH,S,DHQK), v (B,NH,S,DHV), i, f
  // (B,NH,S), state c (B,NH,DHQK,DHV), n (B,NH,DHQK), m (B,NH). Reshapes only drop unit axes.
  Tensor q = c.get("input.q", dt), k = c.get("input.k", dt), v = c.get("input.v", dt);
  const int64_t B = q.dim(0), NH = q.dim(1);
  const int64_t S = sp.step ? 1 : q.dim(2);
  const int64_t DHQK = q.dim(-1), DHV = v.dim(-1);
  q = q.reshape({B, NH, S, DHQK});
  k = k.reshape({B, NH, S, DHQK});
  v = v.reshape({B, NH, S, DHV});
  Tensor i = c.get("input.i", dt).reshape({B, NH, S});
  Tensor f = c.get("input.f", dt).reshape({B, NH, S});

  MlstmOptions opt;
  opt.eps = c.config().value("eps", 1e-6);
  opt.scale_on = sp.scale;
  if (sp.form == MlstmForm::Chunkwise) opt.chunk_size = c.config().at("chunk_size").get<int64_t>();

  MlstmState sin;
  const bool has_state = c.has("state_in.c");
  if (has_state) {
    sin.c = c.get("state_in.c", dt).reshape({B, NH, DHQK, DHV});
    sin.n = c.get("state_in.n", dt).reshape({B, NH, DHQK});
    sin.m = c.get("state_in.m", dt).reshape({B, NH});
  }
  const bool want_state = c.has("expected.state_out.c");
  MlstmState sout;
  MlstmContext ctx;
  Tensor h = mlstm_forward(sp.form, q, k, v, i, f, opt, has_state ? &sin : nullptr,
                           want_state ? &sout : nullptr, c.has_grads() ? &ctx : nullptr);
  cmp.check("expected.output", h);
  if (want_state) {
    cmp.check("expected.state_out.c", sout.c);
    cmp.check("expected.state_out.n", sout.n);
    cmp.check("expected.state_out.m", sout.m);
  }
  if (!c.has_grads()) return;

  // loss = sum(h * grad_output): the state outputs carry no gradient in these cases.
  Tensor dh = c.get("grad_output", dt).reshape({B, NH, S, DHV});
  MlstmTensorGrads g = mlstm_backward(ctx, dh);
  cmp.check("expected.grad.input.q", g.dq);
  cmp.check("expected.grad.input.k", g.dk);
  cmp.check("expected.grad.input.v", g.dv);
  cmp.check("expected.grad.input.i", g.di);
  cmp.check("expected.grad.input.f", g.df);
  if (has_state) {
    cmp.check("expected.grad.state_in.c", g.dstate_in.c);
    cmp.check("expected.grad.state_in.n", g.dstate_in.n);
    cmp.check("expected.grad.state_in.m", g.dstate_in.m);
  }
}

}  // namespace xlstm::conformance
