// oneDNN's own LSTM primitive (f32, one layer, one direction): the reference the LSTM engine is
// measured against (bench/lstm_bench.cpp). Same math as torch.nn.LSTM (gate order i, f, g, o;
// one bias = b_ih + b_hh). oneDNN 2.6 API.
//
// Each call does what a framework holding torch-layout weights must do on every training step:
//   forward()          reorder W_ih, W_hh (ldigo) to the primitive's layout, forward_inference
//   forward_backward() reorder to the forward layout, forward_training (keeps the workspace),
//                      reorder to the backward layout, zero the weight gradients (oneDNN 2.6
//                      accumulates into them), backward (dx and dW, db), and reorder dW back
//                      to ldigo when the primitive chose another layout
//   step()             forward_inference of one step (T = 1) with a carried (h, c); the
//                      weights are reordered ONCE at construction (constant in inference).
//                      Mode::StepBf16: the same in oneDNN's bf16 configuration (x, h,
//                      weights and output bf16; c and bias f32), the inputs converted once.
// Sequences are time-major (tnc), the primitive's native layout (its best case). Everything
// is allocated and the primitives created in the constructor; calls do not allocate.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

#include "bench_util.h"
#include "xlstm/tensor.h"  // f32_to_bf16

namespace xlstm::bench {

class OnednnLstm {
 public:
  enum class Mode { Inference, Training, Step, StepBf16 };

  OnednnLstm(int64_t B, int64_t T, int64_t I, int64_t H, Mode mode)
      : eng_(dnnl::engine::kind::cpu, 0), s_(eng_), mode_(mode) {
    using namespace dnnl;
    using dt = memory::data_type;
    using tag = memory::format_tag;
    const memory::desc none;
    const bool bf16 = mode == Mode::StepBf16;
    const dt lo = bf16 ? dt::bf16 : dt::f32;  // x, h, weights, output
    auto md = [](memory::dims d, tag t, dt type = dt::f32) { return memory::desc(d, type, t); };
    const memory::desc src_md = md({T, B, I}, tag::tnc, lo), dst_md = md({T, B, H}, tag::tnc, lo);
    const memory::desc iter_md = md({1, 1, B, H}, tag::ldnc, lo);
    const memory::desc iter_c_md = md({1, 1, B, H}, tag::ldnc);
    const memory::desc wl_user = md({1, 1, I, 4, H}, tag::ldigo);
    const memory::desc wi_user = md({1, 1, H, 4, H}, tag::ldigo);
    const memory::desc wl_any = md({1, 1, I, 4, H}, tag::any, lo);
    const memory::desc wi_any = md({1, 1, H, 4, H}, tag::any, lo);
    const memory::desc bias_md = md({1, 1, 4, H}, tag::ldgo);
    const bool step = mode == Mode::Step || bf16;
    const memory::desc& it = step ? iter_md : none;  // carried state only for the step
    const memory::desc& itc = step ? iter_c_md : none;

    dnnl::lstm_forward::desc fd(mode == Mode::Training ? prop_kind::forward_training
                                                 : prop_kind::forward_inference,
                          rnn_direction::unidirectional_left2right, src_md, it, itc, wl_any,
                          wi_any, bias_md, dst_md, it, itc);
    fwd_pd_ = dnnl::lstm_forward::primitive_desc(fd, eng_);
    fwd_ = dnnl::lstm_forward(fwd_pd_);

    src_ = mem(src_md, 1, 1.0);
    wl_ = mem(wl_user, 2, 1.0 / std::sqrt((double)H));
    wi_ = mem(wi_user, 3, 1.0 / std::sqrt((double)H));
    bias_ = mem(bias_md, 4, 0.1);
    dst_ = mem(dst_md, 0, 0.0);
    if (step) {
      h0_ = mem(iter_md, 5, 0.5), c0_ = mem(iter_c_md, 6, 0.5);
      hn_ = mem(iter_md, 0, 0.0), cn_ = mem(iter_c_md, 0, 0.0);
    }
    wl_f_ = packed(wl_, fwd_pd_.weights_layer_desc(), wl_f_r_);
    wi_f_ = packed(wi_, fwd_pd_.weights_iter_desc(), wi_f_r_);
    if (mode == Mode::Training) ws_ = mem(fwd_pd_.workspace_desc(), 0, 0.0);
    if (step) {  // inference weights do not change: pack once, here
      if (wl_f_r_) wl_f_r_.execute(s_, wl_, wl_f_);
      if (wi_f_r_) wi_f_r_.execute(s_, wi_, wi_f_);
      s_.wait();
    }

    if (mode == Mode::Training) {
      dnnl::lstm_backward::desc bd(prop_kind::backward, rnn_direction::unidirectional_left2right,
                             src_md, none, none, wl_any, wi_any, bias_md, dst_md, none, none,
                             src_md, none, none, wl_any, wi_any, bias_md, dst_md, none, none);
      bwd_pd_ = dnnl::lstm_backward::primitive_desc(bd, eng_, fwd_pd_);
      bwd_ = dnnl::lstm_backward(bwd_pd_);
      wl_b_ = packed(wl_, bwd_pd_.weights_layer_desc(), wl_b_r_);
      wi_b_ = packed(wi_, bwd_pd_.weights_iter_desc(), wi_b_r_);
      dsrc_ = mem(bwd_pd_.diff_src_layer_desc(), 0, 0.0);
      ddst_ = mem(bwd_pd_.diff_dst_layer_desc(), 7, 1.0);
      dbias_ = mem(bwd_pd_.diff_bias_desc(), 0, 0.0);
      dwl_ = mem(bwd_pd_.diff_weights_layer_desc(), 0, 0.0);
      dwi_ = mem(bwd_pd_.diff_weights_iter_desc(), 0, 0.0);
      dwl_user_ = unpacked(dwl_, wl_user, dwl_r_);
      dwi_user_ = unpacked(dwi_, wi_user, dwi_r_);
    }
  }

