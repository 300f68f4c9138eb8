// Classification data, tokenizer, loss, metrics and model (tasks/classify.h). The training loop
// is in classify_train.cpp.
#include "tasks/classify.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <sstream>

#include "cpu/embedding.h"
#include "cpu/linear.h"
#include "data/table.h"
#include "io/json_config.h"
#include "train/checkpoint.h"

namespace xlstm {

using json = nlohmann::json;

Pool parse_pool(const std::string& s) {
  if (s == "mean") return Pool::Mean;
  if (s == "last") return Pool::Last;
  throw ValueError(str("--pool must be mean or last, got '", s, "'"));
}
const char* pool_name(Pool p) { return p == Pool::Mean ? "mean" : "last"; }

// ---- data ------------------------------------------------------------------------------------

LabeledTexts read_labeled_texts(const std::string& path, bool labels_required) {
  Table t = read_table(path, {"text", "label"}, {true, labels_required});
  XLSTM_CHECK(t.num_rows() > 0, ValueError, path, ": no data rows");
  LabeledTexts d;
  d.path = path;
  for (int64_t r = 0; r < t.num_rows(); ++r) d.has_labels |= !t.rows[(size_t)r][1].empty();
  for (int64_t r = 0; r < t.num_rows(); ++r) {
    const auto& row = t.rows[(size_t)r];
    XLSTM_CHECK(!row[0].empty(), ValueError, path, ": line ", t.lines[(size_t)r],
                ": empty text in field 'text'");
    XLSTM_CHECK(!d.has_labels || !row[1].empty(), ValueError, path, ": line ", t.lines[(size_t)r],
                ": missing value in field 'label' (other rows have labels)");
    d.texts.push_back(row[0]);
    d.labels.push_back(row[1]);
    d.lines.push_back(t.lines[(size_t)r]);
  }
  XLSTM_CHECK(d.has_labels || !labels_required, ValueError, path, ": field 'label' is empty in every row");
  return d;
}

ClassTokenizer::ClassTokenizer(Vocab v) : vocab_(std::move(v)) {
  if (vocab_.kind() == VocabKind::Char) {
    const uint32_t top = vocab_.symbol(vocab_.size() - 1);
    index_.assign((size_t)top + 1, -1);
    for (int64_t i = 0; i < vocab_.size(); ++i) index_[vocab_.symbol(i)] = (int32_t)i;
  }
}

ClassTokenizer ClassTokenizer::build(VocabKind kind, const std::vector<std::string>& texts,
                                     int64_t min_count, const std::string& where) {
  if (kind == VocabKind::Byte) return ClassTokenizer(Vocab::bytes());
  XLSTM_CHECK(min_count >= 1, ValueError, "--min-count must be >= 1, got ", min_count);
  std::map<uint32_t, int64_t> count;
  for (size_t i = 0; i < texts.size(); ++i)
    for (uint32_t cp : utf8_decode(texts[i], str(where, ": text ", i + 1))) ++count[cp];
  std::vector<uint32_t> cps;
  for (auto& [cp, n] : count)
    if (n >= min_count) cps.push_back(cp);
  XLSTM_CHECK(!cps.empty(), ValueError, where, ": no character occurs --min-count ", min_count,
              " times");
  return ClassTokenizer(Vocab::from_code_points(cps, where));
}

void ClassTokenizer::encode(const std::string& text, std::vector<int64_t>& out,
                            const std::string& where) const {
  if (vocab_.kind() == VocabKind::Byte) {
    for (unsigned char c : text) out.push_back((int64_t)c + 1);
    return;
  }
  for (uint32_t cp : utf8_decode(text, where)) {
    const int32_t id = cp < index_.size() ? index_[cp] : -1;
    out.push_back(id < 0 ? 0 : (int64_t)id + 1);
  }
}

int64_t class_index(const std::vector<std::string>& classes, const std::string& label) {
  for (size_t c = 0; c < classes.size(); ++c)
    if (classes[c] == label) return (int64_t)c;
  return -1;
}

std::vector<double> parse_class_weights(const std::string& s, const std::vector<std::string>& classes,
                                        const std::vector<int64_t>& counts) {
  const size_t C = classes.size();
  std::vector<double> w(C, 1.0);
  if (s.empty() || s == "none") return w;
  if (s == "auto") {
    const double n = (double)std::accumulate(counts.begin(), counts.end(), int64_t(0));
    for (size_t c = 0; c < C; ++c) w[c] = counts[c] > 0 ? n / ((double)C * (double)counts[c]) : 1.0;
    return w;
  }
  std::string all;
  for (auto& c : classes) all += (all.empty() ? "" : ", ") + c;
  std::vector<std::string> items;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) items.push_back(item);
  const bool named = s.find('=') != std::string::npos;
  XLSTM_CHECK(named || items.size() == C, ValueError, "--class-weights has ", items.size(),
              " weights for ", C, " classes (", all, "); hint: auto, none, one weight per class in "
              "that order, or name=weight pairs");
  auto number = [&](const std::string& v) {
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    XLSTM_CHECK(!v.empty() && end == v.c_str() + v.size() && std::isfinite(x) && x > 0, ValueError,
                "--class-weights: '", v, "' is not a positive number");
    return x;
  };
  for (size_t i = 0; i < items.size(); ++i) {
    if (!named) {
      w[i] = number(items[i]);
      continue;
    }
    const auto eq = items[i].rfind('=');
    XLSTM_CHECK(eq != std::string::npos, ValueError, "--class-weights: '", items[i],
                "' is not name=weight");
    const int64_t c = class_index(classes, items[i].substr(0, eq));
    XLSTM_CHECK(c >= 0, ValueError, "--class-weights: unknown class '", items[i].substr(0, eq),
                "' (classes: ", all, ")");
    w[(size_t)c] = number(items[i].substr(eq + 1));
  }
  return w;
}

