#include "nn/module.h"

#include <cstring>
#include <set>

namespace xlstm {

void Module::load_params(const std::map<std::string, Tensor>& src, const std::string& where) {
  std::set<std::string> used;
  for (auto& p : params()) {
    auto it = src.find(p.name);
    XLSTM_CHECK(it != src.end(), ValueError, where, ": missing parameter '", p.name, "' of shape ",
                shape_str(p.value->shape()));
    XLSTM_CHECK(it->second.shape() == p.value->shape(), ValueError, where, ": parameter '", p.name,
                "' must have shape ", shape_str(p.value->shape()), ", got ",
                shape_str(it->second.shape()));
    Tensor c = it->second.to(p.value->dtype());
    std::memcpy(p.value->raw(), c.raw(), c.nbytes());
    used.insert(p.name);
  }
  for (auto& kv : src)
    XLSTM_CHECK(used.count(kv.first), ValueError, where, ": unexpected parameter '", kv.first,
                "' (not part of this model)");
}

}  // namespace xlstm
