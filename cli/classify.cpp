// `xlstm classify` (classify texts with a trained classifier, from a file or streamed) and the
// `--task classify` branch of `xlstm train`.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/util.h"
#include "io/atomic_file.h"
#include "io/json_config.h"
#include "models/backbone.h"
#include "models/presets.h"
#include "tasks/classify.h"
#include "train/trainer.h"

namespace xlstm::cli {

// ------------------------------------------------------------------ xlstm train --task classify

struct ClassifyTrainFlags {
  std::string val, pool = "mean", class_weights = "none";
  int64_t max_len = 512, min_count = 1;
  bool bidirectional = false;
};

std::shared_ptr<ClassifyTrainFlags> add_classify_train_flags(CLI::App* s) {
  auto f = std::make_shared<ClassifyTrainFlags>();
  const char* g = "Classification (--task classify)";
  s->add_option("--val", f->val,
                "classify: validation file (CSV or JSONL with text,label); default: a stratified "
                "--val-fraction of --data")->group(g);
  s->add_option("--pool", f->pool, "classify: mean (over valid steps) or last (final state)")
      ->capture_default_str()->group(g);
  s->add_option("--class-weights", f->class_weights,
                "classify: none, auto (n / (C n_c)), w1,w2,... in sorted class order, or "
                "name=w,...")->capture_default_str()->group(g);
  s->add_option("--max-len", f->max_len,
                "classify: training texts are cut to their first N tokens (inference runs any "
                "length)")->capture_default_str()->group(g);
  s->add_option("--min-count", f->min_count,
                "classify: char vocab keeps characters seen at least N times (others map to "
                "'unknown')")->capture_default_str()->group(g);
  s->add_flag("--bidirectional", f->bidirectional,
              "classify: bidirectional LSTM (lstm-* models only)")->group(g);
  return f;
}

int run_classify_train(const CLI::App& s, const ClassifyTrainFlags& f, const TrainConfig& t,
                       const std::string& model, const ModelOverrides& ov,
                       const std::string& config_file, bool resume, bool quiet) {
  auto given = [&](const char* flag) { return s.count(flag) > 0; };
  ClassifyTrainConfig c;
  c.data = t.data;
  c.val = f.val;
  c.out = t.out;
  c.stop_at = t.stop_at;
  if (resume) c.steps = t.steps;  // on resume only a larger --steps applies: it extends the run
  nlohmann::json bb;
  if (resume) {
    note_flags_ignored_on_resume(given,
                                 {"--vocab", "--pool", "--class-weights", "--max-len",
                                  "--min-count", "--epochs", "--bidirectional"},
                                 c.out, quiet);
  } else {
    c.vocab = t.vocab;
    c.pool = parse_pool(f.pool);
    c.class_weights = f.class_weights;
    if (given("--val-fraction")) c.val_fraction = t.val_fraction;
    if (given("--batch-size")) c.batch_size = t.batch_size;
    c.max_len = f.max_len;
    c.min_count = f.min_count;
    if (given("--epochs")) c.epochs = s.get_option("--epochs")->as<int64_t>();
    copy_common_train_flags(t, given, c);
    if (!config_file.empty()) {
      bb = json_cfg::read_file(config_file);
      json_cfg::check_object(bb, config_file);
      if (f.bidirectional) bb["bidirectional"] = true;
    } else {
      bb = backbone_preset(model, ov, f.bidirectional);
    }
  }
  const bool tty = ::isatty(2);
  auto progress = [&](const ClassifyProgress& p) {
    if (quiet) return;
    char line[256], val[64] = "-";
    const int width = 24;
    const int fill = p.total_steps ? (int)(width * p.step / p.total_steps) : 0;
    std::string bar = std::string((size_t)fill, '#') + std::string((size_t)(width - fill), '.');
    if (p.val_loss >= 0)
      std::snprintf(val, sizeof val, "%.4f acc %.3f F1 %.3f", p.val_loss, p.val_accuracy, p.val_f1);
    std::snprintf(line, sizeof line, "[%s] step %lld/%lld  loss %.4f  val %s  %.0f seq/s  ETA %s",
                  bar.c_str(), (long long)p.step, (long long)p.total_steps, p.loss, val,
                  p.seqs_per_s, fmt_duration(p.eta_s).c_str());
    if (tty) std::fprintf(stderr, "\r%s\033[K%s", line, p.eval ? "\n" : "");
    else if (p.eval) std::fprintf(stderr, "%s\n", line);
    std::fflush(stderr);
  };
  ClassifyTrainResult r = train_classifier(c, bb, progress, resume);
  if (tty && !quiet) std::fprintf(stderr, "\n");
  std::printf("trained %lld steps (%s) in %s: %lld parameters, %lld train / %lld validation rows\n",
              (long long)r.steps, r.stop_reason.c_str(), fmt_duration(r.seconds).c_str(),
              (long long)r.params, (long long)r.train_rows, (long long)r.val_rows);
  std::printf("classes:");
  for (size_t k = 0; k < r.classes.size(); ++k)
    std::printf(" %s (weight %.3g)", r.classes[k].c_str(), r.class_weights[k]);
  std::printf("\n");
  if (r.val.n > 0)
    std::printf("\nvalidation, best model (texts cut to --max-len %lld):\n%s\n", (long long)r.max_len,
                format_metrics(r.val, r.classes).c_str());
  std::printf("best model: %s\ncheckpoint: %s\nmetrics:    %s\nplot:       %s\n", r.best_dir.c_str(),
              r.checkpoint_dir.c_str(), r.metrics_csv.c_str(), r.plot_png.c_str());
  std::printf("classify:   build/xlstm classify --checkpoint %s --input FILE\n", c.out.c_str());
  return 0;
}

// --------------------------------------------------------------------------- xlstm classify

namespace {

// Length of the longest prefix of s that does not end inside a UTF-8 sequence.
size_t utf8_complete_prefix(const std::string& s) {
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const unsigned char c = (unsigned char)s[n - back];
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string r = "\"";
  for (char ch : s) r += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return r + "\"";
}

// Stateful classification of documents read from `in` in chunks (constant memory).
int run_stream(LoadedClassifier& lc, std::FILE* in, const std::string& name, const std::string& sep,
               int64_t chunk_bytes) {
  Classifier& m = *lc.model;
  const auto& classes = m.spec().classes;
  const bool byte = lc.tokenizer.vocab().kind() == VocabKind::Byte;
  ClassifyStream st = m.new_stream();
  std::string pending;
  std::vector<int64_t> ids;
  std::vector<char> buf((size_t)chunk_bytes);
  int64_t doc = 1, offset = 0;
  auto feed = [&](const std::string& piece) {
    if (piece.empty()) return;
    ids.clear();
    lc.tokenizer.encode(piece, ids, str(name, ": document ", doc, " near byte ", offset));
    m.feed(st, ids.data(), (int64_t)ids.size());
  };
  auto finish = [&] {
    if (st.n > 0) {
      std::vector<float> l = m.stream_logits(st);
      const int64_t k = (int64_t)(std::max_element(l.begin(), l.end()) - l.begin());
      double z = 0;
      for (float v : l) z += std::exp((double)v - l[(size_t)k]);
      std::printf("%lld\t%s\t%.4f\t%lld\n", (long long)doc, classes[(size_t)k].c_str(), 1.0 / z,
                  (long long)st.n);
      std::fflush(stdout);
      st = m.new_stream();
    }
    ++doc;
  };
  std::printf("document\tpredicted\tprobability\ttokens\n");
  bool eof = false;
  while (!eof) {
    const size_t got = std::fread(buf.data(), 1, buf.size(), in);
    XLSTM_CHECK(!std::ferror(in), IoError, name, ": read failed");
    eof = got < buf.size();
    pending.append(buf.data(), got);
    for (;;) {
      const size_t pos = sep.empty() ? std::string::npos : pending.find(sep);
      if (pos == std::string::npos) break;
      feed(pending.substr(0, pos));
      offset += (int64_t)(pos + sep.size());
      pending.erase(0, pos + sep.size());
      finish();
    }
    // keep what may start a separator or end inside a UTF-8 character for the next read
    size_t keep = eof ? 0 : std::min(pending.size(), sep.empty() ? 0 : sep.size() - 1);
    size_t cut = pending.size() - keep;
    if (!byte && !eof) cut = utf8_complete_prefix(pending.substr(0, cut));
    feed(pending.substr(0, cut));
    offset += (int64_t)cut;
    pending.erase(0, cut);
  }
  finish();
  return 0;
}

}  // namespace

void add_classify(CLI::App& app, std::function<int()>& run) {
  struct Opts {
    std::string checkpoint, input, out, doc_sep = "\\n";
    int64_t batch_size = 64, max_len = 0, chunk = -1, read_bytes = 65536;
    bool stream = false;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* s = app.add_subcommand(
      "classify",
      "Classify texts with a model trained by `xlstm train --task classify`: every row of "
      "--input (CSV or JSONL with a text field), or documents streamed from stdin (--stream). "
      "With labels in the input it also prints accuracy, macro-F1 and the confusion matrix.");
  s->add_option("--checkpoint", o->checkpoint, "checkpoint or run directory (uses best/)")->required();
  s->add_option("--input", o->input,
                "CSV or JSONL with a text field (and optionally label); with --stream a raw "
                "text file (default stdin)");
  s->add_option("--out", o->out, "write the predictions as CSV (line, predicted, probability, "
                                 "label) instead of printing them");
  s->add_option("--batch-size", o->batch_size, "rows per forward pass")->capture_default_str();
  s->add_option("--max-len", o->max_len, "cut texts to their first N tokens (0 = whole text)")
      ->capture_default_str();
  s->add_option("--chunk", o->chunk,
                "unidirectional models read longer texts in chunks of N tokens with the carried "
                "state (default: the checkpoint's, 2048)");
  s->add_flag("--stream", o->stream,
              "stateful classification of raw text from stdin (or --input) in constant memory: "
              "one prediction per document (see --doc-sep)");
  s->add_option("--doc-sep", o->doc_sep,
                "with --stream: the string that ends a document (escapes \\n \\t; \"\" = the "
                "whole input is one document)")->capture_default_str();
  s->add_option("--threads", o->threads, "CPU threads (default: OMP_NUM_THREADS or all cores)");
  s->callback([o, &run] {
    run = [o]() -> int {
      set_threads(o->threads);
      XLSTM_CHECK(o->batch_size >= 1 && o->max_len >= 0, ValueError,
                  "--batch-size must be >= 1 and --max-len >= 0");
      LoadedClassifier lc = load_classifier(o->checkpoint);
      Classifier& m = *lc.model;
      if (o->chunk != -1) m.set_chunk(o->chunk);
      Classifier& model = m;
      const auto& classes = model.spec().classes;
      if (o->stream) {
        const std::string sep = unescape_flag(o->doc_sep);
        std::FILE* in = stdin;
        if (!o->input.empty()) {
          in = std::fopen(o->input.c_str(), "rb");
          XLSTM_CHECK(in, IoError, o->input, ": cannot open for reading");
        }
        const int rc = run_stream(lc, in, o->input.empty() ? "stdin" : o->input, sep, o->read_bytes);
        if (in != stdin) std::fclose(in);
        return rc;
      }
      XLSTM_CHECK(!o->input.empty(), ValueError, "--input FILE is required (or --stream)");
      // Validate everything first (labels, encoding), then predict, then print.
      const LabeledTexts d = read_labeled_texts(o->input, false);
      std::string all;
      for (auto& c : classes) all += (all.empty() ? "" : ", ") + c;
      std::vector<int64_t> truth;
      if (d.has_labels)
        for (int64_t r = 0; r < d.size(); ++r) {
          const int64_t k = class_index(classes, d.labels[(size_t)r]);
          XLSTM_CHECK(k >= 0, ValueError, o->input, ": line ", d.lines[(size_t)r], ": label '",
                      d.labels[(size_t)r], "' is not one of the model's classes (", all, ")");
          truth.push_back(k);
        }
      std::vector<std::vector<int64_t>> seqs((size_t)d.size());
      for (int64_t r = 0; r < d.size(); ++r) {
        lc.tokenizer.encode(d.texts[(size_t)r], seqs[(size_t)r],
                            str(o->input, ": line ", d.lines[(size_t)r]));
        if (o->max_len > 0 && (int64_t)seqs[(size_t)r].size() > o->max_len)
          seqs[(size_t)r].resize((size_t)o->max_len);
      }
      const auto logits = model.predict_logits(seqs, o->batch_size);
      std::vector<int64_t> pred;
      std::vector<double> prob;
      for (auto& l : logits) {
        const int64_t k = (int64_t)(std::max_element(l.begin(), l.end()) - l.begin());
        double z = 0;
        for (float v : l) z += std::exp((double)v - l[(size_t)k]);
        pred.push_back(k);
        prob.push_back(1.0 / z);
      }
      std::string csv = "line,predicted,probability";
      if (d.has_labels) csv += ",label";
      csv += "\n";
      for (int64_t r = 0; r < d.size(); ++r) {
        char p[32];
        std::snprintf(p, sizeof p, "%.4f", prob[(size_t)r]);
        csv += str(d.lines[(size_t)r], ",", csv_cell(classes[(size_t)pred[(size_t)r]]), ",", p);
        if (d.has_labels) csv += "," + csv_cell(d.labels[(size_t)r]);
        csv += "\n";
      }
      if (!o->out.empty()) {
        write_file_atomic(o->out, csv);
        std::printf("predictions: %s (%lld rows)\n", o->out.c_str(), (long long)d.size());
      } else {
        std::fputs(csv.c_str(), stdout);
      }
      if (d.has_labels) {
        const ClassMetrics cm = class_metrics(truth, pred, (int64_t)classes.size());
        std::printf("%s%s", o->out.empty() ? "\n" : "", format_metrics(cm, classes).c_str());
      }
      return 0;
    };
  });
}

}  // namespace xlstm::cli
