#include "conformance/kinds.h"
#include "nn/mlstm.h"

namespace xlstm::conformance {

// mLSTMLayerConfig (after __post_init__) -> our config. Shared with the block and LM kinds.
MLSTMLayerConfig mlstm_layer_config_from_json(const nlohmann::json& j, const std::string& where) {
  auto req = [&](const char* k) -> const nlohmann::json& {
    XLSTM_CHECK(j.contains(k) && !j[k].is_null(), IoError, where, ": config lacks field '", k, "'");
    return j[k];
  };
  MLSTMLayerConfig c;
  c.embedding_dim = req("embedding_dim").get<int64_t>();
  c.num_heads = req("num_heads").get<int64_t>();
  c.conv1d_kernel_size = req("conv1d_kernel_size").get<int64_t>();
  c.qkv_proj_blocksize = req("qkv_proj_blocksize").get<int64_t>();
  c.proj_factor = req("proj_factor").get<double>();
  c.bias = req("bias").get<bool>();
  c.dropout = j.value("dropout", 0.0);
  c.num_blocks = j.value("_num_blocks", (int64_t)1);
  if (j.contains("_inner_embedding_dim") && j["_inner_embedding_dim"].is_number_integer())
    c.inner_dim = j["_inner_embedding_dim"].get<int64_t>();
  return c;
}

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
