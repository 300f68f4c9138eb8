// Storage for big, long-lived buffers (a layer's activations kept for backward, its backward
// scratch): blocks of 2 MiB and more are 2 MiB-aligned and advised MADV_HUGEPAGE, so their first
// touch costs one fault per 2 MiB instead of one per 4 KiB page (~12 us each on the development
// VM, CPU-NOTES.md: the small presets' first training step spent ~4 s faulting in ~1.4 GB of
// layer buffers). Smaller blocks come from malloc. Where transparent huge pages are off, the
// advice is ignored and nothing else changes.
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace xlstm {

template <class T>
struct HugeAlloc {
  using value_type = T;
  static constexpr size_t kHuge = size_t(2) << 20;

  HugeAlloc() = default;
  template <class U>
  HugeAlloc(const HugeAlloc<U>&) noexcept {}

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    void* p = nullptr;
    if (bytes < kHuge) {
      p = std::malloc(bytes ? bytes : 1);
    } else {
      const size_t sz = (bytes + kHuge - 1) / kHuge * kHuge;
      p = std::aligned_alloc(kHuge, sz);
      if (p) madvise(p, sz, MADV_HUGEPAGE);
    }
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
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
