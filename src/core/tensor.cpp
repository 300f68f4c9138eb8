#include "xlstm/tensor.h"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/huge_vector.h"

namespace xlstm {

namespace {
// First touch of fresh memory costs ~12 us per 4 KiB page on the target machines
// (CPU-NOTES.md), and glibc returns large blocks to the OS on free (mmap threshold, trim).
// Keeping freed memory in the heap makes repeated forward/backward calls with the same shapes
// reuse already-touched pages instead of faulting in new ones every call.
struct KeepFreedMemory {
  KeepFreedMemory() {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum (larger values are rejected)
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
  }
};
const KeepFreedMemory keep_freed_memory;
}  // namespace

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::I32: return 4;
    case DType::I64: return 8;
  }
  return 0;
}

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
  }
  return "?";
}

std::string shape_str(const Shape& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + ")";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) {
    XLSTM_CHECK(d >= 0, ValueError, "[Tensor] negative dimension in shape ", shape_str(s));
    n *= d;
  }
  return n;
}

Tensor::Tensor(Shape shape, DType dtype, Device device) : Tensor(empty(std::move(shape), dtype)) {
  XLSTM_CHECK(device == Device::CPU, NotImplementedError,
              "[Tensor] CUDA tensors are not available in this build");
  if (nbytes()) std::memset(data_, 0, nbytes());
}

Tensor Tensor::empty(Shape shape, DType dtype) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  t.dtype_ = dtype;
  t.allocate();
  return t;
}

void Tensor::allocate() {
  // Blocks of 2 MiB and more on transparent huge pages (core/huge_vector.h: one fault per 2 MiB
  // instead of one per 4 KiB page when the memory is fresh), the rest 64-byte aligned.
  void* p = huge_aligned_alloc(nbytes());
  owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  data_ = p;
}

Tensor Tensor::wrap(Shape shape, DType dtype, std::shared_ptr<void> owner, void* data) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  t.dtype_ = dtype;
  t.owner_ = std::move(owner);
  t.data_ = data;
  return t;
}

void Tensor::check_dtype(DType want) const {
  XLSTM_CHECK(dtype_ == want, TypeError, "[Tensor] dtype is ", dtype_name(dtype_),
              ", accessed as ", dtype_name(want));
}

float bf16_to_f32(uint16_t v) {
  uint32_t u = (uint32_t)v << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(man & 0x400u)) {
        man <<= 1;
        --exp;
      }
      u = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

namespace {
double load_as_f64(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::F32: return ((const float*)p)[i];
    case DType::F64: return ((const double*)p)[i];
    case DType::BF16: return bf16_to_f32(((const uint16_t*)p)[i]);
    case DType::F16: return f16_to_f32(((const uint16_t*)p)[i]);
    case DType::I32: return ((const int32_t*)p)[i];
    case DType::I64: return (double)((const int64_t*)p)[i];
  }
  return 0;
}
}  // namespace

std::vector<double> Tensor::to_f64() const {
  std::vector<double> r((size_t)numel_);
  for (int64_t i = 0; i < numel_; ++i) r[(size_t)i] = load_as_f64(data_, dtype_, i);
  return r;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype_) return clone();
  Tensor r = empty(shape_, dt);
  const bool int_src = dtype_ == DType::I32 || dtype_ == DType::I64;
  for (int64_t i = 0; i < numel_; ++i) {
    if (int_src && dt == DType::I64) {
      r.data<int64_t>()[i] = dtype_ == DType::I32 ? ((const int32_t*)data_)[i] : ((const int64_t*)data_)[i];
      continue;
    }
    double v = load_as_f64(data_, dtype_, i);
    switch (dt) {
      case DType::F32: r.data<float>()[i] = (float)v; break;
      case DType::F64: r.data<double>()[i] = v; break;
      case DType::BF16: ((uint16_t*)r.raw())[i] = f32_to_bf16((float)v); break;
      case DType::F16: throw TypeError("[Tensor::to] conversion to F16 is not supported");
      case DType::I32: r.data<int32_t>()[i] = (int32_t)v; break;
      case DType::I64: r.data<int64_t>()[i] = (int64_t)v; break;
    }
  }
  return r;
}

void Tensor::fill(double v) {
  switch (dtype_) {
    case DType::F32: std::fill(data<float>(), data<float>() + numel_, (float)v); break;
    case DType::F64: std::fill(data<double>(), data<double>() + numel_, v); break;
    case DType::BF16:
      std::fill((uint16_t*)data_, (uint16_t*)data_ + numel_, f32_to_bf16((float)v));
      break;
    default: throw TypeError(str("[Tensor::fill] not supported for ", dtype_name(dtype_)));
  }
}

Tensor Tensor::clone() const {
  Tensor r = empty(shape_, dtype_);
  if (nbytes()) std::memcpy(r.data_, data_, nbytes());
  return r;
}

Tensor Tensor::reshape(Shape s) const {
  XLSTM_CHECK(shape_numel(s) == numel_, ValueError, "[Tensor::reshape] cannot reshape ",
              shape_str(shape_), " to ", shape_str(s));
  Tensor r = *this;
  r.shape_ = std::move(s);
  return r;
}

void Tensor::zero() {
  if (nbytes()) std::memset(data_, 0, nbytes());
}

}  // namespace xlstm