double weighted_xent(int64_t B, int64_t C, const float* logits, const int64_t* y,
                     const std::vector<double>& w, float* dlogits) {
  double wsum = 0, loss = 0;
  for (int64_t b = 0; b < B; ++b) wsum += w[(size_t)y[b]];
  std::vector<double> p((size_t)C);
  for (int64_t b = 0; b < B; ++b) {
    const float* l = logits + b * C;
    double mx = l[0];
    for (int64_t c = 1; c < C; ++c) mx = std::max(mx, (double)l[c]);
    double z = 0;
    for (int64_t c = 0; c < C; ++c) z += (p[(size_t)c] = std::exp((double)l[c] - mx));
    const double wb = w[(size_t)y[b]] / wsum;
    loss += wb * (std::log(z) + mx - (double)l[y[b]]);
    if (dlogits)
      for (int64_t c = 0; c < C; ++c)
        dlogits[b * C + c] = (float)(wb * (p[(size_t)c] / z - (c == y[b] ? 1.0 : 0.0)));
  }
  return loss;
}

// ---- metrics ---------------------------------------------------------------------------------

ClassMetrics class_metrics(const std::vector<int64_t>& truth, const std::vector<int64_t>& pred,
                           int64_t C) {
  XLSTM_ASSERT(truth.size() == pred.size());
  ClassMetrics m;
  m.n = (int64_t)truth.size();
  m.confusion.assign((size_t)C, std::vector<int64_t>((size_t)C, 0));
  int64_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    ++m.confusion[(size_t)truth[i]][(size_t)pred[i]];
    correct += truth[i] == pred[i];
  }
  m.accuracy = m.n ? (double)correct / (double)m.n : 0;
  m.precision.assign((size_t)C, 0);
  m.recall.assign((size_t)C, 0);
  m.f1.assign((size_t)C, 0);
  m.support.assign((size_t)C, 0);
  double f1_sum = 0;
  int64_t present = 0;
  for (int64_t c = 0; c < C; ++c) {
    int64_t tp = m.confusion[(size_t)c][(size_t)c], npred = 0, ntrue = 0;
    for (int64_t k = 0; k < C; ++k) {
      npred += m.confusion[(size_t)k][(size_t)c];
      ntrue += m.confusion[(size_t)c][(size_t)k];
    }
    m.support[(size_t)c] = ntrue;
    const double p = npred ? (double)tp / (double)npred : 0, r = ntrue ? (double)tp / (double)ntrue : 0;
    m.precision[(size_t)c] = p;
    m.recall[(size_t)c] = r;
    m.f1[(size_t)c] = p + r > 0 ? 2 * p * r / (p + r) : 0;
    if (npred + ntrue > 0) {
      f1_sum += m.f1[(size_t)c];
      ++present;
    }
  }
  m.macro_f1 = present ? f1_sum / (double)present : 0;
  return m;
}

