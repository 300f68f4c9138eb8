#include "models/xlstm_large.h"

#include "models/xlstm_large_impl.h"

#include <cmath>
#include <cstring>
#include <type_traits>

#include "cpu/activations.h"
#include "cpu/embedding.h"
#include "cpu/gemm.h"
#include "cpu/headwise.h"
#include "cpu/layernorm.h"
#include "cpu/linear.h"
#include "cpu/rmsnorm.h"
#include "io/json_config.h"
#include "nn/init.h"

namespace xlstm {

using nlohmann::json;
using namespace xlstm_large_detail;

// ---------------------------------------------------------------- config

int64_t XLSTMLargeConfig::qk_dim() const { return (int64_t)((double)embedding_dim * qk_dim_factor); }
int64_t XLSTMLargeConfig::v_dim() const { return (int64_t)((double)embedding_dim * v_dim_factor); }
int64_t XLSTMLargeConfig::ffn_dim() const {
  const double x = (double)embedding_dim * ffn_proj_factor;
  const double m = (double)ffn_round_up_to_multiple_of;
  return (int64_t)(std::floor((x + m - 1) / m) * m);
}

void XLSTMLargeConfig::validate(const std::string& w) const {
  XLSTM_CHECK(vocab_size > 0, ValueError, w, ": vocab_size must be > 0, got ", vocab_size);
  XLSTM_CHECK(embedding_dim > 0, ValueError, w, ": embedding_dim must be > 0, got ", embedding_dim);
  XLSTM_CHECK(num_heads > 0, ValueError, w, ": num_heads must be > 0, got ", num_heads);
  XLSTM_CHECK(num_blocks > 0, ValueError, w, ": num_blocks must be > 0, got ", num_blocks);
  XLSTM_CHECK(qk_dim() > 0 && qk_dim() % num_heads == 0, ValueError, w, ": qk_dim = int(",
              embedding_dim, " * qk_dim_factor ", qk_dim_factor, ") = ", qk_dim(),
              " must be a positive multiple of num_heads ", num_heads);
  XLSTM_CHECK(v_dim() > 0 && v_dim() % num_heads == 0, ValueError, w, ": v_dim = int(",
              embedding_dim, " * v_dim_factor ", v_dim_factor, ") = ", v_dim(),
              " must be a positive multiple of num_heads ", num_heads);
  XLSTM_CHECK(ffn_round_up_to_multiple_of > 0 && ffn_dim() > 0, ValueError, w,
              ": ffn_proj_factor/ffn_round_up_to_multiple_of give an FFN width of ", ffn_dim());
  XLSTM_CHECK(chunk_size > 0, ValueError, w, ": chunk_size must be > 0, got ", chunk_size);
  XLSTM_CHECK(norm_eps > 0 && eps >= 0, ValueError, w, ": norm_eps must be > 0 and eps >= 0");
}

namespace {

// A number field that may be null (= no cap, returned as 0).
double cap_field(const json& j, const char* key, double dflt, const std::string& w) {
  if (!j.contains(key)) return dflt;
  if (j[key].is_null()) return 0.0;
  XLSTM_CHECK(j[key].is_number(), ValueError, w, ": field '", key, "' must be a number or null");
  const double v = j[key].get<double>();
  XLSTM_CHECK(v > 0, ValueError, w, ": field '", key, "' must be > 0 or null, got ", v);
  return v;
}

int64_t int_field(const json& j, const char* key, int64_t dflt, const std::string& w) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  XLSTM_CHECK(j[key].is_number_integer(), ValueError, w, ": field '", key,
              "' must be an integer");
  return j[key].get<int64_t>();
}
double num_field(const json& j, const char* key, double dflt, const std::string& w) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  XLSTM_CHECK(j[key].is_number(), ValueError, w, ": field '", key, "' must be a number");
  return j[key].get<double>();
}
bool bool_field(const json& j, const char* key, bool dflt, const std::string& w) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  XLSTM_CHECK(j[key].is_boolean(), ValueError, w, ": field '", key, "' must be true or false");
  return j[key].get<bool>();
}

}  // namespace

