#include "models/backbone.h"

#include <cmath>
#include <cstring>
#include <map>

#include "cpu/dropout.h"
#include "cpu/layernorm.h"
#include "cpu/linear.h"
#include "io/json_config.h"
#include "models/xlstm_config.h"
#include "nn/blocks.h"
#include "nn/init.h"
#include "nn/lstm.h"

namespace xlstm {

using json = nlohmann::json;

namespace {

// Valid lengths of the B rows: all S when `lengths` is undefined.
std::vector<int64_t> row_lengths(const Tensor& lengths, int64_t B, int64_t S) {
  std::vector<int64_t> len((size_t)B, S);
  if (!lengths.defined()) return len;
  XLSTM_CHECK(lengths.dtype() == DType::I64 && lengths.shape() == Shape({B}), ValueError,
              "[backbone] lengths must be (B)=(", B, ") int64, got ", shape_str(lengths.shape()),
              " ", dtype_name(lengths.dtype()));
  for (int64_t b = 0; b < B; ++b) {
    len[(size_t)b] = lengths.data<int64_t>()[b];
    XLSTM_CHECK(len[(size_t)b] >= 1 && len[(size_t)b] <= S, ValueError, "[backbone] lengths[", b,
                "] = ", len[(size_t)b], " is outside [1, S=", S, "]");
  }
  return len;
}

// The rows `rows` (indices along `axis`) of `src`; undefined stays undefined.
Tensor gather_rows(const Tensor& src, const std::vector<int64_t>& rows, int axis) {
  if (!src.defined()) return Tensor();
  Shape sh = src.shape();
  const int64_t B = sh[(size_t)axis], R = (int64_t)rows.size();
  int64_t outer = 1, inner = (int64_t)dtype_size(src.dtype());
  for (int i = 0; i < axis; ++i) outer *= sh[(size_t)i];
  for (size_t i = (size_t)axis + 1; i < sh.size(); ++i) inner *= sh[i];
  sh[(size_t)axis] = R;
  Tensor r = Tensor::empty(sh, src.dtype());
  const char* s = static_cast<const char*>(src.raw());
  char* d = static_cast<char*>(r.raw());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < R; ++j)
      std::memcpy(d + (o * R + j) * inner, s + (o * B + rows[(size_t)j]) * inner, (size_t)inner);
  return r;
}

// Writes the rows of `part` into rows `rows` of `dst` (batch B along `axis`). `dst` is replaced
// by a private copy first (it may share storage with a module's buffers); an undefined `dst`
// becomes zeros of the full shape; an undefined `part` (zeros) zeroes those rows.
void scatter_rows(const Tensor& part, const std::vector<int64_t>& rows, int axis, int64_t B,
                  Tensor& dst) {
  if (!part.defined() && !dst.defined()) return;
  if (!dst.defined()) {
    Shape sh = part.shape();
    sh[(size_t)axis] = B;
    dst = Tensor(sh, part.dtype());
  } else {
    dst = dst.clone();
  }
  const Shape& sh = dst.shape();
  const int64_t R = (int64_t)rows.size();
  int64_t outer = 1, inner = (int64_t)dtype_size(dst.dtype());
  for (int i = 0; i < axis; ++i) outer *= sh[(size_t)i];
  for (size_t i = (size_t)axis + 1; i < sh.size(); ++i) inner *= sh[i];
  char* d = static_cast<char*>(dst.raw());
  const char* s = part.defined() ? static_cast<const char*>(part.raw()) : nullptr;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < R; ++j) {
      char* to = d + (o * B + rows[(size_t)j]) * inner;
      if (s) std::memcpy(to, s + (o * R + j) * inner, (size_t)inner);
      else std::memset(to, 0, (size_t)inner);
    }
}