std::string format_metrics(const ClassMetrics& m, const std::vector<std::string>& classes) {
  size_t wname = 5;
  for (auto& c : classes) wname = std::max(wname, c.size());
  std::ostringstream os;
  char buf[256];
  std::snprintf(buf, sizeof buf, "accuracy %.4f  macro-F1 %.4f  (%lld rows)\n", m.accuracy,
                m.macro_f1, (long long)m.n);
  os << buf;
  std::snprintf(buf, sizeof buf, "%-*s  %9s  %6s  %6s  %7s\n", (int)wname, "class", "precision",
                "recall", "F1", "support");
  os << buf;
  for (size_t c = 0; c < classes.size(); ++c) {
    std::snprintf(buf, sizeof buf, "%-*s  %9.4f  %6.4f  %6.4f  %7lld\n", (int)wname,
                  classes[c].c_str(), m.precision[c], m.recall[c], m.f1[c],
                  (long long)m.support[c]);
    os << buf;
  }
  os << "confusion matrix (rows: true class, columns: predicted)\n";
  size_t wcell = 6;
  for (auto& c : classes) wcell = std::max(wcell, c.size());
  os << std::string(wname, ' ');
  for (auto& c : classes) {
    std::snprintf(buf, sizeof buf, "  %*s", (int)wcell, c.c_str());
    os << buf;
  }
  os << "\n";
  for (size_t r = 0; r < classes.size(); ++r) {
    std::snprintf(buf, sizeof buf, "%-*s", (int)wname, classes[r].c_str());
    os << buf;
    for (size_t c = 0; c < classes.size(); ++c) {
      std::snprintf(buf, sizeof buf, "  %*lld", (int)wcell, (long long)m.confusion[r][c]);
      os << buf;
    }
    os << "\n";
  }
  return os.str();
}

// ---- model -----------------------------------------------------------------------------------

json ClassifierSpec::to_json() const {
  return {{"task", "classify"},   {"backbone", backbone}, {"vocab_rows", vocab_rows},
          {"embedding_dim", embedding_dim}, {"pool", pool_name(pool)}, {"classes", classes},
          {"max_len", max_len},   {"chunk", chunk}};
}

ClassifierSpec ClassifierSpec::from_json(const json& j, const std::string& w) {
  using namespace json_cfg;
  ClassifierSpec s;
  XLSTM_CHECK(get_string(j, "task", w, "lm") == "classify", ValueError, w, ": field 'task' is '",
              get_string(j, "task", w, "lm"), "', not a classifier; hint: use the checkpoint of "
              "`xlstm train --task classify`");
  s.backbone = get_object(j, "backbone", w);
  s.vocab_rows = get_int(j, "vocab_rows", w);
  s.embedding_dim = get_int(j, "embedding_dim", w);
  s.pool = parse_pool(get_enum(j, "pool", w, {"mean", "last"}));
  for (auto& c : get_array(j, "classes", w)) {
    XLSTM_CHECK(c.is_string(), ValueError, w, ": field 'classes' must hold strings");
    s.classes.push_back(c.get<std::string>());
  }
  s.max_len = get_int(j, "max_len", w, s.max_len);
  s.chunk = get_int(j, "chunk", w, s.chunk);
  XLSTM_CHECK(s.vocab_rows >= 2 && s.embedding_dim >= 1 && s.classes.size() >= 2 && s.chunk >= 1,
              ValueError, w, ": vocab_rows >= 2, embedding_dim >= 1, 2+ classes and chunk >= 1 "
              "are required");
  return s;
}