XLSTMLargeConfig xlstm_large_config_from_json(const json& j, const std::string& w) {
  XLSTM_CHECK(j.is_object(), ValueError, w, ": config must be a JSON object");
  if (j.contains("model_type")) {
    XLSTM_CHECK(j["model_type"].is_string() && j["model_type"].get<std::string>() == "xlstm",
                ValueError, w, ": field 'model_type' is ", j["model_type"].dump(),
                "; only \"xlstm\" (xLSTMForCausalLM) is supported");
  }
  if (j.contains("weight_mode")) {
    // "fused" only changes how the weights are stored (the HF loader splits them).
    XLSTM_CHECK(j["weight_mode"].is_string() && (j["weight_mode"].get<std::string>() == "single" ||
                                                 j["weight_mode"].get<std::string>() == "fused"),
                ValueError, w, ": field 'weight_mode' is ", j["weight_mode"].dump(),
                "; expected \"single\" or \"fused\"");
  }
  XLSTMLargeConfig c;
  // H from embedding_dim or hidden_size (they must agree); L from num_blocks or
  // num_hidden_layers (FORMAT.md §2: HF fills each from its partner only when one is None).
  const int64_t emb = int_field(j, "embedding_dim", -1, w), hid = int_field(j, "hidden_size", -1, w);
  XLSTM_CHECK(emb > 0 || hid > 0 || !j.contains("model_type"), ValueError, w,
              ": neither 'embedding_dim' nor 'hidden_size' is set");
  XLSTM_CHECK(emb < 0 || hid < 0 || emb == hid, ValueError, w, ": 'embedding_dim' ", emb,
              " and 'hidden_size' ", hid, " disagree");
  c.embedding_dim = emb > 0 ? emb : hid > 0 ? hid : c.embedding_dim;
  const int64_t nb = int_field(j, "num_blocks", -1, w), nl = int_field(j, "num_hidden_layers", -1, w);
  XLSTM_CHECK(nb < 0 || nl < 0 || nb == nl, ValueError, w, ": 'num_blocks' ", nb,
              " and 'num_hidden_layers' ", nl, " disagree");
  c.num_blocks = nb > 0 ? nb : nl > 0 ? nl : c.num_blocks;
  c.vocab_size = int_field(j, "vocab_size", c.vocab_size, w);
  c.num_heads = int_field(j, "num_heads", c.num_heads, w);
  c.use_bias = bool_field(j, "use_bias", c.use_bias, w);
  c.norm_eps = num_field(j, "norm_eps", c.norm_eps, w);
  c.add_out_norm = bool_field(j, "add_out_norm", c.add_out_norm, w);
  // Hugging Face always applies the out norm, whatever add_out_norm says (FORMAT.md §5.4).
  if (j.contains("model_type")) c.add_out_norm = true;
  c.qk_dim_factor = num_field(j, "qk_dim_factor", c.qk_dim_factor, w);
  c.v_dim_factor = num_field(j, "v_dim_factor", c.v_dim_factor, w);
  c.chunk_size = int_field(j, "chunk_size", c.chunk_size, w);
  c.eps = num_field(j, "eps", c.eps, w);
  c.ffn_proj_factor = num_field(j, "ffn_proj_factor", c.ffn_proj_factor, w);
  c.ffn_round_up_to_multiple_of =
      int_field(j, "ffn_round_up_to_multiple_of", c.ffn_round_up_to_multiple_of, w);
  c.gate_soft_cap = cap_field(j, "gate_soft_cap", c.gate_soft_cap, w);
  c.output_logit_soft_cap = cap_field(j, "output_logit_soft_cap", c.output_logit_soft_cap, w);
  c.tie_word_embeddings = bool_field(j, "tie_word_embeddings", c.tie_word_embeddings, w);
  c.bos_token_id = int_field(j, "bos_token_id", c.bos_token_id, w);
  c.eos_token_id = int_field(j, "eos_token_id", c.eos_token_id, w);
  c.pad_token_id = int_field(j, "pad_token_id", c.pad_token_id, w);
  c.validate(w);
  return c;
}

json XLSTMLargeConfig::to_hf_json() const {
  auto cap = [](double v) { return v > 0 ? json(v) : json(nullptr); };
  return json{{"architectures", {"xLSTMForCausalLM"}},
              {"model_type", "xlstm"},
              {"vocab_size", vocab_size},
              {"hidden_size", embedding_dim},
              {"embedding_dim", embedding_dim},
              {"num_hidden_layers", num_blocks},
              {"num_blocks", num_blocks},
              {"num_heads", num_heads},
              {"use_bias", use_bias},
              {"norm_reduction_force_float32", true},
              {"tie_word_embeddings", tie_word_embeddings},
              {"add_out_norm", add_out_norm},
              {"norm_eps", norm_eps},
              {"qk_dim_factor", qk_dim_factor},
              {"v_dim_factor", v_dim_factor},
              {"chunkwise_kernel", "chunkwise--native_autograd"},
              {"sequence_kernel", "native_sequence__native"},
              {"step_kernel", "native"},
              {"mode", "inference"},
              {"chunk_size", chunk_size},
              {"return_last_states", true},
              {"autocast_kernel_dtype", "bfloat16"},
              {"eps", eps},
              {"inference_state_dtype", "float32"},
              {"ffn_proj_factor", ffn_proj_factor},
              {"ffn_round_up_to_multiple_of", ffn_round_up_to_multiple_of},
              {"gate_soft_cap", cap(gate_soft_cap)},
              {"output_logit_soft_cap", cap(output_logit_soft_cap)},
              {"weight_mode", "single"},
              {"use_cache", true},
              {"pad_token_id", pad_token_id},
              {"bos_token_id", bos_token_id},
              {"eos_token_id", eos_token_id},
              {"max_inference_chunksize", 16384},
              {"torch_dtype", "float32"}};
}

