// Sequence classification of texts: `xlstm train --task classify` and `xlstm classify`.
//
// Data: CSV or JSON Lines with the fields `text` and `label` (data/table.h). Texts become token
// ids of a char (code point) or byte vocabulary; id 0 stands for symbols outside the vocabulary
// (and fills the padding), ids 1..V for the vocabulary's symbols. Classes are the distinct
// labels of the training file, sorted.
//
// Model: embedding (V+1, E) -> backbone (models/backbone.h: LSTM, bi-LSTM, sLSTM, mLSTM,
// xLSTM[a:b]) -> masked pooling over each row's valid steps -> linear head (C classes):
//   mean: the mean of the backbone outputs over the row's valid steps;
//   last: the output at the row's last valid step (bidirectional: the forward half at the last
//         step and the reverse half at the first, i.e. both directions' final states).
// Batches are padded at the end with their lengths; padded steps change no output, loss or
// gradient (the backbone's guarantee, tested there).
//
// Length generalisation: inference runs any length. Unidirectional models consume sequences
// longer than `chunk` steps in chunks with the carried state (memory independent of the
// length; same outputs as one pass), which is also how `--stream` classifies unbounded input.
//
// Loss: softmax cross-entropy per row with class weights w: sum_b w[y_b] CE_b / sum_b w[y_b]
// (torch.nn.CrossEntropyLoss(weight=w)). "auto" weights are n / (C n_c) ("balanced").
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/text.h"
#include "models/backbone.h"

namespace xlstm {

enum class Pool { Mean, Last };
Pool parse_pool(const std::string& s);  // "mean" | "last"; ValueError otherwise
const char* pool_name(Pool p);

// ---- data ----------------------------------------------------------------------------------

// Rows of a classification file. labels[i] is "" when the file has no label column / field.
struct LabeledTexts {
  std::string path;
  std::vector<std::string> texts, labels;
  std::vector<int64_t> lines;  // 1-based line of each row in the file
  bool has_labels = false;
  int64_t size() const { return (int64_t)texts.size(); }
};
// Reads `text` and `label` columns (CSV) or fields (JSONL). ValueError naming the file and line
// for: no rows, an empty text, a missing label (`labels_required`, or when other rows have one).
LabeledTexts read_labeled_texts(const std::string& path, bool labels_required);

// Text -> ids with id 0 for unknown symbols. Char vocab: the code points of the training texts
// that occur at least `min_count` times.
class ClassTokenizer {
 public:
  ClassTokenizer() = default;
  explicit ClassTokenizer(Vocab v);
  static ClassTokenizer build(VocabKind kind, const std::vector<std::string>& texts,
                              int64_t min_count, const std::string& where);
  const Vocab& vocab() const { return vocab_; }
  int64_t rows() const { return vocab_.size() + 1; }  // embedding rows (V + 1)
  // Appends the ids of `text`. Char vocab: ValueError naming `where` for invalid UTF-8.
  void encode(const std::string& text, std::vector<int64_t>& out, const std::string& where) const;

 private:
  Vocab vocab_;
  std::vector<int32_t> index_;  // char: code point -> vocab id, -1 absent
};

// Class names and per-class weights.
int64_t class_index(const std::vector<std::string>& classes, const std::string& label);  // -1 absent
// "none" -> all 1; "auto" -> n / (C n_c); "w1,w2,..." in class order; "name=w,..." by name
// (unnamed classes 1). ValueError for a bad list (wrong count, unknown name, w <= 0).
std::vector<double> parse_class_weights(const std::string& s, const std::vector<std::string>& classes,
                                        const std::vector<int64_t>& counts);

// Weighted softmax cross-entropy over B rows (see the top): logits (B,C) read; y (B) read;
// dlogits (B,C) written (gradient of the returned loss), may be null. Computed in double.
double weighted_xent(int64_t B, int64_t C, const float* logits, const int64_t* y,
                     const std::vector<double>& w, float* dlogits);

// ---- metrics -------------------------------------------------------------------------------

struct ClassMetrics {
  int64_t n = 0;
  double accuracy = 0, macro_f1 = 0;
  std::vector<double> precision, recall, f1;  // per class (0 when undefined)
  std::vector<int64_t> support;               // true rows per class
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
};
// Macro-F1 averages F1 over the classes that occur among the true or predicted labels.
ClassMetrics class_metrics(const std::vector<int64_t>& truth, const std::vector<int64_t>& pred,
                           int64_t C);
// Accuracy, macro-F1, a per-class table and the confusion matrix, as text.
std::string format_metrics(const ClassMetrics& m, const std::vector<std::string>& classes);

// ---- model ---------------------------------------------------------------------------------

struct ClassifierSpec {
  nlohmann::json backbone;        // models/backbone.h config
  int64_t vocab_rows = 0;         // V + 1
  int64_t embedding_dim = 0;      // E
  Pool pool = Pool::Mean;
  std::vector<std::string> classes;
  int64_t max_len = 512;          // training truncation (inference runs any length)
  int64_t chunk = 2048;           // inference chunk length for unidirectional models
  nlohmann::json to_json() const;  // {"task": "classify", ...}
  static ClassifierSpec from_json(const nlohmann::json& j, const std::string& where);
};

// Streaming state of one sequence: carried backbone state and the pooling accumulators.
struct ClassifyStream {
  std::unique_ptr<BackboneState> state;
  std::vector<double> sum;   // mean pool: sum of outputs so far
  std::vector<float> last;   // last pool: the latest output
  int64_t n = 0;             // steps consumed
};

class Classifier : public Module {
 public:
  // Throws ValueError naming `where` for a bad spec. Deterministic init from `seed`.
  Classifier(const ClassifierSpec& spec, const std::string& where, uint64_t seed);
  const ClassifierSpec& spec() const { return spec_; }
  int64_t num_classes() const { return (int64_t)spec_.classes.size(); }
  Backbone& backbone() { return *bb_; }
  // Inference chunk length for unidirectional models (ValueError if < 1).
  void set_chunk(int64_t chunk);
  void collect_params(const std::string& prefix, std::vector<ParamRef>& out) override;
  void reset_parameters(Rng& rng);

