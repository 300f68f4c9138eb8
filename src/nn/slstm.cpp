#include "nn/slstm.h"

#include "nn/init.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/activations.h"
#include "cpu/conv1d.h"
#include "cpu/dropout.h"
#include "cpu/headwise.h"
#include "cpu/layernorm.h"

namespace xlstm {

namespace {

template <class T>
void check_dtype(const char* op, const char* name, const Tensor& t) {
  XLSTM_CHECK(t.device() == Device::CPU, TypeError, "[", op, "] ", name,
              " must be on the CPU; hint: this module is the CPU implementation");
  XLSTM_CHECK(t.dtype() == DTypeOf<T>::value, TypeError, "[", op, "] ", name, " must be ",
              dtype_name(DTypeOf<T>::value), ", got ", dtype_name(t.dtype()),
              "; hint: convert with Tensor::to or build the module for that dtype");
}

template <class T>
void check_shape(const char* op, const char* name, const char* letters, const Tensor& t,
                 const Shape& want, const char* hint) {
  check_dtype<T>(op, name, t);
  XLSTM_CHECK(t.shape() == want, ValueError, "[", op, "] ", name, " must be ", letters, "=",
              shape_str(want), ", got ", shape_str(t.shape()), "; hint: ", hint);
}

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

// ---- checkpoint layouts -----------------------------------------------------------------------

SlstmParamLayout slstm_param_layout(const Shape& R) {
  if (R.size() == 4 && R[2] == 4 && R[1] == R[3] && R[1] > 0) return SlstmParamLayout::Ext;
  if (R.size() == 3 && R[2] > 0 && R[1] == 4 * R[2]) return SlstmParamLayout::Vanilla;
  if (R.size() == 3 && R[1] > 0 && R[2] == 4 * R[1]) return SlstmParamLayout::Cuda;
  throw ValueError(str("[slstm_param_layout] _recurrent_kernel_ must be (NH,4DH,DH) (vanilla), ",
                       "(NH,DH,4DH) (cuda) or (NH,DH,4,DH) (external), got ", shape_str(R),
                       "; hint: is this an sLSTM recurrent kernel?"));
}

Tensor slstm_recurrent_to_vanilla(const Tensor& R) {
  const SlstmParamLayout lay = slstm_param_layout(R.shape());
  if (lay == SlstmParamLayout::Vanilla) return R.clone();
  const int64_t NH = R.dim(0), DH = R.dim(1);
  const std::vector<double> src = R.to_f64();  // [h][i][g*DH + o] in both other layouts
  std::vector<double> dst(src.size());
  for (int64_t h = 0; h < NH; ++h)
    for (int64_t i = 0; i < DH; ++i)
      for (int64_t go = 0; go < 4 * DH; ++go)
        dst[(size_t)((h * 4 * DH + go) * DH + i)] = src[(size_t)((h * DH + i) * 4 * DH + go)];
  return Tensor::from<double>({NH, 4 * DH, DH}, dst).to(R.dtype());
}

Tensor slstm_bias_to_vanilla(const Tensor& bias, const Tensor& R) {
  const SlstmParamLayout lay = slstm_param_layout(R.shape());
  const int64_t NH = R.dim(0), DH = lay == SlstmParamLayout::Vanilla ? R.dim(2) : R.dim(1);
  const int64_t H = NH * DH;
  XLSTM_CHECK(bias.numel() == 4 * H, ValueError, "[slstm_bias_to_vanilla] _bias_ must have 4H=",
              4 * H, " values for a recurrent kernel ", shape_str(R.shape()), ", got ",
              shape_str(bias.shape()), "; hint: bias and recurrent kernel of different cells?");
  if (lay == SlstmParamLayout::Vanilla) return bias.reshape({4 * H}).clone();
  const std::vector<double> src = bias.to_f64();  // [h][g][d]
  std::vector<double> dst(src.size());
  for (int64_t h = 0; h < NH; ++h)
    for (int64_t g = 0; g < 4; ++g)
      for (int64_t d = 0; d < DH; ++d)
        dst[(size_t)(g * H + h * DH + d)] = src[(size_t)((h * 4 + g) * DH + d)];
  return Tensor::from<double>({4 * H}, dst).to(bias.dtype());
}

int slstm_convert_state_dict(std::map<std::string, Tensor>& sd) {
  static const std::string kR = "_recurrent_kernel_", kB = "_bias_";
  static const std::string kRext = "recurrent_kernel", kBext = "bias";
  std::vector<std::string> keys;
  for (auto& kv : sd) keys.push_back(kv.first);
  int converted = 0;
  for (const auto& key : keys) {
    if (ends_with(key, kR)) {
      const std::string prefix = key.substr(0, key.size() - kR.size());
      Tensor& R = sd[key];
      if (slstm_param_layout(R.shape()) == SlstmParamLayout::Vanilla) continue;
      auto bit = sd.find(prefix + kB);
      XLSTM_CHECK(bit != sd.end(), ValueError, "[slstm_convert_state_dict] '", key,
                  "' has no matching '", prefix + kB, "'; hint: the checkpoint is incomplete");
      bit->second = slstm_bias_to_vanilla(bit->second, R);
      R = slstm_recurrent_to_vanilla(R);
      ++converted;
    } else if (ends_with(key, kRext) && (key.size() == kRext.size() ||
                                         key[key.size() - kRext.size() - 1] == '.')) {
      const std::string prefix = key.substr(0, key.size() - kRext.size());
      auto bit = sd.find(prefix + kBext);
      XLSTM_CHECK(bit != sd.end(), ValueError, "[slstm_convert_state_dict] '", key,
                  "' has no matching '", prefix + kBext, "'; hint: the checkpoint is incomplete");
      const Tensor R = sd[key];
      sd[prefix + kB] = slstm_bias_to_vanilla(bit->second, R);
      sd[prefix + kR] = slstm_recurrent_to_vanilla(R);
      sd.erase(prefix + kBext);
      sd.erase(key);
      ++converted;
    }
  }
  return converted;
}

// ---- cell ----------------------------------------------------------------------------------------

template <class T>
SLSTMCell<T>::SLSTMCell(const SLSTMCellConfig& cfg) : cfg_(cfg) {
  XLSTM_CHECK(cfg.hidden_size > 0 && cfg.num_heads > 0 && cfg.hidden_size % cfg.num_heads == 0,
              ValueError, "[SLSTMCell] hidden_size (", cfg.hidden_size,
              ") must be a positive multiple of num_heads (", cfg.num_heads, ")");
  const int64_t NH = cfg.num_heads, DH = cfg.head_dim(), H = cfg.hidden_size;
  make_param(R_, dR_, {NH, 4 * DH, DH}, DTypeOf<T>::value);
  make_param(b_, db_, {4 * H}, DTypeOf<T>::value);
  Rng rng(0);
  reset_parameters(rng);
}

template <class T>
void SLSTMCell<T>::reset_parameters(Rng& rng) {
  const int64_t NH = cfg_.num_heads, DH = cfg_.head_dim(), H = cfg_.hidden_size;
  const double bound = 1.0 / std::sqrt((double)H);
  if (cfg_.recurrent_weight_init == "zeros") R_.zero();
  else if (cfg_.recurrent_weight_init == "standard") init_uniform(R_, rng, -bound, bound);
  else
    throw ValueError(str("[SLSTMCell] unknown recurrent_weight_init '", cfg_.recurrent_weight_init,
                         "'; hint: zeros or standard"));
  std::vector<double> b((size_t)(4 * H), 0.0);  // vanilla layout [g][h][d]
  const std::string& bi = cfg_.bias_init;
  if (bi == "powerlaw_blockdependent") {
    const double r = cfg_.num_blocks > 1 ? (double)cfg_.block_idx / (cfg_.num_blocks - 1) : 0.0;
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t d = 0; d < DH; ++d) {
        const double u = DH > 1 ? (double)d / (double)(DH - 1) : 0.0;
        b[(size_t)(1 * H + h * DH + d)] = -(-5.0 + 12.0 * std::pow(u, 0.3 + 1.3 * r));
      }
  } else if (bi == "small_init") {
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t d = 0; d < DH; ++d)
        b[(size_t)(1 * H + h * DH + d)] = DH > 1 ? 3.0 + 3.0 * (double)d / (double)(DH - 1) : 3.0;
  } else if (bi == "standard") {
    for (auto& v : b) v = rng.uniform(-bound, bound);
  } else if (bi != "zeros") {
    throw ValueError(str("[SLSTMCell] unknown bias_init '", bi,
                         "'; hint: powerlaw_blockdependent, small_init, standard or zeros"));
  }
  Tensor src = Tensor::from<double>({4 * H}, b).to(DTypeOf<T>::value);
  std::memcpy(b_.raw(), src.raw(), b_.nbytes());
}