std::string xlstm_large_hf_name(const std::string& official) {
  return official == "embedding.weight" ? "backbone.embeddings.weight" : official;
}

// ---------------------------------------------------------------- modules

namespace {

const char* const kNames[kNumP] = {
    "norm_mlstm.weight", "norm_mlstm.bias", "mlstm_layer.q.weight", "mlstm_layer.q.bias",
    "mlstm_layer.k.weight", "mlstm_layer.k.bias", "mlstm_layer.v.weight", "mlstm_layer.v.bias",
    "mlstm_layer.ogate_preact.weight", "mlstm_layer.ogate_preact.bias",
    "mlstm_layer.igate_preact.weight", "mlstm_layer.igate_preact.bias",
    "mlstm_layer.fgate_preact.weight", "mlstm_layer.fgate_preact.bias",
    "mlstm_layer.multihead_norm.weight", "mlstm_layer.multihead_norm.bias",
    "mlstm_layer.out_proj.weight", "mlstm_layer.out_proj.bias", "norm_ffn.weight",
    "norm_ffn.bias", "ffn.proj_up_gate.weight", "ffn.proj_up_gate.bias", "ffn.proj_up.weight",
    "ffn.proj_up.bias", "ffn.proj_down.weight", "ffn.proj_down.bias"};


template <class T>
T* mptr(Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// y (N, O) = x (N, I) W^T + b, W in its stored dtype (F32/BF16 views allowed when T = float).
template <class T>
void lin(int64_t N, int64_t I, int64_t O, const T* x, const Tensor& W, const Tensor& b, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    if (W.dtype() != DType::F32 || N <= kLinearGemvRows) {
      linear_forward_mixed(N, I, O, x, W.raw(), W.dtype(), ptr<float>(b), y);
      return;
    }
  }
  linear_forward<T>(N, I, O, x, W.data<T>(), ptr<T>(b), y);
}

// Backward of lin: dx (N, I) accumulated (+=) when non-null; dW (O, I), db (O) accumulated.
template <class T>
void lin_bwd(int64_t N, int64_t I, int64_t O, const T* x, const Tensor& W, const T* dy, T* dx,
             Tensor& dW, Tensor* db) {
  if (dx) gemm<T>(Trans::N, Trans::N, N, I, O, T(1), dy, O, W.data<T>(), I, T(1), dx, I);
  linear_backward<T>(N, I, O, x, W.data<T>(), dy, nullptr, dW.data<T>(),
                     db && db->defined() ? db->data<T>() : nullptr);
}

// dz *= 1 - (y / c)^2 from the capped output y (c <= 0: unchanged).
template <class T>
void soft_cap_backward(int64_t n, const T* y, T* dz, double c) {
  if (c <= 0) return;
  const T inv = T(1) / (T)c;
  for (int64_t j = 0; j < n; ++j) {
    const T t = y[j] * inv;
    dz[j] *= T(1) - t * t;
  }
}

template <class T>
void add_bias_rows(int64_t N, int64_t D, const Tensor& b, T* y) {
  if (!b.defined()) return;
  const T* bb = b.data<T>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) y[n * D + d] += bb[d];
}
template <class T>
void add_col_sums(int64_t N, int64_t D, const T* dy, Tensor& db) {
  if (!db.defined()) return;
  T* g = db.data<T>();
  for (int64_t d = 0; d < D; ++d) {
    double acc = 0;
    for (int64_t n = 0; n < N; ++n) acc += (double)dy[n * D + d];
    g[d] += (T)acc;
  }
}

}  // namespace


// Activations of one block's forward (reused across calls; only grows).
template <class T>
struct XLSTMLarge<T>::Saved {
  int64_t B = 0, S = 0;
  std::vector<T> x0, rstd1, u, q, k, v, o, ig, fg, hs, mmean, mrstd, hn, p, x1, rstd2, u2, a, c, s;
  MlstmContext ctx;
};

// Per-call buffers of forward/backward, kept so that repeated calls at one shape allocate
// nothing (CPU-NOTES: first touch of fresh pages is the dominant cost otherwise).
template <class T>
struct XLSTMLarge<T>::Scratch {
  std::vector<T> x, dl, dh, dx, ds, da, dc, sa, du, dtmp, dp, dhn, dout, dhs, dq, dk, dv, di, df;
};

namespace {
// v resized to n (never shrinks the capacity); zero-filled when asked.
template <class T>
T* grow(std::vector<T>& v, int64_t n, bool zero = false) {
  v.resize((size_t)n);
  if (zero) std::fill(v.begin(), v.end(), T(0));
  return v.data();
}
}  // namespace

