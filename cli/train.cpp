// `xlstm train`: train a character-level language model on a text file.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/util.h"
#include "io/json_config.h"
#include "models/presets.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace xlstm::cli {

const char* kDefaultModel = "lstm-small";

void add_train(CLI::App& app, std::function<int()>& run) {
  struct Opts {
    TrainConfig t;
    std::string model = kDefaultModel, config_file, slstm_at;
    int64_t width = -1, blocks = -1, heads = -1;
    double dropout = -1;
    bool resume = false, quiet = false;
    int threads = 0;
    int64_t context = -1;
    std::string task = "lm";
  };
  auto o = std::make_shared<Opts>();
  auto* s = app.add_subcommand("train",
                               "Train a character-level language model on a text file. Writes "
                               "checkpoints, metrics (CSV/JSONL) and a loss plot to --out.");
  s->add_option("--data", o->t.data,
                "training data: a text file for the language model (first 90% train, last 10% "
                "validation), a CSV for --task forecast, CSV/JSONL (text,label) for --task classify");
  s->add_option("--out", o->t.out, "run directory (checkpoint/, best/, metrics.csv, loss.png)")->required();
  s->add_option("--model", o->model,
                "model preset: {lstm,slstm,mlstm,xlstm-7-1,xlstm-1-1}-{tiny,small,medium}")
      ->capture_default_str();
  s->add_option("--config", o->config_file, "model config JSON instead of a preset ({\"arch\": ...})");
  s->add_option("--width", o->width, "override: embedding width (xLSTM) / hidden size (LSTM)");
  s->add_option("--blocks", o->blocks, "override: number of blocks (xLSTM) / layers (LSTM)");
  s->add_option("--heads", o->heads, "override: heads of the mLSTM and sLSTM layers");
  s->add_option("--slstm-at", o->slstm_at, "override: sLSTM block positions, e.g. 1,5 or all or none");
  s->add_option("--dropout", o->dropout, "override: dropout");
  s->add_option("--context", o->context, "training window length T (default: the model's context)");
  s->add_option("--steps", o->t.steps, "optimizer steps (default: as many as --minutes allows)");
  s->add_option("--minutes", o->t.minutes, "wall-clock budget in minutes");
  s->add_option("--batch-size", o->t.batch_size, "sequences per micro-batch")->capture_default_str();
  s->add_option("--accum", o->t.accum, "micro-batches per optimizer step")->capture_default_str();
  s->add_option("--optimizer", o->t.optimizer, "adamw, adam or sgd")->capture_default_str();
  s->add_option("--lr", o->t.lr, "peak learning rate")->capture_default_str();
  s->add_option("--min-lr", o->t.min_lr, "final learning rate of the cosine schedule (default lr/10)");
  s->add_option("--weight-decay", o->t.weight_decay,
                "decoupled weight decay on weight matrices (not norms, biases, embeddings)")
      ->capture_default_str();
  s->add_option("--schedule", o->t.schedule, "cosine or constant (after warm-up)")->capture_default_str();
  s->add_option("--warmup", o->t.warmup, "linear warm-up steps")->capture_default_str();
  s->add_option("--clip", o->t.clip, "global gradient-norm clip (0 = off)")->capture_default_str();
  s->add_option("--eval-every", o->t.eval_every, "evaluate and checkpoint every N steps")->capture_default_str();
  s->add_option("--eval-batches", o->t.eval_batches, "validation batches per evaluation")->capture_default_str();
  s->add_option("--log-every", o->t.log_every, "metrics row every N steps")->capture_default_str();
  s->add_option("--patience", o->t.patience, "early stopping after N evaluations without improvement (0 = off)")
      ->capture_default_str();
  s->add_option("--vocab", o->t.vocab, "char (code points of the training text) or byte")->capture_default_str();
  s->add_option("--val-fraction", o->t.val_fraction, "fraction of the text used for validation")->capture_default_str();
  s->add_option("--seed", o->t.seed, "random seed (init, batches, dropout)")->capture_default_str();
  s->add_option("--threads", o->threads, "CPU threads (default: OMP_NUM_THREADS or all cores)");
  s->add_flag("--resume", o->resume,
              "continue the run in --out from its checkpoint (any task; --task defaults to the "
              "checkpoint's)");
  s->add_option("--init-from", o->t.init_from,
                "fine-tune a Hugging Face xlstm model directory (its tokenizer encodes --data; "
                "--model is ignored); the best model is also written to OUT/hf in that format");
  s->add_option("--stop-at", o->t.stop_at, "stop after this step as if interrupted (checkpoint kept)");
  s->add_flag("-q,--quiet", o->quiet, "no progress output");
  s->add_option("--tbptt", o->t.tbptt,
                "truncated BPTT: --batch-size streams read the text in consecutive windows of K "
                "tokens with the state carried across windows (sets --context K)");
  s->add_option("--doc-sep", o->t.doc_sep,
                "with --tbptt: the string that ends a document; the carried state restarts "
                "after it (escapes \\n \\t)");
  s->add_option("--task", o->task,
                "lm: character-level language model on a text file (default); forecast: "
                "time-series forecaster on a CSV (see the forecasting flags); classify: "
                "text classifier on CSV/JSONL with text,label (see the classification flags)")
      ->capture_default_str();
  auto forecast_flags = add_forecast_train_flags(s);
  auto classify_flags = add_classify_train_flags(s);
  s->callback([o, s, forecast_flags, classify_flags, &run] {
    run = [o, s, forecast_flags, classify_flags]() -> int {
      set_threads(o->threads);
      if (o->resume && s->count("--task") == 0 && !o->t.out.empty()) {
        // --resume without --task: the task the checkpoint was written by
        for (const std::string& dir : {o->t.out + "/checkpoint", o->t.out + "/checkpoint.old"}) {
          const std::string cw = dir + "/config.json";
          if (!std::ifstream(cw)) continue;
          const nlohmann::json c = json_cfg::read_file(cw);
          json_cfg::check_object(c, cw);
          o->task = json_cfg::get_string(c, "task", cw, "lm");
          if (c.contains("model") && c["model"].is_object() &&
              c["model"].value("task", "") == "classify")
            o->task = "classify";
          break;
        }
      }
      XLSTM_CHECK(o->task == "lm" || o->task == "forecast" || o->task == "classify", ValueError,
                  "--task must be lm, forecast or classify, got '", o->task, "'");
      if (o->task == "classify")
        return run_classify_train(*s, *classify_flags, o->t, o->model,
                                  {o->width, o->blocks, o->heads, o->context, o->dropout, o->slstm_at},
                                  o->config_file, o->resume, o->quiet);
      if (o->task == "forecast")
        return run_forecast_train(*s, *forecast_flags, o->t, o->model,
                                  {o->width, o->blocks, o->heads, o->context, o->dropout, o->slstm_at},
                                  o->config_file, o->resume, o->quiet);
      nlohmann::json model;
      if (!o->resume) {
        XLSTM_CHECK(!o->t.data.empty(), ValueError, "--data FILE is required");
        ModelOverrides ov{o->width, o->blocks, o->heads, o->context, o->dropout, o->slstm_at};
        if (!o->t.init_from.empty()) {
          XLSTM_CHECK(o->config_file.empty(), ValueError, "give --init-from or --config, not both");
          XLSTM_CHECK(o->context > 0, ValueError, "--init-from needs --context (tokens per window)");
        } else if (!o->config_file.empty()) {
          model = json_cfg::read_file(o->config_file);
          json_cfg::check_object(model, o->config_file);
        } else {
          model = model_preset(o->model, 1, ov);  // vocab_size is set from the data
        }
        o->t.context = o->context > 0 ? o->context : model_context_length(model);
        o->t.doc_sep = unescape_flag(o->t.doc_sep);
        if (!o->t.init_from.empty()) model = nlohmann::json::object();  // from the directory
      }
      const bool tty = ::isatty(2);
      auto progress = [&](const TrainProgress& p) {
        if (o->quiet) return;
        char line[256];
        const int width = 24;
        const int fill = p.total_steps ? (int)(width * p.step / p.total_steps) : 0;
        std::string bar = std::string((size_t)fill, '#') + std::string((size_t)(width - fill), '.');
        std::snprintf(line, sizeof line, "[%s] step %lld/%lld  loss %.4f  val %s  %.0f tok/s  ETA %s",
                      bar.c_str(), (long long)p.step, (long long)p.total_steps, p.loss,
                      p.val_loss >= 0 ? std::to_string(p.val_loss).substr(0, 6).c_str() : "-",
                      p.tokens_per_s, fmt_duration(p.eta_s).c_str());
        if (tty) std::fprintf(stderr, "\r%s\033[K%s", line, p.eval ? "\n" : "");
        else std::fprintf(stderr, "%s\n", line);
        std::fflush(stderr);
      };
      TrainResult r = train_language_model(o->t, model, o->resume, progress);
      if (tty && !o->quiet) std::fprintf(stderr, "\n");
      std::printf("trained %lld steps (%s) in %s: %.0f tokens/s, %lld parameters\n",
                  (long long)r.steps, r.stop_reason.c_str(), fmt_duration(r.seconds).c_str(),
                  r.tokens_per_s, (long long)r.params);
      if (r.best_val_loss >= 0)
        std::printf("validation loss: last %.4f, best %.4f\n", r.last_val_loss, r.best_val_loss);
      std::printf("checkpoint: %s\nbest model: %s\nmetrics:    %s, %s\nplot:       %s\n",
                  r.checkpoint_dir.c_str(), r.best_dir.c_str(), r.metrics_csv.c_str(),
                  r.metrics_jsonl.c_str(), r.plot_png.c_str());
      std::printf("generate:   build/xlstm generate --checkpoint %s --prompt \"...\"\n",
                  o->t.out.c_str());
      const std::string init = o->resume ? r.init_from : o->t.init_from;
      if (!init.empty()) {  // fine-tuned HF model: back to its format
        export_hf(r.best_dir, o->t.out + "/hf");
        std::printf("hugging face: %s/hf\n", o->t.out.c_str());
      }
      return 0;
    };
  });
}

}  // namespace xlstm::cli
