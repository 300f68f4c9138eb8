// The training loop of `xlstm train --task classify` (tasks/classify.h).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "core/rng_state.h"
#include "io/atomic_file.h"
#include "io/json_config.h"
#include "io/metrics.h"
#include "models/lm.h"
#include "tasks/classify.h"
#include "train/checkpoint.h"
#include "train/clip.h"
#include "train/optim.h"
#include "train/schedule.h"
#include "train/trainer.h"
#include "viz/loss_plot.h"

namespace xlstm {

namespace fs = std::filesystem;
using json = nlohmann::json;

json ClassifyTrainConfig::to_json() const {
  return {{"task", "classify"},   {"data", data},           {"val", val},
          {"vocab", vocab},       {"class_weights", class_weights}, {"pool", pool_name(pool)},
          {"val_fraction", val_fraction}, {"batch_size", batch_size}, {"max_len", max_len},
          {"min_count", min_count}, {"steps", steps},       {"epochs", epochs},
          {"minutes", minutes},   {"optimizer", optimizer}, {"schedule", schedule},
          {"lr", lr},             {"min_lr", min_lr},       {"weight_decay", weight_decay},
          {"clip", clip},         {"warmup", warmup},       {"eval_every", eval_every},
          {"log_every", log_every}, {"patience", patience}, {"seed", seed}};
}

ClassifyTrainConfig ClassifyTrainConfig::from_json(const json& j, const std::string& w) {
  using namespace json_cfg;
  check_object(j, w);
  ClassifyTrainConfig c;
  c.data = get_string(j, "data", w);
  c.val = get_string(j, "val", w, c.val);
  c.vocab = get_string(j, "vocab", w, c.vocab);
  c.class_weights = get_string(j, "class_weights", w, c.class_weights);
  c.pool = parse_pool(get_enum(j, "pool", w, {"mean", "last"}));
  c.val_fraction = get_number(j, "val_fraction", w, c.val_fraction);
  c.batch_size = get_int(j, "batch_size", w, c.batch_size);
  c.max_len = get_int(j, "max_len", w, c.max_len);
  c.min_count = get_int(j, "min_count", w, c.min_count);
  c.epochs = get_int(j, "epochs", w, c.epochs);
  read_common_train_fields(j, w, c);
  return c;
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void validate(const ClassifyTrainConfig& c) {
  XLSTM_CHECK(!c.data.empty(), ValueError, "--data FILE is required");
  XLSTM_CHECK(!c.out.empty(), ValueError, "--out DIR is required");
  XLSTM_CHECK(c.batch_size >= 1, ValueError, "--batch-size must be >= 1, got ", c.batch_size);
  XLSTM_CHECK(c.max_len >= 1, ValueError, "--max-len must be >= 1, got ", c.max_len);
  XLSTM_CHECK(c.steps >= 0 && c.epochs >= 0 && c.minutes >= 0, ValueError,
              "--steps, --epochs and --minutes must be >= 0");
  XLSTM_CHECK(c.val_fraction >= 0 && c.val_fraction < 1, ValueError,
              "--val-fraction must be in [0, 1), got ", c.val_fraction);
  XLSTM_CHECK(c.eval_every >= 1 && c.log_every >= 1, ValueError,
              "--eval-every and --log-every must be >= 1");
  XLSTM_CHECK(std::isfinite(c.lr) && c.lr > 0, ValueError, "--lr must be > 0, got ", c.lr);
  XLSTM_CHECK(c.patience >= 0 && c.warmup >= 0, ValueError, "--patience and --warmup must be >= 0");
}

// Encoded rows: ids (truncated to max_len when > 0) and class indices.
struct Encoded {
  std::vector<std::vector<int64_t>> ids;
  std::vector<int64_t> y;
};

Encoded encode_rows(const LabeledTexts& d, const std::vector<size_t>& rows,
                    const ClassTokenizer& tok, const std::vector<std::string>& classes,
                    int64_t max_len) {
  Encoded e;
  for (size_t r : rows) {
    const std::string where = str(d.path, ": line ", d.lines[r]);
    std::vector<int64_t> ids;
    tok.encode(d.texts[r], ids, where);
    if (max_len > 0 && (int64_t)ids.size() > max_len) ids.resize((size_t)max_len);
    const int64_t c = class_index(classes, d.labels[r]);
    if (c < 0) {
      std::string all;
      for (auto& k : classes) all += (all.empty() ? "" : ", ") + k;
      throw ValueError(str(where, ": label '", d.labels[r],
                           "' does not occur in the training data (classes: ", all, ")"));
    }
    e.ids.push_back(std::move(ids));
    e.y.push_back(c);
  }
  return e;
}

// One epoch's batches: shuffle, then sort runs of 50 batches by length (less padding), then
// shuffle the batch order.
std::vector<std::vector<size_t>> epoch_batches(const Encoded& e, int64_t B, Rng& rng) {
  std::vector<size_t> idx(e.ids.size());
  std::iota(idx.begin(), idx.end(), 0);
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[(size_t)rng.below(i)]);
  const size_t run = (size_t)B * 50;
  for (size_t a = 0; a < idx.size(); a += run) {
    const size_t b = std::min(idx.size(), a + run);
    std::stable_sort(idx.begin() + (long)a, idx.begin() + (long)b,
                     [&](size_t p, size_t q) { return e.ids[p].size() < e.ids[q].size(); });
  }
  std::vector<std::vector<size_t>> batches;
  for (size_t a = 0; a < idx.size(); a += (size_t)B)
    batches.emplace_back(idx.begin() + (long)a, idx.begin() + (long)std::min(idx.size(), a + (size_t)B));
  for (size_t i = batches.size(); i > 1; --i) std::swap(batches[i - 1], batches[(size_t)rng.below(i)]);
  return batches;
}

void make_batch(const Encoded& e, const std::vector<size_t>& rows, Tensor& ids, Tensor& lengths,
                std::vector<int64_t>& y) {
  const int64_t B = (int64_t)rows.size();
  int64_t S = 1;
  for (size_t r : rows) S = std::max<int64_t>(S, (int64_t)e.ids[r].size());
  ids = Tensor({B, S}, DType::I64);
  lengths = Tensor({B}, DType::I64);
  y.resize((size_t)B);
  for (int64_t b = 0; b < B; ++b) {
    const auto& q = e.ids[rows[(size_t)b]];
    std::copy(q.begin(), q.end(), ids.data<int64_t>() + b * S);
    lengths.data<int64_t>()[b] = (int64_t)q.size();
    y[(size_t)b] = e.y[rows[(size_t)b]];
  }
}

struct Eval {
  double loss = 0;
  ClassMetrics m;
};

Eval evaluate(Classifier& model, const Encoded& e, const std::vector<double>& w, int64_t B) {
  auto logits = model.predict_logits(e.ids, B);
  const int64_t C = model.num_classes();
  std::vector<float> flat;
  std::vector<int64_t> pred;
  for (auto& l : logits) {
    flat.insert(flat.end(), l.begin(), l.end());
    pred.push_back((int64_t)(std::max_element(l.begin(), l.end()) - l.begin()));
  }
  Eval r;
  r.loss = weighted_xent((int64_t)logits.size(), C, flat.data(), e.y.data(), w, nullptr);
  r.m = class_metrics(e.y, pred, C);
  return r;
}


json metrics_json(const ClassMetrics& m, const std::vector<std::string>& classes) {
  return {{"rows", m.n},          {"accuracy", m.accuracy}, {"macro_f1", m.macro_f1},
          {"classes", classes},   {"precision", m.precision}, {"recall", m.recall},
          {"f1", m.f1},           {"support", m.support},   {"confusion", m.confusion}};
}

}  // namespace