Classifier::Classifier(const ClassifierSpec& spec, const std::string& where, uint64_t seed)
    : spec_(spec) {
  XLSTM_CHECK(spec.vocab_rows >= 2 && spec.embedding_dim >= 1 && spec.classes.size() >= 2,
              ValueError, where, ": a classifier needs vocab_rows >= 2, embedding_dim >= 1 and at "
              "least 2 classes");
  E_ = spec.embedding_dim;
  C_ = (int64_t)spec.classes.size();
  bb_ = make_backbone(spec.backbone, E_, where + " (backbone)", seed);
  F_ = bb_->out_dim();
  make_param(w_emb_, dw_emb_, {spec.vocab_rows, E_}, DType::F32);
  make_param(w_head_, dw_head_, {C_, F_}, DType::F32);
  make_param(b_head_, db_head_, {C_}, DType::F32);
  Rng rng(seed);
  reset_parameters(rng);
}

void Classifier::set_chunk(int64_t chunk) {
  XLSTM_CHECK(chunk >= 1, ValueError, "--chunk must be >= 1, got ", chunk);
  spec_.chunk = chunk;
}

void Classifier::reset_parameters(Rng& rng) {
  float* e = w_emb_.data<float>();  // torch defaults: Embedding N(0, 1), Linear U(±1/sqrt(in))
  for (int64_t i = 0; i < w_emb_.numel(); ++i) e[i] = (float)rng.normal();
  bb_->reset_parameters(rng);
  const double a = 1.0 / std::sqrt((double)F_);
  for (Tensor* t : {&w_head_, &b_head_}) {
    float* p = t->data<float>();
    for (int64_t i = 0; i < t->numel(); ++i) p[i] = (float)rng.uniform(-a, a);
  }
}

void Classifier::collect_params(const std::string& p, std::vector<ParamRef>& out) {
  out.push_back({p + "embedding.weight", &w_emb_, &dw_emb_});
  bb_->collect_params(p + "backbone.", out);
  out.push_back({p + "head.weight", &w_head_, &dw_head_});
  out.push_back({p + "head.bias", &b_head_, &db_head_});
}

Tensor Classifier::forward(const Tensor& ids, const Tensor& lengths, Mode mode, Rng* rng) {
  XLSTM_CHECK(ids.ndim() == 2 && ids.dtype() == DType::I64 && ids.dim(0) >= 1 && ids.dim(1) >= 1,
              ValueError, "[classifier] ids must be (B,S) int64 with B, S >= 1, got ",
              shape_str(ids.shape()));
  const int64_t B = ids.dim(0), S = ids.dim(1), N = B * S;
  B_ = B;
  S_ = S;
  ids_.assign(ids.data<int64_t>(), ids.data<int64_t>() + N);
  len_.assign((size_t)B, S);
  if (lengths.defined()) {
    XLSTM_CHECK(lengths.dtype() == DType::I64 && lengths.shape() == Shape({B}), ValueError,
                "[classifier] lengths must be (B) int64");
    for (int64_t b = 0; b < B; ++b) len_[(size_t)b] = lengths.data<int64_t>()[b];
  }
  Tensor x = Tensor::empty({B, S, E_}, DType::F32);
  embedding_forward<float>(N, spec_.vocab_rows, E_, ids_.data(), w_emb_.data<float>(), x.data<float>());
  Tensor y = bb_->forward(x, mode, rng, lengths);  // validates lengths
  const float* py = y.data<float>();
  pooled_.assign((size_t)(B * F_), 0.0f);
  const int64_t H = F_ / 2;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t l = len_[(size_t)b];
    float* o = pooled_.data() + b * F_;
    if (spec_.pool == Pool::Mean) {
      acc_.assign((size_t)F_, 0.0);
      for (int64_t t = 0; t < l; ++t)
        for (int64_t f = 0; f < F_; ++f) acc_[(size_t)f] += py[(b * S + t) * F_ + f];
      for (int64_t f = 0; f < F_; ++f) o[f] = (float)(acc_[(size_t)f] / (double)l);
    } else if (!bb_->bidirectional()) {
      std::memcpy(o, py + (b * S + l - 1) * F_, sizeof(float) * (size_t)F_);
    } else {
      std::memcpy(o, py + (b * S + l - 1) * F_, sizeof(float) * (size_t)H);
      std::memcpy(o + H, py + (b * S) * F_ + H, sizeof(float) * (size_t)H);
    }
  }
  Tensor logits = Tensor::empty({B, C_}, DType::F32);
  linear_forward<float>(B, F_, C_, pooled_.data(), w_head_.data<float>(), b_head_.data<float>(),
                        logits.data<float>());
  return logits;
}