template <class T>
void SLSTMCell<T>::collect_params(const std::string& prefix, std::vector<ParamRef>& out) {
  out.push_back({prefix + "_recurrent_kernel_", &R_, &dR_});
  out.push_back({prefix + "_bias_", &b_, &db_});
}

template <class T>
void SLSTMCell<T>::forward_raw(const SlstmShape& s, const SlstmLayout& L, const T* x,
                               const T* state0, T* y, T* state_out) {
  slstm_forward<T>(s, L, x, R_.data<T>(), b_.data<T>(), state0, y, state_out, cache_);
  fwd_shape_ = s;
}

template <class T>
void SLSTMCell<T>::backward_raw(const SlstmShape& s, const SlstmLayout& L, const T* dy,
                                const T* dstate_out, T* dx, T* dstate0) {
  XLSTM_CHECK(cache_.valid && fwd_shape_.B == s.B && fwd_shape_.T == s.T, ValueError,
              "[slstm_cell.backward] no forward of this shape to differentiate; hint: call "
              "forward first (step() does not keep what backward needs)");
  slstm_backward<T>(s, L, R_.data<T>(), dy, dstate_out, dx, dR_.data<T>(), db_.data<T>(), dstate0,
                    cache_);
}

template <class T>
typename SLSTMCell<T>::Out SLSTMCell<T>::forward(const Tensor& input, const Tensor& state) {
  const char* op = "slstm_cell.forward";
  const int64_t NH = cfg_.num_heads, DH = cfg_.head_dim(), H = cfg_.hidden_size;
  check_dtype<T>(op, "input", input);
  XLSTM_CHECK(input.ndim() == 3 && input.dim(2) == 4 * H && input.dim(0) > 0 && input.dim(1) > 0,
              ValueError, "[", op, "] input must be (B,S,4H)=(B,S,", 4 * H, "), got ",
              shape_str(input.shape()),
              "; hint: gate pre-activations ordered [gate i,f,z,o][head][dh], B and S >= 1");
  const int64_t B = input.dim(0), S = input.dim(1);
  if (state.defined())
    check_shape<T>(op, "state", "(4,B,H)", state, {4, B, H}, "(y, c, n, m) of every sequence");
  const SlstmShape s{B, S, NH, DH};
  Tensor out({B, NH, S, DH}, DTypeOf<T>::value), st({4, B, H}, DTypeOf<T>::value);
  cache_.valid = false;
  forward_raw(s, SlstmLayout::cell(s), input.data<T>(), ptr_or_null<T>(state), out.data<T>(),
              st.data<T>());
  return {out, st};
}