template <class T>
XLSTMLarge<T>::XLSTMLarge(const XLSTMLargeConfig& cfg, ParamAlloc alloc) : cfg_(cfg) {
  cfg_.validate("[xlstm_large]");
  const DType dt = DTypeOf<T>::value;
  const int64_t V = cfg_.vocab_size, H = cfg_.embedding_dim, NH = cfg_.num_heads,
                QK = cfg_.qk_dim(), VD = cfg_.v_dim(), U = cfg_.ffn_dim();
  const bool init = alloc == ParamAlloc::Init;
  auto make = [&](const Shape& shape) {
    if (init) return Tensor(shape, dt);
    return Tensor::wrap(shape, dt, std::make_shared<int>(0), nullptr);  // shape only
  };
  w_emb_ = make({V, H});
  if (cfg_.add_out_norm) w_out_ = make({H});
  if (!cfg_.tie_word_embeddings) w_head_ = make({V, H});
  const Shape shapes[kNumP] = {{H},  {H},  {QK, H}, {QK}, {QK, H}, {QK}, {VD, H}, {VD}, {VD, H},
                               {VD}, {NH, H}, {NH}, {NH, H}, {NH}, {VD}, {VD}, {H, VD}, {H},
                               {H},  {H},  {U, H},  {U},  {U, H},  {U},  {H, U},  {H}};
  for (int64_t l = 0; l < cfg_.num_blocks; ++l) {
    auto b = std::make_unique<Block>();
    for (int p = 0; p < kNumP; ++p) {
      const bool is_bias = std::string(kNames[p]).find(".bias") != std::string::npos;
      if (is_bias && !cfg_.use_bias && p != kIB && p != kFB) continue;
      b->w[p] = make(shapes[p]);
    }
    blocks_.push_back(std::move(b));
  }
  eval_saved_ = std::make_unique<Saved>();
  scratch_ = std::make_unique<Scratch>();
  if (!init) return;
  Rng rng(0);
  reset_parameters(rng);
}

template <class T>
void XLSTMLarge<T>::check_loaded() const {
  for (auto& p : const_cast<XLSTMLarge*>(this)->params())
    XLSTM_CHECK(p.value->raw() != nullptr, ValueError, "[xlstm_large] parameter '", p.name,
                "' was never loaded");
}

template <class T>
XLSTMLarge<T>::~XLSTMLarge() = default;

template <class T>
void XLSTMLarge<T>::reset_parameters(Rng& rng) {
  for (auto& p : params())  // fresh owned storage (placeholders and mapped views are read-only)
    *p.value = Tensor(p.value->shape(), DTypeOf<T>::value);
  const int64_t H = cfg_.embedding_dim, NH = cfg_.num_heads;
  const double small = small_init_std(H);
  init_normal(w_emb_, rng, small);
  for (auto& bp : blocks_) {
    Block& b = *bp;
    for (int p = 0; p < kNumP; ++p) {
      Tensor& t = b.w[p];
      if (!t.defined()) continue;
      if (p == kNormM || p == kNormF || p == kMH) {
        t.fill(1.0);
      } else if (p == kI || p == kF || p == kO || p == kGate) {
        t.zero();  // HF zeroes every Linear with "gate" in its name
      } else if (p == kIB) {
        t.fill(-10.0);
      } else if (p == kFB) {
        for (int64_t h = 0; h < NH; ++h)
          t.data<T>()[h] = (T)(NH == 1 ? 3.0 : 3.0 + 3.0 * (double)h / (double)(NH - 1));
      } else if (p == kOut) {
        init_normal(t, rng, wang_init_std(cfg_.v_dim(), cfg_.num_blocks));
      } else if (p == kDown) {
        init_normal(t, rng, wang_init_std(cfg_.ffn_dim(), cfg_.num_blocks));
      } else if (t.ndim() == 2) {
        init_normal(t, rng, small);
      } else {
        t.zero();
      }
    }
  }
  if (w_out_.defined()) w_out_.fill(1.0);
  if (w_head_.defined()) init_normal(w_head_, rng, small);
}

template <class T>
void XLSTMLarge<T>::collect_params(const std::string& pre, std::vector<ParamRef>& out) {
  out.push_back({pre + "backbone.embeddings.weight", &w_emb_, &dw_emb_});
  for (size_t l = 0; l < blocks_.size(); ++l)
    for (int p = 0; p < kNumP; ++p)
      if (blocks_[l]->w[p].defined())
        out.push_back({str(pre, "backbone.blocks.", l, ".", kNames[p]), &blocks_[l]->w[p],
                       &blocks_[l]->g[p]});
  if (w_out_.defined()) out.push_back({pre + "backbone.out_norm.weight", &w_out_, &dw_out_});
  if (w_head_.defined()) out.push_back({pre + "lm_head.weight", &w_head_, &dw_head_});
}

