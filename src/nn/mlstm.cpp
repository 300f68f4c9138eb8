#include "nn/mlstm.h"

#include <cmath>
#include <cstring>

#include "cpu/activations.h"
#include "cpu/conv1d.h"
#include "cpu/dropout.h"
#include "cpu/fastmath.h"
#include "cpu/headwise.h"
#include "cpu/layernorm.h"
#include "cpu/linear.h"
#include "cpu/parallel.h"
#include "nn/init.h"

namespace xlstm {

int64_t MLSTMLayerConfig::inner() const {
  if (inner_dim > 0) return inner_dim;
  const double raw = proj_factor * (double)embedding_dim;
  if (!round_proj_up_dim_up) return (int64_t)raw;
  const int64_t m = round_proj_up_to_multiple_of;
  return (int64_t)std::ceil(raw / (double)m) * m;
}


template <class T>
MLSTMLayer<T>::MLSTMLayer(const MLSTMLayerConfig& cfg) : cfg_(cfg) {
  D_ = cfg.embedding_dim;
  XLSTM_CHECK(D_ > 0, ValueError, "[mlstm_layer] embedding_dim must be > 0, got ", D_);
  inner_ = cfg.inner();
  NH_ = cfg.num_heads;
  K_ = cfg.conv1d_kernel_size;
  BS_ = cfg.qkv_proj_blocksize;
  XLSTM_CHECK(NH_ > 0 && inner_ % NH_ == 0, ValueError, "[mlstm_layer] num_heads ", NH_,
              " must divide the inner dim ", inner_);
  XLSTM_CHECK(BS_ > 0 && inner_ % BS_ == 0, ValueError, "[mlstm_layer] qkv_proj_blocksize ", BS_,
              " must divide the inner dim ", inner_);
  XLSTM_CHECK(K_ >= 1, ValueError, "[mlstm_layer] conv1d_kernel_size must be >= 1, got ", K_);
  XLSTM_CHECK(cfg.dropout >= 0 && cfg.dropout < 1, ValueError, "[mlstm_layer] dropout must be in [0, 1)");
  DH_ = inner_ / NH_;
  NP_ = inner_ / BS_;
  const DType dt = DTypeOf<T>::value;
  make_param(w_up_, dw_up_, {2 * inner_, D_}, dt);
  make_param(w_conv_, dw_conv_, {inner_, 1, K_}, dt);
  make_param(b_conv_, db_conv_, {inner_}, dt);
  make_param(w_q_, dw_q_, {NP_, BS_, BS_}, dt);
  make_param(w_k_, dw_k_, {NP_, BS_, BS_}, dt);
  make_param(w_v_, dw_v_, {NP_, BS_, BS_}, dt);
  make_param(w_ig_, dw_ig_, {NH_, 3 * inner_}, dt);
  make_param(b_ig_, db_ig_, {NH_}, dt);
  make_param(w_fg_, dw_fg_, {NH_, 3 * inner_}, dt);
  make_param(b_fg_, db_fg_, {NH_}, dt);
  make_param(w_norm_, dw_norm_, {inner_}, dt);
  make_param(skip_, dskip_, {inner_}, dt);
  make_param(w_down_, dw_down_, {D_, inner_}, dt);
  if (cfg.bias) {
    make_param(b_up_, db_up_, {2 * inner_}, dt);
    make_param(b_q_, db_q_, {inner_}, dt);
    make_param(b_k_, db_k_, {inner_}, dt);
    make_param(b_v_, db_v_, {inner_}, dt);
    make_param(b_down_, db_down_, {D_}, dt);
  }
  Rng rng(0);
  reset_parameters(rng);
}

template <class T>
void MLSTMLayer<T>::reset_parameters(Rng& rng) {
  const double small = small_init_std(D_);
  const double wang = wang_init_std(D_, cfg_.num_blocks);
  init_normal(w_up_, rng, small);
  init_normal(w_q_, rng, small);
  init_normal(w_k_, rng, small);
  init_normal(w_v_, rng, small);
  init_normal(w_down_, rng, wang);
  const double cb = 1.0 / std::sqrt((double)K_);  // torch Conv1d default (fan_in = K)
  init_uniform(w_conv_, rng, -cb, cb);
  init_uniform(b_conv_, rng, -cb, cb);
  w_ig_.zero();
  w_fg_.zero();
  init_normal(b_ig_, rng, 0.1);
  T* bf = b_fg_.data<T>();
  for (int64_t h = 0; h < NH_; ++h) bf[h] = (T)(NH_ == 1 ? 3.0 : 3.0 + 3.0 * h / (NH_ - 1));
  w_norm_.zero();
  T* sk = skip_.data<T>();
  for (int64_t j = 0; j < inner_; ++j) sk[j] = T(1);
  for (Tensor* b : {&b_up_, &b_q_, &b_k_, &b_v_, &b_down_})
    if (b->defined()) b->zero();
}

template <class T>
void MLSTMLayer<T>::collect_params(const std::string& p, std::vector<ParamRef>& out) {
  out.push_back({p + "proj_up.weight", &w_up_, &dw_up_});
  if (cfg_.bias) out.push_back({p + "proj_up.bias", &b_up_, &db_up_});
  out.push_back({p + "conv1d.conv.weight", &w_conv_, &dw_conv_});
  out.push_back({p + "conv1d.conv.bias", &b_conv_, &db_conv_});
  out.push_back({p + "q_proj.weight", &w_q_, &dw_q_});
  if (cfg_.bias) out.push_back({p + "q_proj.bias", &b_q_, &db_q_});
  out.push_back({p + "k_proj.weight", &w_k_, &dw_k_});
  if (cfg_.bias) out.push_back({p + "k_proj.bias", &b_k_, &db_k_});
  out.push_back({p + "v_proj.weight", &w_v_, &dw_v_});
  if (cfg_.bias) out.push_back({p + "v_proj.bias", &b_v_, &db_v_});
  out.push_back({p + "mlstm_cell.igate.weight", &w_ig_, &dw_ig_});
  out.push_back({p + "mlstm_cell.igate.bias", &b_ig_, &db_ig_});
  out.push_back({p + "mlstm_cell.fgate.weight", &w_fg_, &dw_fg_});
  out.push_back({p + "mlstm_cell.fgate.bias", &b_fg_, &db_fg_});
  out.push_back({p + "mlstm_cell.outnorm.weight", &w_norm_, &dw_norm_});
  out.push_back({p + "learnable_skip", &skip_, &dskip_});
  out.push_back({p + "proj_down.weight", &w_down_, &dw_down_});
  if (cfg_.bias) out.push_back({p + "proj_down.bias", &b_down_, &db_down_});
}

template <class T>
static const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <class T>
static T* mptr_or_null(Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

template <class T>
typename MLSTMLayer<T>::Scratch& MLSTMLayer<T>::scratch() {
  static thread_local Scratch s;
  return s;
}

template <class T>
Tensor MLSTMLayer<T>::forward(const Tensor& x, Mode mode, Rng* rng,
                              const MLSTMLayerState* state_in, MLSTMLayerState* state_out) {
  XLSTM_CHECK(x.ndim() == 3 && x.dim(2) == D_, ValueError, "[mlstm_layer] x must be (B,S,D)=(?,?,",
              D_, "), got ", shape_str(x.shape()));
  XLSTM_CHECK(x.dtype() == DTypeOf<T>::value, TypeError, "[mlstm_layer] x has dtype ",
              dtype_name(x.dtype()), ", the layer computes in ", dtype_name(DTypeOf<T>::value));
  const int64_t B = x.dim(0), S = x.dim(1), N = B * S, I = inner_;
  XLSTM_CHECK(S >= 1, ValueError, "[mlstm_layer] empty sequence");
  B_ = B;
  S_ = S;
  Scratch& sc = scratch();
  x_.assign(x.data<T>(), x.data<T>() + N * D_);
  auto& up = sc.up;
  up.resize((size_t)(N * 2 * I));
  linear_forward<T>(N, D_, 2 * I, x_.data(), w_up_.data<T>(), ptr_or_null<T>(b_up_), up.data());
  xm_.resize((size_t)(N * I));
  z_.resize((size_t)(N * I));
  const bool big = N * I > 32768;  // elementwise passes: threads from this size on
  parallel_for(N, big, [&](int64_t r) {
    std::memcpy(&xm_[r * I], &up[r * 2 * I], sizeof(T) * I);
    std::memcpy(&z_[r * I], &up[r * 2 * I + I], sizeof(T) * I);
  });
  // causal conv with optional carried state
  const T* cs_in = nullptr;
  has_conv_state_ = state_in && state_in->conv.defined();
  if (has_conv_state_) {
    XLSTM_CHECK(state_in->conv.shape() == Shape({B, K_ - 1, I}), ValueError,
                "[mlstm_layer] conv state must be (B,K-1,inner)=", shape_str({B, K_ - 1, I}),
                ", got ", shape_str(state_in->conv.shape()));
    Tensor c = state_in->conv.to(DTypeOf<T>::value);
    conv_state_in_.assign(c.data<T>(), c.data<T>() + c.numel());
    cs_in = conv_state_in_.data();
  }
  xcpre_.resize((size_t)(N * I));
  Tensor conv_out;
  if (state_out) conv_out = Tensor({B, K_ - 1, I}, DTypeOf<T>::value);
  conv1d_forward<T>(B, S, I, K_, xm_.data(), w_conv_.data<T>(), b_conv_.data<T>(), cs_in,
                    xcpre_.data(), state_out ? conv_out.data<T>() : nullptr);
  xc_.resize((size_t)(N * I));
  act_forward<T>(Act::SiLU, N * I, xcpre_.data(), xc_.data());
  // q, k, v and the gate input cat(q, k, v)
  auto& q = sc.q;
  q.resize((size_t)(N * I));
  auto& k = sc.k;
  k.resize((size_t)(N * I));
  auto& v = sc.v;
  v.resize((size_t)(N * I));
  headwise_forward<T>(N, NP_, BS_, BS_, xc_.data(), w_q_.data<T>(), ptr_or_null<T>(b_q_), q.data());
  headwise_forward<T>(N, NP_, BS_, BS_, xc_.data(), w_k_.data<T>(), ptr_or_null<T>(b_k_), k.data());
  headwise_forward<T>(N, NP_, BS_, BS_, xm_.data(), w_v_.data<T>(), ptr_or_null<T>(b_v_), v.data());
  qkv_.resize((size_t)(N * 3 * I));
  parallel_for(N, big, [&](int64_t r) {
    std::memcpy(&qkv_[r * 3 * I], &q[r * I], sizeof(T) * I);
    std::memcpy(&qkv_[r * 3 * I + I], &k[r * I], sizeof(T) * I);
    std::memcpy(&qkv_[r * 3 * I + 2 * I], &v[r * I], sizeof(T) * I);
  });
  auto& ig = sc.ig;
  ig.resize((size_t)(N * NH_));
  auto& fg = sc.fg;
  fg.resize((size_t)(N * NH_));
  linear_forward<T>(N, 3 * I, NH_, qkv_.data(), w_ig_.data<T>(), b_ig_.data<T>(), ig.data());
  linear_forward<T>(N, 3 * I, NH_, qkv_.data(), w_fg_.data<T>(), b_fg_.data<T>(), fg.data());
  // to the kernel layout (B, NH, S, DH) / (B, NH, S)
  const DType dt = DTypeOf<T>::value;
  Tensor tq = Tensor::empty({B, NH_, S, DH_}, dt), tk = Tensor::empty({B, NH_, S, DH_}, dt),
         tv = Tensor::empty({B, NH_, S, DH_}, dt);
  Tensor ti = Tensor::empty({B, NH_, S}, dt), tf = Tensor::empty({B, NH_, S}, dt);
  bsnd_to_bnsd<T>(B, S, NH_, DH_, q.data(), tq.data<T>());
  bsnd_to_bnsd<T>(B, S, NH_, DH_, k.data(), tk.data<T>());
  bsnd_to_bnsd<T>(B, S, NH_, DH_, v.data(), tv.data<T>());
  bsnd_to_bnsd<T>(B, S, NH_, 1, ig.data(), ti.data<T>());
  bsnd_to_bnsd<T>(B, S, NH_, 1, fg.data(), tf.data<T>());
  MlstmOptions opt;
  opt.scale_on = ScaleOn::K;  // the xlstm package's state convention
  opt.chunk_size = cfg_.chunk_size;
  const bool stateful = (state_in && state_in->cell.c.defined()) || state_out;
  MlstmForm form = cfg_.form;
  // One step of a stateful stream (decode) is the recurrent step whatever form the layer
  // trains with: the chunkwise form would pad it to a whole chunk.
  if (stateful && S == 1) form = MlstmForm::Recurrent;
  else if (stateful && form == MlstmForm::Parallel) form = MlstmForm::Chunkwise;
  MlstmState cell_out;
  Tensor h = mlstm_forward(form, tq, tk, tv, ti, tf, opt,
                           state_in && state_in->cell.c.defined() ? &state_in->cell : nullptr,
                           state_out ? &cell_out : nullptr, &ctx_);
  hs_.resize((size_t)(N * I));
  bnsd_to_bsnd<T>(B, S, NH_, DH_, h.data<T>(), hs_.data());
  hn_.resize((size_t)(N * I));
  mean_.resize((size_t)(N * NH_));
  rstd_.resize((size_t)(N * NH_));
  multihead_norm_forward<T>(N, NH_, DH_, hs_.data(), w_norm_.data<T>(), nullptr, 1e-5,
                            NormScale::OnePlusWeight, hn_.data(), mean_.data(), rstd_.data());
  pre_.resize((size_t)(N * I));
  const T* sk = skip_.data<T>();
  {
    const T *hn = hn_.data(), *xc = xc_.data(), *z = z_.data();
    T* pre = pre_.data();
    parallel_for(N, big, [&](int64_t r) {
#pragma omp simd
      for (int64_t j = 0; j < I; ++j) {
        const int64_t e = r * I + j;
        const T zz = z[e];
        pre[e] = (hn[e] + sk[j] * xc[e]) * (zz * PwMath<T>::sigmoid(zz));
      }
    });
  }
  Tensor y = Tensor::empty({B, S, D_}, dt);
  linear_forward<T>(N, I, D_, pre_.data(), w_down_.data<T>(), ptr_or_null<T>(b_down_), y.data<T>());
  mask_.clear();
  if (mode == Mode::Train && cfg_.dropout > 0) {
    XLSTM_CHECK(rng != nullptr, ValueError, "[mlstm_layer] dropout in Mode::Train needs an Rng");
    mask_.resize((size_t)(N * D_));
    dropout_forward<T>(N * D_, cfg_.dropout, *rng, y.data<T>(), y.data<T>(), mask_.data());
  }
  if (state_out) {
    state_out->conv = conv_out;
    state_out->cell = cell_out;
  }
  return y;
}

template <class T>
Tensor MLSTMLayer<T>::backward(const Tensor& dy_in) {
  XLSTM_CHECK(B_ > 0, ValueError, "[mlstm_layer] backward called before forward");
  const int64_t B = B_, S = S_, N = B * S, I = inner_;
  XLSTM_CHECK(dy_in.shape() == Shape({B, S, D_}), ValueError, "[mlstm_layer] dy must be ",
              shape_str({B, S, D_}), ", got ", shape_str(dy_in.shape()));
  const DType dt = DTypeOf<T>::value;
  Scratch& sc = scratch();
  auto& dy = sc.dy;
  dy.assign(dy_in.data<T>(), dy_in.data<T>() + N * D_);
  if (!mask_.empty()) dropout_backward<T>(N * D_, mask_.data(), dy.data(), dy.data());
  auto& dpre = sc.dpre;
  dpre.resize((size_t)(N * I));
  linear_backward<T>(N, I, D_, pre_.data(), w_down_.data<T>(), dy.data(), dpre.data(),
                     dw_down_.data<T>(), mptr_or_null<T>(db_down_));
  // pre = (hn + skip*xc) * silu(z)
  auto& dhn = sc.dhn;
  dhn.resize((size_t)(N * I));
  auto& dxc = sc.dxc;
  dxc.resize((size_t)(N * I));
  auto& dup = sc.dup;
  dup.resize((size_t)(N * 2 * I));
  const T* sk = skip_.data<T>();
  T* dsk = dskip_.data<T>();
  std::vector<double> dsk_acc((size_t)I, 0.0);
  {
    const T *hn = hn_.data(), *xcp = xc_.data(), *z = z_.data(), *dp = dpre.data();
    T *dhnp = dhn.data(), *dxcp = dxc.data(), *dupp = dup.data();
    double* acc = dsk_acc.data();
    // Threads take blocks of 16 columns over all rows, so each column's skip gradient is summed
    // over the rows in order whatever the thread count.
    constexpr int64_t kCols = 16;
    parallel_for((I + kCols - 1) / kCols, N * I > 32768, [&](int64_t jb) {
      const int64_t j0 = jb * kCols, j1 = std::min(I, j0 + kCols);
      for (int64_t r = 0; r < N; ++r) {
#pragma omp simd
        for (int64_t j = j0; j < j1; ++j) {
          const int64_t e = r * I + j;
          const T zz = z[e], sg = PwMath<T>::sigmoid(zz), si = zz * sg;
          const T s = hn[e] + sk[j] * xcp[e];
          const T ds = dp[e] * si;
          dhnp[e] = ds;
          dxcp[e] = ds * sk[j];
          acc[j] += (double)ds * (double)xcp[e];
          dupp[r * 2 * I + I + j] = dp[e] * s * (sg * (T(1) + zz * (T(1) - sg)));  // dz
        }
      }
    });
  }
  for (int64_t j = 0; j < I; ++j) dsk[j] += (T)dsk_acc[j];
  auto& dhs = sc.dhs;
  dhs.resize((size_t)(N * I));
  multihead_norm_backward<T>(N, NH_, DH_, hs_.data(), w_norm_.data<T>(), NormScale::OnePlusWeight,
                             mean_.data(), rstd_.data(), dhn.data(), dhs.data(),
                             dw_norm_.data<T>(), nullptr);
  Tensor dh = Tensor::empty({B, NH_, S, DH_}, dt);
  bsnd_to_bnsd<T>(B, S, NH_, DH_, dhs.data(), dh.data<T>());
  MlstmTensorGrads g = mlstm_backward(ctx_, dh);
  // gate gradients -> d cat(q,k,v)
  auto& di = sc.di;
  di.resize((size_t)(N * NH_));
  auto& df = sc.df;
  df.resize((size_t)(N * NH_));
  bnsd_to_bsnd<T>(B, S, NH_, 1, g.di.data<T>(), di.data());
  bnsd_to_bsnd<T>(B, S, NH_, 1, g.df.data<T>(), df.data());
  auto& dqkv = sc.dqkv;
  dqkv.resize((size_t)(N * 3 * I));
  auto& tmp = sc.tmp;
  tmp.resize((size_t)(N * 3 * I));
  linear_backward<T>(N, 3 * I, NH_, qkv_.data(), w_ig_.data<T>(), di.data(), dqkv.data(),
                     dw_ig_.data<T>(), db_ig_.data<T>());
  linear_backward<T>(N, 3 * I, NH_, qkv_.data(), w_fg_.data<T>(), df.data(), tmp.data(),
                     dw_fg_.data<T>(), db_fg_.data<T>());
  const bool big = N * I > 32768;
  parallel_for(N, big, [&](int64_t r) {
    T* a = dqkv.data() + r * 3 * I;
    const T* b = tmp.data() + r * 3 * I;
#pragma omp simd
    for (int64_t e = 0; e < 3 * I; ++e) a[e] += b[e];
  });
  auto& dq = sc.dq;
  dq.resize((size_t)(N * I));
  auto& dk = sc.dk;
  dk.resize((size_t)(N * I));
  auto& dv = sc.dv;
  dv.resize((size_t)(N * I));
  // dq, dk, dv (token-major) = the kernel's gradients (head-major) + the gates' part, one pass
  const T *gq = g.dq.data<T>(), *gk = g.dk.data<T>(), *gv = g.dv.data<T>();
  T *dqp = dq.data(), *dkp = dk.data(), *dvp = dv.data();
  parallel_for(N, big, [&](int64_t r) {
    const int64_t b = r / S, t = r % S;
    const T* part = dqkv.data() + r * 3 * I;
    for (int64_t h = 0; h < NH_; ++h) {
      const int64_t src = ((b * NH_ + h) * S + t) * DH_, dst = r * I + h * DH_;
#pragma omp simd
      for (int64_t d = 0; d < DH_; ++d) {
        dqp[dst + d] = gq[src + d] + part[h * DH_ + d];
        dkp[dst + d] = gk[src + d] + part[I + h * DH_ + d];
        dvp[dst + d] = gv[src + d] + part[2 * I + h * DH_ + d];
      }
    }
  });
  // headwise projections
  auto& dpart = sc.dpart;
  dpart.resize((size_t)(N * I));
  auto& dxm = sc.dxm;
  dxm.resize((size_t)(N * I));
  headwise_backward<T>(N, NP_, BS_, BS_, xc_.data(), w_q_.data<T>(), dq.data(), dxc.data(),
                       dw_q_.data<T>(), mptr_or_null<T>(db_q_), true);
  headwise_backward<T>(N, NP_, BS_, BS_, xc_.data(), w_k_.data<T>(), dk.data(), dxc.data(),
                       dw_k_.data<T>(), mptr_or_null<T>(db_k_), true);
  headwise_backward<T>(N, NP_, BS_, BS_, xm_.data(), w_v_.data<T>(), dv.data(), dxm.data(),
                       dw_v_.data<T>(), mptr_or_null<T>(db_v_));
  // SiLU and conv
  act_backward<T>(Act::SiLU, N * I, xcpre_.data(), dxc.data(), dxc.data());
  conv1d_backward<T>(B, S, I, K_, xm_.data(), w_conv_.data<T>(),
                     has_conv_state_ ? conv_state_in_.data() : nullptr, dxc.data(), nullptr,
                     dpart.data(), dw_conv_.data<T>(), db_conv_.data<T>(), nullptr);
  {
    T* du = dup.data();
    const T *a = dxm.data(), *b = dpart.data();
    parallel_for(N, big, [&](int64_t r) {
#pragma omp simd
      for (int64_t j = 0; j < I; ++j) du[r * 2 * I + j] = a[r * I + j] + b[r * I + j];
    });
  }
  Tensor dx = Tensor::empty({B, S, D_}, dt);
  linear_backward<T>(N, D_, 2 * I, x_.data(), w_up_.data<T>(), dup.data(), dx.data<T>(),
                     dw_up_.data<T>(), mptr_or_null<T>(db_up_));
  return dx;
}

template class MLSTMLayer<float>;
template class MLSTMLayer<double>;

}  // namespace xlstm