template <class T>
typename SLSTMCell<T>::Grads SLSTMCell<T>::backward(const Tensor& dout, const Tensor& dstate) {
  const char* op = "slstm_cell.backward";
  const SlstmShape s = fwd_shape_;
  XLSTM_CHECK(cache_.valid && s.B > 0, ValueError, "[", op,
              "] no forward to differentiate; hint: call forward first");
  const int64_t B = s.B, S = s.T, NH = s.NH, DH = s.DH, H = s.H();
  if (dout.defined())
    check_shape<T>(op, "dout", "(B,NH,S,DH)", dout, {B, NH, S, DH},
                   "the gradient of forward's output");
  if (dstate.defined())
    check_shape<T>(op, "dstate", "(4,B,H)", dstate, {4, B, H}, "the gradient of forward's state");
  Tensor dx({B, S, 4 * H}, DTypeOf<T>::value), dst({4, B, H}, DTypeOf<T>::value);
  backward_raw(s, SlstmLayout::cell(s), ptr_or_null<T>(dout), ptr_or_null<T>(dstate),
               dx.data<T>(), dst.data<T>());
  return {dx, dst};
}

// ---- layer ---------------------------------------------------------------------------------------

template <class T>
SLSTMLayer<T>::SLSTMLayer(const SLSTMLayerConfig& cfg, uint64_t dropout_seed)
    : cfg_(cfg), cell_(cfg.cell()), rng_(dropout_seed) {
  XLSTM_CHECK(cfg.conv1d_kernel_size >= 0, ValueError,
              "[SLSTMLayer] conv1d_kernel_size must be >= 0 (0: no conv), got ",
              cfg.conv1d_kernel_size);
  XLSTM_CHECK(cfg.dropout >= 0.0 && cfg.dropout < 1.0, ValueError,
              "[SLSTMLayer] dropout must be in [0, 1), got ", cfg.dropout);
  const int64_t D = cfg.embedding_dim, NH = cfg.num_heads, DH = D / NH,
                K = cfg.conv1d_kernel_size;
  const DType dt = DTypeOf<T>::value;
  if (K > 0) {
    make_param(conv_w_, dconv_w_, {D, 1, K}, dt);
    make_param(conv_b_, dconv_b_, {D}, dt);
  }
  for (auto* p : {&Wf_, &Wi_, &Wz_, &Wo_}) *p = Tensor({NH, DH, DH}, dt);
  for (auto* p : {&dWf_, &dWi_, &dWz_, &dWo_}) *p = Tensor({NH, DH, DH}, dt);
  if (cfg.group_norm_weight) make_param(gn_w_, dgn_w_, {D}, dt);
  Rng rng(0);
  reset_parameters(rng);
}

