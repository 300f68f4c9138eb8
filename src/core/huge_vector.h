// Storage for big, long-lived buffers (a layer's activations kept for backward, its backward
// scratch): blocks of 2 MiB and more are 2 MiB-aligned and advised MADV_HUGEPAGE, so their first
// touch costs one fault per 2 MiB instead of one per 4 KiB page (~12 us each on the development
// VM, CPU-NOTES.md: the small presets' first training step spent ~4 s faulting in ~1.4 GB of
// layer buffers). Smaller blocks come from malloc. Where transparent huge pages are off, the
// advice is ignored and nothing else changes. Tensor storage and the LSTM workspaces use the
// same allocation (huge_aligned_alloc).
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace xlstm {

constexpr size_t kHugePage = size_t(2) << 20;

// The one place that allocates this way: bytes < 2 MiB 64-byte aligned, else rounded up to and
// aligned on 2 MiB and advised MADV_HUGEPAGE. Free with std::free. Throws std::bad_alloc.
inline void* huge_aligned_alloc(size_t bytes) {
  const size_t align = bytes >= kHugePage ? kHugePage : 64;
  const size_t sz = ((bytes ? bytes : 1) + align - 1) / align * align;
  void* p = std::aligned_alloc(align, sz);
  if (!p) throw std::bad_alloc();
  if (align == kHugePage) madvise(p, sz, MADV_HUGEPAGE);
  return p;
}

template <class T>
struct HugeAlloc {
  using value_type = T;

  HugeAlloc() = default;
  template <class U>
  HugeAlloc(const HugeAlloc<U>&) noexcept {}

  T* allocate(size_t n) { return static_cast<T*>(huge_aligned_alloc(n * sizeof(T))); }
  void deallocate(T* p, size_t) noexcept { std::free(p); }

  template <class U>
  bool operator==(const HugeAlloc<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const HugeAlloc<U>&) const noexcept {
    return false;
  }
};

template <class T>
using HugeVector = std::vector<T, HugeAlloc<T>>;

}  // namespace xlstm