void Classifier::backward(const Tensor& dlogits) {
  XLSTM_CHECK(B_ > 0, ValueError, "[classifier] backward called before forward");
  XLSTM_CHECK(dlogits.shape() == Shape({B_, C_}) && dlogits.dtype() == DType::F32, ValueError,
              "[classifier] dlogits must be ", shape_str({B_, C_}), " F32");
  const int64_t B = B_, S = S_, H = F_ / 2;
  std::vector<float> dp((size_t)(B * F_));
  linear_backward<float>(B, F_, C_, pooled_.data(), w_head_.data<float>(), dlogits.data<float>(),
                         dp.data(), dw_head_.data<float>(), db_head_.data<float>());
  Tensor dy({B, S, F_}, DType::F32);  // zeros: padded steps get no gradient
  float* d = dy.data<float>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t l = len_[(size_t)b];
    const float* g = dp.data() + b * F_;
    if (spec_.pool == Pool::Mean) {
      for (int64_t t = 0; t < l; ++t)
        for (int64_t f = 0; f < F_; ++f) d[(b * S + t) * F_ + f] = g[f] / (float)l;
    } else if (!bb_->bidirectional()) {
      std::memcpy(d + (b * S + l - 1) * F_, g, sizeof(float) * (size_t)F_);
    } else {
      std::memcpy(d + (b * S + l - 1) * F_, g, sizeof(float) * (size_t)H);
      float* first = d + (b * S) * F_ + H;  // l == 1: the same step, other half
      for (int64_t f = 0; f < H; ++f) first[f] += g[H + f];
    }
  }
  Tensor dx = bb_->backward(dy);
  embedding_backward<float>(B * S, spec_.vocab_rows, E_, ids_.data(), dx.data<float>(),
                            dw_emb_.data<float>());
}

std::vector<float> Classifier::head(const std::vector<float>& pooled) {
  std::vector<float> l((size_t)C_);
  linear_forward<float>(1, F_, C_, pooled.data(), w_head_.data<float>(), b_head_.data<float>(), l.data());
  return l;
}

ClassifyStream Classifier::new_stream() const {
  XLSTM_CHECK(!bb_->bidirectional(), ValueError, "[classifier] a bidirectional model needs the "
              "whole sequence at once; hint: --stream and chunked inference need a "
              "unidirectional model");
  ClassifyStream s;
  s.state = bb_->new_state(1);
  s.sum.assign((size_t)F_, 0.0);
  s.last.assign((size_t)F_, 0.0f);
  return s;
}