template <class T>
void SLSTMLayer<T>::reset_parameters(Rng& rng) {
  cell_.reset_parameters(rng);
  if (gn_w_.defined()) gn_w_.zero();
  const double std = std::sqrt(2.0 / (5.0 * (double)cfg_.embedding_dim));
  for (auto* p : {&Wi_, &Wf_, &Wz_, &Wo_}) init_normal(*p, rng, std);
  if (conv_w_.defined()) {
    const double bound = 1.0 / std::sqrt((double)cfg_.conv1d_kernel_size);
    init_uniform(conv_w_, rng, -bound, bound);
    init_uniform(conv_b_, rng, -bound, bound);
  }
}

template <class T>
void SLSTMLayer<T>::collect_params(const std::string& prefix, std::vector<ParamRef>& out) {
  if (conv_w_.defined()) {
    out.push_back({prefix + "conv1d.conv.weight", &conv_w_, &dconv_w_});
    out.push_back({prefix + "conv1d.conv.bias", &conv_b_, &dconv_b_});
  }
  out.push_back({prefix + "fgate.weight", &Wf_, &dWf_});
  out.push_back({prefix + "igate.weight", &Wi_, &dWi_});
  out.push_back({prefix + "zgate.weight", &Wz_, &dWz_});
  out.push_back({prefix + "ogate.weight", &Wo_, &dWo_});
  cell_.collect_params(prefix + "slstm_cell.", out);
  if (gn_w_.defined()) out.push_back({prefix + "group_norm.weight", &gn_w_, &dgn_w_});
}

namespace {
// The layer keeps the cell input as four (B, S, H) slabs [i | f | z | o] and y as (B, S, H).
SlstmLayout layer_layout(const SlstmShape& s) {
  const int64_t H = s.H();
  return {s.T * H, H, s.B * s.T * H, s.T * H, H, s.DH};
}
}  // namespace

template <class T>
void SLSTMLayer<T>::run_forward(int64_t B, int64_t S, const T* x, const T* conv0, const T* slstm0,
                                T* out, T* conv_out, T* slstm_out) {
  const int64_t D = cfg_.embedding_dim, NH = cfg_.num_heads, DH = D / NH,
                K = cfg_.conv1d_kernel_size, N = B * S, ND = N * D;
  const T* xc = x;
  if (K > 0) {
    xconv_pre_.resize((size_t)ND);
    xconv_.resize((size_t)ND);
    conv1d_forward<T>(B, S, D, K, x, conv_w_.data<T>(), conv_b_.data<T>(), conv0,
                      xconv_pre_.data(), conv_out);
    act_forward<T>(Act::SiLU, ND, xconv_pre_.data(), xconv_.data());
    xc = xconv_.data();
  }
  gates_.resize((size_t)(4 * ND));
  T* g = gates_.data();
  // The official slot order (README §6.1): module fgate feeds slot i, igate feeds slot f.
  headwise_forward<T>(N, NH, DH, DH, xc, Wf_.data<T>(), nullptr, g);
  headwise_forward<T>(N, NH, DH, DH, xc, Wi_.data<T>(), nullptr, g + ND);
  headwise_forward<T>(N, NH, DH, DH, x, Wz_.data<T>(), nullptr, g + 2 * ND);
  headwise_forward<T>(N, NH, DH, DH, x, Wo_.data<T>(), nullptr, g + 3 * ND);
  const SlstmShape s{B, S, NH, DH};
  y_.resize((size_t)ND);
  cell_.forward_raw(s, layer_layout(s), g, slstm0, y_.data(), slstm_out);
  const T* yn = y_.data();
  dropped_ = mode_ == Mode::Train && cfg_.dropout > 0.0;
  if (dropped_) {
    yd_.resize((size_t)ND);
    mask_.resize((size_t)ND);
    dropout_forward<T>(ND, cfg_.dropout, ext_rng_ ? *ext_rng_ : rng_, y_.data(), yd_.data(),
                      mask_.data());
    yn = yd_.data();
  }
  mean_.resize((size_t)(N * NH));
  rstd_.resize((size_t)(N * NH));
  multihead_norm_forward<T>(N, NH, DH, yn, gn_w_.defined() ? gn_w_.data<T>() : nullptr, nullptr,
                            1e-5, NormScale::OnePlusWeight, out, mean_.data(), rstd_.data());
}

