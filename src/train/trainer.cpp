#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "cpu/xent.h"
#include "io/atomic_file.h"
#include "io/json_config.h"
#include "io/metrics.h"
#include "models/hf.h"
#include "models/lm.h"
#include "models/xlstm_large_lm.h"
#include "train/checkpoint.h"
#include "train/clip.h"
#include "train/tbptt.h"
#include "viz/loss_plot.h"

namespace xlstm {

namespace fs = std::filesystem;
using json = nlohmann::json;

json TrainConfig::to_json() const {
  json j = {{"data", data},           {"vocab", vocab},         {"val_fraction", val_fraction},
          {"init_from", init_from},
          {"batch_size", batch_size}, {"context", context},   {"steps", steps},
          {"minutes", minutes},     {"accum", accum},         {"optimizer", optimizer},
          {"lr", lr},               {"min_lr", min_lr},       {"weight_decay", weight_decay},
          {"beta1", beta1},         {"beta2", beta2},         {"momentum", momentum},
          {"schedule", schedule},   {"warmup", warmup},       {"clip", clip},
          {"eval_every", eval_every}, {"eval_batches", eval_batches}, {"log_every", log_every},
          {"patience", patience},   {"seed", seed}};
  if (tbptt > 0) {  // only then, so other runs' configs stay as they were
    j["tbptt"] = tbptt;
    j["doc_sep"] = doc_sep;
  }
  return j;
}

TrainConfig TrainConfig::from_json(const json& j, const std::string& w) {
  using namespace json_cfg;
  TrainConfig c;
  c.data = get_string(j, "data", w);
  c.vocab = get_string(j, "vocab", w, c.vocab);
  c.init_from = get_string(j, "init_from", w, c.init_from);
  c.val_fraction = get_number(j, "val_fraction", w, c.val_fraction);
  c.batch_size = get_int(j, "batch_size", w, c.batch_size);
  c.context = get_int(j, "context", w, c.context);
  c.accum = get_int(j, "accum", w, c.accum);
  c.beta1 = get_number(j, "beta1", w, c.beta1);
  c.beta2 = get_number(j, "beta2", w, c.beta2);
  c.momentum = get_number(j, "momentum", w, c.momentum);
  c.eval_batches = get_int(j, "eval_batches", w, c.eval_batches);
  c.tbptt = get_int(j, "tbptt", w, c.tbptt);
  c.doc_sep = get_string(j, "doc_sep", w, c.doc_sep);
  read_common_train_fields(j, w, c);
  return c;
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void validate(const TrainConfig& c) {
  XLSTM_CHECK(c.batch_size >= 1, ValueError, "--batch-size must be >= 1, got ", c.batch_size);
  XLSTM_CHECK(c.context >= 1, ValueError, "--context must be >= 1, got ", c.context);
  XLSTM_CHECK(c.accum >= 1, ValueError, "--accum must be >= 1, got ", c.accum);
  XLSTM_CHECK(c.steps >= 0 && c.minutes >= 0, ValueError, "--steps and --minutes must be >= 0");
  XLSTM_CHECK(c.steps > 0 || c.minutes > 0, ValueError,
              "give --steps N or --minutes M (how long to train)");
  XLSTM_CHECK(c.val_fraction >= 0 && c.val_fraction < 1, ValueError,
              "--val-fraction must be in [0, 1), got ", c.val_fraction);
  XLSTM_CHECK(c.eval_every >= 1 && c.log_every >= 1 && c.eval_batches >= 1, ValueError,
              "--eval-every, --eval-batches and --log-every must be >= 1");
  XLSTM_CHECK(std::isfinite(c.lr) && c.lr > 0, ValueError, "--lr must be > 0, got ", c.lr);
  XLSTM_CHECK(c.patience >= 0 && c.warmup >= 0, ValueError, "--patience and --warmup must be >= 0");
}

struct Run {
  TrainConfig cfg;
  std::unique_ptr<LanguageModel> model;
  std::unique_ptr<Optimizer> opt;
  std::unique_ptr<RandomWindowSampler> sampler;
  std::unique_ptr<TbpttRunner> tbptt;  // --tbptt: streams with carried state (else `sampler`)
  std::unique_ptr<TextCorpus> corpus;
  Rng drop_rng;
  json model_config;
  int64_t step = 0, total_steps = 0, bad_evals = 0, tokens = 0;
  double best_val = -1, last_val = -1, elapsed_before = 0;
};

Checkpoint make_checkpoint(Run& r) {
  Checkpoint ck;
  ck.config = {{"model", r.model_config}, {"train", r.cfg.to_json()}};
  ck.vocab = r.corpus->vocab();
  for (auto& p : r.model->params()) ck.model[p.name] = *p.value;
  ck.optim = r.opt->state_dict();
  ck.optim["sampler.rng"] = r.sampler->state_tensor();
  if (r.tbptt) r.tbptt->save(ck.optim);
  ck.optim["dropout.rng"] = rng_state_tensor(r.drop_rng);
  ck.state = {{"step", r.step},         {"total_steps", r.total_steps}, {"best_val", r.best_val},
              {"last_val", r.last_val}, {"bad_evals", r.bad_evals},     {"tokens", r.tokens},
              {"elapsed", r.elapsed_before}};
  return ck;
}

double evaluate(Run& r) {
  auto val = r.corpus->tokens(Split::Val);
  SequentialSampler s(val, r.cfg.batch_size, r.cfg.context, r.cfg.eval_batches,
                      "validation split of " + r.cfg.data);
  Tensor win, x, y;
  double sum = 0;
  int64_t count = 0;
  const int64_t V = r.model->vocab_size();
  while (s.next(win)) {
    split_window(win, x, y);
    Tensor logits = r.model->forward(x, Mode::Eval, nullptr);
    int64_t n = 0;
    const double l = xent_forward_backward<float>(x.numel(), V, logits.data<float>(),
                                                  y.data<int64_t>(), -1, nullptr, 1.0, &n);
    sum += l * (double)n;
    count += n;
  }
  return count ? sum / (double)count : std::nan("");
}


}  // namespace

TrainResult train_language_model(const TrainConfig& cfg_in, json model_config, bool resume,
                                 const std::function<void(const TrainProgress&)>& on_progress) {
  const auto t0 = Clock::now();
  Run r;
  r.cfg = cfg_in;
  const std::string out = cfg_in.out;
  XLSTM_CHECK(!out.empty(), ValueError, "--out DIR is required");
  const std::string ck_dir = out + "/checkpoint", best_dir = out + "/best";
  Checkpoint ck;
  if (resume) {
    XLSTM_CHECK(fs::exists(ck_dir) || fs::exists(ck_dir + ".old"), IoError, ck_dir,
                ": nothing to resume (no checkpoint in ", out, ")");
    ck = load_checkpoint(ck_dir, true);
    const std::string cw = ck_dir + "/config.json";
    XLSTM_CHECK(ck.config.contains("train"), ValueError, cw, ": missing field 'train'");
    TrainConfig saved = TrainConfig::from_json(ck.config["train"], cw);
    saved.out = out;
    if (!cfg_in.data.empty()) saved.data = cfg_in.data;
    saved.stop_at = cfg_in.stop_at;
    r.cfg = saved;
    model_config = ck.config["model"];
  } else {
    XLSTM_CHECK(!fs::exists(ck_dir) && !fs::exists(ck_dir + ".old"), IoError, out,
                ": already holds a checkpoint; hint: --resume to continue it, or another --out");
  }
  XLSTM_CHECK(r.cfg.tbptt >= 0, ValueError, "--tbptt must be >= 0, got ", r.cfg.tbptt);
  if (r.cfg.tbptt > 0) r.cfg.context = r.cfg.tbptt;  // the window is the TBPTT length
  validate(r.cfg);
  std::error_code ec;
  fs::create_directories(out, ec);
  XLSTM_CHECK(fs::is_directory(out), IoError, out, ": cannot create the output directory (",
              ec.message(), ")");
  {  // writable?
    const std::string probe = out + "/.write_test";
    FILE* f = std::fopen(probe.c_str(), "w");
    XLSTM_CHECK(f != nullptr, IoError, out, ": output directory is not writable");
    std::fclose(f);
    fs::remove(probe, ec);
  }
  // data (and, when fine-tuning, the pretrained model and its tokenizer)
  std::unique_ptr<HfCheckpoint> init;
  if (!resume && !r.cfg.init_from.empty()) {
    init = std::make_unique<HfCheckpoint>(load_hf_checkpoint(r.cfg.init_from, HfLoad::Mapped));
    XLSTM_CHECK(!init->tokenizer_json.empty(), IoError, r.cfg.init_from,
                ": no tokenizer.json, needed to encode --data for fine-tuning");
    model_config = xlstm_large_lm_json(init->config);
    r.cfg.vocab = "bpe";
    r.corpus = std::make_unique<TextCorpus>(TextCorpus::from_file(
        r.cfg.data, Vocab::bpe(init->tokenizer_json, init->config.vocab_size), r.cfg.val_fraction));
  } else if (resume) {
    r.corpus = std::make_unique<TextCorpus>(TextCorpus::from_file(r.cfg.data, ck.vocab, r.cfg.val_fraction));
  } else {
    r.corpus = std::make_unique<TextCorpus>(
        TextCorpus::from_file(r.cfg.data, parse_vocab_kind(r.cfg.vocab), r.cfg.val_fraction));
  }
  const int64_t V = r.corpus->vocab().size();
  if (!resume) model_config["vocab_size"] = V;
  r.model_config = model_config;
  r.model = make_language_model(model_config, "model config", r.cfg.seed);
  if (init) {  // the pretrained weights (copied into the trainable model)
    std::map<std::string, Tensor> w;
    for (auto& p : init->model->params()) w[p.name] = *p.value;
    r.model->load_params(w, r.cfg.init_from);
    init.reset();
  }
  XLSTM_CHECK(r.model->vocab_size() == V, ValueError, "model config: vocab_size ",
              r.model->vocab_size(), " does not match the data's ", V, " symbols");
  r.sampler = std::make_unique<RandomWindowSampler>(r.corpus->tokens(Split::Train), r.cfg.batch_size,
                                                    r.cfg.context, r.cfg.seed + 1,
                                                    "train split of " + r.cfg.data);
  if (r.cfg.tbptt > 0) {
    auto train_tokens = r.corpus->tokens(Split::Train);
    const std::vector<int32_t> sep =
        r.cfg.doc_sep.empty() ? std::vector<int32_t>{} : r.corpus->vocab().encode(r.cfg.doc_sep, "--doc-sep");
    r.tbptt = std::make_unique<TbpttRunner>(
        *r.model, std::make_unique<StreamSampler>(train_tokens, r.cfg.batch_size, r.cfg.tbptt,
                                                  document_starts(*train_tokens, sep),
                                                  "train split of " + r.cfg.data));
  }
  const bool has_val = r.cfg.val_fraction > 0;
  if (has_val)
    XLSTM_CHECK(r.corpus->size(Split::Val) >= r.cfg.context + 1, ValueError, "validation split of ",
                r.cfg.data, " has ", r.corpus->size(Split::Val), " tokens, fewer than --context + 1 = ",
                r.cfg.context + 1, "; hint: a longer file, a larger --val-fraction or a smaller --context");
  r.drop_rng.reseed(r.cfg.seed + 2);
  OptimConfig oc;
  oc.kind = parse_optim_kind(r.cfg.optimizer);
  oc.lr = r.cfg.lr;
  oc.weight_decay = r.cfg.weight_decay;
  oc.beta1 = r.cfg.beta1;
  oc.beta2 = r.cfg.beta2;
  if (oc.kind == OptimKind::SGD) oc.momentum = r.cfg.momentum;
  r.opt = std::make_unique<Optimizer>(r.model->params(), oc);
  if (resume) {
    const std::string w = ck_dir + "/optimizer.safetensors";
    r.model->load_params(ck.model, ck_dir + "/model.safetensors");
    auto optim = ck.optim;
    XLSTM_CHECK(optim.count("sampler.rng") && optim.count("dropout.rng"), IoError, w,
                ": missing tensor 'sampler.rng' or 'dropout.rng'");
    r.sampler->load_state(optim["sampler.rng"], w);
    load_rng_state(r.drop_rng, optim["dropout.rng"], w);
    optim.erase("sampler.rng");
    if (r.tbptt) r.tbptt->load(optim, w);
    optim.erase("dropout.rng");
    r.opt->load_state_dict(optim, w);
    const std::string sw = ck_dir + "/state.json";
    r.step = json_cfg::get_int(ck.state, "step", sw);
    r.total_steps = json_cfg::get_int(ck.state, "total_steps", sw);
    r.best_val = json_cfg::get_number(ck.state, "best_val", sw, -1);
    r.last_val = json_cfg::get_number(ck.state, "last_val", sw, -1);
    r.bad_evals = json_cfg::get_int(ck.state, "bad_evals", sw, 0);
    r.tokens = json_cfg::get_int(ck.state, "tokens", sw, 0);
    r.elapsed_before = json_cfg::get_number(ck.state, "elapsed", sw, 0);
    if (cfg_in.steps > r.total_steps) r.total_steps = cfg_in.steps;  // extend a finished run
  }
  const int64_t B = r.cfg.batch_size, T = r.cfg.context, N = B * T;
  Tensor x, y, dlogits({B, T, V}, DType::F32);
  auto micro_step = [&](Mode mode, double scale, Rng* rng) {
    if (r.tbptt) return r.tbptt->micro_step(mode, scale, rng);
    split_window(r.sampler->next(), x, y);
    Tensor logits = r.model->forward(x, mode, rng);
    const double l = xent_forward_backward<float>(N, V, logits.data<float>(), y.data<int64_t>(), -1,
                                                  dlogits.data<float>(), scale);
    r.model->backward(dlogits);
    return l;
  };
  // Step budget from the time budget: time a few forward/backward passes and one evaluation
  // batch (on a copy of the sampler, so the real run draws the same batches).
  if (r.total_steps == 0) {
    if (r.cfg.steps > 0) {
      r.total_steps = r.cfg.steps;
    } else {
      const Rng::State keep = r.sampler->rng_state();
      std::map<std::string, Tensor> keep_tbptt;  // streams and carried state, restored below
      if (r.tbptt) r.tbptt->save(keep_tbptt);
      const int reps = 3;
      micro_step(Mode::Eval, 1.0, nullptr);  // warm-up: workspaces, page faults
      const auto tc = Clock::now();
      for (int i = 0; i < reps; ++i) micro_step(Mode::Eval, 1.0, nullptr);
      const double per_micro = seconds_since(tc) / reps;
      r.model->zero_grad();
      r.sampler->set_rng_state(keep);
      if (r.tbptt) r.tbptt->load(keep_tbptt, "[tbptt] timing snapshot");
      double eval_cost = 0;
      if (has_val) {
        const int64_t nb = std::min<int64_t>(r.cfg.eval_batches,
                                             (r.corpus->size(Split::Val) - 1) / T / B + 1);
        eval_cost = per_micro * 0.35 * (double)nb / (double)r.cfg.eval_every;  // forward only
      }
      const double per_step = per_micro * (double)r.cfg.accum * 1.03 + eval_cost;
      const double budget = r.cfg.minutes * 60.0 - seconds_since(t0) - 2.0;
      r.total_steps = std::max<int64_t>(1, (int64_t)(budget / per_step));
    }
  }
  ScheduleConfig sc;
  sc.kind = parse_schedule_kind(r.cfg.schedule);
  sc.lr = r.cfg.lr;
  sc.min_lr = r.cfg.min_lr >= 0 ? r.cfg.min_lr : r.cfg.lr / 10;
  sc.warmup_steps = std::min(r.cfg.warmup, r.total_steps);
  sc.total_steps = r.total_steps;
  LrSchedule sched(sc);
  if (resume) drop_metrics_after(out, r.step);
  MetricsLogger metrics(out, "metrics", resume ? MetricsMode::Append : MetricsMode::Truncate);
  TrainResult res;
  res.params = count_params(*r.model);
  res.checkpoint_dir = ck_dir;
  res.best_dir = best_dir;
  res.init_from = r.cfg.init_from;
  res.metrics_csv = metrics.csv_path();
  res.metrics_jsonl = metrics.jsonl_path();
  res.plot_png = out + "/loss.png";
  const double deadline = r.cfg.minutes > 0 ? r.cfg.minutes * 60.0 : 1e300;
  const auto t_loop = Clock::now();
  const int64_t tokens_at_start = r.tokens;
  int64_t steps_this_run = 0;
  double loss_avg = 0;
  int64_t loss_n = 0;
  std::string reason = "steps";
  auto params = r.model->params();
  while (r.step < r.total_steps) {
    const double lr = sched.at(r.step);
    r.opt->set_lr(lr);
    r.model->zero_grad();
    double loss = 0;
    for (int64_t a = 0; a < r.cfg.accum; ++a)
      loss += micro_step(Mode::Train, 1.0 / (double)r.cfg.accum, &r.drop_rng) / (double)r.cfg.accum;
    if (!std::isfinite(loss))
      throw TrainingDiverged(str("training diverged: loss is ", loss, " at step ", r.step + 1,
                                 "; the last checkpoint in ", ck_dir,
                                 " is intact; hint: lower --lr or keep --clip"));
    ClipResult cr = clip_grad_norm(params, r.cfg.clip);
    if (!cr.finite)
      throw TrainingDiverged(str("training diverged: non-finite gradient in '", cr.bad_param,
                                 "' at step ", r.step + 1, "; the last checkpoint in ", ck_dir,
                                 " is intact; hint: lower --lr or keep --clip"));
    r.opt->step();
    ++r.step;
    r.tokens += N * r.cfg.accum;
    loss_avg += loss;
    ++loss_n;
    res.final_loss = loss;
    const double el = seconds_since(t0);
    const double tps = (double)(r.tokens - tokens_at_start) / std::max(1e-9, seconds_since(t_loop));
    const bool last = r.step == r.total_steps;
    const bool out_of_time = el >= deadline;
    const bool stop_now = r.cfg.stop_at > 0 && r.step >= r.cfg.stop_at;
    const bool do_eval = r.step % r.cfg.eval_every == 0 || last || out_of_time || stop_now;
    TrainProgress pr;
    pr.step = r.step;
    pr.total_steps = r.total_steps;
    pr.loss = loss;
    pr.lr = lr;
    pr.grad_norm = cr.norm;
    pr.tokens_per_s = tps;
    pr.elapsed_s = el;
    ++steps_this_run;
    pr.eta_s = (double)(r.total_steps - r.step) * seconds_since(t_loop) / (double)steps_this_run;
    if (r.step % r.cfg.log_every == 0 || do_eval) {
      MetricRow row = {{"step", r.step}, {"loss", loss_avg / (double)loss_n}, {"lr", lr},
                       {"grad_norm", cr.norm}, {"tokens_per_s", tps}, {"elapsed_s", el}};
      double vl = std::nan("");
      if (do_eval && has_val) {
        r.last_val = vl = evaluate(r);
        if (r.best_val < 0 || r.last_val < r.best_val) {
          r.best_val = r.last_val;
          r.bad_evals = 0;
          r.elapsed_before = el;
          save_checkpoint(best_dir, make_checkpoint(r));
        } else {
          ++r.bad_evals;
        }
        pr.eval = true;
      }
      row.push_back({"val_loss", vl});
      pr.val_loss = r.last_val;
      pr.best_val = r.best_val;
      metrics.log(row);
      loss_avg = 0;
      loss_n = 0;
      if (on_progress) on_progress(pr);
    }
    if (do_eval) {
      r.elapsed_before = el;
      save_checkpoint(ck_dir, make_checkpoint(r));
      save_loss_plot(out + "/loss.png", metrics.csv_path(), "training and validation loss",
                     "cross-entropy (nats/token)");
    }
    if (has_val && r.cfg.patience > 0 && r.bad_evals >= r.cfg.patience) { reason = "early stopping"; break; }
    if (stop_now) { reason = "stop_at"; break; }
    if (out_of_time && !last) { reason = "time"; break; }
  }
  if (!has_val) save_checkpoint(best_dir, make_checkpoint(r));
  res.steps = r.step;
  res.best_val_loss = r.best_val;
  res.last_val_loss = r.last_val;
  res.seconds = seconds_since(t0);
  res.tokens_per_s = (double)(r.tokens - tokens_at_start) / std::max(1e-9, seconds_since(t_loop));
  res.stop_reason = reason;
  return res;
}

}  // namespace xlstm
