#include "inspect/inspect.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include "inspect/cells.h"
#include "io/atomic_file.h"
#include "models/lstm_lm.h"
#include "models/xlstm_config.h"
#include "nn/blocks.h"
#include "nn/lstm.h"
#include "viz/plot.h"

namespace xlstm {

namespace fs = std::filesystem;
using namespace inspect_detail;

const Trace& LayerTrace::get(const std::string& name) const {
  for (const auto& t : traces)
    if (t.name == name) return t;
  throw InternalError(str("[inspect] layer ", index, " has no trace '", name, "'"));
}

namespace {

constexpr double kMaxStateErr = 1e-6;

std::string arch_of(const LoadedModel& m) {
  const auto& c = m.model->config();
  return c.contains("arch") && c["arch"].is_string() ? c["arch"].get<std::string>() : "";
}

std::string token_label(const Vocab& v, int64_t id) {
  const uint32_t cp = v.symbol(id);
  if (cp == ' ') return "\u2423";   // ␣
  if (cp == '\n') return "\u21b5";  // ↵
  if (cp == '\t') return "\u21e5";  // ⇥
  return v.symbol_str(id);
}

// Relative difference, robust near zero: |a - b| / max(1, |b|).
double rel_err(const double* a, const double* b, int64_t n) {
  double e = 0;
  for (int64_t k = 0; k < n; ++k) e = std::max(e, std::fabs(a[k] - b[k]) / std::max(1.0, std::fabs(b[k])));
  return e;
}

// One layer's traces, filled one step at a time.
struct Recorder {
  LayerTrace lt;
  void add(const std::string& name, const std::string& title, const std::string& axis,
           int64_t rows, TraceRange range) {
    Trace t;
    t.name = name, t.title = title, t.row_axis = axis, t.rows = rows, t.range = range;
    lt.traces.push_back(t);
  }
  void push(size_t k, const Vec& v) {
    Trace& t = lt.traces[k];
    XLSTM_ASSERT((int64_t)v.size() == t.rows);
    t.values.insert(t.values.end(), v.begin(), v.end());
  }
};

Recorder lstm_recorder(int64_t l, int64_t H) {
  Recorder r;
  r.lt.index = l, r.lt.kind = "lstm";
  r.add("i", "input gate i = σ(·)", "unit", H, TraceRange::Unit);
  r.add("f", "forget gate f = σ(·)", "unit", H, TraceRange::Unit);
  r.add("g", "cell input g = tanh(·)", "unit", H, TraceRange::Symmetric);
  r.add("o", "output gate o = σ(·)", "unit", H, TraceRange::Unit);
  r.add("c", "cell state c", "unit", H, TraceRange::Symmetric);
  r.add("h", "hidden state h = o·tanh(c)", "unit", H, TraceRange::Symmetric);
  return r;
}

Recorder slstm_recorder(int64_t b, int64_t H) {
  Recorder r;
  r.lt.index = b, r.lt.kind = "slstm";
  r.add("i_raw", "input gate pre-activation ĩ", "unit", H, TraceRange::Symmetric);
  r.add("f_raw", "forget gate pre-activation f̃", "unit", H, TraceRange::Symmetric);
  r.add("i", "input gate i = exp(ĩ − m) (stabilised)", "unit", H, TraceRange::Unit);
  r.add("f", "forget gate f = exp(log σ(f̃) + m₋₁ − m) (stabilised)", "unit", H, TraceRange::Unit);
  r.add("z", "cell input z = tanh(z̃)", "unit", H, TraceRange::Symmetric);
  r.add("o", "output gate o = σ(õ)", "unit", H, TraceRange::Unit);
  r.add("c", "cell state c", "unit", H, TraceRange::Symmetric);
  r.add("n", "normalizer state n", "unit", H, TraceRange::Auto);
  r.add("m", "stabilizer state m", "unit", H, TraceRange::Symmetric);
  r.add("h", "hidden state h = o·c/n", "unit", H, TraceRange::Symmetric);
  return r;
}

Recorder mlstm_recorder(int64_t b, int64_t NH, int64_t I) {
  Recorder r;
  r.lt.index = b, r.lt.kind = "mlstm";
  r.add("i_raw", "input gate pre-activation ĩ", "head", NH, TraceRange::Symmetric);
  r.add("f_raw", "forget gate pre-activation f̃", "head", NH, TraceRange::Symmetric);
  r.add("i", "input gate i = exp(ĩ − m) (stabilised)", "head", NH, TraceRange::Unit);
  r.add("f", "forget gate f = exp(log σ(f̃) + m₋₁ − m) (stabilised)", "head", NH, TraceRange::Unit);
  r.add("m", "stabilizer state m", "head", NH, TraceRange::Symmetric);
  r.add("C_norm", "memory ‖C‖ (Frobenius)", "head", NH, TraceRange::Auto);
  r.add("qn", "normalizer q·n", "head", NH, TraceRange::Symmetric);
  r.add("den", "denominator max(|q·n|, exp(−m)) + ε", "head", NH, TraceRange::Auto);
  r.add("h", "cell output h = q·C / den", "unit", I, TraceRange::Symmetric);
  r.add("o", "output gate SiLU(z)", "unit", I, TraceRange::Symmetric);
  return r;
}

struct Runner {
  const LoadedModel& m;
  InspectResult res;
  std::vector<Recorder> rec;
  ParamTable P;
  explicit Runner(const LoadedModel& model) : m(model), P(*model.model) {}

