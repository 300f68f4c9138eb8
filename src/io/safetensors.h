// safetensors files: u64 LE header length N | N bytes JSON header | raw little-endian data.
// Reading memory-maps the file and validates the whole header (dtypes, shapes, offsets inside
// the file, no overlaps, sizes matching shapes) before any tensor is handed out. Writing goes
// to a temp file that is fsynced and renamed, so a crash never leaves a half-written file.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "xlstm/tensor.h"

namespace xlstm {

class SafeTensorsFile {
 public:
  // Throws IoError naming the file and the offending field on any defect.
  explicit SafeTensorsFile(const std::string& path);

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  std::vector<std::string> names() const;  // sorted
  // Zero-copy view into the mapping (kept alive by the returned tensor).
  Tensor get(const std::string& name) const;
  // __metadata__ string map (empty if absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct Entry { DType dtype; Shape shape; size_t begin, end; };
  std::string path_;
  std::shared_ptr<void> map_;  // owns the mmap
  const char* data_ = nullptr; // first byte after the header
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` (name -> tensor) atomically to `path` (temp file + fsync + rename).
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Parses a safetensors dtype string ("F32", "F64", "BF16", "I32", "I64"); throws otherwise.
DType parse_safetensors_dtype(const std::string& s, const std::string& where);

}  // namespace xlstm