  void forward() {
    pack_forward();
    fwd_.execute(s_, {{DNNL_ARG_SRC_LAYER, src_},
                      {DNNL_ARG_WEIGHTS_LAYER, wl_f_},
                      {DNNL_ARG_WEIGHTS_ITER, wi_f_},
                      {DNNL_ARG_BIAS, bias_},
                      {DNNL_ARG_DST_LAYER, dst_}});
    s_.wait();
  }

  void forward_backward() {
    pack_forward();
    fwd_.execute(s_, {{DNNL_ARG_SRC_LAYER, src_},
                      {DNNL_ARG_WEIGHTS_LAYER, wl_f_},
                      {DNNL_ARG_WEIGHTS_ITER, wi_f_},
                      {DNNL_ARG_BIAS, bias_},
                      {DNNL_ARG_DST_LAYER, dst_},
                      {DNNL_ARG_WORKSPACE, ws_}});
    if (wl_b_r_) wl_b_r_.execute(s_, wl_, wl_b_);
    if (wi_b_r_) wi_b_r_.execute(s_, wi_, wi_b_);
    s_.wait();
    zero(dwl_), zero(dwi_), zero(dbias_);
    bwd_.execute(s_, {{DNNL_ARG_SRC_LAYER, src_},
                      {DNNL_ARG_WEIGHTS_LAYER, wl_b_},
                      {DNNL_ARG_WEIGHTS_ITER, wi_b_},
                      {DNNL_ARG_BIAS, bias_},
                      {DNNL_ARG_DST_LAYER, dst_},
                      {DNNL_ARG_DIFF_SRC_LAYER, dsrc_},
                      {DNNL_ARG_DIFF_WEIGHTS_LAYER, dwl_},
                      {DNNL_ARG_DIFF_WEIGHTS_ITER, dwi_},
                      {DNNL_ARG_DIFF_BIAS, dbias_},
                      {DNNL_ARG_DIFF_DST_LAYER, ddst_},
                      {DNNL_ARG_WORKSPACE, ws_}});
    if (dwl_r_) dwl_r_.execute(s_, dwl_, dwl_user_);
    if (dwi_r_) dwi_r_.execute(s_, dwi_, dwi_user_);
    s_.wait();
  }