// x (B,S,F) -> its rows `rows`, first `l` steps: (R,l,F).
Tensor gather_prefix(const Tensor& x, const std::vector<int64_t>& rows, int64_t l) {
  const int64_t S = x.dim(1), F = x.dim(2), es = (int64_t)dtype_size(x.dtype());
  Tensor r = Tensor::empty({(int64_t)rows.size(), l, F}, x.dtype());
  for (size_t j = 0; j < rows.size(); ++j)
    std::memcpy(static_cast<char*>(r.raw()) + (int64_t)j * l * F * es,
                static_cast<const char*>(x.raw()) + rows[j] * S * F * es, (size_t)(l * F * es));
  return r;
}

// dst[b,t] = src[b, p_b(t)] with p_b(t) = len_b-1-t for t < len_b and t otherwise (reverses each
// row's valid prefix, leaves the padding in place; p_b is its own inverse). src, dst: (B,S,F),
// dst written, no aliasing.
template <class T>
void reverse_valid(int64_t B, int64_t S, int64_t F, const std::vector<int64_t>& len, const T* src,
                   T* dst) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < S; ++t) {
      const int64_t s = t < len[(size_t)b] ? len[(size_t)b] - 1 - t : t;
      std::memcpy(dst + (b * S + t) * F, src + (b * S + s) * F, sizeof(T) * (size_t)F);
    }
}

void check_input(const char* op, const Tensor& x, int64_t I, DType dt) {
  XLSTM_CHECK(x.defined() && x.ndim() == 3 && x.dim(2) == I && x.dim(0) >= 1 && x.dim(1) >= 1,
              ValueError, op, " x must be (B,S,in_dim)=(?,?,", I, ") with B, S >= 1, got ",
              x.defined() ? shape_str(x.shape()) : std::string("undefined"));
  XLSTM_CHECK(x.dtype() == dt, TypeError, op, " x has dtype ", dtype_name(x.dtype()),
              ", the backbone computes in ", dtype_name(dt));
}

// Runs state_out fix-ups shared by the implementations: rows shorter than S get the state after
// their last valid step from a forward-only re-run of their valid prefix on `twin` (same
// architecture, parameters copied from `self`), grouped by length.
template <class Impl>
void fix_state_for_lengths(Impl& self, std::unique_ptr<Impl>& twin, const Tensor& x,
                           const std::vector<int64_t>& len, const BackboneState* state_in,
                           BackboneState* state_out) {
  const int64_t B = x.dim(0), S = x.dim(1);
  std::map<int64_t, std::vector<int64_t>> groups;
  for (int64_t b = 0; b < B; ++b)
    if (len[(size_t)b] < S) groups[len[(size_t)b]].push_back(b);
  if (groups.empty()) return;
  if (!twin) twin = self.make_twin();
  copy_params(self, *twin);
  for (auto& [l, rows] : groups) {
    auto sub_in = state_in ? self.gather_state(*state_in, rows) : nullptr;
    auto sub_out = twin->new_state((int64_t)rows.size());
    twin->forward(gather_prefix(x, rows, l), Mode::Eval, nullptr, Tensor(), sub_in.get(),
                  sub_out.get());
    self.scatter_state(*sub_out, rows, B, *state_out);
  }
}

// ---- LSTM ------------------------------------------------------------------------------------

struct LstmBackboneState : BackboneState {
  Tensor h, c;  // (L, B, H), undefined = zeros
};

