// Optimizers over a model's parameters: SGD (momentum, Nesterov), Adam and AdamW, with exactly
// torch.optim's update equations (defaults: no amsgrad, maximize=False, foreach irrelevant).
//
// For parameter p with gradient g at step t = 1, 2, ... (lr may change every step):
//   SGD:   g += wd*p (decayed params only);  if momentum: b = t==1 ? g : mu*b + (1-dampening)*g,
//          g = nesterov ? g + mu*b : b;  p -= lr*g
//   Adam:  g += wd*p (decayed params only, L2 "coupled" decay like torch.optim.Adam)
//   AdamW: p *= 1 - lr*wd (decayed params only, decoupled, applied before the moment update)
//   Adam/AdamW then: m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
//          p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
// Per-element arithmetic is done in double and stored in the parameter's dtype (F32 or F64);
// moments have the parameter's dtype. Elementwise and OpenMP-parallel over elements, so the
// result does not depend on the thread count.
//
// Parameter groups: each parameter either gets weight decay or not, decided once at
// construction by a DecayRule (see below). Parameters are referenced, not owned: the tensors
// behind each ParamRef must outlive the optimizer and keep their shapes.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "nn/module.h"
#include "xlstm/tensor.h"

namespace xlstm {

enum class OptimKind { SGD, Adam, AdamW };
enum class Nesterov { Off, On };

// "sgd" | "adam" | "adamw" (case-sensitive) -> kind; ValueError listing the choices otherwise.
OptimKind parse_optim_kind(const std::string& s);
const char* optim_kind_name(OptimKind k);  // "sgd", "adam", "adamw"

// Which parameters get weight decay. Default ("matrices"): tensors with ndim >= 2 whose name
// contains none of "norm", "bias", "embedding" -- i.e. the weight matrices of linear, recurrent
// and conv layers (including the sLSTM's `_recurrent_kernel_`), but not norms, biases,
// embeddings or any 1-D tensor. `require_any`, when non-empty, additionally demands one of its
// substrings in the name (e.g. {"weight"}). `custom`, when set, replaces the whole rule.
struct DecayRule {
  int min_ndim = 2;
  std::vector<std::string> exclude = {"norm", "bias", "embedding"};
  std::vector<std::string> require_any;
  std::function<bool(const std::string& name, const Shape& shape)> custom;

  bool decays(const std::string& name, const Shape& shape) const;
  static DecayRule matrices() { return DecayRule(); }
  static DecayRule all();   // every parameter decays (torch's behaviour without groups)
  static DecayRule none();  // no parameter decays
};

struct OptimConfig {
  OptimKind kind = OptimKind::AdamW;
  double lr = 1e-3;            // initial learning rate; set_lr() overrides it per step
  double weight_decay = 0.0;   // applied only to parameters the DecayRule selects
  // Adam / AdamW
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  // SGD
  double momentum = 0.0, dampening = 0.0;
  Nesterov nesterov = Nesterov::Off;
};

class Optimizer {
 public:
  // Throws ValueError for: lr < 0, eps < 0, betas outside [0, 1), weight_decay < 0,
  // momentum < 0, Nesterov::On without momentum or with dampening (as torch), duplicate
  // parameter names, null tensors, grad shape/dtype != value's, dtypes other than F32/F64,
  // non-CPU tensors.
  Optimizer(std::vector<ParamRef> params, const OptimConfig& cfg,
            const DecayRule& rule = DecayRule::matrices());

  // One update from the current gradients (does not zero them).
  void step();
  void zero_grad();

  void set_lr(double lr);  // ValueError if lr < 0 or not finite
  double lr() const { return cfg_.lr; }
  int64_t step_count() const { return step_; }
  const OptimConfig& config() const { return cfg_; }
  const std::vector<ParamRef>& params() const { return params_; }
  bool decays(size_t i) const { return decay_.at(i) != 0; }  // i indexes params()

  // Checkpoint state: "step" (I64, shape (1)) and, per parameter p (same shape/dtype as p):
  //   Adam/AdamW: "exp_avg.<p>", "exp_avg_sq.<p>"
  //   SGD with momentum > 0: "momentum_buffer.<p>" (after the first step only, as torch)
  // Hyperparameters are not part of the state (they come from the config).
  std::map<std::string, Tensor> state_dict() const;
  // Restores state_dict()'s output. Every expected tensor must be present (IoError naming
  // `where` and the tensor otherwise) with exactly its shape (ValueError); tensors that do not
  // belong here and a negative step are ValueErrors. Values are converted to the parameter's
  // dtype (a no-op round trip for state saved by the same optimizer: the next step is then
  // bit-identical to an uninterrupted run). Nothing is modified if validation fails.
  void load_state_dict(const std::map<std::string, Tensor>& state, const std::string& where);

 private:
  std::vector<ParamRef> params_;
  std::vector<char> decay_;
  OptimConfig cfg_;
  int64_t step_ = 0;
  std::vector<Tensor> m_, v_;  // Adam: exp_avg, exp_avg_sq. SGD: m_ = momentum buffers
};

}  // namespace xlstm
