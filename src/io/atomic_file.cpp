#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

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

namespace {
void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
}  // namespace

void write_dir_atomic(const std::string& dir,
                      const std::function<void(const std::string& tmp)>& fill) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string tmp = dir + ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  XLSTM_CHECK(fs::create_directories(tmp, ec) && !ec, IoError, tmp, ": cannot create directory (",
              ec.message(), ")");
  try {
    fill(tmp);
    fsync_dir(tmp);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  const std::string old = dir + ".old";
  fs::remove_all(old, ec);
  if (fs::exists(dir, ec)) {
    fs::rename(dir, old, ec);
    XLSTM_CHECK(!ec, IoError, dir, ": cannot move the previous directory aside (", ec.message(), ")");
  }
  fs::rename(tmp, dir, ec);
  XLSTM_CHECK(!ec, IoError, dir, ": cannot rename the new directory into place (", ec.message(), ")");
  fsync_dir(fs::path(dir).parent_path().empty() ? "." : fs::path(dir).parent_path().string());
  fs::remove_all(old, ec);
}

}  // namespace xlstm