template <class T>
class LstmBackbone : public Backbone {
 public:
  LstmBackbone(const json& cfg, int64_t in_dim, const std::string& where, uint64_t seed)
      : json_(cfg), where_(where), I_(in_dim) {
    json_cfg::check_known_fields(cfg, {"arch", "hidden_size", "num_layers", "bidirectional",
                                       "dropout", "context_length", "embedding_dim"},
                                 where);
    H_ = json_cfg::get_int(cfg, "hidden_size", where);
    XLSTM_CHECK(H_ >= 1, ValueError, where, ": field 'hidden_size' must be >= 1, got ", H_);
    L_ = json_cfg::get_int(cfg, "num_layers", where, 1);
    XLSTM_CHECK(L_ >= 1, ValueError, where, ": field 'num_layers' must be >= 1, got ", L_);
    bi_ = json_cfg::get_bool(cfg, "bidirectional", where, false);
    p_ = json_cfg::get_number(cfg, "dropout", where, 0.0);
    XLSTM_CHECK(p_ >= 0 && p_ < 1, ValueError, where, ": field 'dropout' must be in [0, 1), got ",
                p_);
    XLSTM_CHECK(I_ >= 1, ValueError, where, ": input features must be >= 1, got ", I_);
    if (!bi_) {
      uni_ = std::make_unique<LSTM<T>>(LSTMConfig{I_, H_, L_, true, true, false, p_, 0});
    } else {
      for (int64_t k = 0; k < L_; ++k) {
        const int64_t in = k == 0 ? I_ : 2 * H_;
        fw_.push_back(std::make_unique<LSTM<T>>(LSTMConfig{in, H_, 1, true, true, false, 0.0, 0}));
        rv_.push_back(std::make_unique<LSTM<T>>(LSTMConfig{in, H_, 1, true, true, false, 0.0, 0}));
      }
    }
    Rng rng(seed);
    reset_parameters(rng);
  }

  int64_t in_dim() const override { return I_; }
  int64_t out_dim() const override { return (bi_ ? 2 : 1) * H_; }
  bool bidirectional() const override { return bi_; }
  DType dtype() const override { return DTypeOf<T>::value; }
  const json& config() const override { return json_; }

  void reset_parameters(Rng& rng) override {
    // torch's order: every parameter of l0, then l0_reverse, l1, ... (U(±1/sqrt(H)) each).
    if (uni_) uni_->reset_parameters(rng);
    for (int64_t k = 0; k < (int64_t)fw_.size(); ++k) {
      fw_[(size_t)k]->reset_parameters(rng);
      rv_[(size_t)k]->reset_parameters(rng);
    }
  }

  void collect_params(const std::string& p, std::vector<ParamRef>& out) override {
    if (uni_) return uni_->collect_params(p + "lstm.", out);
    // Each direction of each layer is a one-layer LSTM named *_l0: rename to torch's
    // *_l{k} / *_l{k}_reverse.
    for (int64_t k = 0; k < L_; ++k)
      for (int d = 0; d < 2; ++d) {
        std::vector<ParamRef> tmp;
        (d == 0 ? fw_ : rv_)[(size_t)k]->collect_params("", tmp);
        for (auto& r : tmp) {
          const std::string base = r.name.substr(0, r.name.size() - 2);  // strip "l0"
          out.push_back({str(p, "lstm.", base, "l", k, d ? "_reverse" : ""), r.value, r.grad});
        }
      }
  }

  std::unique_ptr<BackboneState> new_state(int64_t B) const override {
    auto s = std::make_unique<LstmBackboneState>();
    s->h = Tensor({L_, B, H_}, DTypeOf<T>::value);
    s->c = Tensor({L_, B, H_}, DTypeOf<T>::value);
    return s;
  }

  Tensor forward(const Tensor& x, Mode mode, Rng* rng, const Tensor& lengths,
                 const BackboneState* state_in, BackboneState* state_out) override {
    check_input("[lstm_backbone]", x, I_, DTypeOf<T>::value);
    const int64_t B = x.dim(0), S = x.dim(1);
    len_ = row_lengths(lengths, B, S);
    if (bi_) {
      XLSTM_CHECK(!state_in && !state_out, ValueError,
                  "[lstm_backbone] a bidirectional LSTM cannot carry state between calls; "
                  "hint: use a unidirectional model for --tbptt / --stream");
      return forward_bi(x, mode, rng);
    }
    Tensor h0, c0;
    if (state_in) {
      auto* s = dynamic_cast<const LstmBackboneState*>(state_in);
      XLSTM_CHECK(s, TypeError, "[lstm_backbone] state_in is not an LSTM backbone state");
      h0 = s->h;
      c0 = s->c;
    }
    auto o = uni_->forward(x, h0, c0, mode, rng);
    if (state_out) {
      auto* s = dynamic_cast<LstmBackboneState*>(state_out);
      XLSTM_CHECK(s, TypeError, "[lstm_backbone] state_out is not an LSTM backbone state");
      s->h = o.h_n;
      s->c = o.c_n;
      fix_state_for_lengths(*this, twin_, x, len_, state_in, state_out);
    }
    return o.output;
  }

