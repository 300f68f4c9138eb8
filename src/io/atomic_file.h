// A file that appears at its final path only when complete: data goes to "<path>.tmp.<pid>",
// commit() fsyncs and renames it over `path`. Destroying an uncommitted AtomicFile removes the
// temp file and leaves any existing file at `path` untouched.
#pragma once
#include <cstddef>
#include <functional>
#include <string>

namespace xlstm {

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);  // throws IoError if the temp file can't be created
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);  // throws IoError (disk full, ...)
  void write(const std::string& s) { write(s.data(), s.size()); }
  void commit();                           // fsync + rename; throws IoError

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool done_ = false;
};

// Convenience: whole-file atomic write.
void write_file_atomic(const std::string& path, const std::string& content);

// A directory that appears complete or not at all: `fill(tmp)` writes the files into a fresh
// temp directory beside `dir`, which is then fsynced and renamed over `dir` (an existing `dir`
// is moved aside first and removed after). If `fill` throws, the temp directory is removed and
// `dir` is untouched. Throws IoError.
void write_dir_atomic(const std::string& dir, const std::function<void(const std::string& tmp)>& fill);

}  // namespace xlstm
