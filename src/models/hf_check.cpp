#include "models/hf_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "io/safetensors.h"
#include "models/hf.h"

namespace xlstm {

namespace {

struct Cmp {
  bool ok = true;
  double max_abs = 0, max_rel = 0;
  std::string first;
  void add(const std::string& what, const float* a, const Tensor& ref, double atol, double rtol,
           int64_t n = -1) {
    std::vector<double> r = ref.to_f64();
    XLSTM_CHECK(n < 0 || n == (int64_t)r.size(), IoError, "reference tensor '", what, "' has ",
                r.size(), " values, the model gives ", n);
    for (size_t j = 0; j < r.size(); ++j) {
      const double d = std::fabs((double)a[j] - r[j]);
      const bool good = std::isfinite(a[j]) && d <= atol + rtol * std::fabs(r[j]);
      max_abs = std::max(max_abs, d);
      if (std::fabs(r[j]) > 1e-12) max_rel = std::max(max_rel, d / std::fabs(r[j]));
      if (!good && ok) {
        ok = false;
        first = str(what, "[", j, "] = ", a[j], ", reference ", r[j]);
      }
    }
  }
  std::string detail() const {
    char buf[96];
    std::snprintf(buf, sizeof buf, "max_abs_err=%.3g max_rel_err=%.3g", max_abs, max_rel);
    return ok ? std::string(buf) : first + " (" + buf + ")";
  }
};

void compare_states(Cmp& cmp, const SafeTensorsFile& ref, const std::string& prefix,
                    const XLSTMLargeState& st, const HfCheckTolerance& tol) {
  for (size_t l = 0; l < st.blocks.size(); ++l) {
    const MlstmState& s = st.blocks[l];
    const std::string p = str(prefix, ".", l, ".");
    cmp.add(p + "C", s.c.data<float>(), ref.get(p + "C"), tol.state_atol, tol.state_rtol, s.c.numel());
    cmp.add(p + "n", s.n.data<float>(), ref.get(p + "n"), tol.state_atol, tol.state_rtol, s.n.numel());
    cmp.add(p + "m", s.m.data<float>(), ref.get(p + "m"), tol.state_atol, tol.state_rtol, s.m.numel());
  }
}

Tensor column(const Tensor& ids, int64_t t) {  // ids (B, S) I64 -> (B, 1)
  const int64_t B = ids.dim(0), S = ids.dim(1);
  Tensor r({B, 1}, DType::I64);
  for (int64_t b = 0; b < B; ++b) r.data<int64_t>()[b] = ids.data<int64_t>()[b * S + t];
  return r;
}

}  // namespace

std::vector<HfCheckResult> hf_check(const std::string& dir, const std::string& reference,
                                    const HfCheckTolerance& tol) {
  namespace fs = std::filesystem;
  const std::string name = fs::path(dir).filename().string().empty()
                               ? fs::path(dir).parent_path().filename().string()
                               : fs::path(dir).filename().string();
  HfCheckpoint ck = load_hf_checkpoint(dir, HfLoad::Mapped);
  SafeTensorsFile ref(reference.empty() ? dir + "/reference.safetensors" : reference);
  XLSTMLarge<float>& model = *ck.model;
  const int64_t V = model.vocab_size();
  std::vector<HfCheckResult> out;
  auto ids_of = [&](const char* n) {
    Tensor t = ref.get(n);
    XLSTM_CHECK(t.ndim() == 2, IoError, ref.path(), ": tensor '", n, "' must be (B, S)");
    return t.to(DType::I64);
  };

  // 1. full forward (the chunkwise form, as HF's inference mode for S = 64)
  Tensor ids = ids_of("input_ids");
  XLSTMLargeState st;
  Tensor logits = model.forward(ids, Mode::Eval, nullptr, &st);
  {
    Cmp c;
    c.add("logits", logits.data<float>(), ref.get("logits"), tol.logits_atol, tol.logits_rtol,
          logits.numel());
    out.push_back({name, "logits", c.ok, c.detail()});
  }
  {
    Cmp c;
    compare_states(c, ref, "state_prefill", st, tol);
    out.push_back({name, "state_prefill", c.ok, c.detail()});
  }

  // 2. prompt prefill, then teacher-forced steps on the reference tokens
  Tensor prompt = ids_of("prompt_ids"), gen = ids_of("generated_ids");
  Tensor step_ref = ref.get("gen_step_logits");
  const int64_t B = prompt.dim(0), P = prompt.dim(1), G = gen.dim(1);
  XLSTM_CHECK(gen.dim(0) == B && step_ref.shape() == Shape({B, G, V}), IoError, ref.path(),
              ": generated_ids / gen_step_logits shapes do not match prompt_ids and the vocabulary");
  std::vector<double> sref = step_ref.to_f64();
  XLSTMLargeState gs;
  Tensor pl = model.forward(prompt, Mode::Eval, nullptr, &gs);
  Cmp cstep;
  int flips = 0, accepted = 0;
  double min_margin = 1e30;
  std::string flip_detail;
  for (int64_t t = 0; t < G; ++t) {
    std::vector<float> cur((size_t)(B * V));
    if (t == 0) {
      for (int64_t b = 0; b < B; ++b)
        std::memcpy(&cur[b * V], pl.data<float>() + (b * P + P - 1) * V, sizeof(float) * V);
    } else {
      Tensor l = model.forward(column(gen, t - 1), Mode::Eval, &gs, &gs);
      std::memcpy(cur.data(), l.data<float>(), sizeof(float) * B * V);
    }
    for (int64_t b = 0; b < B; ++b) {
      const double* r = &sref[(b * G + t) * V];
      Tensor rr = Tensor::from<double>({V}, std::vector<double>(r, r + V));
      cstep.add(str("gen_step_logits[", b, ",", t, "]"), &cur[b * V], rr, tol.logits_atol,
                tol.logits_rtol);
      const int64_t want = gen.data<int64_t>()[b * G + t];
      const int64_t got = std::max_element(&cur[b * V], &cur[b * V] + V) - &cur[b * V];
      // reference top-2 margin
      double top1 = -1e300, top2 = -1e300;
      for (int64_t v = 0; v < V; ++v) {
        if (r[v] > top1) {
          top2 = top1;
          top1 = r[v];
        } else if (r[v] > top2) {
          top2 = r[v];
        }
      }
      min_margin = std::min(min_margin, top1 - top2);
      if (got != want) {
        const bool ok = top1 - top2 <= 2 * (tol.logits_atol + tol.logits_rtol * std::fabs(top1));
        (ok ? accepted : flips)++;
        if (flip_detail.empty())
          flip_detail = str(" first flip: row ", b, " step ", t, " got ", got, " want ", want,
                            " (margin ", top1 - top2, ")");
      }
    }
  }
  // The state after prompt + G-1 generated tokens.
  XLSTMLargeState fin = gs;
  out.push_back({name, "gen_step_logits", cstep.ok, cstep.detail()});
  out.push_back({name, "greedy", flips == 0,
                 str(G, " steps x ", B, " rows, ", flips, " flips, ", accepted,
                     " within the margin; min reference top-2 margin ", min_margin, flip_detail)});
  {
    Cmp c;
    compare_states(c, ref, "state_final", fin, tol);
    out.push_back({name, "state_final", c.ok, c.detail()});
  }
  return out;
}

}  // namespace xlstm