  Tensor backward(const Tensor& dy) override {
    if (uni_) return uni_->backward(dy).dx;
    return backward_bi(dy);
  }

  // For fix_state_for_lengths.
  std::unique_ptr<LstmBackbone> make_twin() const {
    return std::make_unique<LstmBackbone>(json_, I_, where_, 0);
  }
  std::unique_ptr<BackboneState> gather_state(const BackboneState& s,
                                              const std::vector<int64_t>& rows) const {
    auto& f = dynamic_cast<const LstmBackboneState&>(s);
    auto r = std::make_unique<LstmBackboneState>();
    r->h = gather_rows(f.h, rows, 1);
    r->c = gather_rows(f.c, rows, 1);
    return r;
  }
  void scatter_state(const BackboneState& part, const std::vector<int64_t>& rows, int64_t B,
                     BackboneState& full) const {
    auto& p = dynamic_cast<const LstmBackboneState&>(part);
    auto& f = dynamic_cast<LstmBackboneState&>(full);
    scatter_rows(p.h, rows, 1, B, f.h);
    scatter_rows(p.c, rows, 1, B, f.c);
  }

 private:
  Tensor forward_bi(const Tensor& x, Mode mode, Rng* rng) {
    const int64_t B = x.dim(0), S = x.dim(1), H = H_;
    const DType dt = DTypeOf<T>::value;
    const bool drop = mode == Mode::Train && p_ > 0 && L_ > 1;
    XLSTM_CHECK(!drop || rng, ValueError, "[lstm_backbone] dropout in Mode::Train needs an Rng");
    B_ = B;
    S_ = S;
    mask_.assign((size_t)L_, {});
    Tensor cur = x;
    for (int64_t k = 0; k < L_; ++k) {
      const int64_t in = cur.dim(2);
      Tensor of = fw_[(size_t)k]->forward(cur).output;  // (B,S,H)
      Tensor xr = Tensor::empty({B, S, in}, dt);
      reverse_valid<T>(B, S, in, len_, cur.data<T>(), xr.data<T>());
      Tensor orr = rv_[(size_t)k]->forward(xr).output;  // (B,S,H) in each row's reversed time
      Tensor out = Tensor::empty({B, S, 2 * H}, dt);
      T* o = out.data<T>();
      const T* pf = of.data<T>();
      const T* pr = orr.data<T>();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < S; ++t) {
          const int64_t s = t < len_[(size_t)b] ? len_[(size_t)b] - 1 - t : t;
          std::memcpy(o + (b * S + t) * 2 * H, pf + (b * S + t) * H, sizeof(T) * (size_t)H);
          std::memcpy(o + (b * S + t) * 2 * H + H, pr + (b * S + s) * H, sizeof(T) * (size_t)H);
        }
      if (drop && k + 1 < L_) {
        auto& m = mask_[(size_t)k + 1];
        m.resize((size_t)(B * S * 2 * H));
        dropout_forward<T>(B * S * 2 * H, p_, *rng, o, o, m.data());
      }
      cur = out;
    }
    return cur;
  }

  Tensor backward_bi(const Tensor& dy) {
    XLSTM_CHECK(B_ > 0, ValueError, "[lstm_backbone] backward called before forward");
    const int64_t B = B_, S = S_, H = H_;
    const DType dt = DTypeOf<T>::value;
    XLSTM_CHECK(dy.shape() == Shape({B, S, 2 * H}) && dy.dtype() == dt, ValueError,
                "[lstm_backbone] dy must be ", shape_str({B, S, 2 * H}), " ", dtype_name(dt),
                ", got ", shape_str(dy.shape()), " ", dtype_name(dy.dtype()));
    Tensor d = dy;
    for (int64_t k = L_; k-- > 0;) {
      Tensor dyf = Tensor::empty({B, S, H}, dt), dyr = Tensor::empty({B, S, H}, dt);
      const T* pd = d.data<T>();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < S; ++t) {
          const int64_t s = t < len_[(size_t)b] ? len_[(size_t)b] - 1 - t : t;
          std::memcpy(dyf.data<T>() + (b * S + t) * H, pd + (b * S + t) * 2 * H,
                      sizeof(T) * (size_t)H);
          std::memcpy(dyr.data<T>() + (b * S + t) * H, pd + (b * S + s) * 2 * H + H,
                      sizeof(T) * (size_t)H);
        }
      Tensor gf = fw_[(size_t)k]->backward(dyf).dx;  // (B,S,in)
      Tensor gr = rv_[(size_t)k]->backward(dyr).dx;  // reversed time
      const int64_t in = gf.dim(2);
      Tensor dx = Tensor::empty({B, S, in}, dt);
      reverse_valid<T>(B, S, in, len_, gr.data<T>(), dx.data<T>());
      T* px = dx.data<T>();
      const T* pg = gf.data<T>();
      for (int64_t e = 0; e < B * S * in; ++e) px[e] += pg[e];
      if (k > 0 && !mask_[(size_t)k].empty())
        dropout_backward<T>(B * S * in, mask_[(size_t)k].data(), px, px);
      d = dx;
    }
    return d;
  }

  json json_;
  std::string where_;
  int64_t I_, H_ = 0, L_ = 1;
  bool bi_ = false;
  double p_ = 0;
  std::unique_ptr<LSTM<T>> uni_;                       // unidirectional: the whole stack
  std::vector<std::unique_ptr<LSTM<T>>> fw_, rv_;      // bidirectional: one per layer/direction
  std::unique_ptr<LstmBackbone> twin_;                 // state re-runs (lengths + state_out)
  int64_t B_ = 0, S_ = 0;
  std::vector<int64_t> len_;
  std::vector<std::vector<T>> mask_;  // bidirectional: per layer k >= 1, dropout on its input
};