  // The float32 model's step on token `id` (its own state in `st`).
  Vec float_step(int64_t id, LMState& st) {
    Tensor lf = m.model->step(Tensor::from<int64_t>({1}, {id}), st);
    return lf.to_f64();
  }
  void logits_check(const Vec& ld, const Vec& lf) {
    XLSTM_ASSERT(ld.size() == lf.size());
    double e = 0;
    for (size_t k = 0; k < ld.size(); ++k) e = std::max(e, std::fabs(ld[k] - lf[k]));
    res.max_logit_err = std::max(res.max_logit_err, e);
  }
  void state_check(double e, const char* what, int64_t layer, int64_t t) {
    res.max_state_err = std::max(res.max_state_err, e);
    if (!(e <= kMaxStateErr))
      throw InternalError(str("[inspect] layer ", layer, " step ", t, ": the recomputed ", what,
                              " differs from the model's own step by ", e,
                              " (relative); this is a bug, please report it"));
  }

  void run_lstm(const std::vector<int64_t>& ids, const std::vector<int64_t>& layers);
  void run_xlstm(const std::vector<int64_t>& ids, const std::vector<int64_t>& layers);
};

void Runner::run_lstm(const std::vector<int64_t>& ids, const std::vector<int64_t>& layers) {
  const std::string w = m.dir + "/config.json";
  const LSTMLMConfig c = lstm_lm_config_from_json(m.model->config(), w);
  const int64_t E = c.embedding_dim, H = c.hidden_size, L = c.num_layers, V = c.vocab_size;
  LSTMConfig lc;
  lc.input_size = E, lc.hidden_size = H, lc.num_layers = L;
  LSTM<double> lstm(lc);
  lstm.load_params(P.with_prefix("lstm."), m.dir);
  const Vec& emb = P.get("embedding.weight", V * E);
  const Vec& hw = P.get("head.weight", V * H);
  const Vec& hb = P.get("head.bias", V);
  std::vector<LstmLayerParams> lp;
  for (int64_t l : layers) {
    LstmLayerParams p;
    p.In = l == 0 ? E : H, p.H = H;
    const std::string s = std::to_string(l);
    p.w_ih = P.get("lstm.weight_ih_l" + s, 4 * H * p.In);
    p.w_hh = P.get("lstm.weight_hh_l" + s, 4 * H * H);
    p.b_ih = P.get("lstm.bias_ih_l" + s, 4 * H);
    p.b_hh = P.get("lstm.bias_hh_l" + s, 4 * H);
    lp.push_back(std::move(p));
    rec.push_back(lstm_recorder(l, H));
  }
  Tensor h({L, 1, H}, DType::F64), cst({L, 1, H}, DType::F64);
  auto st = m.model->new_state(1);
  LstmStep s;
  Vec logits((size_t)V);
  for (size_t t = 0; t < ids.size(); ++t) {
    const Vec lf = float_step(ids[t], *st);
    const Vec x(emb.begin() + ids[t] * E, emb.begin() + (ids[t] + 1) * E);
    const Vec hp = h.to_f64(), cp = cst.to_f64();
    lstm.step(Tensor::from<double>({1, E}, x), h, cst);
    const Vec hn = h.to_f64(), cn = cst.to_f64();
    for (size_t k = 0; k < layers.size(); ++k) {
      const int64_t l = layers[k];
      lstm_step(lp[k], l == 0 ? x.data() : &hn[(size_t)((l - 1) * H)], &hp[(size_t)(l * H)],
                &cp[(size_t)(l * H)], s);
      state_check(std::max(rel_err(s.h.data(), &hn[(size_t)(l * H)], H),
                           rel_err(s.c.data(), &cn[(size_t)(l * H)], H)),
                  "h and c", l, (int64_t)t);
      size_t q = 0;
      for (const Vec* v : {&s.i, &s.f, &s.g, &s.o, &s.c, &s.h}) rec[k].push(q++, *v);
    }
    const double* hl = &hn[(size_t)((L - 1) * H)];
    for (int64_t v = 0; v < V; ++v) {
      double a = hb[(size_t)v];
      for (int64_t d = 0; d < H; ++d) a += hw[(size_t)(v * H + d)] * hl[d];
      logits[(size_t)v] = a;
    }
    logits_check(logits, lf);
  }
}

void Runner::run_xlstm(const std::vector<int64_t>& ids, const std::vector<int64_t>& layers) {
  const std::string w = m.dir + "/config.json";
  const XLSTMLMConfig c = xlstm_lm_config_from_json(m.model->config(), w);
  const int64_t D = c.embedding_dim, V = c.vocab_size, NB = c.num_blocks;
  std::vector<std::unique_ptr<XLSTMBlock<double>>> blocks;
  for (int64_t b = 0; b < NB; ++b) {
    blocks.push_back(std::make_unique<XLSTMBlock<double>>(c.blocks[(size_t)b]));
    blocks.back()->load_params(P.with_prefix(str("xlstm_block_stack.blocks.", b, ".")), m.dir);
  }
  const Vec& emb = P.get("token_embedding.weight", V * D);
  const Vec& head = c.tie_weights ? emb : P.get("lm_head.weight", V * D);
  const std::string post = "xlstm_block_stack.post_blocks_norm.weight";
  const Vec* post_w = c.add_post_blocks_norm ? &P.get(post, D) : nullptr;
  std::vector<SlstmLayerParams> sp(layers.size());
  std::vector<MlstmLayerParams> mp(layers.size());
  auto opt = [&](const std::string& n, int64_t numel) { return P.has(n) ? P.get(n, numel) : Vec(); };
  for (size_t k = 0; k < layers.size(); ++k) {
    const BlockConfig& bc = c.blocks[(size_t)layers[k]];
    const std::string pre = str("xlstm_block_stack.blocks.", layers[k], ".");
    const std::string x = pre + "xlstm.";
    if (bc.kind == BlockKind::SLSTM) {
      SlstmLayerParams& p = sp[k];
      p.D = D, p.NH = bc.slstm.num_heads, p.DH = D / p.NH, p.K = bc.slstm.conv1d_kernel_size;
      const int64_t H = D, DH = p.DH;
      p.norm_w = P.get(pre + "xlstm_norm.weight", D);
      if (p.K > 0) {
        p.conv_w = P.get(x + "conv1d.conv.weight", D * p.K);
        p.conv_b = P.get(x + "conv1d.conv.bias", D);
      }
      p.w_f = P.get(x + "fgate.weight", p.NH * DH * DH);
      p.w_i = P.get(x + "igate.weight", p.NH * DH * DH);
      p.w_z = P.get(x + "zgate.weight", p.NH * DH * DH);
      p.w_o = P.get(x + "ogate.weight", p.NH * DH * DH);
      p.R = P.get(x + "slstm_cell._recurrent_kernel_", p.NH * 4 * DH * DH);
      p.bias = P.get(x + "slstm_cell._bias_", 4 * H);
      rec.push_back(slstm_recorder(layers[k], H));
    } else {
      MlstmLayerParams& p = mp[k];
      p.D = D, p.I = bc.mlstm.inner(), p.NH = bc.mlstm.num_heads, p.DH = p.I / p.NH;
      p.K = bc.mlstm.conv1d_kernel_size, p.BS = bc.mlstm.qkv_proj_blocksize;
      const int64_t I = p.I, NP = I / p.BS;
      p.norm_w = P.get(pre + "xlstm_norm.weight", D);
      p.up_w = P.get(x + "proj_up.weight", 2 * I * D);
      p.up_b = opt(x + "proj_up.bias", 2 * I);
      p.conv_w = P.get(x + "conv1d.conv.weight", I * p.K);
      p.conv_b = P.get(x + "conv1d.conv.bias", I);
      p.q_w = P.get(x + "q_proj.weight", NP * p.BS * p.BS);
      p.k_w = P.get(x + "k_proj.weight", NP * p.BS * p.BS);
      p.v_w = P.get(x + "v_proj.weight", NP * p.BS * p.BS);
      p.q_b = opt(x + "q_proj.bias", I);
      p.k_b = opt(x + "k_proj.bias", I);
      p.v_b = opt(x + "v_proj.bias", I);
      p.ig_w = P.get(x + "mlstm_cell.igate.weight", p.NH * 3 * I);
      p.ig_b = P.get(x + "mlstm_cell.igate.bias", p.NH);
      p.fg_w = P.get(x + "mlstm_cell.fgate.weight", p.NH * 3 * I);
      p.fg_b = P.get(x + "mlstm_cell.fgate.bias", p.NH);
      p.outnorm_w = P.get(x + "mlstm_cell.outnorm.weight", I);
      p.skip = P.get(x + "learnable_skip", I);
      p.down_w = P.get(x + "proj_down.weight", D * I);
      p.down_b = opt(x + "proj_down.bias", D);
      rec.push_back(mlstm_recorder(layers[k], p.NH, I));
    }
  }
  std::vector<BlockState> states((size_t)NB);
  auto st = m.model->new_state(1);
  SlstmStep ss;
  MlstmStep ms;
  Vec logits((size_t)V), xn((size_t)D);
  auto vec_or_null = [](const Tensor& t, Vec& buf) -> const double* {
    if (!t.defined()) return nullptr;
    buf = t.to_f64();
    return buf.data();
  };
  for (size_t t = 0; t < ids.size(); ++t) {
    const Vec lf = float_step(ids[t], *st);
    Tensor x = Tensor::from<double>({1, 1, D}, Vec(emb.begin() + ids[t] * D, emb.begin() + (ids[t] + 1) * D));
    size_t k = 0;
    for (int64_t b = 0; b < NB; ++b) {
      BlockState next;
      const BlockState* in = t == 0 ? nullptr : &states[(size_t)b];
      Tensor y = blocks[(size_t)b]->forward(x, Mode::Eval, nullptr, in, &next);
      if (k < layers.size() && layers[k] == b) {
        const Vec xin = x.to_f64();
        Vec b1, b2, b3, b4;
        if (c.blocks[(size_t)b].kind == BlockKind::SLSTM) {
          const SlstmLayerParams& p = sp[k];
          slstm_step(p, xin.data(), in ? vec_or_null(in->slstm.conv, b1) : nullptr,
                     in ? vec_or_null(in->slstm.slstm, b2) : nullptr, ss);
          const Vec ns = next.slstm.slstm.to_f64();  // (4, 1, H): y, c, n, m
          double e = 0;
          const Vec* mine[4] = {&ss.h, &ss.c, &ss.n, &ss.m};
          for (int q = 0; q < 4; ++q) e = std::max(e, rel_err(mine[q]->data(), &ns[(size_t)(q * D)], D));
          if (p.K > 1) e = std::max(e, rel_err(ss.xn.data(), &next.slstm.conv.to_f64()[(size_t)((p.K - 2) * D)], D));
          state_check(e, "sLSTM state (h, c, n, m)", b, (int64_t)t);
          size_t q = 0;
          for (const Vec* v : {&ss.i_raw, &ss.f_raw, &ss.i, &ss.f, &ss.z, &ss.o, &ss.c, &ss.n,
                               &ss.m, &ss.h})
            rec[k].push(q++, *v);
        } else {
          const MlstmLayerParams& p = mp[k];
          const double* cs = in ? vec_or_null(in->mlstm.conv, b1) : nullptr;
          const double* C0 = in ? vec_or_null(in->mlstm.cell.c, b2) : nullptr;
          const double* n0 = in ? vec_or_null(in->mlstm.cell.n, b3) : nullptr;
          const double* m0 = in ? vec_or_null(in->mlstm.cell.m, b4) : nullptr;
          mlstm_step(p, xin.data(), cs, C0, n0, m0, ms);
          const Vec Cn = next.mlstm.cell.c.to_f64(), nn = next.mlstm.cell.n.to_f64(),
                    mn = next.mlstm.cell.m.to_f64(), yo = y.to_f64();
          double e = std::max({rel_err(ms.C.data(), Cn.data(), (int64_t)Cn.size()),
                               rel_err(ms.n.data(), nn.data(), (int64_t)nn.size()),
                               rel_err(ms.m.data(), mn.data(), (int64_t)mn.size()),
                               rel_err(ms.out.data(), yo.data(), D)});
          if (p.K > 1) e = std::max(e, rel_err(ms.xm.data(), &next.mlstm.conv.to_f64()[(size_t)((p.K - 2) * p.I)], p.I));
          state_check(e, "mLSTM state (C, n, m) and block output", b, (int64_t)t);
          size_t q = 0;
          for (const Vec* v : {&ms.i_raw, &ms.f_raw, &ms.i, &ms.f, &ms.m, &ms.C_norm, &ms.qn,
                               &ms.den, &ms.h, &ms.o})
            rec[k].push(q++, *v);
        }
        ++k;
      }
      states[(size_t)b] = next;
      x = y;
    }
    const Vec xl = x.to_f64();
    if (post_w) {
      double mean = 0, var = 0;
      for (int64_t d = 0; d < D; ++d) mean += xl[(size_t)d];
      mean /= (double)D;
      for (int64_t d = 0; d < D; ++d) var += (xl[(size_t)d] - mean) * (xl[(size_t)d] - mean);
      const double r = 1.0 / std::sqrt(var / (double)D + 1e-5);
      for (int64_t d = 0; d < D; ++d) xn[(size_t)d] = (xl[(size_t)d] - mean) * r * (1.0 + (*post_w)[(size_t)d]);
    } else {
      xn = xl;
    }
    for (int64_t v = 0; v < V; ++v) {
      double a = 0;
      for (int64_t d = 0; d < D; ++d) a += head[(size_t)(v * D + d)] * xn[(size_t)d];
      logits[(size_t)v] = a;
    }
    logits_check(logits, lf);
  }
}

std::string csv_quote(const std::string& s) {
  std::string r = "\"";
  for (char ch : s) r += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return r + "\"";
}

}  // namespace

int64_t inspectable_layers(const LoadedModel& m) {
  const std::string arch = arch_of(m), w = m.dir + "/config.json";
  if (arch == "lstm") return lstm_lm_config_from_json(m.model->config(), w).num_layers;
  if (arch == "xlstm") return xlstm_lm_config_from_json(m.model->config(), w).num_blocks;
  throw ValueError(str(w, ": inspect knows the language models of arch \"lstm\" and \"xlstm\", "
                          "not \"", arch, "\""));
}

InspectResult inspect_model(const LoadedModel& m, const std::vector<int64_t>& ids, int64_t layer) {
  XLSTM_CHECK(!ids.empty(), ValueError, "[inspect] the input is empty; hint: give at least one character");
  const int64_t n = inspectable_layers(m), V = m.model->vocab_size();
  const std::string what = arch_of(m) == "lstm" ? "LSTM layers" : "blocks";
  XLSTM_CHECK(layer >= -1 && layer < n, ValueError, "--layer ", layer, " is out of range: the model has ",
              n, " ", what, " (0..", n - 1, ", or -1 for all)");
  for (size_t t = 0; t < ids.size(); ++t)
    XLSTM_CHECK(ids[t] >= 0 && ids[t] < V, ValueError, "[inspect] token ", t, " has id ", ids[t],
                ", outside the vocabulary of ", V);
  std::vector<int64_t> layers;
  for (int64_t l = 0; l < n; ++l)
    if (layer < 0 || l == layer) layers.push_back(l);
  Runner r(m);
  r.res.ids = ids;
  for (int64_t id : ids) r.res.labels.push_back(token_label(m.vocab, id));
  if (arch_of(m) == "lstm") r.run_lstm(ids, layers);
  else r.run_xlstm(ids, layers);
  for (auto& rc : r.rec) r.res.layers.push_back(std::move(rc.lt));
  return std::move(r.res);
}

std::vector<std::string> write_inspect(const InspectResult& r, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  XLSTM_CHECK(fs::is_directory(dir), IoError, dir, ": cannot create the output directory (",
              ec.message(), ")");
  const int64_t T = (int64_t)r.ids.size();
  std::vector<std::string> written;
  for (const auto& L : r.layers) {
    std::string kind = L.kind;
    for (auto& ch : kind) ch = (char)std::toupper((unsigned char)ch);
    if (kind != "LSTM") kind[0] = (char)std::tolower((unsigned char)kind[0]);  // sLSTM, mLSTM
    for (const auto& t : L.traces) {
      XLSTM_ASSERT((int64_t)t.values.size() == T * t.rows);
      const std::string stem = str(dir, "/layer", L.index, "_", L.kind, "_", t.name);
      Heatmap h;
      h.title = str("layer ", L.index, " (", kind, "): ", t.title);
      h.xlabel = "time step (input character)";
      h.ylabel = t.row_axis;
      h.colorbar_label = t.range == TraceRange::Unit ? "activation" : "value";
      h.rows = t.rows;
      h.cols = T;
      h.values.resize((size_t)(T * t.rows));
      for (int64_t s = 0; s < T; ++s)
        for (int64_t u = 0; u < t.rows; ++u)
          h.values[(size_t)(u * T + s)] = t.values[(size_t)(s * t.rows + u)];
      h.colormap = t.range == TraceRange::Symmetric ? Colormap::Diverging : Colormap::Viridis;
      if (t.range == TraceRange::Unit) h.vmin = 0, h.vmax = 1;
      h.col_labels = r.labels;
      h.width = (int)std::clamp<int64_t>(260 + 16 * T, 900, 4000);
      h.height = (int)std::clamp<int64_t>(220 + 3 * t.rows, 420, 1400);
      save_heatmap(stem + ".png", h);
      written.push_back(stem + ".png");
      std::ostringstream csv;
      csv << "step,token";
      for (int64_t u = 0; u < t.rows; ++u) csv << "," << t.row_axis << "_" << u;
      csv << "\n";
      char buf[40];
      for (int64_t s = 0; s < T; ++s) {
        csv << s << "," << csv_quote(r.labels[(size_t)s]);
        for (int64_t u = 0; u < t.rows; ++u) {
          std::snprintf(buf, sizeof buf, ",%.17g", t.values[(size_t)(s * t.rows + u)]);
          csv << buf;
        }
        csv << "\n";
      }
      write_file_atomic(stem + ".csv", csv.str());
      written.push_back(stem + ".csv");
    }
  }
  return written;
}

}  // namespace xlstm
