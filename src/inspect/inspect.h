// Pictures of the inside of a trained language model (`xlstm inspect`): the model reads a text
// one token at a time in its recurrent (step) form, and every gate, state and stabiliser of the
// chosen layers is recorded per step.
//
// How the values are obtained: the checkpoint's weights are copied into float64 replicas of
// the model's own modules (LSTM<double>, XLSTMBlock<double>) that step through the text; at
// every step the gates are recomputed in float64 from the layer's parameters, its input and its
// previous state (the equations below), and the states they give are checked against the
// states and outputs the module's own step produced: max_state_err reports the largest
// difference (rounding, ~1e-12), and inspect_model throws InternalError if it exceeds 1e-6.
// max_logit_err compares the replica's logits with the float32 model's step (float rounding).
// Nothing in the model code is changed or slowed down for this.
//
// Recorded quantities (values (T, rows), time-major; rows = units or heads):
//   LSTM layer l (H units), torch.nn.LSTM:  i f g o (σ, σ, tanh, σ), c, h
//   sLSTM block (H = D units), official vanilla cell (src/cpu/slstm.h):
//       i_raw f_raw (pre-activations incl. recurrent part and bias),
//       i f (the effective exponential gates after stabilisation, min(exp(.), 1)),
//       z (tanh), o (σ), c, n, m (stabiliser), h (= y)
//   mLSTM block (NH heads; DH = inner / NH), xlstm recurrent step (src/cpu/mlstm_step.cpp):
//       per head: i_raw f_raw (pre-activations), i = exp(i_raw - m_t),
//       f = exp(logsigmoid(f_raw) + m_{t-1} - m_t), m, C_norm (Frobenius norm of C),
//       qn (q . n, the signed normaliser dot product), den = max(|q . n|, exp(-m)) + eps
//       per unit (inner): h (the cell output before the per-head norm), o = SiLU(z) (the output
//       gate branch of the layer)
// C and n are in the xlstm package's convention (k / sqrt(DH) in the state).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/checkpoint.h"

namespace xlstm {

enum class TraceRange {
  Unit,       // values in [0, 1] (gates): colour range fixed to [0, 1]
  Symmetric,  // signed values: diverging colours centred on 0
  Auto,       // data min..max
};

struct Trace {
  std::string name;      // file stem part: "i", "f_raw", "C_norm", ...
  std::string title;     // what it is, for the plot title
  std::string row_axis;  // "unit" or "head"
  int64_t rows = 0;
  TraceRange range = TraceRange::Auto;
  std::vector<double> values;  // (T, rows), row t = time step t
};

struct LayerTrace {
  int64_t index = 0;     // LSTM layer or xLSTM block index
  std::string kind;      // "lstm", "slstm" or "mlstm"
  std::vector<Trace> traces;
  const Trace& get(const std::string& name) const;  // InternalError if absent
};

struct InspectResult {
  std::vector<int64_t> ids;           // the tokens read, one per step
  std::vector<std::string> labels;    // printable form of each token (space as "␣", ...)
  std::vector<LayerTrace> layers;     // the inspected layers, in order
  double max_state_err = 0;           // float64 recomputation vs the module's own step
  double max_logit_err = 0;           // float64 replica vs the float32 model's step logits
};

// Number of inspectable layers: LSTM layers, or xLSTM blocks.
int64_t inspectable_layers(const LoadedModel& m);

// Runs the model over `ids` (>= 1 token) and records the layers `layer` (-1: all). ValueError
// for an empty input, an id outside the vocabulary or a layer index out of range (naming the
// valid range); InternalError when the recomputation disagrees with the model (a bug).
InspectResult inspect_model(const LoadedModel& m, const std::vector<int64_t>& ids, int64_t layer);

// Writes <dir>/layer<L>_<kind>_<name>.png (heatmap: x = time step labelled with the input
// characters, y = unit/head, colour bar) and .csv (header "step,token,<row>_0,...", one row
// per step) for every trace; creates `dir`. Returns the paths written, in order.
std::vector<std::string> write_inspect(const InspectResult& r, const std::string& dir);

}  // namespace xlstm