// ---- xLSTM -----------------------------------------------------------------------------------

struct XlstmBackboneState : BackboneState {
  std::vector<BlockState> blocks;  // empty = zeros
};

XLSTMLMConfig stack_config(const json& cfg, const std::string& where) {
  json j = cfg;
  if (!json_cfg::has(j, "vocab_size")) j["vocab_size"] = 1;  // no embedding here
  return xlstm_lm_config_from_json(j, where);
}

template <class T>
class XlstmBackbone : public Backbone {
 public:
  XlstmBackbone(const json& cfg, int64_t in_dim, const std::string& where, uint64_t seed)
      : json_(cfg), where_(where), cfg_(stack_config(cfg, where)), I_(in_dim) {
    D_ = cfg_.embedding_dim;
    XLSTM_CHECK(I_ >= 1, ValueError, where, ": input features must be >= 1, got ", I_);
    const DType dt = DTypeOf<T>::value;
    make_param(w_in_, dw_in_, {D_, I_}, dt);
    make_param(b_in_, db_in_, {D_}, dt);
    for (auto& b : cfg_.blocks) blocks_.push_back(std::make_unique<XLSTMBlock<T>>(b));
    if (cfg_.add_post_blocks_norm) make_param(w_post_, dw_post_, {D_}, dt);
    Rng rng(seed);
    reset_parameters(rng);
  }

