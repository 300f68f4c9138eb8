#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"

namespace xlstm {

using json = nlohmann::json;

DType parse_safetensors_dtype(const std::string& s, const std::string& where) {
  if (s == "F32") return DType::F32;
  if (s == "F64") return DType::F64;
  if (s == "BF16") return DType::BF16;
  if (s == "F16") return DType::F16;
  if (s == "I32") return DType::I32;
  if (s == "I64") return DType::I64;
  throw IoError(str(where, ": unsupported dtype '", s, "'; hint: F32, F64, BF16, F16, I32 or I64"));
}

SafeTensorsFile::SafeTensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  XLSTM_CHECK(fd >= 0, IoError, path, ": cannot open (", std::strerror(errno), ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw IoError(str(path, ": cannot stat"));
  }
  const size_t size = (size_t)st.st_size;
  if (size < 8) {
    ::close(fd);
    throw IoError(str(path, ": truncated (", size, " bytes; a safetensors file starts with an 8-byte header length)"));
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  XLSTM_CHECK(p != MAP_FAILED, IoError, path, ": mmap failed (", std::strerror(errno), ")");
  map_ = std::shared_ptr<void>(p, [size](void* q) { ::munmap(q, size); });
  const char* base = static_cast<const char*>(p);
  uint64_t n = 0;
  std::memcpy(&n, base, 8);
  XLSTM_CHECK(n <= size - 8, IoError, path, ": header length ", n, " exceeds the file size ", size,
              " (truncated or not a safetensors file)");
  json h;
  try {
    h = json::parse(base + 8, base + 8 + n);
  } catch (const std::exception& e) {
    throw IoError(str(path, ": header is not valid JSON (", e.what(), ")"));
  }
  XLSTM_CHECK(h.is_object(), IoError, path, ": header is not a JSON object");
  data_ = base + 8 + n;
  const size_t data_size = size - 8 - n;
  std::vector<std::pair<size_t, size_t>> ranges;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      XLSTM_CHECK(it->is_object(), IoError, path, ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        XLSTM_CHECK(m->is_string(), IoError, path, ": __metadata__.", m.key(), " is not a string");
        metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const std::string where = str(path, ": tensor '", name, "'");
    const json& e = *it;
    XLSTM_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"),
                IoError, where, " needs dtype, shape and data_offsets");
    XLSTM_CHECK(e["dtype"].is_string(), IoError, where, ": dtype is not a string");
    Entry en;
    en.dtype = parse_safetensors_dtype(e["dtype"].get<std::string>(), where);
    XLSTM_CHECK(e["shape"].is_array(), IoError, where, ": shape is not an array");
    size_t numel = 1;
    for (auto& d : e["shape"]) {
      XLSTM_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, IoError, where,
                  ": shape has a non-integer or negative dimension");
      en.shape.push_back(d.get<int64_t>());
      XLSTM_CHECK(en.shape.back() < (int64_t(1) << 40), IoError, where, ": dimension too large");
      numel *= (size_t)en.shape.back();
      XLSTM_CHECK(numel < (size_t(1) << 48), IoError, where, ": shape too large");
    }
    auto& off = e["data_offsets"];
    XLSTM_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                    off[1].is_number_unsigned(),
                IoError, where, ": data_offsets must be [begin, end]");
    en.begin = off[0].get<size_t>();
    en.end = off[1].get<size_t>();
    XLSTM_CHECK(en.begin <= en.end && en.end <= data_size, IoError, where, ": data_offsets [",
                en.begin, ", ", en.end, "] exceed the data section (", data_size,
                " bytes; truncated file?)");
    XLSTM_CHECK(en.end - en.begin == numel * dtype_size(en.dtype), IoError, where, ": ",
                en.end - en.begin, " bytes for shape ", shape_str(en.shape), " of ",
                dtype_name(en.dtype));
    if (en.end > en.begin) ranges.emplace_back(en.begin, en.end);
    entries_[name] = std::move(en);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    XLSTM_CHECK(ranges[i].first >= ranges[i - 1].second, IoError, path,
                ": tensor data ranges overlap at byte ", ranges[i].first);
}

std::vector<std::string> SafeTensorsFile::names() const {
  std::vector<std::string> r;
  for (auto& kv : entries_) r.push_back(kv.first);
  return r;
}

Tensor SafeTensorsFile::get(const std::string& name) const {
  auto it = entries_.find(name);
  XLSTM_CHECK(it != entries_.end(), IoError, path_, ": missing tensor '", name, "'");
  const Entry& e = it->second;
  return Tensor::wrap(e.shape, e.dtype, map_, const_cast<char*>(data_ + e.begin));
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  size_t off = 0;
  for (auto& kv : tensors) {
    const Tensor& t = kv.second;
    XLSTM_CHECK(t.device() == Device::CPU, TypeError, "[save_safetensors] ", kv.first, " is not on CPU");
    h[kv.first] = {{"dtype", dtype_name(t.dtype())},
                   {"shape", t.shape()},
                   {"data_offsets", {off, off + t.nbytes()}}};
    off += t.nbytes();
  }
  std::string hs = h.dump();
  while ((hs.size() + 8) % 8) hs.push_back(' ');
  AtomicFile f(path);
  uint64_t n = hs.size();
  f.write(&n, 8);
  f.write(hs.data(), hs.size());
  for (auto& kv : tensors) f.write(kv.second.raw(), kv.second.nbytes());
  f.commit();
}

}  // namespace xlstm
