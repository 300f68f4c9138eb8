// Tensor: shape + dtype + device + shared contiguous (row-major) storage.
// Deliberately small: kernels take raw pointers; Tensor owns memory and validates at the door.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "xlstm/error.h"

namespace xlstm {

enum class DType { F32, F64, BF16, F16, I32, I64 };
enum class Device { CPU, CUDA };
using Shape = std::vector<int64_t>;

size_t dtype_size(DType dt);
const char* dtype_name(DType dt);  // "F32", "F64", "BF16", "F16", "I32", "I64" (safetensors spelling)
std::string shape_str(const Shape& s);  // "(2,3,4)"
int64_t shape_numel(const Shape& s);

template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::F32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::F64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::I32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::I64; };

class Tensor {
 public:
  Tensor() = default;
  // Zero-initialised tensor on `device` (only CPU allocates here).
  Tensor(Shape shape, DType dtype, Device device = Device::CPU);
  // Uninitialised tensor (every element must be written before it is read): for outputs.
  static Tensor empty(Shape shape, DType dtype);
  // A view of memory owned by `owner` (e.g. an mmapped file). No copy.
  static Tensor wrap(Shape shape, DType dtype, std::shared_ptr<void> owner, void* data);
  template <class T>
  static Tensor from(Shape shape, const std::vector<T>& values) {
    Tensor t(std::move(shape), DTypeOf<T>::value);
    XLSTM_CHECK((int64_t)values.size() == t.numel(), ValueError, "[Tensor::from] ", values.size(),
                " values for shape ", shape_str(t.shape()));
    std::copy(values.begin(), values.end(), t.data<T>());
    return t;
  }

  bool defined() const { return owner_ != nullptr; }
  // How many tensors share this storage (views and copies included); 0 when undefined.
  long use_count() const { return owner_.use_count(); }
  const Shape& shape() const { return shape_; }
  int ndim() const { return (int)shape_.size(); }
  int64_t dim(int i) const { return shape_.at(i < 0 ? i + ndim() : i); }
  int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  size_t nbytes() const { return (size_t)numel_ * dtype_size(dtype_); }

  template <class T> T* data() {
    check_dtype(DTypeOf<T>::value);
    return static_cast<T*>(data_);
  }
  template <class T> const T* data() const {
    check_dtype(DTypeOf<T>::value);
    return static_cast<const T*>(data_);
  }
  void* raw() { return data_; }
  const void* raw() const { return data_; }

  Tensor to(DType dt) const;         // converted copy (F32/F64/BF16/I32/I64 among each other)
  Tensor clone() const;              // deep copy
  Tensor reshape(Shape s) const;     // shares storage; numel must match
  void zero();                       // fill with zeros
  void fill(double v);               // every element = v (F32/F64/BF16)
  std::vector<double> to_f64() const;  // values as doubles (any numeric dtype)

 private:
  void check_dtype(DType want) const;
  void allocate();  // storage for numel_ elements of dtype_, uninitialised
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
  std::shared_ptr<void> owner_;
  void* data_ = nullptr;
};

// bf16 <-> f32 (round to nearest even).
float bf16_to_f32(uint16_t v);
uint16_t f32_to_bf16(float f);
// IEEE half -> f32 (exact).
float f16_to_f32(uint16_t v);

}  // namespace xlstm