  int64_t in_dim() const override { return I_; }
  int64_t out_dim() const override { return D_; }
  DType dtype() const override { return DTypeOf<T>::value; }
  const json& config() const override { return json_; }

  void reset_parameters(Rng& rng) override {
    // Input projection like torch.nn.Linear (U(±1/sqrt(in))), then the official block inits.
    const double a = 1.0 / std::sqrt((double)I_);
    init_uniform(w_in_, rng, -a, a);
    init_uniform(b_in_, rng, -a, a);
    for (auto& b : blocks_) b->reset_parameters(rng);
    if (w_post_.defined()) w_post_.zero();
  }

  void collect_params(const std::string& p, std::vector<ParamRef>& out) override {
    out.push_back({p + "input_proj.weight", &w_in_, &dw_in_});
    out.push_back({p + "input_proj.bias", &b_in_, &db_in_});
    for (size_t i = 0; i < blocks_.size(); ++i)
      blocks_[i]->collect_params(str(p, "xlstm_block_stack.blocks.", i, "."), out);
    if (w_post_.defined())
      out.push_back({p + "xlstm_block_stack.post_blocks_norm.weight", &w_post_, &dw_post_});
  }

  std::unique_ptr<BackboneState> new_state(int64_t) const override {
    return std::make_unique<XlstmBackboneState>();
  }

