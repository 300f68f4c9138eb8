#include "train/tbptt.h"

#include <algorithm>
#include <cstring>

#include "cpu/xent.h"

namespace xlstm {

StreamSampler::StreamSampler(std::shared_ptr<const std::vector<int32_t>> tokens, int64_t B,
                             int64_t K, std::vector<int64_t> doc_starts, const std::string& what)
    : tokens_(std::move(tokens)), B_(B), K_(K) {
  XLSTM_CHECK(B >= 1 && K >= 1, ValueError, "[tbptt] batch size and --tbptt must be >= 1, got ",
              B, " and ", K);
  n_ = (int64_t)tokens_->size();
  XLSTM_CHECK(n_ / B >= 2, ValueError, what, " has ", n_, " tokens, too few for ", B,
              " streams of at least 2 tokens; hint: a smaller --batch-size");
  starts_.push_back(0);
  for (int64_t s : doc_starts)
    if (s > 0 && s < n_) starts_.push_back(s);
  std::sort(starts_.begin(), starts_.end());
  starts_.erase(std::unique(starts_.begin(), starts_.end()), starts_.end());
  for (int64_t b = 0; b < B; ++b) {
    seg_lo_.push_back(b * n_ / B);
    seg_hi_.push_back((b + 1) * n_ / B);
  }
  pos_ = seg_lo_;
  reset_.assign((size_t)B, 1);
}

int64_t StreamSampler::doc_end(int64_t p) const {
  auto it = std::upper_bound(starts_.begin(), starts_.end(), p);
  return it == starts_.end() ? n_ : *it;
}

void StreamSampler::next(Window& w) {
  if (!w.ids.defined() || w.ids.shape() != Shape({B_, K_})) {
    w.ids = Tensor({B_, K_}, DType::I64);
    w.targets = Tensor({B_, K_}, DType::I64);
  }
  w.reset.clear();
  const int32_t* tok = tokens_->data();
  for (int64_t b = 0; b < B_; ++b) {
    int64_t* x = w.ids.data<int64_t>() + b * K_;
    int64_t* y = w.targets.data<int64_t>() + b * K_;
    // the last input of this window: its target must lie in the document and the segment
    int64_t p = pos_[(size_t)b], L = 0;
    for (int tries = 0; tries < 3 && L < 1; ++tries) {
      const int64_t end = std::min(doc_end(p), seg_hi_[(size_t)b]);  // exclusive
      L = std::min(K_, end - 1 - p);
      if (L < 1) {  // nothing to predict here: the next document, or wrap
        p = end >= seg_hi_[(size_t)b] ? seg_lo_[(size_t)b] : end;
        reset_[(size_t)b] = 1;
      }
    }
    XLSTM_ASSERT(L >= 1);
    if (reset_[(size_t)b]) w.reset.push_back(b);
    for (int64_t t = 0; t < K_; ++t) {
      x[t] = t < L ? tok[p + t] : 0;
      y[t] = t < L ? tok[p + t + 1] : -1;
    }
    const int64_t end = std::min(doc_end(p), seg_hi_[(size_t)b]);
    p += L;
    reset_[(size_t)b] = 0;
    if (p >= end - 1) {  // the document (or segment) is used up: next one from zeros
      p = end >= seg_hi_[(size_t)b] ? seg_lo_[(size_t)b] : end;
      reset_[(size_t)b] = 1;
    }
    pos_[(size_t)b] = p;
  }
}

Tensor StreamSampler::state_tensor() const {
  Tensor t({B_, 2}, DType::I64);
  for (int64_t b = 0; b < B_; ++b) {
    t.data<int64_t>()[2 * b] = pos_[(size_t)b];
    t.data<int64_t>()[2 * b + 1] = reset_[(size_t)b];
  }
  return t;
}

void StreamSampler::load_state(const Tensor& t, const std::string& where) {
  XLSTM_CHECK(t.dtype() == DType::I64 && t.shape() == Shape({B_, 2}), ValueError, where,
              ": 'tbptt.sampler' must be (", B_, ",2) I64, got ", shape_str(t.shape()));
  for (int64_t b = 0; b < B_; ++b) {
    const int64_t p = t.data<int64_t>()[2 * b], r = t.data<int64_t>()[2 * b + 1];
    XLSTM_CHECK(p >= seg_lo_[(size_t)b] && p < seg_hi_[(size_t)b] && (r == 0 || r == 1), ValueError,
                where, ": 'tbptt.sampler' row ", b, " is outside stream ", b,
                "'s segment (was the data changed?)");
    pos_[(size_t)b] = p;
    reset_[(size_t)b] = (uint8_t)r;
  }
}

std::vector<int64_t> document_starts(const std::vector<int32_t>& tokens,
                                     const std::vector<int32_t>& sep) {
  std::vector<int64_t> r = {0};
  if (sep.empty()) return r;
  auto it = tokens.begin();
  for (;;) {
    it = std::search(it, tokens.end(), sep.begin(), sep.end());
    if (it == tokens.end()) break;
    it += (long)sep.size();
    if (it != tokens.end()) r.push_back(it - tokens.begin());
  }
  return r;
}

// ---- runner ------------------------------------------------------------------------------------

TbpttRunner::TbpttRunner(LanguageModel& model, std::unique_ptr<StreamSampler> sampler)
    : model_(model), sampler_(std::move(sampler)) {
  state_ = model_.new_state(sampler_->batch_size());
}

double TbpttRunner::micro_step(Mode mode, double scale, Rng* rng) {
  sampler_->next(w_);
  if (!w_.reset.empty()) {  // zero those rows of the carried state
    auto t = model_.export_state(*state_);
    if (!t.empty()) {
      for (auto& [name, v] : t) {
        Tensor c = v.clone();
        const size_t row = c.nbytes() / (size_t)c.dim(0);
        for (int64_t b : w_.reset) std::memset(static_cast<char*>(c.raw()) + (size_t)b * row, 0, row);
        v = c;
      }
      state_ = model_.import_state(t, "[tbptt] carried state");
    }
  }
  const int64_t B = sampler_->batch_size(), K = sampler_->window(), V = model_.vocab_size();
  Tensor logits = model_.forward_carry(w_.ids, mode, rng, *state_);
  if (!dlogits_.defined()) dlogits_ = Tensor({B, K, V}, DType::F32);
  const double l = xent_forward_backward<float>(B * K, V, logits.data<float>(),
                                                w_.targets.data<int64_t>(), -1,
                                                dlogits_.data<float>(), scale);
  model_.backward(dlogits_);
  return l;
}

void TbpttRunner::save(std::map<std::string, Tensor>& out) const {
  out["tbptt.sampler"] = sampler_->state_tensor();
  for (auto& [name, v] : model_.export_state(*state_)) out["tbptt.state." + name] = v.clone();
}

void TbpttRunner::load(std::map<std::string, Tensor>& in, const std::string& where) {
  XLSTM_CHECK(in.count("tbptt.sampler"), IoError, where,
              ": missing tensor 'tbptt.sampler' (this run was not trained with --tbptt)");
  sampler_->load_state(in["tbptt.sampler"], where);
  in.erase("tbptt.sampler");
  std::map<std::string, Tensor> st;
  const std::string p = "tbptt.state.";
  for (auto it = in.begin(); it != in.end();) {
    if (it->first.compare(0, p.size(), p) == 0) {
      st[it->first.substr(p.size())] = it->second;
      it = in.erase(it);
    } else {
      ++it;
    }
  }
  state_ = st.empty() ? model_.new_state(sampler_->batch_size()) : model_.import_state(st, where);
}

}  // namespace xlstm