void Classifier::feed(ClassifyStream& s, const int64_t* ids, int64_t n) {
  for (int64_t at = 0; at < n; at += spec_.chunk) {
    const int64_t L = std::min(spec_.chunk, n - at);
    Tensor x = Tensor::empty({1, L, E_}, DType::F32);
    embedding_forward<float>(L, spec_.vocab_rows, E_, ids + at, w_emb_.data<float>(), x.data<float>());
    auto next = bb_->new_state(1);
    Tensor y = bb_->forward(x, Mode::Eval, nullptr, Tensor(), s.state.get(), next.get());
    s.state = std::move(next);
    const float* py = y.data<float>();
    for (int64_t t = 0; t < L; ++t)
      for (int64_t f = 0; f < F_; ++f) s.sum[(size_t)f] += py[t * F_ + f];
    std::memcpy(s.last.data(), py + (L - 1) * F_, sizeof(float) * (size_t)F_);
    s.n += L;
  }
}

std::vector<float> Classifier::stream_logits(const ClassifyStream& s) {
  XLSTM_CHECK(s.n > 0, ValueError, "[classifier] no input consumed");
  std::vector<float> p((size_t)F_);
  for (int64_t f = 0; f < F_; ++f)
    p[(size_t)f] = spec_.pool == Pool::Mean ? (float)(s.sum[(size_t)f] / (double)s.n) : s.last[(size_t)f];
  return head(p);
}

std::vector<std::vector<float>> Classifier::predict_logits(
    const std::vector<std::vector<int64_t>>& seqs, int64_t batch_size) {
  XLSTM_CHECK(batch_size >= 1, ValueError, "--batch-size must be >= 1");
  std::vector<std::vector<float>> out(seqs.size());
  std::vector<size_t> order(seqs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return seqs[a].size() < seqs[b].size(); });
  const bool bi = bb_->bidirectional();
  size_t i = 0;
  while (i < order.size()) {
    const int64_t len0 = (int64_t)seqs[order[i]].size();
    XLSTM_CHECK(len0 >= 1, ValueError, "[classifier] empty sequence");
    if (!bi && len0 > spec_.chunk) {  // long: alone, in chunks with the carried state
      ClassifyStream s = new_stream();
      feed(s, seqs[order[i]].data(), len0);
      out[order[i]] = stream_logits(s);
      ++i;
      continue;
    }
    size_t j = i;
    while (j < order.size() && (int64_t)(j - i) < batch_size &&
           (bi || (int64_t)seqs[order[j]].size() <= spec_.chunk))
      ++j;
    const int64_t B = (int64_t)(j - i), S = (int64_t)seqs[order[j - 1]].size();
    Tensor ids({B, S}, DType::I64), lengths({B}, DType::I64);  // padding id 0
    for (int64_t b = 0; b < B; ++b) {
      const auto& q = seqs[order[i + (size_t)b]];
      std::copy(q.begin(), q.end(), ids.data<int64_t>() + b * S);
      lengths.data<int64_t>()[b] = (int64_t)q.size();
    }
    Tensor logits = forward(ids, lengths, Mode::Eval, nullptr);
    for (int64_t b = 0; b < B; ++b)
      out[order[i + (size_t)b]].assign(logits.data<float>() + b * C_, logits.data<float>() + (b + 1) * C_);
    i = j;
  }
  return out;
}

LoadedClassifier load_classifier(const std::string& path) {
  LoadedClassifier r;
  r.dir = resolve_checkpoint_dir(path);
  Checkpoint ck = load_checkpoint(r.dir, false);
  const std::string cw = r.dir + "/config.json";
  ClassifierSpec spec = ClassifierSpec::from_json(ck.config["model"], cw + " (model)");
  r.tokenizer = ClassTokenizer(ck.vocab);
  XLSTM_CHECK(r.tokenizer.rows() == spec.vocab_rows, ValueError, cw, ": vocab_rows ",
              spec.vocab_rows, " does not match vocab.json's ", r.tokenizer.vocab().size(),
              " symbols + 1");
  r.model = std::make_unique<Classifier>(spec, cw, 0);
  r.model->load_params(ck.model, r.dir + "/model.safetensors");
  return r;
}

}  // namespace xlstm