  Tensor forward(const Tensor& x, Mode mode, Rng* rng, const Tensor& lengths,
                 const BackboneState* state_in, BackboneState* state_out) override {
    check_input("[xlstm_backbone]", x, I_, DTypeOf<T>::value);
    const int64_t B = x.dim(0), S = x.dim(1), N = B * S;
    const std::vector<int64_t> len = row_lengths(lengths, B, S);
    const XlstmBackboneState* si = nullptr;
    XlstmBackboneState* so = nullptr;
    if (state_in) {
      si = dynamic_cast<const XlstmBackboneState*>(state_in);
      XLSTM_CHECK(si, TypeError, "[xlstm_backbone] state_in is not an xLSTM backbone state");
      XLSTM_CHECK(si->blocks.empty() || si->blocks.size() == blocks_.size(), ValueError,
                  "[xlstm_backbone] state has ", si->blocks.size(), " blocks, the model has ",
                  blocks_.size());
    }
    if (state_out) {
      so = dynamic_cast<XlstmBackboneState*>(state_out);
      XLSTM_CHECK(so, TypeError, "[xlstm_backbone] state_out is not an xLSTM backbone state");
    }
    B_ = B;
    S_ = S;
    const DType dt = DTypeOf<T>::value;
    x_.assign(x.data<T>(), x.data<T>() + N * I_);
    Tensor h = Tensor::empty({B, S, D_}, dt);
    linear_forward<T>(N, I_, D_, x_.data(), w_in_.data<T>(), b_in_.data<T>(), h.data<T>());
    in_mask_.clear();
    if (mode == Mode::Train && cfg_.add_embedding_dropout && cfg_.dropout > 0) {
      XLSTM_CHECK(rng, ValueError, "[xlstm_backbone] dropout in Mode::Train needs an Rng");
      in_mask_.resize((size_t)(N * D_));
      dropout_forward<T>(N * D_, cfg_.dropout, *rng, h.data<T>(), h.data<T>(), in_mask_.data());
    }
    std::vector<BlockState> next(state_out ? blocks_.size() : 0);
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const BlockState* bi = si && !si->blocks.empty() ? &si->blocks[i] : nullptr;
      h = blocks_[i]->forward(h, mode, rng, bi, state_out ? &next[i] : nullptr);
    }
    if (so) {
      so->blocks = std::move(next);
      fix_state_for_lengths(*this, twin_, x, len, state_in, state_out);
    }
    if (!w_post_.defined()) {
      xlast_.clear();
      return h;
    }
    xlast_.assign(h.data<T>(), h.data<T>() + N * D_);
    mean_.resize((size_t)N);
    rstd_.resize((size_t)N);
    Tensor y = Tensor::empty({B, S, D_}, dt);
    layernorm_forward<T>(N, D_, xlast_.data(), w_post_.data<T>(), nullptr, 1e-5,
                         NormScale::OnePlusWeight, y.data<T>(), mean_.data(), rstd_.data());
    return y;
  }

  Tensor backward(const Tensor& dy) override {
    XLSTM_CHECK(B_ > 0, ValueError, "[xlstm_backbone] backward called before forward");
    const int64_t N = B_ * S_;
    const DType dt = DTypeOf<T>::value;
    XLSTM_CHECK(dy.shape() == Shape({B_, S_, D_}) && dy.dtype() == dt, ValueError,
                "[xlstm_backbone] dy must be ", shape_str({B_, S_, D_}), " ", dtype_name(dt),
                ", got ", shape_str(dy.shape()), " ", dtype_name(dy.dtype()));
    Tensor d = Tensor::empty({B_, S_, D_}, dt);
    if (w_post_.defined())
      layernorm_backward<T>(N, D_, xlast_.data(), w_post_.data<T>(), NormScale::OnePlusWeight,
                            mean_.data(), rstd_.data(), dy.data<T>(), d.data<T>(),
                            dw_post_.data<T>(), nullptr);
    else
      std::memcpy(d.data<T>(), dy.data<T>(), sizeof(T) * (size_t)(N * D_));
    for (size_t i = blocks_.size(); i-- > 0;) d = blocks_[i]->backward(d);
    if (!in_mask_.empty()) dropout_backward<T>(N * D_, in_mask_.data(), d.data<T>(), d.data<T>());
    Tensor dx = Tensor::empty({B_, S_, I_}, dt);
    linear_backward<T>(N, I_, D_, x_.data(), w_in_.data<T>(), d.data<T>(), dx.data<T>(),
                       dw_in_.data<T>(), db_in_.data<T>());
    return dx;
  }

  // For fix_state_for_lengths.
  std::unique_ptr<XlstmBackbone> make_twin() const {
    return std::make_unique<XlstmBackbone>(json_, I_, where_, 0);
  }
  std::unique_ptr<BackboneState> gather_state(const BackboneState& s,
                                              const std::vector<int64_t>& rows) const {
    auto& f = dynamic_cast<const XlstmBackboneState&>(s);
    auto r = std::make_unique<XlstmBackboneState>();
    for (auto& b : f.blocks) {
      BlockState g;
      g.mlstm.conv = gather_rows(b.mlstm.conv, rows, 0);
      g.mlstm.cell.c = gather_rows(b.mlstm.cell.c, rows, 0);
      g.mlstm.cell.n = gather_rows(b.mlstm.cell.n, rows, 0);
      g.mlstm.cell.m = gather_rows(b.mlstm.cell.m, rows, 0);
      g.slstm.conv = gather_rows(b.slstm.conv, rows, 0);
      g.slstm.slstm = gather_rows(b.slstm.slstm, rows, 1);  // (4, B, H)
      r->blocks.push_back(std::move(g));
    }
    return r;
  }
  void scatter_state(const BackboneState& part, const std::vector<int64_t>& rows, int64_t B,
                     BackboneState& full) const {
    auto& p = dynamic_cast<const XlstmBackboneState&>(part);
    auto& f = dynamic_cast<XlstmBackboneState&>(full);
    if (f.blocks.empty()) f.blocks.resize(p.blocks.size());
    XLSTM_CHECK(f.blocks.size() == p.blocks.size(), InternalError,
                "[xlstm_backbone] state block counts differ");
    for (size_t i = 0; i < p.blocks.size(); ++i) {
      const BlockState& s = p.blocks[i];
      BlockState& d = f.blocks[i];
      scatter_rows(s.mlstm.conv, rows, 0, B, d.mlstm.conv);
      scatter_rows(s.mlstm.cell.c, rows, 0, B, d.mlstm.cell.c);
      scatter_rows(s.mlstm.cell.n, rows, 0, B, d.mlstm.cell.n);
      scatter_rows(s.mlstm.cell.m, rows, 0, B, d.mlstm.cell.m);
      scatter_rows(s.slstm.conv, rows, 0, B, d.slstm.conv);
      scatter_rows(s.slstm.slstm, rows, 1, B, d.slstm.slstm);
    }
  }

 private:
  json json_;
  std::string where_;
  XLSTMLMConfig cfg_;
  int64_t I_, D_ = 0;
  Tensor w_in_, dw_in_, b_in_, db_in_, w_post_, dw_post_;
  std::vector<std::unique_ptr<XLSTMBlock<T>>> blocks_;
  std::unique_ptr<XlstmBackbone> twin_;
  int64_t B_ = 0, S_ = 0;
  std::vector<T> x_, in_mask_, xlast_, mean_, rstd_;
};

}  // namespace

