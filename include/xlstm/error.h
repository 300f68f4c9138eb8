// Typed errors of the library. The library throws; only the CLI prints and exits.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace xlstm {

// Base of every error the library throws. what() is one line: "[where] what; hint".
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ValueError : public Error { public: using Error::Error; };           // bad argument value / shape
class TypeError : public Error { public: using Error::Error; };            // wrong dtype / device
class IoError : public Error { public: using Error::Error; };              // file missing, corrupt, unwritable
class NotImplementedError : public Error { public: using Error::Error; };  // feature/backend not built
class CudaError : public Error { public: using Error::Error; };            // CUDA runtime failure
class InternalError : public Error { public: using Error::Error; };        // broken invariant (a bug)

namespace detail {
inline void cat(std::ostringstream&) {}
template <class A, class... R>
void cat(std::ostringstream& os, const A& a, const R&... r) {
  os << a;
  cat(os, r...);
}
}  // namespace detail

// Builds a message from streamable pieces.
template <class... A>
std::string str(const A&... a) {
  std::ostringstream os;
  detail::cat(os, a...);
  return os.str();
}

}  // namespace xlstm

// Bad user input: throws ErrType with the streamed message.
#define XLSTM_CHECK(cond, ErrType, ...)                      \
  do {                                                       \
    if (!(cond)) throw ::xlstm::ErrType(::xlstm::str(__VA_ARGS__)); \
  } while (0)

// Broken internal invariant (a bug in this library).
#define XLSTM_ASSERT(cond)                                                                  \
  do {                                                                                      \
    if (!(cond))                                                                            \
      throw ::xlstm::InternalError(::xlstm::str("internal error: ", #cond, " at ", __FILE__, \
                                                ":", __LINE__));                            \
  } while (0)
