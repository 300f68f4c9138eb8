#include "conformance/case.h"

#include <cmath>

namespace xlstm::conformance {

using json = nlohmann::json;

Case::Case(const std::string& path) : file_(path) {
  auto& md = file_.metadata();
  auto it = md.find("case");
  XLSTM_CHECK(it != md.end(), IoError, path, ": __metadata__ has no 'case' entry");
  try {
    meta_ = json::parse(it->second);
  } catch (const std::exception& e) {
    throw IoError(str(path, ": __metadata__.case is not valid JSON (", e.what(), ")"));
  }
  for (const char* k : {"name", "kind", "dtype", "config", "tolerance"})
    XLSTM_CHECK(meta_.contains(k), IoError, path, ": case JSON lacks field '", k, "'");
  XLSTM_CHECK(meta_["name"].is_string() && meta_["kind"].is_string() && meta_["dtype"].is_string(),
              IoError, path, ": case fields name/kind/dtype must be strings");
  name_ = meta_["name"].get<std::string>();
  kind_ = meta_["kind"].get<std::string>();
  const std::string dt = meta_["dtype"].get<std::string>();
  XLSTM_CHECK(dt == "float64" || dt == "float32", IoError, path, ": case dtype '", dt,
              "' is not float64 or float32");
  dtype_ = dt == "float64" ? DType::F64 : DType::F32;
  has_grads_ = meta_.value("has_grads", false);
  XLSTM_CHECK(has("expected.output"), IoError, path, ": missing tensor 'expected.output'");
}

Tensor Case::get(const std::string& tensor, DType dt) const {
  XLSTM_CHECK(file_.has(tensor), IoError, path(), ": missing tensor '", tensor, "'");
  Tensor t = file_.get(tensor);
  const bool is_int = t.dtype() == DType::I64 || t.dtype() == DType::I32;
  const bool want_int = dt == DType::I64 || dt == DType::I32;
  XLSTM_CHECK(is_int == want_int, IoError, path(), ": tensor '", tensor, "' has dtype ",
              dtype_name(t.dtype()), ", expected ", want_int ? "an integer" : "a float", " dtype");
  if (!is_int)
    XLSTM_CHECK(t.dtype() == dtype_, IoError, path(), ": tensor '", tensor, "' has dtype ",
                dtype_name(t.dtype()), " but the case dtype is ", dtype_name(dtype_));
  return t.to(dt);
}

Tensor Case::get(const std::string& tensor, DType dt, const Shape& shape) const {
  Tensor t = get(tensor, dt);
  XLSTM_CHECK(t.shape() == shape, IoError, path(), ": tensor '", tensor, "' has shape ",
              shape_str(t.shape()), ", expected ", shape_str(shape));
  return t;
}

std::map<std::string, Tensor> Case::with_prefix(const std::string& prefix, DType dt) const {
  std::map<std::string, Tensor> r;
  for (auto& n : file_.names())
    if (n.compare(0, prefix.size(), prefix) == 0) r[n.substr(prefix.size())] = get(n, dt);
  return r;
}

void Comparer::tolerance(const std::string& name, double& rtol, double& atol) const {
  const json& m = case_.meta();
  const bool grad = name.rfind("expected.grad", 0) == 0;
  std::string key = grad ? "grad_tolerance" : "tolerance";
  std::string per = "atol_per_tensor";
  if (prec_ == ImplPrecision::F32 && case_.dtype() == DType::F64) {
    key += "_fp32_impl";
    per = "atol_fp32_impl_per_tensor";
  }
  XLSTM_CHECK(m.contains(key) && m[key].is_object(), IoError, case_.path(), ": case has no '", key,
              "' for tensor '", name, "'");
  const json& t = m[key];
  rtol = t.value("rtol", 0.0);
  atol = t.value("atol", 0.0);
  if (m.contains(per) && m[per].is_object() && m[per].contains(name) && m[per][name].is_number())
    atol = m[per][name].get<double>();
}

void Comparer::check(const std::string& expected, const Tensor& actual) {
  if (!failure_.empty()) return;
  if (!case_.has(expected)) {
    failure_ = str("tensor ", expected, " missing from ", case_.path());
    return;
  }
  Tensor e = case_.get(expected, DType::F64);
  if (e.numel() != actual.numel()) {
    failure_ = str("tensor ", expected, " expected shape ", shape_str(e.shape()), " got shape ",
                   shape_str(actual.shape()));
    return;
  }
  double rtol, atol;
  tolerance(expected, rtol, atol);
  const double* ev = e.data<double>();
  std::vector<double> av = actual.to_f64();
  ++checked_;
  for (int64_t i = 0; i < e.numel(); ++i) {
    const double a = av[(size_t)i], x = ev[i];
    const double err = std::fabs(a - x);
    const bool good = std::isfinite(a) && err <= atol + rtol * std::fabs(x);
    if (std::isfinite(a)) {
      max_abs_ = std::max(max_abs_, err);
      if (std::fabs(x) > atol) max_rel_ = std::max(max_rel_, err / std::fabs(x));
    }
    if (!good) {
      failure_ = str("tensor ", expected, "[", i, "] expected ", x, " got ", a,
                     " (atol=", atol, " rtol=", rtol, ")");
      return;
    }
  }
}

}  // namespace xlstm::conformance