void copy_params(Module& src, Module& dst) {
  auto a = src.params(), b = dst.params();
  XLSTM_CHECK(a.size() == b.size(), ValueError, "[copy_params] ", a.size(), " vs ", b.size(),
              " parameters");
  for (size_t i = 0; i < a.size(); ++i) {
    XLSTM_CHECK(a[i].name == b[i].name && a[i].value->shape() == b[i].value->shape() &&
                    a[i].value->dtype() == b[i].value->dtype(),
                ValueError, "[copy_params] parameter ", a[i].name, " does not match ", b[i].name);
    std::memcpy(b[i].value->raw(), a[i].value->raw(), a[i].value->nbytes());
  }
}

std::unique_ptr<Backbone> make_backbone(const json& cfg, int64_t in_dim, const std::string& where,
                                        uint64_t seed, DType dtype) {
  XLSTM_CHECK(cfg.is_object(), ValueError, where, ": backbone config must be a JSON object");
  XLSTM_CHECK(dtype == DType::F32 || dtype == DType::F64, TypeError,
              "[make_backbone] dtype must be F32 or F64, got ", dtype_name(dtype));
  const std::string arch = json_cfg::get_enum(cfg, "arch", where, {"lstm", "xlstm"});
  const bool f64 = dtype == DType::F64;
  if (arch == "lstm") {
    if (f64) return std::make_unique<LstmBackbone<double>>(cfg, in_dim, where, seed);
    return std::make_unique<LstmBackbone<float>>(cfg, in_dim, where, seed);
  }
  XLSTM_CHECK(!json_cfg::get_bool(cfg, "bidirectional", where, false), ValueError, where,
              ": field 'bidirectional' is only supported for arch \"lstm\"");
  if (f64) return std::make_unique<XlstmBackbone<double>>(cfg, in_dim, where, seed);
  return std::make_unique<XlstmBackbone<float>>(cfg, in_dim, where, seed);
}

std::unique_ptr<Backbone> make_backbone(const json& cfg, int64_t in_dim, const std::string& where,
                                        uint64_t seed) {
  return make_backbone(cfg, in_dim, where, seed, DType::F32);
}

json backbone_preset(const std::string& name, const ModelOverrides& ov, bool bidirectional) {
  json m = model_preset(name, 1, ov);
  if (m["arch"] == "lstm")
    return {{"arch", "lstm"},
            {"hidden_size", m["hidden_size"]},
            {"num_layers", m["num_layers"]},
            {"bidirectional", bidirectional},
            {"dropout", m["dropout"]},
            {"embedding_dim", m["embedding_dim"]},
            {"context_length", m["context_length"]}};
  XLSTM_CHECK(!bidirectional, ValueError, "[presets] --bidirectional is for the LSTM models "
              "(lstm-*) only; '", name, "' is an xLSTM stack");
  m.erase("vocab_size");
  m.erase("tie_weights");
  return m;
}

}  // namespace xlstm