template <class T>
void XLSTMLarge<T>::set_param(const std::string& name, const Tensor& value, const std::string& w) {
  for (auto& p : params()) {
    if (p.name != name) continue;
    XLSTM_CHECK(value.shape() == p.value->shape(), ValueError, w, ": tensor '", name, "' has shape ",
                shape_str(value.shape()), ", the config needs ", shape_str(p.value->shape()));
    const DType dt = DTypeOf<T>::value;
    const bool matrix = value.ndim() == 2;
    const bool ok = value.dtype() == dt ||
                    (std::is_same_v<T, float> && matrix && value.dtype() == DType::BF16);
    if (ok) {
      *p.value = value;  // a view: no copy
    } else {
      *p.value = value.to(dt);
    }
    if (training_) *p.value = p.value->dtype() == dt ? *p.value : p.value->to(dt);
    return;
  }
  throw ValueError(str(w, ": unexpected tensor '", name, "' (not a parameter of this config)"));
}

template <class T>
void XLSTMLarge<T>::enable_training() {
  const DType dt = DTypeOf<T>::value;
  for (auto& p : params()) {
    // Own a writable copy (views of a mapped file are read-only).
    *p.value = p.value->to(dt);
    if (!p.grad->defined()) *p.grad = Tensor(p.value->shape(), dt);
  }
  training_ = true;
}

template <class T>
Tensor XLSTMLarge<T>::hidden(int64_t l, int64_t b) const {
  XLSTM_CHECK(saved_train_ && l >= 0 && l <= cfg_.num_blocks && b >= 0 && b < B_, ValueError,
              "[xlstm_large] hidden(", l, ", ", b, ") needs a Mode::Train forward and indices in range");
  const int64_t H = cfg_.embedding_dim;
  Tensor r({S_, H}, DTypeOf<T>::value);
  const T* src = l < cfg_.num_blocks ? (l + 1 < cfg_.num_blocks
                                            ? blocks_[l + 1]->saved->x0.data()
                                            : xlast_.data())
                                     : xn_.data();
  std::memcpy(r.data<T>(), src + b * S_ * H, sizeof(T) * S_ * H);
  return r;
}