template <class T>
typename SLSTMLayer<T>::Out SLSTMLayer<T>::forward(const Tensor& x, const SLSTMLayerState& state) {
  const char* op = "slstm_layer.forward";
  const int64_t D = cfg_.embedding_dim, H = D, K = cfg_.conv1d_kernel_size;
  check_dtype<T>(op, "x", x);
  XLSTM_CHECK(x.ndim() == 3 && x.dim(2) == D && x.dim(0) > 0 && x.dim(1) > 0, ValueError, "[", op,
              "] x must be (B,S,D)=(B,S,", D, "), got ", shape_str(x.shape()),
              "; hint: batch-first sequence of embeddings, B and S >= 1");
  const int64_t B = x.dim(0), S = x.dim(1);
  XLSTM_CHECK(!(state.conv.defined() && K == 0), ValueError, "[", op,
              "] conv state given but conv1d_kernel_size is 0; hint: leave state.conv undefined");
  if (state.conv.defined())
    check_shape<T>(op, "state.conv", "(B,K-1,D)", state.conv, {B, K - 1, D},
                   "the last K-1 pre-conv inputs");
  if (state.slstm.defined())
    check_shape<T>(op, "state.slstm", "(4,B,H)", state.slstm, {4, B, H}, "(y, c, n, m)");
  Tensor out({B, S, D}, DTypeOf<T>::value), conv_out, slstm_out({4, B, H}, DTypeOf<T>::value);
  if (K > 0) conv_out = Tensor({B, K - 1, D}, DTypeOf<T>::value);
  B_ = 0;
  run_forward(B, S, x.data<T>(), ptr_or_null<T>(state.conv), ptr_or_null<T>(state.slstm),
              out.data<T>(), K > 0 ? conv_out.data<T>() : nullptr, slstm_out.data<T>());
  x_ = x;
  conv0_ = state.conv;
  B_ = B;
  S_ = S;
  return {out, {conv_out, slstm_out}};
}

