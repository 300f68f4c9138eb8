#include "cpu/packed_gemm.h"

#include <oneapi/dnnl/dnnl.hpp>
#include <algorithm>
#include <unordered_map>

#include "cpu/lstm.h"  // LstmBuffer: huge-page, pre-touched, grow-only storage
#include "cpu/parallel.h"

namespace xlstm {

namespace {
using md = dnnl::memory::desc;
using dt = dnnl::memory::data_type;

const dnnl::engine& cpu_engine() {
  static const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}
}  // namespace

struct PackedMatmul::Impl {
  dnnl::stream strm{cpu_engine()};
  int64_t M = -1, K = -1, N = -1, lda = -1, ldc = -1;
  Trans tw = Trans::N;
  bool acc = false;
  dnnl::matmul prim;
  dnnl::reorder reorder;
  dnnl::memory src, dst, w_user, w_packed;
  LstmBuffer<float> w_buf;  // w_packed's storage, touched once (not per shape)
  std::unordered_map<int, dnnl::memory> args;
};

PackedMatmul::PackedMatmul() : p_(std::make_unique<Impl>()) {}
PackedMatmul::~PackedMatmul() = default;
PackedMatmul::PackedMatmul(PackedMatmul&&) noexcept = default;
PackedMatmul& PackedMatmul::operator=(PackedMatmul&&) noexcept = default;

void PackedMatmul::pack(int64_t M, int64_t K, int64_t N, int64_t lda, int64_t ldc, Trans tw,
                        bool accumulate, const float* W) {
  // A small reorder (the sLSTM's per-head recurrent weights are repacked at every call, also at
  // every decode step) runs on the calling thread; oneDNN fixes a reorder's thread count when
  // it creates the primitive, so the scope covers its creation too.
  const bool small = (double)K * (double)N < kSerialFlops / 4;
  Impl& g = *p_;
  const dnnl::engine& eng = cpu_engine();
  if (g.M != M || g.K != K || g.N != N || g.lda != lda || g.ldc != ldc || g.tw != tw ||
      g.acc != accumulate) {
    md src_md({M, K}, dt::f32, {lda, 1});
    md w_md({K, N}, dt::f32, dnnl::memory::format_tag::any);
    md dst_md({M, N}, dt::f32, {ldc, 1});
    dnnl::primitive_attr attr;
    if (accumulate) {
      dnnl::post_ops po;
      po.append_sum(1.f);
      attr.set_post_ops(po);
    }
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_md, dst_md), attr, eng);
    g.prim = dnnl::matmul(pd);
    const int64_t wn = (int64_t)(pd.weights_desc().get_size() + sizeof(float) - 1) / 4;
    g.w_packed = dnnl::memory(pd.weights_desc(), eng, g.w_buf.ensure(wn));
    const md user_md = tw == Trans::N ? md({K, N}, dt::f32, {N, 1}) : md({K, N}, dt::f32, {1, K});
    g.w_user = dnnl::memory(user_md, eng, DNNL_MEMORY_NONE);
    {
      const OneThreadScope one(small);
      g.reorder = dnnl::reorder(g.w_user, g.w_packed);
    }
    g.src = dnnl::memory(src_md, eng, DNNL_MEMORY_NONE);
    g.dst = dnnl::memory(dst_md, eng, DNNL_MEMORY_NONE);
    g.args = {{DNNL_ARG_SRC, g.src}, {DNNL_ARG_WEIGHTS, g.w_packed}, {DNNL_ARG_DST, g.dst}};
    g.M = M, g.K = K, g.N = N, g.lda = lda, g.ldc = ldc, g.tw = tw, g.acc = accumulate;
  }
  g.w_user.set_data_handle(const_cast<float*>(W));
  const OneThreadScope one(small);
  g.reorder.execute(g.strm, g.w_user, g.w_packed);
  g.strm.wait();
}

void PackedMatmul::run(const float* A, float* C) {
  Impl& g = *p_;
  g.src.set_data_handle(const_cast<float*>(A));
  g.dst.set_data_handle(C);
  // A small product runs on the calling thread (cpu/parallel.h).
  const OneThreadScope one(2.0 * (double)g.M * (double)g.N * (double)g.K < kSerialFlops);
  g.prim.execute(g.strm, g.args);
  g.strm.wait();
}

struct GradMatmul::Impl {
  LstmBuffer<float> ct;  // C^T (N, M) for the transposed product, touched once
};

GradMatmul::GradMatmul() : p_(std::make_unique<Impl>()) {}
GradMatmul::~GradMatmul() = default;
GradMatmul::GradMatmul(GradMatmul&&) noexcept = default;
GradMatmul& GradMatmul::operator=(GradMatmul&&) noexcept = default;

void GradMatmul::run(int64_t M, int64_t K, int64_t N, const float* A, int64_t lda,
                     const float* Bm, int64_t ldb, float* C) {
  if (N >= kGradDirectMinN)
    return gemm<float>(Trans::T, Trans::N, M, N, K, 1.f, A, lda, Bm, ldb, 1.f, C, N);
  // ct (N, M) = Bm^T A, then C += ct^T in 16-row blocks of C.
  float* ct = p_->ct.ensure(M * N);
  gemm<float>(Trans::T, Trans::N, N, M, K, 1.f, Bm, ldb, A, lda, 0.f, ct, M);
  constexpr int64_t kRows = 16;
  parallel_for((M + kRows - 1) / kRows, M * N >= (int64_t(1) << 18), [&](int64_t blk) {
    const int64_t i0 = blk * kRows, i1 = std::min(M, i0 + kRows);
    for (int64_t j = 0; j < N; ++j)
      for (int64_t i = i0; i < i1; ++i) C[i * N + j] += ct[j * M + i];
  });
}

}  // namespace xlstm
