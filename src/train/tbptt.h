// Truncated backpropagation through time (`xlstm train --tbptt K`): B parallel streams read a
// long token sequence in consecutive windows of K steps; each stream's recurrent state is
// carried (detached: a constant for backward) from one window to the next and reset to zeros at
// document boundaries.
//
// Streams: stream b reads the contiguous segment [b n / B, (b+1) n / B) of the n tokens (as
// torch's "batchify"); when it reaches the segment's end it wraps to the segment's start, with a
// reset. Window: inputs tokens[p .. p+K), targets tokens[p+1 .. p+K+1) of the stream position p.
//
// Documents: `doc_starts` lists the token positions where a document begins. A window never
// crosses a document's end: it stops at the document's last input whose target is still inside
// the document and pads the rest of the row (input id 0, target -1 = ignored by the loss); the
// next window of that stream starts the next document from a zero state. Causal models make the
// padding harmless: padded steps come after every valid one.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/lm.h"
#include "xlstm/tensor.h"

namespace xlstm {

class StreamSampler {
 public:
  struct Window {
    Tensor ids;      // (B, K) I64, written
    Tensor targets;  // (B, K) I64, -1 where ignored
    std::vector<int64_t> reset;  // rows whose state must start from zeros
  };
  // ValueError naming `what` when B < 1, K < 1, or a segment has fewer than 2 tokens.
  // doc_starts: ascending positions in [0, n) (0 is implied).
  StreamSampler(std::shared_ptr<const std::vector<int32_t>> tokens, int64_t B, int64_t K,
                std::vector<int64_t> doc_starts, const std::string& what);
  void next(Window& w);
  int64_t batch_size() const { return B_; }
  int64_t window() const { return K_; }
  // Positions and pending resets as an I64 (B, 2) tensor for checkpoints; load_state validates.
  Tensor state_tensor() const;
  void load_state(const Tensor& t, const std::string& where);

 private:
  int64_t doc_end(int64_t p) const;  // first document start > p (or n)
  std::shared_ptr<const std::vector<int32_t>> tokens_;
  int64_t B_, K_, n_;
  std::vector<int64_t> starts_;           // sorted document starts, 0 first
  std::vector<int64_t> seg_lo_, seg_hi_;  // per stream
  std::vector<int64_t> pos_;              // next input position per stream
  std::vector<uint8_t> reset_;            // the next window starts from zeros
};

// Positions right after every occurrence of `sep` (the separator ends the document it closes),
// plus 0. An empty `sep` gives {0}.
std::vector<int64_t> document_starts(const std::vector<int32_t>& tokens, const std::vector<int32_t>& sep);

// The TBPTT part of a training step: the sampler and the carried state of one model.
class TbpttRunner {
 public:
  TbpttRunner(LanguageModel& model, std::unique_ptr<StreamSampler> sampler);
  // One micro-batch: the next window; rows to reset get a zero state; forward from the carried
  // state (which advances); mean cross-entropy over the counted targets; backward with the
  // gradient scaled by `scale`. Returns the mean loss.
  double micro_step(Mode mode, double scale, Rng* rng);
  // Checkpoint tensors: "tbptt.sampler" and "tbptt.state.<name>" (the exported carried state).
  void save(std::map<std::string, Tensor>& out) const;
  // Restores them from `in` and erases them there (IoError naming `where` if absent).
  void load(std::map<std::string, Tensor>& in, const std::string& where);
  int64_t tokens_per_step() const { return sampler_->batch_size() * sampler_->window(); }

 private:
  LanguageModel& model_;
  std::unique_ptr<StreamSampler> sampler_;
  std::unique_ptr<LMState> state_;
  StreamSampler::Window w_;
  Tensor dlogits_;
};

}  // namespace xlstm