template <class T>
void XLSTMLarge<T>::block_forward(Block& b, Saved& s, int64_t B, int64_t S, T* x,
                                  const MlstmState* st_in, MlstmState* st_out, Mode mode) {
  const int64_t N = B * S, H = cfg_.embedding_dim, NH = cfg_.num_heads, QK = cfg_.qk_dim(),
                VD = cfg_.v_dim(), U = cfg_.ffn_dim(), DQK = cfg_.dhqk(), DV = cfg_.dhv();
  const DType dt = DTypeOf<T>::value;
  s.B = B;
  s.S = S;
  auto sz = [](std::vector<T>& v, int64_t n) { v.resize((size_t)n); return v.data(); };
  // mLSTM layer on RMSNorm(x)
  T* x0 = sz(s.x0, N * H);
  std::memcpy(x0, x, sizeof(T) * N * H);
  T* u = sz(s.u, N * H);
  rmsnorm_forward<T>(N, H, x0, ptr<T>(b.w[kNormM]), cfg_.norm_eps, u, sz(s.rstd1, N));
  add_bias_rows<T>(N, H, b.w[kNormMB], u);
  T* q = sz(s.q, N * QK);
  T* k = sz(s.k, N * QK);
  T* v = sz(s.v, N * VD);
  T* o = sz(s.o, N * VD);
  T* ig = sz(s.ig, N * NH);
  T* fg = sz(s.fg, N * NH);
  lin<T>(N, H, QK, u, b.w[kQ], b.w[kQB], q);
  lin<T>(N, H, QK, u, b.w[kK], b.w[kKB], k);
  lin<T>(N, H, VD, u, b.w[kV], b.w[kVB], v);
  lin<T>(N, H, VD, u, b.w[kO], b.w[kOB], o);
  lin<T>(N, H, NH, u, b.w[kI], b.w[kIB], ig);
  lin<T>(N, H, NH, u, b.w[kF], b.w[kFB], fg);
  soft_cap<T>(N * NH, ig, cfg_.gate_soft_cap);
  soft_cap<T>(N * NH, fg, cfg_.gate_soft_cap);
  Tensor tq = Tensor::empty({B, NH, S, DQK}, dt), tk = Tensor::empty({B, NH, S, DQK}, dt),
         tv = Tensor::empty({B, NH, S, DV}, dt), ti = Tensor::empty({B, NH, S}, dt),
         tf = Tensor::empty({B, NH, S}, dt);
  bsnd_to_bnsd<T>(B, S, NH, DQK, q, tq.data<T>());
  bsnd_to_bnsd<T>(B, S, NH, DQK, k, tk.data<T>());
  bsnd_to_bnsd<T>(B, S, NH, DV, v, tv.data<T>());
  bsnd_to_bnsd<T>(B, S, NH, 1, ig, ti.data<T>());
  bsnd_to_bnsd<T>(B, S, NH, 1, fg, tf.data<T>());
  MlstmOptions opt;
  opt.eps = cfg_.eps;
  opt.scale_on = ScaleOn::Q;
  opt.chunk_size = cfg_.chunk_size;
  const MlstmForm form = S == 1 ? MlstmForm::Recurrent : MlstmForm::Chunkwise;
  MlstmState next;
  Tensor h = mlstm_forward(form, tq, tk, tv, ti, tf, opt, st_in, st_out ? &next : nullptr,
                           mode == Mode::Train ? &s.ctx : nullptr);
  if (st_out) *st_out = std::move(next);
  T* hs = sz(s.hs, N * VD);
  bnsd_to_bsnd<T>(B, S, NH, DV, h.data<T>(), hs);
  T* hn = sz(s.hn, N * VD);
  multihead_norm_forward<T>(N, NH, DV, hs, ptr<T>(b.w[kMH]), ptr<T>(b.w[kMHB]), cfg_.norm_eps,
                            NormScale::Plain, hn, sz(s.mmean, N * NH), sz(s.mrstd, N * NH));
  T* p = sz(s.p, N * VD);
  for (int64_t j = 0; j < N * VD; ++j) p[j] = sigmoid<T>(o[j]) * hn[j];
  T* y = sz(s.x1, N * H);  // out_proj output, then x1 = x0 + y
  lin<T>(N, VD, H, p, b.w[kOut], b.w[kOutB], y);
  for (int64_t j = 0; j < N * H; ++j) y[j] += x0[j];
  T* x1 = y;
  // SwiGLU FFN on RMSNorm(x1)
  T* u2 = sz(s.u2, N * H);
  rmsnorm_forward<T>(N, H, x1, ptr<T>(b.w[kNormF]), cfg_.norm_eps, u2, sz(s.rstd2, N));
  add_bias_rows<T>(N, H, b.w[kNormFB], u2);
  T* a = sz(s.a, N * U);
  T* c = sz(s.c, N * U);
  lin<T>(N, H, U, u2, b.w[kGate], b.w[kGateB], a);
  lin<T>(N, H, U, u2, b.w[kUp], b.w[kUpB], c);
  T* sw = sz(s.s, N * U);
  act_forward<T>(Act::SiLU, N * U, a, sw);
  for (int64_t j = 0; j < N * U; ++j) sw[j] *= c[j];
  lin<T>(N, U, H, sw, b.w[kDown], b.w[kDownB], x);
  for (int64_t j = 0; j < N * H; ++j) x[j] += x1[j];
}