template <class T>
typename SLSTMLayer<T>::Grads SLSTMLayer<T>::backward(const Tensor& dout,
                                                      const SLSTMLayerState& dstate) {
  const char* op = "slstm_layer.backward";
  XLSTM_CHECK(B_ > 0, ValueError, "[", op,
              "] no forward to differentiate; hint: call forward first (step() keeps nothing)");
  const int64_t B = B_, S = S_, D = cfg_.embedding_dim, NH = cfg_.num_heads, DH = D / NH,
                K = cfg_.conv1d_kernel_size, N = B * S, ND = N * D;
  if (dout.defined())
    check_shape<T>(op, "dout", "(B,S,D)", dout, {B, S, D}, "the gradient of forward's output");
  XLSTM_CHECK(!(dstate.conv.defined() && K == 0), ValueError, "[", op,
              "] conv state gradient given but conv1d_kernel_size is 0");
  if (dstate.conv.defined())
    check_shape<T>(op, "dstate.conv", "(B,K-1,D)", dstate.conv, {B, K - 1, D},
                   "the gradient of forward's conv state");
  if (dstate.slstm.defined())
    check_shape<T>(op, "dstate.slstm", "(4,B,H)", dstate.slstm, {4, B, D},
                   "the gradient of forward's slstm state");
  const T* x = x_.data<T>();
  dy_.resize((size_t)ND);
  if (dout.defined()) {
    const T* yn = dropped_ ? yd_.data() : y_.data();
    multihead_norm_backward<T>(N, NH, DH, yn, gn_w_.defined() ? gn_w_.data<T>() : nullptr,
                               NormScale::OnePlusWeight, mean_.data(), rstd_.data(),
                               dout.data<T>(), dy_.data(),
                               dgn_w_.defined() ? dgn_w_.data<T>() : nullptr, nullptr);
    if (dropped_) dropout_backward<T>(ND, mask_.data(), dy_.data(), dy_.data());
  } else {
    std::fill(dy_.begin(), dy_.end(), T(0));
  }
  Tensor dinput({B, S, D}, DTypeOf<T>::value), dslstm({4, B, D}, DTypeOf<T>::value), dconv;
  dgates_.resize((size_t)(4 * ND));
  const SlstmShape s{B, S, NH, DH};
  cell_.backward_raw(s, layer_layout(s), dy_.data(), ptr_or_null<T>(dstate.slstm), dgates_.data(),
                     dslstm.data<T>());
  const T* dg = dgates_.data();
  T* dx = dinput.data<T>();
  // The four projections' input gradients accumulate straight into dx (z, o; and f, i when
  // there is no conv) or dxc (f, i before the SiLU and the conv, whose dx accumulates too).
  headwise_backward<T>(N, NH, DH, DH, x, Wz_.data<T>(), dg + 2 * ND, dx, dWz_.data<T>(), nullptr);
  headwise_backward<T>(N, NH, DH, DH, x, Wo_.data<T>(), dg + 3 * ND, dx, dWo_.data<T>(), nullptr,
                       true);
  if (K > 0) {
    dxc_.resize((size_t)ND);
    T* dxc = dxc_.data();
    const T* xc = xconv_.data();
    headwise_backward<T>(N, NH, DH, DH, xc, Wf_.data<T>(), dg, dxc, dWf_.data<T>(), nullptr);
    headwise_backward<T>(N, NH, DH, DH, xc, Wi_.data<T>(), dg + ND, dxc, dWi_.data<T>(), nullptr,
                         true);
    dconv = Tensor({B, K - 1, D}, DTypeOf<T>::value);
    act_backward<T>(Act::SiLU, ND, xconv_pre_.data(), dxc, dxc);
    conv1d_backward<T>(B, S, D, K, x, conv_w_.data<T>(), ptr_or_null<T>(conv0_), dxc,
                       ptr_or_null<T>(dstate.conv), dx, dconv_w_.data<T>(), dconv_b_.data<T>(),
                       dconv.data<T>(), true);
  } else {
    headwise_backward<T>(N, NH, DH, DH, x, Wf_.data<T>(), dg, dx, dWf_.data<T>(), nullptr, true);
    headwise_backward<T>(N, NH, DH, DH, x, Wi_.data<T>(), dg + ND, dx, dWi_.data<T>(), nullptr,
                         true);
  }
  return {dinput, {dconv, dslstm}};
}

template <class T>
Tensor SLSTMLayer<T>::step(const Tensor& x_t, SLSTMLayerState& state) {
  const char* op = "slstm_layer.step";
  const int64_t D = cfg_.embedding_dim, K = cfg_.conv1d_kernel_size;
  check_dtype<T>(op, "x_t", x_t);
  XLSTM_CHECK(x_t.ndim() == 2 && x_t.dim(1) == D && x_t.dim(0) > 0, ValueError, "[", op,
              "] x_t must be (B,D)=(B,", D, "), got ", shape_str(x_t.shape()),
              "; hint: one token per sequence");
  const int64_t B = x_t.dim(0);
  XLSTM_CHECK(!(state.conv.defined() && K == 0), ValueError, "[", op,
              "] conv state given but conv1d_kernel_size is 0");
  if (state.conv.defined())
    check_shape<T>(op, "state.conv", "(B,K-1,D)", state.conv, {B, K - 1, D},
                   "the last K-1 pre-conv inputs");
  if (state.slstm.defined())
    check_shape<T>(op, "state.slstm", "(4,B,H)", state.slstm, {4, B, D}, "(y, c, n, m)");
  Tensor out({B, D}, DTypeOf<T>::value);
  SLSTMLayerState next;
  if (K > 0) next.conv = Tensor({B, K - 1, D}, DTypeOf<T>::value);
  next.slstm = Tensor({4, B, D}, DTypeOf<T>::value);
  B_ = 0;  // the forward cache is overwritten: backward must not use it
  run_forward(B, 1, x_t.data<T>(), ptr_or_null<T>(state.conv), ptr_or_null<T>(state.slstm),
              out.data<T>(), K > 0 ? next.conv.data<T>() : nullptr, next.slstm.data<T>());
  state = next;
  return out;
}

template class SLSTMCell<float>;
template class SLSTMCell<double>;
template class SLSTMLayer<float>;
template class SLSTMLayer<double>;

}  // namespace xlstm