  void step() {
    fwd_.execute(s_, {{DNNL_ARG_SRC_LAYER, src_},
                      {DNNL_ARG_SRC_ITER, h0_},
                      {DNNL_ARG_SRC_ITER_C, c0_},
                      {DNNL_ARG_WEIGHTS_LAYER, wl_f_},
                      {DNNL_ARG_WEIGHTS_ITER, wi_f_},
                      {DNNL_ARG_BIAS, bias_},
                      {DNNL_ARG_DST_LAYER, dst_},
                      {DNNL_ARG_DST_ITER, hn_},
                      {DNNL_ARG_DST_ITER_C, cn_}});
    s_.wait();
  }

  const float* output() const { return static_cast<const float*>(dst_.get_data_handle()); }

 private:
  // A memory of descriptor d (dense f32 or bf16), zero or normal(0, scale) (bf16: rounded to
  // nearest even from the f32 draw).
  dnnl::memory mem(const dnnl::memory::desc& d, uint64_t seed, double scale) {
    dnnl::memory m(d, eng_);
    if (scale == 0.0) {
      std::memset(m.get_data_handle(), 0, d.get_size());  // also touches the pages
      return m;
    }
    if (d.data_type() == dnnl::memory::data_type::f32) {
      fill_normal(static_cast<float*>(m.get_data_handle()), (int64_t)(d.get_size() / 4), seed,
                  scale);
      return m;
    }
    std::vector<float> f(d.get_size() / 2);
    fill_normal(f.data(), (int64_t)f.size(), seed, scale);
    uint16_t* p = static_cast<uint16_t*>(m.get_data_handle());
    for (size_t k = 0; k < f.size(); ++k) p[k] = f32_to_bf16(f[k]);
    return m;
  }
  static void zero(dnnl::memory& m) {
    std::memset(m.get_data_handle(), 0, m.get_desc().get_size());
  }
  // The primitive's copy of user weights `u` (u itself when the layouts agree; else a new
  // memory and the reorder into it, in r).
  dnnl::memory packed(dnnl::memory u, const dnnl::memory::desc& want, dnnl::reorder& r) {
    if (want == u.get_desc()) return u;
    dnnl::memory m(want, eng_);
    r = dnnl::reorder(u, m);
    r.execute(s_, u, m);
    s_.wait();
    return m;
  }
  dnnl::memory unpacked(dnnl::memory p, const dnnl::memory::desc& user, dnnl::reorder& r) {
    if (user == p.get_desc()) return p;
    dnnl::memory m = mem(user, 0, 0.0);
    r = dnnl::reorder(p, m);
    return m;
  }
  void pack_forward() {
    if (mode_ == Mode::Step) return;
    if (wl_f_r_) wl_f_r_.execute(s_, wl_, wl_f_);
    if (wi_f_r_) wi_f_r_.execute(s_, wi_, wi_f_);
  }

  dnnl::engine eng_;
  dnnl::stream s_;
  Mode mode_;
  dnnl::lstm_forward::primitive_desc fwd_pd_;
  dnnl::lstm_forward fwd_;
  dnnl::lstm_backward::primitive_desc bwd_pd_;
  dnnl::lstm_backward bwd_;
  dnnl::memory src_, wl_, wi_, bias_, dst_, ws_;
  dnnl::memory h0_, c0_, hn_, cn_;
  dnnl::memory wl_f_, wi_f_, wl_b_, wi_b_;
  dnnl::reorder wl_f_r_, wi_f_r_, wl_b_r_, wi_b_r_, dwl_r_, dwi_r_;
  dnnl::memory dsrc_, ddst_, dbias_, dwl_, dwi_, dwl_user_, dwi_user_;
};

}  // namespace xlstm::bench