ClassifyTrainResult train_classifier(const ClassifyTrainConfig& cfg_in, const json& backbone_in,
                                     const std::function<void(const ClassifyProgress&)>& progress,
                                     bool resume) {
  const auto t0 = Clock::now();
  XLSTM_CHECK(!cfg_in.out.empty(), ValueError, "--out DIR is required");
  const std::string out = cfg_in.out, ck_dir = out + "/checkpoint", best_dir = out + "/best";
  ClassifyTrainConfig cfg = cfg_in;
  json backbone = backbone_in;
  Checkpoint ck;  // resume: the checkpoint continued
  int64_t saved_total = 0;
  if (resume) {
    XLSTM_CHECK(fs::exists(ck_dir) || fs::exists(ck_dir + ".old"), IoError, ck_dir,
                ": nothing to resume (no checkpoint in ", out, ")");
    ck = load_checkpoint(ck_dir, true);
    const std::string cw = ck_dir + "/config.json";
    XLSTM_CHECK(ck.config.contains("train") && ck.config.contains("model"), ValueError, cw,
                ": missing field 'train' or 'model'");
    const ClassifierSpec saved = ClassifierSpec::from_json(ck.config["model"], cw + " (model)");
    cfg = ClassifyTrainConfig::from_json(ck.config["train"], cw + " (train)");
    saved_total = json_cfg::get_int(ck.config["train"], "total_steps", cw + " (train)");
    cfg.out = out;
    cfg.stop_at = cfg_in.stop_at;
    if (!cfg_in.data.empty()) cfg.data = cfg_in.data;
    if (!cfg_in.val.empty()) cfg.val = cfg_in.val;
    backbone = saved.backbone;
  } else {
    XLSTM_CHECK(!fs::exists(ck_dir) && !fs::exists(best_dir), IoError, out,
                ": already holds a run; hint: --resume to continue it, or another --out");
  }
  validate(cfg);
  // data
  const LabeledTexts train = read_labeled_texts(cfg.data, true);
  std::vector<std::string> classes = train.labels;
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  XLSTM_CHECK(classes.size() >= 2, ValueError, cfg.data, ": only one class ('", classes[0],
              "') in field 'label'; a classifier needs at least 2");
  std::vector<size_t> tr_rows, va_rows;
  LabeledTexts val;
  if (!cfg.val.empty()) {
    val = read_labeled_texts(cfg.val, true);
    tr_rows.resize((size_t)train.size());
    std::iota(tr_rows.begin(), tr_rows.end(), 0);
    va_rows.resize((size_t)val.size());
    std::iota(va_rows.begin(), va_rows.end(), 0);
  } else {  // stratified split: val_fraction of each class, at random
    Rng rng(cfg.seed + 3);
    for (auto& c : classes) {
      std::vector<size_t> rows;
      for (size_t r = 0; r < train.labels.size(); ++r)
        if (train.labels[r] == c) rows.push_back(r);
      for (size_t i = rows.size(); i > 1; --i) std::swap(rows[i - 1], rows[(size_t)rng.below(i)]);
      size_t nv = (size_t)std::llround(cfg.val_fraction * (double)rows.size());
      if (cfg.val_fraction > 0 && nv == 0 && rows.size() >= 2) nv = 1;
      va_rows.insert(va_rows.end(), rows.begin(), rows.begin() + (long)nv);
      tr_rows.insert(tr_rows.end(), rows.begin() + (long)nv, rows.end());
    }
    std::sort(tr_rows.begin(), tr_rows.end());
    std::sort(va_rows.begin(), va_rows.end());
    val = train;
  }
  std::vector<std::string> tr_texts;
  for (size_t r : tr_rows) tr_texts.push_back(train.texts[r]);
  const ClassTokenizer tok =
      ClassTokenizer::build(parse_vocab_kind(cfg.vocab), tr_texts, cfg.min_count, cfg.data);
  tr_texts.clear();
  if (resume)
    XLSTM_CHECK(tok.vocab() == ck.vocab, ValueError, cfg.data, ": not the data the run in ", out,
                " trained on (its training rows give another vocabulary than the checkpoint's)");
  const Encoded tr = encode_rows(train, tr_rows, tok, classes, cfg.max_len);
  const Encoded va_short = encode_rows(val, va_rows, tok, classes, cfg.max_len);
  const bool has_val = !va_rows.empty();
  std::vector<int64_t> counts(classes.size(), 0);
  for (int64_t c : tr.y) ++counts[(size_t)c];
  for (size_t c = 0; c < classes.size(); ++c)
    XLSTM_CHECK(counts[c] > 0, ValueError, cfg.data, ": class '", classes[c],
                "' has no training rows after the validation split; hint: more data or a "
                "smaller --val-fraction");
  const std::vector<double> w = parse_class_weights(cfg.class_weights, classes, counts);
  // model
  ClassifierSpec spec;
  spec.backbone = backbone;
  spec.vocab_rows = tok.rows();
  const bool lstm = backbone.value("arch", "") == "lstm";
  if (lstm) {
    const int64_t H = json_cfg::get_int(backbone, "hidden_size", "model config");
    spec.embedding_dim = json_cfg::get_int(backbone, "embedding_dim", "model config",
                                           std::min<int64_t>(128, H));
  } else {
    spec.embedding_dim = json_cfg::get_int(backbone, "embedding_dim", "model config");
  }
  spec.pool = cfg.pool;
  spec.classes = classes;
  spec.max_len = cfg.max_len;
  Classifier model(spec, "model config", cfg.seed);
  auto params = model.params();
  OptimConfig oc;
  oc.kind = parse_optim_kind(cfg.optimizer);
  oc.lr = cfg.lr;
  oc.weight_decay = cfg.weight_decay;
  Optimizer opt(params, oc);
  Rng batch_rng(cfg.seed + 1), drop_rng(cfg.seed + 2);
  // The batch stream as it was before the current epoch's batches were drawn: a checkpoint
  // keeps it, and a resumed run redraws the same epoch from it.
  Rng epoch_rng = batch_rng;
  std::vector<std::vector<size_t>> batches = epoch_batches(tr, cfg.batch_size, batch_rng);
  const int64_t per_epoch = (int64_t)batches.size();
  size_t next_batch = 0;
  Tensor ids, lengths, dlogits;
  std::vector<int64_t> y;
  const int64_t C = (int64_t)classes.size();
  auto micro_step = [&](const std::vector<size_t>& rows, Mode mode, Rng* rng) {
    make_batch(tr, rows, ids, lengths, y);
    Tensor logits = model.forward(ids, lengths, mode, rng);
    dlogits = Tensor({(int64_t)rows.size(), C}, DType::F32);
    const double l = weighted_xent((int64_t)rows.size(), C, logits.data<float>(), y.data(), w,
                                   dlogits.data<float>());
    model.backward(dlogits);
    return l;
  };
  // how many steps
  // A larger --steps on resume extends the run (as for the language-model task).
  int64_t total = resume ? std::max(saved_total, cfg_in.steps) : cfg.steps;
  if (total == 0) {
    const int64_t by_epochs = (cfg.epochs > 0 ? cfg.epochs : (cfg.minutes > 0 ? 0 : 10)) * per_epoch;
    int64_t by_time = 0;
    if (cfg.minutes > 0) {  // time a few batches, scaled to the epoch's mean tokens per batch
      const int reps = (int)std::min<int64_t>(3, per_epoch);
      micro_step(batches[0], Mode::Eval, nullptr);
      int64_t timed_tokens = 0, epoch_tokens = 0;
      for (auto& q : tr.ids) epoch_tokens += (int64_t)q.size();
      const auto tc = Clock::now();
      for (int i = 0; i < reps; ++i) {
        micro_step(batches[(size_t)i], Mode::Eval, nullptr);
        for (size_t r : batches[(size_t)i]) timed_tokens += (int64_t)tr.ids[r].size();
      }
      const double per_token = seconds_since(tc) / (double)std::max<int64_t>(1, timed_tokens);
      model.zero_grad();
      double per_step = per_token * (double)epoch_tokens / (double)per_epoch * 1.05;
      if (has_val) {  // forward only (~0.4 of a step) over the validation rows every eval_every
        int64_t val_tokens = 0;
        for (auto& q : va_short.ids) val_tokens += (int64_t)q.size();
        per_step += per_token * 0.4 * (double)val_tokens / (double)cfg.eval_every;
      }
      by_time = std::max<int64_t>(1, (int64_t)((cfg.minutes * 60.0 - seconds_since(t0) - 2.0) / per_step));
    }
    total = by_epochs > 0 && by_time > 0 ? std::min(by_epochs, by_time) : std::max(by_epochs, by_time);
  }
  ScheduleConfig sc;
  sc.kind = parse_schedule_kind(cfg.schedule);
  sc.lr = cfg.lr;
  sc.min_lr = cfg.min_lr >= 0 ? cfg.min_lr : cfg.lr / 10;
  sc.warmup_steps = std::min(cfg.warmup, total);
  sc.total_steps = total;
  LrSchedule sched(sc);
  std::error_code ec;
  fs::create_directories(out, ec);
  XLSTM_CHECK(fs::is_directory(out), IoError, out, ": cannot create the output directory");
  std::vector<Tensor> best_params;
  double best_f1 = -1, best_loss = 1e300, elapsed_before = 0;
  int64_t bad_evals = 0, step = 0, seqs = 0;
  if (resume) {
    const std::string ow = ck_dir + "/optimizer.safetensors", sw = ck_dir + "/state.json";
    model.load_params(ck.model, ck_dir + "/model.safetensors");
    auto optim = ck.optim;
    for (const char* name : {"batch.epoch_rng", "dropout.rng"})
      XLSTM_CHECK(optim.count(name), IoError, ow, ": missing tensor '", name, "'");
    load_rng_state(epoch_rng, optim["batch.epoch_rng"], ow);
    load_rng_state(drop_rng, optim["dropout.rng"], ow);
    optim.erase("batch.epoch_rng");
    optim.erase("dropout.rng");
    opt.load_state_dict(optim, ow);
    batch_rng = epoch_rng;
    batches = epoch_batches(tr, cfg.batch_size, batch_rng);
    using namespace json_cfg;
    step = get_int(ck.state, "step", sw);
    next_batch = (size_t)get_int_in(ck.state, "next_batch", sw, 0, (int64_t)batches.size());
    XLSTM_CHECK(step >= 0 && step <= total, ValueError, sw, ": field 'step' ", step,
                " is outside the run's ", total, " steps");
    best_f1 = get_number(ck.state, "best_f1", sw);
    best_loss = get_number(ck.state, "best_loss", sw);
    bad_evals = get_int(ck.state, "bad_evals", sw);
    seqs = get_int(ck.state, "seqs", sw);
    elapsed_before = get_number(ck.state, "elapsed", sw, 0);
    if (has_val && best_f1 >= 0) {
      const Checkpoint best = load_checkpoint(best_dir, false);
      for (auto& p : params) {
        auto it = best.model.find(p.name);
        XLSTM_CHECK(it != best.model.end() && it->second.shape() == p.value->shape() &&
                        it->second.dtype() == p.value->dtype(),
                    ValueError, best_dir, "/model.safetensors: tensor '", p.name,
                    "' missing or of another shape / dtype");
        best_params.push_back(it->second.clone());
      }
    }
    drop_metrics_after(out, step);
  }
  const int64_t step0 = step, seqs0 = seqs;
  MetricsLogger metrics(out, "metrics", resume ? MetricsMode::Append : MetricsMode::Truncate);
  ClassifyTrainResult res;
  res.params = count_params(model);
  res.train_rows = (int64_t)tr.ids.size();
  res.val_rows = (int64_t)va_rows.size();
  res.classes = classes;
  res.class_weights = w;
  res.best_dir = best_dir;
  res.checkpoint_dir = ck_dir;
  res.metrics_csv = metrics.csv_path();
  res.plot_png = out + "/loss.png";
  json train_json = cfg.to_json();
  train_json["total_steps"] = total;
  // with_optim: the latest checkpoint, which a resumed run continues (optimizer, streams and
  // the loop's counters); the best model is weights only.
  auto save = [&](const std::string& dir, int64_t step, const json& extra, bool with_optim) {
    Checkpoint c;
    c.config = {{"model", spec.to_json()}, {"train", train_json}};
    c.vocab = tok.vocab();
    for (auto& p : params) c.model[p.name] = p.value->clone();
    c.state = {{"step", step}};
    c.state.update(extra);
    if (with_optim) {
      c.optim = opt.state_dict();
      c.optim["batch.epoch_rng"] = rng_state_tensor(epoch_rng);
      c.optim["dropout.rng"] = rng_state_tensor(drop_rng);
      c.state.update({{"next_batch", (int64_t)next_batch}, {"best_f1", best_f1},
                      {"best_loss", best_loss}, {"bad_evals", bad_evals}, {"seqs", seqs},
                      {"elapsed", elapsed_before + seconds_since(t0)}});
    }
    save_checkpoint(dir, c);
  };
  double loss_avg = 0;
  int64_t loss_n = 0;
  const double deadline = cfg.minutes > 0 ? cfg.minutes * 60.0 : 1e300;
  const auto t_loop = Clock::now();
  res.stop_reason = "steps";
  while (step < total) {
    const double lr = sched.at(step);
    opt.set_lr(lr);
    model.zero_grad();
    if (next_batch == batches.size()) {
      epoch_rng = batch_rng;
      batches = epoch_batches(tr, cfg.batch_size, batch_rng);
      next_batch = 0;
    }
    const auto& rows = batches[next_batch++];
    const double loss = micro_step(rows, Mode::Train, &drop_rng);
    XLSTM_CHECK(std::isfinite(loss), TrainingDiverged, "training diverged: loss is ", loss,
                " at step ", step + 1, "; hint: lower --lr or keep --clip");
    ClipResult cr = clip_grad_norm(params, cfg.clip);
    XLSTM_CHECK(cr.finite, TrainingDiverged, "training diverged: non-finite gradient in '",
                cr.bad_param, "' at step ", step + 1, "; hint: lower --lr or keep --clip");
    opt.step();
    ++step;
    seqs += (int64_t)rows.size();
    loss_avg += loss;
    ++loss_n;
    res.final_loss = loss;
    const double run_s = seconds_since(t0), el = elapsed_before + run_s;
    const bool last = step == total, out_of_time = run_s >= deadline;
    const bool stop_now = cfg.stop_at > 0 && step >= cfg.stop_at;
    const bool do_eval = step % cfg.eval_every == 0 || last || out_of_time || stop_now;
    if (step % cfg.log_every != 0 && !do_eval) continue;
    ClassifyProgress pr;
    pr.step = step;
    pr.total_steps = total;
    pr.loss = loss_avg / (double)loss_n;
    pr.lr = lr;
    pr.seqs_per_s = (double)(seqs - seqs0) / std::max(1e-9, seconds_since(t_loop));
    pr.eta_s = (double)(total - step) * seconds_since(t_loop) / (double)(step - step0);
    MetricRow row = {{"step", step}, {"loss", pr.loss}, {"lr", lr}, {"grad_norm", cr.norm},
                     {"elapsed_s", el}};
    if (do_eval && has_val) {
      Eval ev = evaluate(model, va_short, w, cfg.batch_size);
      pr.eval = true;
      pr.val_loss = ev.loss;
      pr.val_accuracy = ev.m.accuracy;
      pr.val_f1 = ev.m.macro_f1;
      row.push_back({"val_loss", ev.loss});
      row.push_back({"val_accuracy", ev.m.accuracy});
      row.push_back({"val_macro_f1", ev.m.macro_f1});
      if (ev.m.macro_f1 > best_f1 || (ev.m.macro_f1 == best_f1 && ev.loss < best_loss)) {
        best_f1 = ev.m.macro_f1;
        best_loss = ev.loss;
        bad_evals = 0;
        best_params.clear();
        for (auto& p : params) best_params.push_back(p.value->clone());
        save(best_dir, step, {{"val_loss", ev.loss}, {"val_accuracy", ev.m.accuracy},
                              {"val_macro_f1", ev.m.macro_f1}}, false);
      } else {
        ++bad_evals;
      }
    } else {
      row.push_back({"val_loss", std::nan("")});
      row.push_back({"val_accuracy", std::nan("")});
      row.push_back({"val_macro_f1", std::nan("")});
    }
    metrics.log(row);
    loss_avg = 0;
    loss_n = 0;
    if (progress) progress(pr);
    if (do_eval) {
      save(ck_dir, step, json::object(), true);
      save_loss_plot(out + "/loss.png", metrics.csv_path(), "classifier: training and validation loss",
                     "weighted cross-entropy (nats/row)");
    }
    if (has_val && cfg.patience > 0 && bad_evals >= cfg.patience) { res.stop_reason = "early stopping"; break; }
    if (stop_now && !last) { res.stop_reason = "stop_at"; break; }
    if (out_of_time && !last) { res.stop_reason = "time"; break; }
  }
  res.steps = step;
  res.max_len = cfg.max_len;
  if (!has_val) {
    save(best_dir, step, json::object(), false);
  } else {
    // the best model, on the validation texts cut like the training texts (--max-len); whole
    // texts of any length are `xlstm classify`'s job
    for (size_t i = 0; i < params.size(); ++i)
      std::memcpy(params[i].value->raw(), best_params[i].raw(), best_params[i].nbytes());
    Eval ev = evaluate(model, va_short, w, cfg.batch_size);
    res.val = ev.m;
    res.best_val_f1 = best_f1;
    json j = metrics_json(ev.m, classes);
    j["loss"] = ev.loss;
    j["max_len"] = cfg.max_len;
    write_file_atomic(out + "/val_metrics.json", j.dump(2) + "\n");
  }
  res.seconds = seconds_since(t0);
  return res;
}

}  // namespace xlstm