  // ids (B,S) I64 in [0, V+1), lengths (B) I64 in [1, S] (undefined = all S) -> logits (B,C)
  // F32 (written). Keeps what backward needs. rng: dropout draws in Mode::Train.
  Tensor forward(const Tensor& ids, const Tensor& lengths, Mode mode, Rng* rng);
  // dlogits (B,C) F32; parameter gradients accumulated.
  void backward(const Tensor& dlogits);

  // Inference over one unbounded sequence (unidirectional models): feed ids in pieces of any
  // size (each piece in chunks of at most spec().chunk steps), then read the logits (C).
  ClassifyStream new_stream() const;
  void feed(ClassifyStream& s, const int64_t* ids, int64_t n);
  std::vector<float> stream_logits(const ClassifyStream& s);
  // Logits (C per sequence) for any number of sequences of any lengths >= 1: sequences up to
  // `chunk` steps (all, when bidirectional) in length-sorted padded batches of up to
  // `batch_size`; longer ones of a unidirectional model one at a time through the stream.
  std::vector<std::vector<float>> predict_logits(const std::vector<std::vector<int64_t>>& seqs,
                                                 int64_t batch_size);

 private:
  std::vector<float> head(const std::vector<float>& pooled);  // (F) -> (C)
  ClassifierSpec spec_;
  std::unique_ptr<Backbone> bb_;
  int64_t E_, F_, C_;
  Tensor w_emb_, dw_emb_, w_head_, dw_head_, b_head_, db_head_;
  int64_t B_ = 0, S_ = 0;
  std::vector<int64_t> ids_, len_;
  std::vector<float> pooled_;  // (B, F)
  std::vector<double> acc_;    // (F) mean-pool scratch
};

// A trained classifier and its tokenizer, from a checkpoint or run directory.
struct LoadedClassifier {
  std::unique_ptr<Classifier> model;
  ClassTokenizer tokenizer;
  std::string dir;
};
LoadedClassifier load_classifier(const std::string& path);

// ---- training ------------------------------------------------------------------------------

struct ClassifyTrainConfig {
  std::string data, val, out, vocab = "char", class_weights = "none";
  Pool pool = Pool::Mean;
  double val_fraction = 0.1;      // stratified random split of --data when no --val
  int64_t batch_size = 32, max_len = 512, min_count = 1;
  int64_t steps = 0, epochs = 10; // steps > 0 wins over epochs
  double minutes = 0;             // wall-clock budget (0 = none)
  std::string optimizer = "adamw", schedule = "cosine";
  double lr = 2e-3, min_lr = -1, weight_decay = 0.1, clip = 1.0;
  int64_t warmup = 50, eval_every = 100, log_every = 10, patience = 0;
  uint64_t seed = 1337;
  int64_t stop_at = 0;            // stop after this step as if interrupted, with a validation
                                  // and a checkpoint there (0 = off; not part of the settings)
  nlohmann::json to_json() const;
  // The fields of to_json(); ValueError naming `where` and the field.
  static ClassifyTrainConfig from_json(const nlohmann::json& j, const std::string& where);
};

struct ClassifyProgress {
  int64_t step = 0, total_steps = 0;
  double loss = 0, lr = 0, val_loss = -1, val_accuracy = -1, val_f1 = -1, eta_s = -1,
         seqs_per_s = 0;
  bool eval = false;
};

struct ClassifyTrainResult {
  int64_t steps = 0, params = 0, train_rows = 0, val_rows = 0;
  double seconds = 0, final_loss = 0, best_val_f1 = -1;
  std::string stop_reason;
  std::vector<std::string> classes;
  std::vector<double> class_weights;
  ClassMetrics val;  // of the best model (empty without a validation set)
  int64_t max_len = 0;  // the run's --max-len (from the checkpoint when resumed)
  std::string best_dir, checkpoint_dir, metrics_csv, plot_png;
};

// Trains, keeping the model with the best validation macro-F1 (ties: lower validation loss) in
// <out>/best and the latest in <out>/checkpoint. `backbone` is a backbone JSON config.
//
// resume = true continues the run in cfg.out from its checkpoint/ (the other fields of cfg and
// backbone are not used, except cfg.data / cfg.val when non-empty: the same files, moved); the
// data must give the vocabulary the checkpoint holds. The optimizer, the batch and dropout
// streams, the position in the current epoch, the best model so far and the early-stopping
// counter are restored and metrics rows after the checkpoint's step dropped, so an interrupted
// and resumed run ends with the weights and rows of the uninterrupted one. The number of steps
// is the run's (also when --minutes chose it); --minutes counts this invocation's time.
ClassifyTrainResult train_classifier(const ClassifyTrainConfig& cfg, const nlohmann::json& backbone,
                                     const std::function<void(const ClassifyProgress&)>& progress,
                                     bool resume = false);

}  // namespace xlstm