template <class T>
void XLSTMLarge<T>::block_backward(Block& b, Saved& s, T* dx) {
  const int64_t B = s.B, S = s.S, N = B * S, H = cfg_.embedding_dim, NH = cfg_.num_heads,
                QK = cfg_.qk_dim(), VD = cfg_.v_dim(), U = cfg_.ffn_dim(), DQK = cfg_.dhqk(),
                DV = cfg_.dhv();
  const DType dt = DTypeOf<T>::value;
  Scratch& w = *scratch_;
  // FFN: x2 = x1 + W_down(SiLU(a) * c)
  T* ds = grow(w.ds, N * U, true);
  T* da = grow(w.da, N * U);
  T* dc = grow(w.dc, N * U);
  lin_bwd<T>(N, U, H, s.s.data(), b.w[kDown], dx, ds, b.g[kDown], &b.g[kDownB]);
  T* sa = grow(w.sa, N * U);
  act_forward<T>(Act::SiLU, N * U, s.a.data(), sa);
  for (int64_t j = 0; j < N * U; ++j) {
    dc[j] = ds[j] * sa[j];
    da[j] = ds[j] * s.c[j];
  }
  act_backward<T>(Act::SiLU, N * U, s.a.data(), da, da);
  T* du = grow(w.du, N * H, true);
  lin_bwd<T>(N, H, U, s.u2.data(), b.w[kGate], da, du, b.g[kGate], &b.g[kGateB]);
  lin_bwd<T>(N, H, U, s.u2.data(), b.w[kUp], dc, du, b.g[kUp], &b.g[kUpB]);
  add_col_sums<T>(N, H, du, b.g[kNormFB]);
  T* dtmp = grow(w.dtmp, N * H);
  rmsnorm_backward<T>(N, H, s.x1.data(), ptr<T>(b.w[kNormF]), s.rstd2.data(), du,
                      dtmp, mptr<T>(b.g[kNormF]));
  for (int64_t j = 0; j < N * H; ++j) dx[j] += dtmp[j];  // dx = dL/dx1
  // mLSTM layer: x1 = x0 + W_out(sigmoid(o) * hn)
  T* dp = grow(w.dp, N * VD, true);
  lin_bwd<T>(N, VD, H, s.p.data(), b.w[kOut], dx, dp, b.g[kOut], &b.g[kOutB]);
  T* dhn = grow(w.dhn, N * VD);
  T* dout = grow(w.dout, N * VD);
  for (int64_t j = 0; j < N * VD; ++j) {
    const T g = sigmoid<T>(s.o[j]);
    dhn[j] = dp[j] * g;
    dout[j] = dp[j] * s.hn[j] * g * (T(1) - g);
  }
  T* dhs = grow(w.dhs, N * VD);
  multihead_norm_backward<T>(N, NH, DV, s.hs.data(), ptr<T>(b.w[kMH]), NormScale::Plain,
                             s.mmean.data(), s.mrstd.data(), dhn, dhs,
                             mptr<T>(b.g[kMH]), mptr<T>(b.g[kMHB]));
  Tensor dh = Tensor::empty({B, NH, S, DV}, dt);
  bsnd_to_bnsd<T>(B, S, NH, DV, dhs, dh.data<T>());
  MlstmTensorGrads kg = mlstm_backward(s.ctx, dh);
  T* dq = grow(w.dq, N * QK);
  T* dk = grow(w.dk, N * QK);
  T* dv = grow(w.dv, N * VD);
  T* di = grow(w.di, N * NH);
  T* df = grow(w.df, N * NH);
  bnsd_to_bsnd<T>(B, S, NH, DQK, kg.dq.data<T>(), dq);
  bnsd_to_bsnd<T>(B, S, NH, DQK, kg.dk.data<T>(), dk);
  bnsd_to_bsnd<T>(B, S, NH, DV, kg.dv.data<T>(), dv);
  bnsd_to_bsnd<T>(B, S, NH, 1, kg.di.data<T>(), di);
  bnsd_to_bsnd<T>(B, S, NH, 1, kg.df.data<T>(), df);
  soft_cap_backward<T>(N * NH, s.ig.data(), di, cfg_.gate_soft_cap);
  soft_cap_backward<T>(N * NH, s.fg.data(), df, cfg_.gate_soft_cap);
  std::fill(du, du + N * H, T(0));
  const T* u = s.u.data();
  lin_bwd<T>(N, H, QK, u, b.w[kQ], dq, du, b.g[kQ], &b.g[kQB]);
  lin_bwd<T>(N, H, QK, u, b.w[kK], dk, du, b.g[kK], &b.g[kKB]);
  lin_bwd<T>(N, H, VD, u, b.w[kV], dv, du, b.g[kV], &b.g[kVB]);
  lin_bwd<T>(N, H, VD, u, b.w[kO], dout, du, b.g[kO], &b.g[kOB]);
  lin_bwd<T>(N, H, NH, u, b.w[kI], di, du, b.g[kI], &b.g[kIB]);
  lin_bwd<T>(N, H, NH, u, b.w[kF], df, du, b.g[kF], &b.g[kFB]);
  add_col_sums<T>(N, H, du, b.g[kNormMB]);
  rmsnorm_backward<T>(N, H, s.x0.data(), ptr<T>(b.w[kNormM]), s.rstd1.data(), du,
                      dtmp, mptr<T>(b.g[kNormM]));
  for (int64_t j = 0; j < N * H; ++j) dx[j] += dtmp[j];  // dx = dL/dx0
}

