#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "xlstm/error.h"

namespace xlstm {

AtomicFile::AtomicFile(const std::string& path)
    : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  XLSTM_CHECK(fd_ >= 0, IoError, path, ": cannot create (", std::strerror(errno), ")");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!done_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    XLSTM_CHECK(w > 0, IoError, path_, ": write failed (", std::strerror(errno), ")");
    p += w;
    n -= (size_t)w;
  }
}

void AtomicFile::commit() {
  XLSTM_CHECK(::fsync(fd_) == 0, IoError, path_, ": fsync failed (", std::strerror(errno), ")");
  ::close(fd_);
  fd_ = -1;
  XLSTM_CHECK(std::rename(tmp_.c_str(), path_.c_str()) == 0, IoError, path_,
              ": rename failed (", std::strerror(errno), ")");
  done_ = true;
}

void write_file_atomic(const std::string& path, const std::string& content) {
  AtomicFile f(path);
  f.write(content);
  f.commit();
}

}  // namespace xlstm
