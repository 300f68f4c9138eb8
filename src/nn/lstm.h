// torch.nn.LSTM: stacked, optionally bidirectional LSTM with dropout between layers.
//
// Parameters (torch's state_dict names; rows in gate order [i, f, g, o]), for layer k and
// suffix "" (forward) or "_reverse":
//   weight_ih_l{k}{sfx} (4H, in_k)   in_0 = input_size, in_k = D*H for k > 0 (D = 2 if
//   bidirectional) weight_hh_l{k}{sfx} (4H, H) bias_ih_l{k}{sfx}   (4H)         only when
//   config.bias bias_hh_l{k}{sfx}   (4H)         only when config.bias
// Shapes at the API (batch_first only):
//   x (B, T, I); output (B, T, D*H) = [forward | reverse] halves of the last layer;
//   h0, c0, h_n, c_n (L*D, B, H) indexed layer*D + direction.
// Optional tensors are passed as an undefined Tensor() (zero state / zero gradient / not wanted).
//
// Memory: every activation buffer (time-major caches, transposes, dropout masks, per-call
// scratch) lives in the module and only grows, so repeated calls with the same shapes allocate
// nothing except what the *allocating* convenience overloads return. Use forward_into /
// backward_into with caller-owned tensors for allocation-free loops.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/lstm.h"
#include "nn/module.h"
#include "xlstm/rng.h"
#include "xlstm/tensor.h"

namespace xlstm {

struct LSTMConfig {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 1;
  bool bias = true;
  bool batch_first = true;  // only true is supported
  bool bidirectional = false;
  double dropout = 0.0;   // on every layer's output except the last's, in LstmMode::Train
  int64_t proj_size = 0;  // only 0 is supported
};

// The project-wide train/eval switch (nn/module.h): Train applies dropout between layers (needs
// an Rng), Eval never does.
using LstmMode = Mode;

template <class T>
class LSTM : public Module {
 public:
  struct Output {
    Tensor output;  // (B, T, D*H)
    Tensor h_n;     // (L*D, B, H)
    Tensor c_n;     // (L*D, B, H)
  };
  struct Grads {
    Tensor dx;   // (B, T, I)
    Tensor dh0;  // (L*D, B, H)
    Tensor dc0;  // (L*D, B, H)
  };

  // Throws ValueError for sizes < 1, dropout outside [0, 1), batch_first == false or
  // proj_size != 0. Parameters are initialised like torch: U(-1/sqrt(H), 1/sqrt(H)) from
  // Rng(seed), in state_dict order.
  explicit LSTM(const LSTMConfig& cfg, uint64_t seed = 0);

  const LSTMConfig& config() const { return cfg_; }
  int64_t num_directions() const { return cfg_.bidirectional ? 2 : 1; }
  void collect_params(const std::string& prefix, std::vector<ParamRef>& out) override;
  // Re-draws every parameter from U(-1/sqrt(H), 1/sqrt(H)).
  void reset_parameters(Rng& rng);

  // Runs the whole sequence and keeps what backward needs. h0 and c0 are both given or both
  // undefined (zeros). rng is required when mode == Train, dropout > 0 and num_layers > 1.
  Output forward(const Tensor& x, const Tensor& h0 = Tensor(), const Tensor& c0 = Tensor(),
                 LstmMode mode = LstmMode::Eval, Rng* rng = nullptr);
  // Same, writing into caller-owned tensors of the right shapes and dtype (allocation-free).
  void forward_into(const Tensor& x, const Tensor& h0, const Tensor& c0, LstmMode mode, Rng* rng,
                    Tensor& output, Tensor& h_n, Tensor& c_n);

  // Gradients of sum(output*doutput) + sum(h_n*dh_n) + sum(c_n*dc_n) through the last forward:
  // input and initial-state gradients written, parameter gradients accumulated (+=). dh_n, dc_n
  // may be undefined (zeros). May be called again on the same forward (identical results).
  Grads backward(const Tensor& doutput, const Tensor& dh_n = Tensor(),
                 const Tensor& dc_n = Tensor());
  // Same into caller-owned tensors; any of dx, dh0, dc0 may be undefined (not computed).
  void backward_into(const Tensor& doutput, const Tensor& dh_n, const Tensor& dc_n, Tensor& dx,
                     Tensor& dh0, Tensor& dc0);

  // Inference, one time step with carried state, nothing saved for backward (unidirectional
  // only; no dropout). x: (B, I). h, c: (L, B, H) read and updated in place; the step's output
  // is h[L-1].
  void step(const Tensor& x, Tensor& h, Tensor& c);

  // Decode with bf16 weights (float only): on = step() with B <= 4 reads bf16 copies of the
  // weight matrices made now (half the bytes per token; biases, state and arithmetic stay
  // float), off = the float weights again. The copies are not updated by later changes to the
  // weights: call again after loading or training. Throws TypeError for T = double.
  void set_step_bf16(bool on);
  bool step_bf16() const { return !step_w_bf16_.empty(); }

 private:
  struct Dir {
    Tensor w_ih, w_hh, b_ih, b_hh;
    Tensor gw_ih, gw_hh, gb_ih, gb_hh;
    LstmCache<T> cache;
  };
  Dir& dir(int64_t layer, int64_t d) { return dirs_[(size_t)(layer * num_directions() + d)]; }
  int64_t layer_in(int64_t layer) const {
    return layer == 0 ? cfg_.input_size : num_directions() * cfg_.hidden_size;
  }
  void check_state(const char* op, const char* name, const Tensor& t, int64_t B) const;
  void check_out(const char* op, const char* name, const Tensor& t, const Shape& want) const;

  LSTMConfig cfg_;
  std::vector<Dir> dirs_;  // L*D, index layer*D + direction

  // Saved by forward for backward.
  int64_t B_ = 0, T_ = 0;  // 0 = no forward yet
  bool has_state_ = false;
  bool dropped_ = false;             // dropout applied between layers in the last forward
  LstmBuffer<T> xt_;                 // (T, B, I) the input, time-major
  std::vector<LstmBuffer<T>> out_;   // per layer (T, B, D*H) outputs, time-major
  std::vector<LstmBuffer<T>> in_;    // per layer k >= 1: (T, B, D*H) dropped input (when dropped_)
  std::vector<LstmBuffer<T>> mask_;  // per layer k >= 1: (T, B, D*H) dropout mask
  LstmBuffer<T> h0_, c0_;            // (L*D, B, H) copies of the initial state
  // Backward scratch.
  LstmBuffer<T> ga_, gb_;  // (T, B, max(I, D*H)) time-major gradients, ping-pong
  LstmScratch<T> scratch_;
  LstmBuffer<T> step_gates_;  // (B, 4H) for step()
  std::vector<Tensor> step_w_bf16_;  // per layer: lstm_step_bf16_pack of W_ih, W_hh (or empty)
};

extern template class LSTM<float>;
extern template class LSTM<double>;

}  // namespace xlstm