template <class T>
Tensor XLSTMLarge<T>::forward(const Tensor& ids, Mode mode, const XLSTMLargeState* state_in,
                              XLSTMLargeState* state_out, Logits rows) {
  XLSTM_CHECK(ids.ndim() == 2 && ids.dtype() == DType::I64, ValueError,
              "[xlstm_large] ids must be (B,S) int64, got ", shape_str(ids.shape()), " ",
              dtype_name(ids.dtype()));
  const int64_t B = ids.dim(0), S = ids.dim(1), N = B * S, H = cfg_.embedding_dim,
                V = cfg_.vocab_size, L = cfg_.num_blocks;
  XLSTM_CHECK(B >= 1 && S >= 1, ValueError, "[xlstm_large] empty batch or sequence");
  check_loaded();
  XLSTM_CHECK(mode == Mode::Eval || training_, ValueError,
              "[xlstm_large] Mode::Train needs enable_training()");
  const bool has_in = state_in && !state_in->blocks.empty();
  XLSTM_CHECK(!has_in || (int64_t)state_in->blocks.size() == L, ValueError,
              "[xlstm_large] state has ", state_in ? state_in->blocks.size() : 0,
              " blocks, the model has ", L);
  const DType dt = DTypeOf<T>::value;
  const bool train = mode == Mode::Train;
  XLSTM_CHECK(!train || rows == Logits::All, ValueError,
              "[xlstm_large] Mode::Train computes the logits of every position");
  saved_train_ = train;
  if constexpr (std::is_same_v<T, float>) {
    if (!train && S == 1 && B <= kLinearGemvRows && rows != Logits::None) {
      B_ = B;
      S_ = S;
      return decode_step(ids, state_in, state_out);
    }
  }
  B_ = B;
  S_ = S;
  ids_.assign(ids.data<int64_t>(), ids.data<int64_t>() + N);
  std::vector<T>& xbuf = scratch_->x;
  xbuf.resize((size_t)(N * H));
  if constexpr (std::is_same_v<T, float>)
    embedding_forward_mixed(N, V, H, ids_.data(), w_emb_.raw(), w_emb_.dtype(), xbuf.data());
  else
    embedding_forward<T>(N, V, H, ids_.data(), w_emb_.data<T>(), xbuf.data());
  // Copy the input states first: state_out may alias state_in.
  std::vector<MlstmState> ins;
  if (has_in) ins = state_in->blocks;
  std::vector<MlstmState> outs(state_out ? L : 0);
  for (int64_t l = 0; l < L; ++l) {
    Block& b = *blocks_[l];
    if (train && !b.saved) b.saved = std::make_unique<Saved>();
    Saved& s = train ? *b.saved : *eval_saved_;
    const MlstmState* si = has_in && ins[l].c.defined() ? &ins[l] : nullptr;
    block_forward(b, s, B, S, xbuf.data(), si, state_out ? &outs[l] : nullptr, mode);
  }
  if (state_out) state_out->blocks = std::move(outs);
  if (rows == Logits::None) return Tensor();
  const T* hin = xbuf.data();
  int64_t NR = N, SR = S;  // rows that get logits
  if (rows == Logits::Last && S > 1) {
    NR = B;
    SR = 1;
    for (int64_t b = 0; b < B; ++b)  // row b's last position moves to row b (b <= b*S + S-1)
      std::memmove(xbuf.data() + b * H, xbuf.data() + (b * S + S - 1) * H, sizeof(T) * H);
  }
  if (train) xlast_ = xbuf;
  if (w_out_.defined()) {
    xn_.resize((size_t)(NR * H));
    rstd_.resize((size_t)NR);
    rmsnorm_forward<T>(NR, H, xbuf.data(), w_out_.data<T>(), cfg_.norm_eps, xn_.data(), rstd_.data());
    hin = xn_.data();
  }
  Tensor logits = Tensor::empty({B, SR, V}, dt);
  const Tensor& head = w_head_.defined() ? w_head_ : w_emb_;
  lin<T>(NR, H, V, hin, head, Tensor(), logits.data<T>());
  soft_cap<T>(NR * V, logits.data<T>(), cfg_.output_logit_soft_cap);
  if (train) logits_.assign(logits.data<T>(), logits.data<T>() + N * V);
  return logits;
}

template <class T>
void XLSTMLarge<T>::backward(const Tensor& dlogits) {
  XLSTM_CHECK(saved_train_, ValueError, "[xlstm_large] backward needs a Mode::Train forward");
  const int64_t N = B_ * S_, H = cfg_.embedding_dim, V = cfg_.vocab_size;
  XLSTM_CHECK(dlogits.shape() == Shape({B_, S_, V}) && dlogits.dtype() == DTypeOf<T>::value,
              ValueError, "[xlstm_large] dlogits must be ", shape_str({B_, S_, V}), ", got ",
              shape_str(dlogits.shape()));
  std::vector<T>& dl = scratch_->dl;
  dl.assign(dlogits.data<T>(), dlogits.data<T>() + N * V);
  soft_cap_backward<T>(N * V, logits_.data(), dl.data(), cfg_.output_logit_soft_cap);
  const bool tied = !w_head_.defined();
  const T* hin = w_out_.defined() ? xn_.data() : xlast_.data();
  T* dh = grow(scratch_->dh, N * H, true);
  lin_bwd<T>(N, H, V, hin, tied ? w_emb_ : w_head_, dl.data(), dh,
             tied ? dw_emb_ : dw_head_, nullptr);
  T* dx = grow(scratch_->dx, N * H);
  if (w_out_.defined())
    rmsnorm_backward<T>(N, H, xlast_.data(), w_out_.data<T>(), rstd_.data(), dh, dx,
                        dw_out_.data<T>());
  else
    std::memcpy(dx, dh, sizeof(T) * N * H);
  for (size_t l = blocks_.size(); l-- > 0;) block_backward(*blocks_[l], *blocks_[l]->saved, dx);
  embedding_backward<T>(N, V, H, ids_.data(), dx, dw_emb_.data<T>());
}

template class XLSTMLarge<float>;
template class XLSTMLarge<double>;

}  // namespace xlstm
