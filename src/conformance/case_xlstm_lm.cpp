// Kinds `xlstm_lm` (parallel forward + grads) and `xlstm_lm_step` (recurrent step mode),
// README §5.
#include <cstring>

#include "conformance/kinds.h"
#include "models/xlstm_lm.h"

namespace xlstm::conformance {

namespace {

template <class T>
std::map<std::string, Tensor> load(const Case& c, Comparer& cmp, XLSTMLM<T>& lm) {
  const DType dt = DTypeOf<T>::value;
  auto params = c.with_prefix("param.", dt);
  slstm_convert_state_dict(params);
  for (size_t i = 0; i < lm.config().blocks.size(); ++i)
    if (lm.config().blocks[i].kind == BlockKind::SLSTM)
      slstm_check_aux_layouts(c, cmp, str("xlstm_block_stack.blocks.", i, ".xlstm.slstm_cell."), dt);
  lm.load_params(params, c.path());
  return params;
}

template <class T>
void run_parallel(const Case& c, Comparer& cmp) {
  XLSTMLM<T> lm(xlstm_lm_config_from_json(c.config(), c.path()));
  load(c, cmp, lm);
  Tensor logits = lm.forward(c.get("input", DType::I64), Mode::Eval);
  cmp.check("expected.output", logits);
  if (!c.has_grads()) return;
  lm.zero_grad();
  lm.backward(c.get("grad_output", DTypeOf<T>::value, logits.shape()));
  for (auto& p : lm.params()) cmp.check("expected.grad.param." + p.name, *p.grad);
}

// Our carried conv state keeps the last K-1 inputs; the official step state keeps K (the
// oldest is never used again). Rebuild the official one: new = [old_ours[:, 0], new_ours].
template <class T>
Tensor official_conv_state(const Tensor& before, const Tensor& after) {
  const int64_t B = after.dim(0), K1 = after.dim(1), F = after.dim(2);
  Tensor r({B, K1 + 1, F}, DTypeOf<T>::value);
  for (int64_t b = 0; b < B; ++b) {
    T* dst = r.data<T>() + b * (K1 + 1) * F;
    if (before.defined()) std::memcpy(dst, before.data<T>() + b * K1 * F, sizeof(T) * F);
    std::memcpy(dst + F, after.data<T>() + b * K1 * F, sizeof(T) * K1 * F);
  }
  return r;
}

template <class T>
void run_step(const Case& c, Comparer& cmp) {
  XLSTMLM<T> lm(xlstm_lm_config_from_json(c.config(), c.path()));
  load(c, cmp, lm);
  Tensor ids = c.get("input", DType::I64);
  XLSTM_CHECK(ids.ndim() == 2, IoError, c.path(), ": tensor 'input' must be (B, S)");
  const int64_t B = ids.dim(0), S = ids.dim(1), V = lm.vocab_size();
  Tensor logits({B, S, V}, DTypeOf<T>::value);
  XLSTMLMState state;
  std::vector<Tensor> conv_full(lm.config().blocks.size());
  for (int64_t t = 0; t < S; ++t) {
    Tensor tok({B}, DType::I64);
    for (int64_t b = 0; b < B; ++b) tok.data<int64_t>()[b] = ids.data<int64_t>()[b * S + t];
    std::vector<Tensor> before(lm.config().blocks.size());
    for (size_t i = 0; i < state.blocks.size(); ++i)
      before[i] = lm.config().blocks[i].kind == BlockKind::MLSTM ? state.blocks[i].mlstm.conv
                                                                 : state.blocks[i].slstm.conv;
    Tensor l = lm.step(tok, state);
    for (size_t i = 0; i < state.blocks.size(); ++i) {
      const Tensor& after = lm.config().blocks[i].kind == BlockKind::MLSTM
                                ? state.blocks[i].mlstm.conv : state.blocks[i].slstm.conv;
      if (after.defined()) conv_full[i] = official_conv_state<T>(before[i], after);
    }
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(logits.data<T>() + (b * S + t) * V, l.data<T>() + b * V, sizeof(T) * V);
  }
  cmp.check("expected.output", logits);
  for (size_t i = 0; i < state.blocks.size(); ++i) {
    const std::string p = str("expected.state_out.block_", i, ".");
    if (lm.config().blocks[i].kind == BlockKind::MLSTM) {
      cmp.check(p + "mlstm_state.c", state.blocks[i].mlstm.cell.c);
      cmp.check(p + "mlstm_state.n", state.blocks[i].mlstm.cell.n);
      cmp.check(p + "mlstm_state.m", state.blocks[i].mlstm.cell.m);
    } else {
      cmp.check(p + "slstm_state", state.blocks[i].slstm.slstm);
    }
    if (c.has(p + "conv_state")) cmp.check(p + "conv_state", conv_full[i]);
  }
}

}  // namespace

void run_case_xlstm_lm(const Case& c, Comparer& cmp, ImplPrecision prec) {
  if (prec == ImplPrecision::Same && c.dtype() == DType::F64) run_parallel<double>(c, cmp);
  else run_parallel<float>(c, cmp);
}

void run_case_xlstm_lm_step(const Case& c, Comparer& cmp, ImplPrecision prec) {
  if (prec == ImplPrecision::Same && c.dtype() == DType::F64) run_step<double>(c, cmp);
  else run_step<float>(c, cmp);
}

}  // namespace xlstm::conformance
