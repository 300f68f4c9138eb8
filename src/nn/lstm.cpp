#include "nn/lstm.h"

#include <type_traits>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/dropout.h"
#include "cpu/parallel.h"

namespace xlstm {

namespace {

// (B, T, F) <-> (T, B, F): the kernels are time-major so that each step's rows are contiguous.
template <class T>
void bt_to_tb(int64_t B, int64_t TT, int64_t F, const T* src, T* dst) {
  parallel_for(TT, B * TT * F >= (1 << 18), [&](int64_t t) {
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(dst + (t * B + b) * F, src + (b * TT + t) * F, (size_t)F * sizeof(T));
  });
}
template <class T>
void tb_to_bt(int64_t B, int64_t TT, int64_t F, const T* src, T* dst) {
  parallel_for(B, B * TT * F >= (1 << 18), [&](int64_t b) {
    for (int64_t t = 0; t < TT; ++t)
      std::memcpy(dst + (b * TT + t) * F, src + (t * B + b) * F, (size_t)F * sizeof(T));
  });
}

template <class T>
void check_dtype(const char* op, const char* name, const Tensor& t) {
  XLSTM_CHECK(t.dtype() == DTypeOf<T>::value, TypeError, op, " ", name, " must have dtype ",
              dtype_name(DTypeOf<T>::value), ", got ", dtype_name(t.dtype()),
              "; hint: convert with .to(), or use LSTM<", sizeof(T) == 4 ? "double" : "float",
              "> for ", dtype_name(t.dtype()), " data");
  XLSTM_CHECK(t.device() == Device::CPU, TypeError, op, " ", name,
              " must be on the CPU for this kernel");
}

}  // namespace

template <class T>
LSTM<T>::LSTM(const LSTMConfig& cfg, uint64_t seed) : cfg_(cfg) {
  XLSTM_CHECK(cfg.input_size >= 1 && cfg.hidden_size >= 1 && cfg.num_layers >= 1, ValueError,
              "[LSTM] input_size, hidden_size and num_layers must be >= 1, got ", cfg.input_size,
              ", ", cfg.hidden_size, ", ", cfg.num_layers);
  XLSTM_CHECK(cfg.dropout >= 0.0 && cfg.dropout < 1.0, ValueError,
              "[LSTM] dropout must be in [0, 1), got ", cfg.dropout);
  XLSTM_CHECK(cfg.batch_first, NotImplementedError,
              "[LSTM] batch_first=false is not supported; hint: pass (B,T,I) input with "
              "batch_first=true");
  XLSTM_CHECK(cfg.proj_size == 0, NotImplementedError, "[LSTM] proj_size=", cfg.proj_size,
              " is not supported; hint: only proj_size=0 (no projection) is implemented");
  const int64_t D = num_directions(), H = cfg.hidden_size, L = cfg.num_layers;
  const DType dt = DTypeOf<T>::value;
  dirs_.resize((size_t)(L * D));
  for (int64_t l = 0; l < L; ++l)
    for (int64_t d = 0; d < D; ++d) {
      Dir& p = dir(l, d);
      make_param(p.w_ih, p.gw_ih, {4 * H, layer_in(l)}, dt);
      make_param(p.w_hh, p.gw_hh, {4 * H, H}, dt);
      if (cfg.bias) {
        make_param(p.b_ih, p.gb_ih, {4 * H}, dt);
        make_param(p.b_hh, p.gb_hh, {4 * H}, dt);
      }
    }
  out_.resize((size_t)L);
  in_.resize((size_t)L);
  mask_.resize((size_t)L);
  Rng rng(seed);
  reset_parameters(rng);
}

template <class T>
void LSTM<T>::reset_parameters(Rng& rng) {
  const double k = 1.0 / std::sqrt((double)cfg_.hidden_size);
  for (auto& p : params()) {
    T* v = p.value->template data<T>();
    for (int64_t i = 0; i < p.value->numel(); ++i) v[i] = (T)rng.uniform(-k, k);
  }
}

template <class T>
void LSTM<T>::collect_params(const std::string& prefix, std::vector<ParamRef>& out) {
  const int64_t D = num_directions();
  for (int64_t l = 0; l < cfg_.num_layers; ++l)
    for (int64_t d = 0; d < D; ++d) {
      Dir& p = dir(l, d);
      const std::string sfx = "_l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
      out.push_back({prefix + "weight_ih" + sfx, &p.w_ih, &p.gw_ih});
      out.push_back({prefix + "weight_hh" + sfx, &p.w_hh, &p.gw_hh});
      if (cfg_.bias) {
        out.push_back({prefix + "bias_ih" + sfx, &p.b_ih, &p.gb_ih});
        out.push_back({prefix + "bias_hh" + sfx, &p.b_hh, &p.gb_hh});
      }
    }
}

template <class T>
void LSTM<T>::check_state(const char* op, const char* name, const Tensor& t, int64_t B) const {
  const int64_t LD = cfg_.num_layers * num_directions(), H = cfg_.hidden_size;
  XLSTM_CHECK(t.shape() == Shape({LD, B, H}), ValueError, op, " ", name, " must be (L*D,B,H)=(", LD,
              ",", B, ",", H, "), got ", shape_str(t.shape()),
              "; hint: one (B,H) slice per layer and direction, index layer*D + direction");
  check_dtype<T>(op, name, t);
}

template <class T>
void LSTM<T>::check_out(const char* op, const char* name, const Tensor& t,
                        const Shape& want) const {
  XLSTM_CHECK(t.defined() && t.shape() == want, ValueError, op, " output tensor ", name,
              " must be ", shape_str(want), ", got ",
              t.defined() ? shape_str(t.shape()) : "undefined",
              "; hint: use the allocating overload to get tensors of the right shape");
  check_dtype<T>(op, name, t);
}

template <class T>
typename LSTM<T>::Output LSTM<T>::forward(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                          LstmMode mode, Rng* rng) {
  XLSTM_CHECK(x.defined() && x.ndim() == 3, ValueError, "[lstm_forward] x must be (B,T,I)=(?,?,",
              cfg_.input_size, "), got ", x.defined() ? shape_str(x.shape()) : "undefined");
  const int64_t LD = cfg_.num_layers * num_directions(), H = cfg_.hidden_size;
  const int64_t B = x.dim(0), TT = x.dim(1);
  const DType dt = DTypeOf<T>::value;
  Output o;
  o.output = Tensor::empty({B, TT, num_directions() * H}, dt);
  o.h_n = Tensor::empty({LD, B, H}, dt);
  o.c_n = Tensor::empty({LD, B, H}, dt);
  forward_into(x, h0, c0, mode, rng, o.output, o.h_n, o.c_n);
  return o;
}

template <class T>
void LSTM<T>::forward_into(const Tensor& x, const Tensor& h0, const Tensor& c0, LstmMode mode,
                           Rng* rng, Tensor& output, Tensor& h_n, Tensor& c_n) {
  const char* op = "[lstm_forward]";
  const int64_t I = cfg_.input_size, H = cfg_.hidden_size, L = cfg_.num_layers;
  const int64_t D = num_directions(), DH = D * H;
  XLSTM_CHECK(x.defined() && x.ndim() == 3 && x.dim(2) == I && x.dim(0) >= 1 && x.dim(1) >= 1,
              ValueError, op, " x must be (B,T,I)=(?,?,", I, "), got ",
              x.defined() ? shape_str(x.shape()) : "undefined",
              "; hint: batch-first input with input_size features and B, T >= 1");
  check_dtype<T>(op, "x", x);
  const int64_t B = x.dim(0), TT = x.dim(1);
  XLSTM_CHECK(h0.defined() == c0.defined(), ValueError, op,
              " h0 and c0 must be given together (or neither, for a zero state)");
  const bool has_state = h0.defined();
  if (has_state) {
    check_state(op, "h0", h0, B);
    check_state(op, "c0", c0, B);
  }
  check_out(op, "output", output, {B, TT, DH});
  check_out(op, "h_n", h_n, {L * D, B, H});
  check_out(op, "c_n", c_n, {L * D, B, H});
  const bool drop = mode == LstmMode::Train && cfg_.dropout > 0.0 && L > 1;
  XLSTM_CHECK(!drop || rng, ValueError, op, " training with dropout=", cfg_.dropout,
              " needs an Rng; hint: pass &rng, or LstmMode::Eval");

  B_ = B, T_ = TT, has_state_ = has_state, dropped_ = drop;
  T* xt = xt_.ensure(TT * B * I);
  bt_to_tb(B, TT, I, x.data<T>(), xt);
  T* h0s = nullptr;
  T* c0s = nullptr;
  if (has_state) {
    h0s = h0_.ensure(L * D * B * H);
    c0s = c0_.ensure(L * D * B * H);
    std::memcpy(h0s, h0.data<T>(), h0.nbytes());
    std::memcpy(c0s, c0.data<T>(), c0.nbytes());
  }
  for (int64_t l = 0; l < L; ++l) {
    const T* in = l == 0 ? xt : (drop ? in_[(size_t)l].data() : out_[(size_t)(l - 1)].data());
    T* out = out_[(size_t)l].ensure(TT * B * DH);
    for (int64_t d = 0; d < D; ++d) {
      Dir& p = dir(l, d);
      const int64_t s = (l * D + d) * B * H;
      LstmForwardArgs<T> a;
      a.x = in, a.ldx = layer_in(l);
      a.W_ih = p.w_ih.template data<T>(), a.W_hh = p.w_hh.template data<T>();
      if (cfg_.bias) a.b_ih = p.b_ih.template data<T>(), a.b_hh = p.b_hh.template data<T>();
      if (has_state) a.h0 = h0s + s, a.c0 = c0s + s;
      a.y = out + d * H, a.ldy = DH;
      a.h_n = h_n.data<T>() + s, a.c_n = c_n.data<T>() + s;
      lstm_forward<T>({TT, B, layer_in(l), H},
                      d == 0 ? LstmDirection::Forward : LstmDirection::Reverse, a, p.cache,
                      scratch_);
    }
    if (drop && l + 1 < L) {
      const int64_t n = TT * B * DH;
      dropout_forward<T>(n, cfg_.dropout, *rng, out, in_[(size_t)(l + 1)].ensure(n),
                         mask_[(size_t)(l + 1)].ensure(n));
    }
  }
  tb_to_bt(B, TT, DH, out_[(size_t)(L - 1)].data(), output.data<T>());
}

template <class T>
typename LSTM<T>::Grads LSTM<T>::backward(const Tensor& doutput, const Tensor& dh_n,
                                          const Tensor& dc_n) {
  const int64_t LD = cfg_.num_layers * num_directions(), H = cfg_.hidden_size;
  const DType dt = DTypeOf<T>::value;
  Grads g;
  XLSTM_CHECK(B_ > 0, ValueError, "[lstm_backward] called before forward");
  g.dx = Tensor::empty({B_, T_, cfg_.input_size}, dt);
  g.dh0 = Tensor::empty({LD, B_, H}, dt);
  g.dc0 = Tensor::empty({LD, B_, H}, dt);
  backward_into(doutput, dh_n, dc_n, g.dx, g.dh0, g.dc0);
  return g;
}

template <class T>
void LSTM<T>::backward_into(const Tensor& doutput, const Tensor& dh_n, const Tensor& dc_n,
                            Tensor& dx, Tensor& dh0, Tensor& dc0) {
  const char* op = "[lstm_backward]";
  XLSTM_CHECK(B_ > 0, ValueError, op, " called before forward; hint: run forward first");
  const int64_t I = cfg_.input_size, H = cfg_.hidden_size, L = cfg_.num_layers;
  const int64_t D = num_directions(), DH = D * H, B = B_, TT = T_;
  XLSTM_CHECK(doutput.defined() && doutput.shape() == Shape({B, TT, DH}), ValueError, op,
              " doutput must be (B,T,D*H)=(", B, ",", TT, ",", DH,
              ") like the last forward's "
              "output, got ",
              doutput.defined() ? shape_str(doutput.shape()) : "undefined");
  check_dtype<T>(op, "doutput", doutput);
  if (dh_n.defined()) check_state(op, "dh_n", dh_n, B);
  if (dc_n.defined()) check_state(op, "dc_n", dc_n, B);
  if (dx.defined()) check_out(op, "dx", dx, {B, TT, I});
  if (dh0.defined()) check_out(op, "dh0", dh0, {L * D, B, H});
  if (dc0.defined()) check_out(op, "dc0", dc0, {L * D, B, H});

  const int64_t W = std::max(I, DH);
  T* ga = ga_.ensure(TT * B * W);  // gradient of the current layer's output
  T* gb = gb_.ensure(TT * B * W);  // gradient of its input
  bt_to_tb(B, TT, DH, doutput.data<T>(), ga);
  for (int64_t l = L - 1; l >= 0; --l) {
    const T* in =
        l == 0 ? xt_.data() : (dropped_ ? in_[(size_t)l].data() : out_[(size_t)(l - 1)].data());
    const bool need_dx = l > 0 || dx.defined();
    for (int64_t d = 0; d < D; ++d) {
      Dir& p = dir(l, d);
      const int64_t s = (l * D + d) * B * H;
      LstmBackwardArgs<T> a;
      a.x = in, a.ldx = layer_in(l);
      a.W_ih = p.w_ih.template data<T>(), a.W_hh = p.w_hh.template data<T>();
      if (has_state_) a.h0 = h0_.data() + s, a.c0 = c0_.data() + s;
      a.y = out_[(size_t)l].data() + d * H, a.ldy = DH;
      a.dy = ga + d * H, a.lddy = DH;
      if (dh_n.defined()) a.dh_n = dh_n.data<T>() + s;
      if (dc_n.defined()) a.dc_n = dc_n.data<T>() + s;
      if (need_dx) {
        a.dx = gb, a.lddx = layer_in(l);
        a.dx_mode = d == 0 ? GradWrite::Overwrite : GradWrite::Accumulate;
      }
      if (dh0.defined()) a.dh0 = dh0.data<T>() + s;
      if (dc0.defined()) a.dc0 = dc0.data<T>() + s;
      a.dW_ih = p.gw_ih.template data<T>(), a.dW_hh = p.gw_hh.template data<T>();
      if (cfg_.bias) a.db_ih = p.gb_ih.template data<T>(), a.db_hh = p.gb_hh.template data<T>();
      lstm_backward<T>({TT, B, layer_in(l), H},
                       d == 0 ? LstmDirection::Forward : LstmDirection::Reverse, a, p.cache,
                       scratch_);
    }
    if (l > 0 && dropped_) dropout_backward<T>(TT * B * DH, mask_[(size_t)l].data(), gb, gb);
    std::swap(ga, gb);
  }
  if (dx.defined()) tb_to_bt(B, TT, I, ga, dx.data<T>());
}

template <class T>
void LSTM<T>::step(const Tensor& x, Tensor& h, Tensor& c) {
  const char* op = "[lstm_step]";
  const int64_t I = cfg_.input_size, H = cfg_.hidden_size, L = cfg_.num_layers;
  XLSTM_CHECK(!cfg_.bidirectional, ValueError, op,
              " needs a unidirectional LSTM; hint: the reverse direction needs the whole "
              "sequence, use forward");
  XLSTM_CHECK(x.defined() && x.ndim() == 2 && x.dim(1) == I && x.dim(0) >= 1, ValueError, op,
              " x must be (B,I)=(?,", I, "), got ",
              x.defined() ? shape_str(x.shape()) : "undefined");
  check_dtype<T>(op, "x", x);
  const int64_t B = x.dim(0);
  XLSTM_CHECK(h.defined() && c.defined(), ValueError, op, " h and c must be given (zeros at t=0)");
  check_state(op, "h", h, B);
  check_state(op, "c", c, B);
  T* gates = step_gates_.ensure(B * 4 * H);
  T* hd = h.data<T>();
  T* cd = c.data<T>();
  for (int64_t l = 0; l < L; ++l) {
    Dir& p = dir(l, 0);
    const T* in = l == 0 ? x.data<T>() : hd + (l - 1) * B * H;
    if constexpr (std::is_same_v<T, float>) {
      if (!step_w_bf16_.empty() && B <= 4) {
        lstm_step_bf16(B, layer_in(l), H, in, layer_in(l),
                       static_cast<const uint16_t*>(step_w_bf16_[(size_t)l].raw()), cfg_.bias ? p.b_ih.template data<T>() : nullptr,
                       cfg_.bias ? p.b_hh.template data<T>() : nullptr, hd + l * B * H, H,
                       cd + l * B * H, gates);
        continue;
      }
    }
    lstm_step<T>(B, layer_in(l), H, in, layer_in(l), p.w_ih.template data<T>(),
                 p.w_hh.template data<T>(), cfg_.bias ? p.b_ih.template data<T>() : nullptr,
                 cfg_.bias ? p.b_hh.template data<T>() : nullptr, hd + l * B * H, H, cd + l * B * H,
                 gates);
  }
}

template <class T>
void LSTM<T>::set_step_bf16(bool on) {
  XLSTM_CHECK((std::is_same_v<T, float>), TypeError,
              "[lstm] bf16 decode weights need a float32 model");
  step_w_bf16_.clear();
  if (!on) return;
  const int64_t H = cfg_.hidden_size;
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const Dir& p = dir(l, 0);
    Tensor w = Tensor::empty({lstm_step_bf16_packed_size(layer_in(l), H)}, DType::BF16);
    lstm_step_bf16_pack(layer_in(l), H, p.w_ih.template data<float>(),
                        p.w_hh.template data<float>(), static_cast<uint16_t*>(w.raw()));
    step_w_bf16_.push_back(std::move(w));
  }
}

template class LSTM<float>;
template class LSTM<double>;

}  // namespace xlstm
