// Tensor-level mLSTM entry points: validation at the door, allocation, float/double dispatch.
// The kernels themselves are in mlstm_parallel.cpp, mlstm_chunkwise.cpp and mlstm_step.cpp.
#include "cpu/mlstm.h"

#include <cmath>
#include <cstdint>

namespace xlstm {

void MlstmWorkspace::reserve(int threads, size_t bytes) {
  const size_t stride = (bytes + 63) & ~size_t(63);
  const size_t need = stride * (size_t)threads + 64;
  if (need > buf_.size()) buf_.resize(need);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf_.data());
  base_ = buf_.data() + ((64 - (p & 63)) & 63);
  stride_ = stride;
}

const char* mlstm_form_name(MlstmForm form) {
  switch (form) {
    case MlstmForm::Parallel: return "parallel";
    case MlstmForm::Chunkwise: return "chunkwise";
    case MlstmForm::Recurrent: return "recurrent";
  }
  return "?";
}

namespace {

void check_shape(const char* op, const char* name, const char* letters, const Tensor& t,
                 const Shape& want, DType dt) {
  XLSTM_CHECK(t.defined(), ValueError, "[", op, "] ", name, " must be ", letters, "=",
              shape_str(want), ", got an undefined tensor");
  XLSTM_CHECK(t.device() == Device::CPU, TypeError, "[", op, "] ", name,
              " must be on the CPU; hint: copy it to the host first");
  XLSTM_CHECK(t.shape() == want, ValueError, "[", op, "] ", name, " must be ", letters, "=",
              shape_str(want), ", got ", shape_str(t.shape()));
  XLSTM_CHECK(t.dtype() == dt, TypeError, "[", op, "] ", name, " has dtype ",
              dtype_name(t.dtype()), ", expected ", dtype_name(dt), " like q");
}

bool any_defined(const MlstmState* s) { return s && (s->c.defined() || s->n.defined() || s->m.defined()); }

void check_state(const char* op, const char* what, const MlstmState& s, const MlstmDims& d,
                 DType dt) {
  XLSTM_CHECK(s.c.defined() && s.n.defined() && s.m.defined(), ValueError, "[", op, "] ", what,
              " must give all of c, n, m or none of them");
  const std::string c = str(what, ".c"), n = str(what, ".n"), m = str(what, ".m");
  check_shape(op, c.c_str(), "(B,NH,DHQK,DHV)", s.c, {d.B, d.NH, d.DHQK, d.DHV}, dt);
  check_shape(op, n.c_str(), "(B,NH,DHQK)", s.n, {d.B, d.NH, d.DHQK}, dt);
  check_shape(op, m.c_str(), "(B,NH)", s.m, {d.B, d.NH}, dt);
}

template <class T>
const T* ptr(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }
template <class T>
T* mptr(Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

template <class T>
void run_forward(MlstmForm form, const MlstmDims& d, const MlstmOptions& o, const MlstmInputs<T>& in,
                 const MlstmOutputs<T>& out, MlstmCache<T>* cache, MlstmWorkspace& ws) {
  switch (form) {
    case MlstmForm::Parallel: mlstm_parallel_forward<T>(d, o, in, out.h, cache, ws); break;
    case MlstmForm::Chunkwise: mlstm_chunkwise_forward<T>(d, o, in, out, cache, ws); break;
    case MlstmForm::Recurrent: mlstm_recurrent_forward<T>(d, o, in, out, cache, ws); break;
  }
}

template <class T>
MlstmInputs<T> inputs_of(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i,
                         const Tensor& f, const MlstmState& s) {
  MlstmInputs<T> in;
  in.q = q.data<T>(); in.k = k.data<T>(); in.v = v.data<T>(); in.i = i.data<T>(); in.f = f.data<T>();
  in.c0 = ptr<T>(s.c); in.n0 = ptr<T>(s.n); in.m0 = ptr<T>(s.m);
  return in;
}

MlstmWorkspace& default_workspace() {
  static thread_local MlstmWorkspace ws;
  return ws;
}

}  // namespace

Tensor mlstm_forward(MlstmForm form, const Tensor& q, const Tensor& k, const Tensor& v,
                     const Tensor& i, const Tensor& f, const MlstmOptions& opt,
                     const MlstmState* state_in, MlstmState* state_out, MlstmContext* ctx,
                     MlstmWorkspace* ws) {
  const char* op = "mlstm_forward";
  XLSTM_CHECK(q.defined() && q.ndim() == 4, ValueError, "[", op, "] q must be (B,NH,S,DHQK), got ",
              q.defined() ? shape_str(q.shape()) : std::string("an undefined tensor"));
  XLSTM_CHECK(q.dtype() == DType::F32 || q.dtype() == DType::F64, TypeError, "[", op,
              "] q has dtype ", dtype_name(q.dtype()), ", expected F32 or F64");
  XLSTM_CHECK(v.defined() && v.ndim() == 4, ValueError, "[", op, "] v must be (B,NH,S,DHV), got ",
              v.defined() ? shape_str(v.shape()) : std::string("an undefined tensor"));
  MlstmDims d{q.dim(0), q.dim(1), q.dim(2), q.dim(3), v.dim(3)};
  XLSTM_CHECK(d.B >= 1 && d.NH >= 1 && d.S >= 1 && d.DHQK >= 1 && d.DHV >= 1, ValueError, "[", op,
              "] every size must be >= 1, got q ", shape_str(q.shape()), " and v ",
              shape_str(v.shape()), "; hint: empty sequences are not supported");
  const DType dt = q.dtype();
  check_shape(op, "q", "(B,NH,S,DHQK)", q, {d.B, d.NH, d.S, d.DHQK}, dt);
  check_shape(op, "k", "(B,NH,S,DHQK)", k, {d.B, d.NH, d.S, d.DHQK}, dt);
  check_shape(op, "v", "(B,NH,S,DHV)", v, {d.B, d.NH, d.S, d.DHV}, dt);
  check_shape(op, "i", "(B,NH,S)", i, {d.B, d.NH, d.S}, dt);
  check_shape(op, "f", "(B,NH,S)", f, {d.B, d.NH, d.S}, dt);
  XLSTM_CHECK(opt.eps >= 0 && std::isfinite(opt.eps), ValueError, "[", op,
              "] eps must be finite and >= 0, got ", opt.eps);
  XLSTM_CHECK(opt.chunk_size >= 1, ValueError, "[", op, "] chunk_size must be >= 1, got ",
              opt.chunk_size);
  const bool has_in = any_defined(state_in);
  if (form == MlstmForm::Parallel)
    XLSTM_CHECK(!has_in && !state_out, ValueError, "[", op,
                "] the parallel form takes no initial state and returns none; hint: use "
                "MlstmForm::Chunkwise or MlstmForm::Recurrent for state I/O");
  MlstmState sin;
  if (has_in) {
    check_state(op, "state_in", *state_in, d, dt);
    sin = *state_in;
  }

  // Every element of h and of the final state is written by the kernels.
  Tensor h = Tensor::empty({d.B, d.NH, d.S, d.DHV}, dt);
  if (state_out) {
    state_out->c = Tensor::empty({d.B, d.NH, d.DHQK, d.DHV}, dt);
    state_out->n = Tensor::empty({d.B, d.NH, d.DHQK}, dt);
    state_out->m = Tensor::empty({d.B, d.NH}, dt);
  }
  MlstmWorkspace& w = ws ? *ws : default_workspace();
  if (ctx) {
    ctx->form = form; ctx->opt = opt; ctx->dims = d;
    ctx->q = q; ctx->k = k; ctx->v = v; ctx->i = i; ctx->f = f; ctx->h = h;
    ctx->state_in = sin;
  }
  MlstmState dummy;
  MlstmState& so = state_out ? *state_out : dummy;
  if (dt == DType::F64) {
    MlstmOutputs<double> out{h.data<double>(), mptr<double>(so.c), mptr<double>(so.n), mptr<double>(so.m)};
    run_forward<double>(form, d, opt, inputs_of<double>(q, k, v, i, f, sin), out,
                        ctx ? &ctx->cache_d : nullptr, w);
  } else {
    MlstmOutputs<float> out{h.data<float>(), mptr<float>(so.c), mptr<float>(so.n), mptr<float>(so.m)};
    run_forward<float>(form, d, opt, inputs_of<float>(q, k, v, i, f, sin), out,
                       ctx ? &ctx->cache_f : nullptr, w);
  }
  return h;
}

namespace {

template <class T>
void run_backward(const MlstmContext& ctx, const MlstmCache<T>& cache, const Tensor& dh,
                  const MlstmState& dso, MlstmTensorGrads& r, MlstmWorkspace& ws) {
  const MlstmInputs<T> in = inputs_of<T>(ctx.q, ctx.k, ctx.v, ctx.i, ctx.f, ctx.state_in);
  MlstmOutputGrads<T> dout{dh.data<T>(), ptr<T>(dso.c), ptr<T>(dso.n), ptr<T>(dso.m)};
  MlstmGrads<T> g{r.dq.data<T>(), r.dk.data<T>(), r.dv.data<T>(), r.di.data<T>(), r.df.data<T>(),
                  mptr<T>(r.dstate_in.c), mptr<T>(r.dstate_in.n), mptr<T>(r.dstate_in.m)};
  const T* h = ctx.h.data<T>();
  switch (ctx.form) {
    case MlstmForm::Parallel:
      mlstm_parallel_backward<T>(ctx.dims, ctx.opt, in, h, dout.dh, cache, g, ws);
      break;
    case MlstmForm::Chunkwise:
      mlstm_chunkwise_backward<T>(ctx.dims, ctx.opt, in, h, dout, cache, g, ws);
      break;
    case MlstmForm::Recurrent:
      mlstm_recurrent_backward<T>(ctx.dims, ctx.opt, in, h, dout, cache, g, ws);
      break;
  }
}

}  // namespace

MlstmTensorGrads mlstm_backward(const MlstmContext& ctx, const Tensor& dh,
                                const MlstmState* dstate_out, MlstmWorkspace* ws) {
  const char* op = "mlstm_backward";
  XLSTM_CHECK(ctx.h.defined(), ValueError, "[", op,
              "] the context holds no forward; hint: pass ctx to mlstm_forward first");
  const MlstmDims& d = ctx.dims;
  const DType dt = ctx.q.dtype();
  check_shape(op, "dh", "(B,NH,S,DHV)", dh, {d.B, d.NH, d.S, d.DHV}, dt);
  MlstmState dso;
  if (any_defined(dstate_out)) {
    XLSTM_CHECK(ctx.form != MlstmForm::Parallel, ValueError, "[", op,
                "] the parallel form returns no state, so it takes no state gradient");
    // Missing members are zero gradients.
    dso = *dstate_out;
    if (!dso.c.defined()) dso.c = Tensor({d.B, d.NH, d.DHQK, d.DHV}, dt);
    if (!dso.n.defined()) dso.n = Tensor({d.B, d.NH, d.DHQK}, dt);
    if (!dso.m.defined()) dso.m = Tensor({d.B, d.NH}, dt);
    check_state(op, "dstate_out", dso, d, dt);
  }
  MlstmTensorGrads r;
  // Every form writes every element of these (checked by running the tests with them filled
  // with NaN), so no zero fill (3 x 4 MiB per call at B 32, T 128, D 128).
  r.dq = Tensor::empty({d.B, d.NH, d.S, d.DHQK}, dt);
  r.dk = Tensor::empty({d.B, d.NH, d.S, d.DHQK}, dt);
  r.dv = Tensor::empty({d.B, d.NH, d.S, d.DHV}, dt);
  r.di = Tensor::empty({d.B, d.NH, d.S}, dt);
  r.df = Tensor::empty({d.B, d.NH, d.S}, dt);
  if (ctx.state_in.c.defined()) {
    r.dstate_in.c = Tensor({d.B, d.NH, d.DHQK, d.DHV}, dt);
    r.dstate_in.n = Tensor({d.B, d.NH, d.DHQK}, dt);
    r.dstate_in.m = Tensor({d.B, d.NH}, dt);
  }
  MlstmWorkspace& w = ws ? *ws : default_workspace();
  if (dt == DType::F64) run_backward<double>(ctx, ctx.cache_d, dh, dso, r, w);
  else run_backward<float>(ctx, ctx.cache_f, dh, dso, r, w);
  return r;
}

}  // namespace xlstm
