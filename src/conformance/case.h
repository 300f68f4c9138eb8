// One conformance case of ../shared/conformance (format: its README): the tensors of one
// safetensors file plus the case JSON from __metadata__["case"], and a comparer that applies
// the case's tolerances.
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "io/safetensors.h"

namespace xlstm::conformance {

// Precision of the implementation under test. Same: computes in the case dtype (strict
// tolerances). F32: a float32 implementation against a float64 case (the *_fp32_impl ones).
enum class ImplPrecision { Same, F32 };

class Case {
 public:
  explicit Case(const std::string& path);  // throws IoError naming the file and the field
  const std::string& path() const { return file_.path(); }
  const std::string& name() const { return name_; }
  const std::string& kind() const { return kind_; }
  const nlohmann::json& meta() const { return meta_; }
  const nlohmann::json& config() const { return meta_.at("config"); }
  DType dtype() const { return dtype_; }
  bool has_grads() const { return has_grads_; }

  bool has(const std::string& tensor) const { return file_.has(tensor); }
  // The tensor converted to `dt` (an owned copy). Throws IoError naming file and tensor when
  // it is missing, and when `shape` is given and differs.
  Tensor get(const std::string& tensor, DType dt) const;
  Tensor get(const std::string& tensor, DType dt, const Shape& shape) const;
  // All tensors whose name starts with `prefix`, keyed by the rest of the name.
  std::map<std::string, Tensor> with_prefix(const std::string& prefix, DType dt) const;

 private:
  SafeTensorsFile file_;
  nlohmann::json meta_;
  std::string name_, kind_;
  DType dtype_ = DType::F64;
  bool has_grads_ = false;
};

// Compares actual tensors with a case's expected.* tensors, elementwise
// |a - e| <= atol + rtol * |e| (NaN/Inf never pass), with the tolerance the case gives for the
// tensor's family (outputs/states vs grads) and the implementation precision.
class Comparer {
 public:
  Comparer(const Case& c, ImplPrecision p) : case_(c), prec_(p) {}
  // `expected` is the full tensor name, e.g. "expected.grad.param.weight_hh_l0".
  void check(const std::string& expected, const Tensor& actual);
  bool ok() const { return failure_.empty(); }
  const std::string& failure() const { return failure_; }  // first failure, one line
  double max_abs_err() const { return max_abs_; }
  double max_rel_err() const { return max_rel_; }
  int checked() const { return checked_; }
  // Which custom-backward family of expected grads to use for a tensor name: "expected.grad."
  // (exact autograd, our choice; see docs/numerics.md).
 private:
  void tolerance(const std::string& name, double& rtol, double& atol) const;
  const Case& case_;
  ImplPrecision prec_;
  std::string failure_;
  double max_abs_ = 0, max_rel_ = 0;
  int checked_ = 0;
};

}  // namespace xlstm::conformance
