#include "nn/blocks.h"

#include <cmath>
#include <cstring>

#include "cpu/activations.h"
#include "cpu/dropout.h"
#include "cpu/layernorm.h"
#include "cpu/linear.h"
#include "nn/init.h"

namespace xlstm {

int64_t FeedForwardConfig::up_dim() const {
  const double raw = proj_factor * (double)embedding_dim;
  if (!round_proj_up_dim_up) return (int64_t)raw;
  const int64_t m = round_proj_up_to_multiple_of;
  return (int64_t)std::ceil(raw / (double)m) * m;
}

namespace {
template <class T>
const T* cptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <class T>
T* mptr(Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
}  // namespace

// ---- GatedFFN --------------------------------------------------------------------------------
template <class T>
GatedFFN<T>::GatedFFN(const FeedForwardConfig& cfg) : cfg_(cfg) {
  D_ = cfg.embedding_dim;
  P_ = cfg.up_dim();
  XLSTM_CHECK(D_ > 0 && P_ > 0, ValueError, "[ffn] embedding_dim and proj_up dim must be > 0");
  const DType dt = DTypeOf<T>::value;
  make_param(w_up_, dw_up_, {2 * P_, D_}, dt);
  make_param(w_down_, dw_down_, {D_, P_}, dt);
  if (cfg.bias) {
    make_param(b_up_, db_up_, {2 * P_}, dt);
    make_param(b_down_, db_down_, {D_}, dt);
  }
  Rng rng(0);
  reset_parameters(rng);
}

template <class T>
void GatedFFN<T>::reset_parameters(Rng& rng) {
  init_normal(w_up_, rng, small_init_std(D_));
  init_normal(w_down_, rng, wang_init_std(D_, cfg_.num_blocks));
  if (cfg_.bias) {
    b_up_.zero();
    b_down_.zero();
  }
}

template <class T>
void GatedFFN<T>::collect_params(const std::string& p, std::vector<ParamRef>& out) {
  out.push_back({p + "proj_up.weight", &w_up_, &dw_up_});
  if (cfg_.bias) out.push_back({p + "proj_up.bias", &b_up_, &db_up_});
  out.push_back({p + "proj_down.weight", &w_down_, &dw_down_});
  if (cfg_.bias) out.push_back({p + "proj_down.bias", &b_down_, &db_down_});
}

template <class T>
void GatedFFN<T>::forward(int64_t N, const T* x, T* y, Mode mode, Rng* rng) {
  N_ = N;
  x_.assign(x, x + N * D_);
  up_.resize((size_t)(N * 2 * P_));
  linear_forward<T>(N, D_, 2 * P_, x, w_up_.data<T>(), cptr<T>(b_up_), up_.data());
  act_.resize((size_t)(N * P_));
  for (int64_t r = 0; r < N; ++r) {
    const T* g = &up_[r * 2 * P_];
    T* a = &act_[r * P_];
    act_forward<T>(Act::GELU, P_, g, a);
    for (int64_t j = 0; j < P_; ++j) a[j] *= g[P_ + j];
  }
  linear_forward<T>(N, P_, D_, act_.data(), w_down_.data<T>(), cptr<T>(b_down_), y);
  mask_.clear();
  if (mode == Mode::Train && cfg_.dropout > 0) {
    XLSTM_CHECK(rng, ValueError, "[ffn] dropout in Mode::Train needs an Rng");
    mask_.resize((size_t)(N * D_));
    dropout_forward<T>(N * D_, cfg_.dropout, *rng, y, y, mask_.data());
  }
}

template <class T>
void GatedFFN<T>::backward(const T* dy_in, T* dx) {
  const int64_t N = N_;
  auto& dy = sc_dy_;
  dy.assign(dy_in, dy_in + N * D_);
  if (!mask_.empty()) dropout_backward<T>(N * D_, mask_.data(), dy.data(), dy.data());
  // Scratch kept across calls; every element is written below before it is read.
  auto& dact = sc_dact_;
  auto& dup = sc_dup_;
  auto& gl = sc_gl_;
  dact.resize((size_t)(N * P_));
  dup.resize((size_t)(N * 2 * P_));
  gl.resize((size_t)P_);
  linear_backward<T>(N, P_, D_, act_.data(), w_down_.data<T>(), dy.data(), dact.data(),
                     dw_down_.data<T>(), mptr<T>(db_down_));
  for (int64_t r = 0; r < N; ++r) {
    const T* g = &up_[r * 2 * P_];
    T* dg = &dup[r * 2 * P_];
    act_forward<T>(Act::GELU, P_, g, gl.data());
    for (int64_t j = 0; j < P_; ++j) {
      dg[P_ + j] = dact[r * P_ + j] * gl[j];  // d up
      dg[j] = dact[r * P_ + j] * g[P_ + j];   // d gelu(gate)
    }
    act_backward<T>(Act::GELU, P_, g, dg, dg);
  }
  linear_backward<T>(N, D_, 2 * P_, x_.data(), w_up_.data<T>(), dup.data(), dx, dw_up_.data<T>(),
                     mptr<T>(db_up_));
}

// ---- XLSTMBlock --------------------------------------------------------------------------------
template <class T>
XLSTMBlock<T>::XLSTMBlock(const BlockConfig& cfg) : cfg_(cfg) {
  const DType dt = DTypeOf<T>::value;
  if (cfg.kind == BlockKind::MLSTM) {
    mlstm_ = std::make_unique<MLSTMLayer<T>>(cfg.mlstm);
    D_ = cfg.mlstm.embedding_dim;
  } else {
    slstm_ = std::make_unique<SLSTMLayer<T>>(cfg.slstm);
    D_ = cfg.slstm.embedding_dim;
    if (cfg.has_ffn) {
      FeedForwardConfig f = cfg.ffn;
      f.embedding_dim = D_;
      ffn_ = std::make_unique<GatedFFN<T>>(f);
      make_param(w_ffn_norm_, dw_ffn_norm_, {D_}, dt);
    }
  }
  make_param(w_norm_, dw_norm_, {D_}, dt);
}

template <class T>
void XLSTMBlock<T>::reset_parameters(Rng& rng) {
  w_norm_.zero();
  if (mlstm_) mlstm_->reset_parameters(rng);
  if (slstm_) slstm_->reset_parameters(rng);
  if (ffn_) {
    w_ffn_norm_.zero();
    ffn_->reset_parameters(rng);
  }
}

template <class T>
void XLSTMBlock<T>::collect_params(const std::string& p, std::vector<ParamRef>& out) {
  out.push_back({p + "xlstm_norm.weight", &w_norm_, &dw_norm_});
  if (mlstm_) mlstm_->collect_params(p + "xlstm.", out);
  if (slstm_) slstm_->collect_params(p + "xlstm.", out);
  if (ffn_) {
    out.push_back({p + "ffn_norm.weight", &w_ffn_norm_, &dw_ffn_norm_});
    ffn_->collect_params(p + "ffn.", out);
  }
}

template <class T>
Tensor XLSTMBlock<T>::forward(const Tensor& x, Mode mode, Rng* rng, const BlockState* state_in,
                              BlockState* state_out) {
  XLSTM_CHECK(x.ndim() == 3 && x.dim(2) == D_, ValueError, "[xlstm_block] x must be (B,S,D)=(?,?,",
              D_, "), got ", shape_str(x.shape()));
  XLSTM_CHECK(x.dtype() == DTypeOf<T>::value, TypeError, "[xlstm_block] x has dtype ",
              dtype_name(x.dtype()), ", the block computes in ", dtype_name(DTypeOf<T>::value));
  const int64_t B = x.dim(0), S = x.dim(1), N = B * S;
  B_ = B;
  S_ = S;
  const DType dt = DTypeOf<T>::value;
  x_.assign(x.data<T>(), x.data<T>() + N * D_);
  Tensor xn = Tensor::empty({B, S, D_}, dt);
  mean_.resize((size_t)N);
  rstd_.resize((size_t)N);
  layernorm_forward<T>(N, D_, x_.data(), w_norm_.data<T>(), nullptr, 1e-5, NormScale::OnePlusWeight,
                       xn.data<T>(), mean_.data(), rstd_.data());
  Tensor h;
  if (mlstm_) {
    h = mlstm_->forward(xn, mode, rng, state_in ? &state_in->mlstm : nullptr,
                        state_out ? &state_out->mlstm : nullptr);
  } else {
    slstm_->set_mode(mode == Mode::Train ? SLSTMLayer<T>::Mode::Train : SLSTMLayer<T>::Mode::Eval);
    slstm_->set_dropout_rng(rng);
    auto o = slstm_->forward(xn, state_in ? state_in->slstm : SLSTMLayerState{});
    h = o.output;
    if (state_out) state_out->slstm = o.state;
  }
  Tensor y = Tensor::empty({B, S, D_}, dt);
  T* yp = y.data<T>();
  const T* hp = h.data<T>();
  for (int64_t e = 0; e < N * D_; ++e) yp[e] = x_[e] + hp[e];
  if (ffn_) {
    y1_.assign(yp, yp + N * D_);
    y1n_.resize((size_t)(N * D_));
    mean2_.resize((size_t)N);
    rstd2_.resize((size_t)N);
    layernorm_forward<T>(N, D_, y1_.data(), w_ffn_norm_.data<T>(), nullptr, 1e-5,
                         NormScale::OnePlusWeight, y1n_.data(), mean2_.data(), rstd2_.data());
    std::vector<T> f((size_t)(N * D_));
    ffn_->forward(N, y1n_.data(), f.data(), mode, rng);
    for (int64_t e = 0; e < N * D_; ++e) yp[e] += f[e];
  }
  return y;
}

template <class T>
Tensor XLSTMBlock<T>::backward(const Tensor& dy) {
  XLSTM_CHECK(B_ > 0, ValueError, "[xlstm_block] backward called before forward");
  const int64_t N = B_ * S_;
  XLSTM_CHECK(dy.shape() == Shape({B_, S_, D_}), ValueError, "[xlstm_block] dy must be ",
              shape_str({B_, S_, D_}), ", got ", shape_str(dy.shape()));
  const DType dt = DTypeOf<T>::value;
  std::vector<T> dy1(dy.data<T>(), dy.data<T>() + N * D_);
  if (ffn_) {
    std::vector<T> dn((size_t)(N * D_)), dres((size_t)(N * D_));
    ffn_->backward(dy1.data(), dn.data());
    layernorm_backward<T>(N, D_, y1_.data(), w_ffn_norm_.data<T>(), NormScale::OnePlusWeight,
                          mean2_.data(), rstd2_.data(), dn.data(), dres.data(),
                          dw_ffn_norm_.data<T>(), nullptr);
    for (int64_t e = 0; e < N * D_; ++e) dy1[e] += dres[e];
  }
  Tensor dh = Tensor::from<T>({B_, S_, D_}, dy1);
  Tensor dxn;
  if (mlstm_) dxn = mlstm_->backward(dh);
  else dxn = slstm_->backward(dh).input;
  Tensor dx = Tensor::empty({B_, S_, D_}, dt);
  layernorm_backward<T>(N, D_, x_.data(), w_norm_.data<T>(), NormScale::OnePlusWeight, mean_.data(),
                        rstd_.data(), dxn.data<T>(), dx.data<T>(), dw_norm_.data<T>(), nullptr);
  T* dxp = dx.data<T>();
  for (int64_t e = 0; e < N * D_; ++e) dxp[e] += dy1[e];
  return dx;
}

template class GatedFFN<float>;
template class GatedFFN<double>;
template class XLSTMBlock<float>;
template class XLSTMBlock<double>;

}  // namespace xlstm
