// Base of modules with parameters. Forward/backward are explicit per module (no autograd graph):
// forward keeps what backward needs; backward returns input gradients (written, `=`) and
// accumulates parameter gradients (`+=`) into each parameter's grad tensor.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "xlstm/tensor.h"

namespace xlstm {

// Train enables dropout (drawn from a caller-provided Rng); Eval disables it.
enum class Mode { Train, Eval };

// A named parameter and its gradient (same shape and dtype). Names are the official
// PyTorch state_dict() names (torch.nn.LSTM, the xlstm package, Hugging Face `xlstm`).
struct ParamRef {
  std::string name;
  Tensor* value;
  Tensor* grad;
};

class Module {
 public:
  virtual ~Module() = default;
  // Appends this module's parameters, names prefixed with `prefix` (e.g. "blocks.0.").
  virtual void collect_params(const std::string& prefix, std::vector<ParamRef>& out) = 0;

  std::vector<ParamRef> params() {
    std::vector<ParamRef> r;
    collect_params("", r);
    return r;
  }
  void zero_grad() {
    for (auto& p : params()) p.grad->zero();
  }
  // Copies every parameter from `src` (converting dtype). Every parameter must be present with
  // exactly its shape; names in `src` that are not parameters are an error too. `where` names
  // the source (a file) in error messages.
  void load_params(const std::map<std::string, Tensor>& src, const std::string& where);
};

// Allocates a parameter and its zero gradient.
inline void make_param(Tensor& value, Tensor& grad, const Shape& shape, DType dt) {
  value = Tensor(shape, dt);
  grad = Tensor(shape, dt);
}

}  // namespace xlstm
