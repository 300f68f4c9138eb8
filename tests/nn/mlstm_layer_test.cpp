// mLSTM layer (xlstm package): finite-difference gradients of the input and every parameter,
// chunkwise form == parallel form, one call == two calls with carried state == token-by-token
// steps, bad input.
#include <gtest/gtest.h>

#include "harness/compare.h"
#include "harness/gradcheck.h"
#include "nn/mlstm.h"

using namespace xlstm;

namespace {

MLSTMLayerConfig small_config(bool bias) {
  MLSTMLayerConfig c;
  c.embedding_dim = 6;
  c.num_heads = 2;
  c.conv1d_kernel_size = 3;
  c.qkv_proj_blocksize = 2;
  c.inner_dim = 8;
  c.bias = bias;
  return c;
}

// Random non-trivial parameters (the official init has zero gate weights and norm weight).
template <class T>
void randomize(MLSTMLayer<T>& layer, Rng& rng) {
  for (auto& p : layer.params()) {
    T* v = p.value->template data<T>();
    for (int64_t i = 0; i < p.value->numel(); ++i) v[i] += (T)rng.normal(0, 0.3);
  }
}

class MlstmLayerGrad : public ::testing::TestWithParam<bool> {};

TEST_P(MlstmLayerGrad, FiniteDifferences) {
  Rng rng(1);
  MLSTMLayer<double> layer(small_config(GetParam()));
  randomize(layer, rng);
  const int64_t B = 2, S = 5, D = 6;
  Tensor x = Tensor::from<double>({B, S, D}, test::randn<double>(B * S * D, rng));
  auto w = test::randn<double>(B * S * D, rng);
  auto loss = [&] {
    Tensor y = layer.forward(x, Mode::Eval);
    return test::dot(y.data<double>(), w.data(), y.numel());
  };
  loss();
  layer.zero_grad();
  Tensor dx = layer.backward(Tensor::from<double>({B, S, D}, w));
  test::expect_grad("dx", loss, x.data<double>(), x.numel(), dx.data<double>(), 1e-7, 1e-5);
  for (auto& p : layer.params()) {
    Tensor g = p.grad->clone();
    test::expect_grad(p.name, loss, p.value->data<double>(), p.value->numel(), g.data<double>(),
                      1e-7, 1e-5);
  }
}
INSTANTIATE_TEST_SUITE_P(Bias, MlstmLayerGrad, ::testing::Values(false, true));

TEST(MlstmLayer, ChunkwiseEqualsParallelAndStateCarries) {
  Rng rng(2);
  auto cfg = small_config(true);
  MLSTMLayer<double> par(cfg);
  randomize(par, rng);
  cfg.form = MlstmForm::Chunkwise;
  cfg.chunk_size = 4;
  MLSTMLayer<double> chk(cfg);
  for (size_t i = 0; i < par.params().size(); ++i)
    *chk.params()[i].value = par.params()[i].value->clone();
  const int64_t B = 2, S = 11, D = 6;
  auto xv = test::randn<double>(B * S * D, rng);
  Tensor x = Tensor::from<double>({B, S, D}, xv);
  Tensor yp = par.forward(x), yc = chk.forward(x);
  test::expect_close("chunkwise vs parallel", yc.data<double>(), yp.data<double>(), yp.numel(),
                     1e-7, 1e-6);
  // two halves with carried conv + cell state == one call
  const int64_t S1 = 6, S2 = S - S1;
  std::vector<double> a, b;
  for (int64_t bb = 0; bb < B; ++bb) {
    a.insert(a.end(), xv.begin() + bb * S * D, xv.begin() + (bb * S + S1) * D);
    b.insert(b.end(), xv.begin() + (bb * S + S1) * D, xv.begin() + (bb + 1) * S * D);
  }
  MLSTMLayerState st;
  Tensor y1 = chk.forward(Tensor::from<double>({B, S1, D}, a), Mode::Eval, nullptr, nullptr, &st);
  Tensor y2 = chk.forward(Tensor::from<double>({B, S2, D}, b), Mode::Eval, nullptr, &st, nullptr);
  for (int64_t bb = 0; bb < B; ++bb) {
    test::expect_close("first half", y1.data<double>() + bb * S1 * D,
                       yc.data<double>() + bb * S * D, S1 * D, 1e-10, 1e-9);
    test::expect_close("second half", y2.data<double>() + bb * S2 * D,
                       yc.data<double>() + (bb * S + S1) * D, S2 * D, 1e-10, 1e-9);
  }
  // token by token (decode): a stateful call with S == 1 takes the recurrent step, whatever the
  // layer's form, and the stream equals the one call
  MLSTMLayerState ss;
  for (int64_t t = 0; t < S; ++t) {
    std::vector<double> xt;
    for (int64_t bb = 0; bb < B; ++bb)
      xt.insert(xt.end(), xv.begin() + (bb * S + t) * D, xv.begin() + (bb * S + t + 1) * D);
    MLSTMLayerState next;
    Tensor yt = chk.forward(Tensor::from<double>({B, 1, D}, xt), Mode::Eval, nullptr,
                            t == 0 ? nullptr : &ss, &next);
    ss = std::move(next);
    for (int64_t bb = 0; bb < B; ++bb)
      test::expect_close("token " + std::to_string(t), yt.data<double>() + bb * D,
                         yc.data<double>() + (bb * S + t) * D, D, 1e-10, 1e-9);
  }
}

TEST(MlstmLayer, FloatMatchesDouble) {
  Rng rng(3);
  MLSTMLayer<double> d(small_config(false));
  randomize(d, rng);
  MLSTMLayer<float> f(small_config(false));
  for (size_t i = 0; i < d.params().size(); ++i)
    *f.params()[i].value = d.params()[i].value->to(DType::F32);
  const int64_t B = 3, S = 7, D = 6;
  Tensor x = Tensor::from<double>({B, S, D}, test::randn<double>(B * S * D, rng));
  Tensor yd = d.forward(x), yf = f.forward(x.to(DType::F32));
  test::expect_close("float vs double", yf.data<float>(), yd.data<double>(), yd.numel(), 1e-5,
                     1e-4);
}

TEST(MlstmLayer, BadInput) {
  MLSTMLayer<float> layer(small_config(false));
  EXPECT_THROW(layer.forward(Tensor({2, 3, 5}, DType::F32)), ValueError);
  EXPECT_THROW(layer.forward(Tensor({2, 3, 6}, DType::F64)), TypeError);
  EXPECT_THROW(layer.backward(Tensor({2, 3, 6}, DType::F32)), ValueError);
  MLSTMLayerConfig bad = small_config(false);
  bad.num_heads = 3;
  EXPECT_THROW(MLSTMLayer<float>{bad}, ValueError);
}

}  // namespace
