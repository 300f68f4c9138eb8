// `xlstm generate`: sample text from one of our checkpoints or a Hugging Face xlstm model
// directory, streaming it as it is made. Prompts are prefilled in the parallel/chunkwise form,
// then every new token costs one recurrent step.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/util.h"
#include "infer/sample.h"
#include "io/safetensors.h"
#include "models/hf.h"
#include "models/xlstm_large_lm.h"
#include "text/tokenizer.h"
#include "train/checkpoint.h"

namespace xlstm::cli {

namespace {

using nlohmann::json;

// Text <-> token ids for one of the two model families, with per-row streaming decode.
class Codec {
 public:
  virtual ~Codec() = default;
  virtual std::vector<int64_t> encode(const std::string& text, const std::string& where) = 0;
  virtual std::string push(int64_t row, int64_t id) = 0;  // complete text so far
  virtual std::string flush(int64_t row) = 0;
};

class VocabCodec : public Codec {
 public:
  explicit VocabCodec(const Vocab& v) : v_(v) {}
  std::vector<int64_t> encode(const std::string& text, const std::string& where) override {
    auto ids = v_.encode(text, where);
    return {ids.begin(), ids.end()};
  }
  std::string push(int64_t, int64_t id) override { return v_.decode(&id, 1); }
  std::string flush(int64_t) override { return ""; }

 private:
  const Vocab& v_;
};

class BpeCodec : public Codec {
 public:
  BpeCodec(Tokenizer t, int64_t rows) : tok_(t) {
    for (int64_t b = 0; b < rows; ++b) dec_.emplace_back(t);
  }
  std::vector<int64_t> encode(const std::string& text, const std::string&) override {
    auto ids = tok_.encode(text, /*add_special_tokens=*/true);
    return {ids.begin(), ids.end()};
  }
  std::string push(int64_t row, int64_t id) override { return dec_[(size_t)row].push((int32_t)id); }
  std::string flush(int64_t row) override { return dec_[(size_t)row].flush(); }

 private:
  Tokenizer tok_;
  std::vector<TokenStreamDecoder> dec_;
};

// Holds back text that may be the beginning of a stop string; reports a stop string as found.
class StopFilter {
 public:
  explicit StopFilter(const std::vector<std::string>& stops) : stops_(stops) {}
  // Adds text; returns what is safe to print. Sets stopped() when a stop string appeared (the
  // stop string and everything after it are dropped).
  std::string add(const std::string& text) {
    if (stopped_) return "";
    held_ += text;
    size_t cut = std::string::npos;
    for (auto& s : stops_) cut = std::min(cut, held_.find(s));
    if (cut != std::string::npos) {
      stopped_ = true;
      std::string out = held_.substr(0, cut);
      held_.clear();
      return out;
    }
    size_t keep = 0;  // longest suffix of held_ that is a proper prefix of a stop string
    for (auto& s : stops_)
      for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k)
        if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
          keep = k;
          break;
        }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
  }
  std::string finish() {
    std::string out = stopped_ ? "" : held_;
    held_.clear();
    return out;
  }
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

// No tokenizer: prompts are token ids ("0 17 5"), output is token ids.
class IdCodec : public Codec {
 public:
  std::vector<int64_t> encode(const std::string& text, const std::string& where) override {
    std::vector<int64_t> ids;
    size_t i = 0;
    while (i < text.size()) {
      if (text[i] == ' ' || text[i] == ',' || text[i] == '\n') {
        ++i;
        continue;
      }
      size_t n = 0;
      long long v = -1;
      try {
        v = std::stoll(text.substr(i), &n);
      } catch (const std::exception&) {
        n = 0;
      }
      XLSTM_CHECK(n > 0 && v >= 0, ValueError, where, ": '", text.substr(i, 12),
                  "' is not a token id (without a tokenizer the prompt is token ids separated by spaces; "
                  "hint: --tokenizer FILE)");
      ids.push_back(v);
      i += n;
    }
    return ids;
  }
  std::string push(int64_t, int64_t id) override { return str(" ", id); }
  std::string flush(int64_t) override { return ""; }
};

std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  XLSTM_CHECK(f.good(), IoError, path, ": cannot open for reading");
  const bool jsonl = path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
  std::vector<std::string> out;
  std::string line;
  int64_t n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (!jsonl) {
      out.push_back(line);
      continue;
    }
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      throw ValueError(str(path, ":", n, ": not valid JSON (", e.what(), ")"));
    }
    XLSTM_CHECK(j.is_object() && j.contains("prompt") && j["prompt"].is_string(), ValueError,
                path, ":", n, ": needs a string field 'prompt'");
    out.push_back(j["prompt"].get<std::string>());
  }
  XLSTM_CHECK(!out.empty(), ValueError, path, ": no prompts in the file");
  return out;
}

int64_t token_id_field(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return -1;
  const json& v = j[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int64_t>();
  return -1;
}

}  // namespace

void add_generate(CLI::App& app, std::function<int()>& run) {
  struct Opts {
    std::string model, prompt, prompts_file, tokenizer, save_state, load_state, prompt_ids;
    std::vector<std::string> stops;
    int64_t tokens = 500;
    SamplingConfig s;
    uint64_t seed = 0;
    int threads = 0;
    bool no_bos = false, ignore_eos = false, prompt_given = false, stream = false, bf16 = false;
  };
  auto o = std::make_shared<Opts>();
  auto* g = app.add_subcommand(
      "generate",
      "Generate text from a checkpoint of `xlstm train` or a Hugging Face xlstm model directory "
      "(config.json + model*.safetensors + tokenizer.json, e.g. NX-AI/xLSTM-7b): the prompt is "
      "read once in parallel/chunkwise form, then each new token costs one recurrent step.");
  auto* mopt = g->add_option("--model,--checkpoint", o->model,
                             "run directory (uses best/), checkpoint directory, or Hugging Face "
                             "model directory")
                   ->required();
  (void)mopt;
  g->add_option("--prompt", o->prompt, "text to continue (default: a newline for char models; "
                                       "only BOS for Hugging Face models)");
  g->add_option("--prompt-ids", o->prompt_ids,
                "the prompt as token ids (\"0 17 5\"); the output is printed as ids too (also "
                "the mode of a Hugging Face model directory without tokenizer.json)");
  g->add_option("--prompts-file", o->prompts_file,
                "many prompts, generated as one batch: one per line, or JSONL with a 'prompt' "
                "field (.jsonl); prints one JSON line per prompt");
  g->add_option("--tokens", o->tokens, "maximum new tokens per prompt")->capture_default_str();
  g->add_option("--temperature", o->s.temperature, "sampling temperature (0 = greedy)")->capture_default_str();
  g->add_option("--top-k", o->s.top_k, "sample among the k most likely (0 = all)")->capture_default_str();
  g->add_option("--top-p", o->s.top_p, "nucleus sampling threshold")->capture_default_str();
  g->add_option("--repetition-penalty", o->s.repetition_penalty, "> 1 discourages repeats")
      ->capture_default_str();
  g->add_option("--seed", o->seed, "sampling seed (prompt b of a batch uses seed + b)")->capture_default_str();
  g->add_option("--stop", o->stops, "stop when this text appears (not printed); repeatable");
  g->add_flag("--ignore-eos", o->ignore_eos, "keep going after the end-of-sequence token");
  g->add_flag("--no-bos", o->no_bos, "Hugging Face models: do not put the BOS token before the prompt");
  g->add_option("--tokenizer", o->tokenizer, "tokenizer.json (default: the model directory's)");
  g->add_option("--save-state", o->save_state,
                "write the model state after the generated text (safetensors) to continue later");
  g->add_option("--load-state", o->load_state,
                "continue from a state written by --save-state (the prompt, which may be empty, "
                "continues that text)");
  g->add_flag("--stream", o->stream,
              "read the text to continue from standard input, of any length, in constant memory "
              "(chunks of 64 KiB prefilled with the state carried), then generate");
  g->add_flag("--bf16", o->bf16,
             "LSTM models: decode with bf16 copies of the LSTM weight matrices (about half the "
             "memory traffic per token; outputs differ from float32 by the weights' bf16 rounding)");
  g->add_option("--threads", o->threads, "CPU threads");
  g->callback([o, g, &run] {
    o->prompt_given = g->count("--prompt") > 0 || g->count("--prompt-ids") > 0;
    run = [o]() -> int {
      set_threads(o->threads);
      validate(o->s);
      XLSTM_CHECK(o->tokens >= 0, ValueError, "--tokens must be >= 0");
      XLSTM_CHECK(!(o->prompt_given && !o->prompts_file.empty()), ValueError,
                  "give --prompt or --prompts-file, not both");
      // The model and its text codec.
      std::unique_ptr<LanguageModel> hf_model;
      LoadedModel ours;
      LanguageModel* model = nullptr;
      std::unique_ptr<Codec> codec;
      json model_id;  // what a saved state must have been made with
      int64_t bos = -1, eos = -1;
      std::vector<std::string> prompts;
      const bool raw_ids = !o->prompt_ids.empty();
      XLSTM_CHECK(!(raw_ids && !o->prompt.empty()), ValueError,
                  "give --prompt or --prompt-ids, not both");
      if (!o->prompts_file.empty()) prompts = read_prompts(o->prompts_file);
      else prompts.push_back(raw_ids ? o->prompt_ids : o->prompt);
      const int64_t B = (int64_t)prompts.size();
      if (is_hf_dir(o->model)) {
        HfCheckpoint ck = load_hf_checkpoint(o->model, HfLoad::Mapped);
        const std::string tok = !o->tokenizer.empty() ? o->tokenizer : ck.tokenizer_json;
        if (raw_ids || tok.empty()) {  // no tokenizer: token ids in and out
          codec = std::make_unique<IdCodec>();
        } else {
          Tokenizer t = Tokenizer::from_file(tok);
          XLSTM_CHECK(t.vocab_size() <= ck.config.vocab_size, ValueError, tok,
                      ": the tokenizer has ", t.vocab_size(), " ids, the model only ",
                      ck.config.vocab_size);
          codec = std::make_unique<BpeCodec>(t, B);
        }
        bos = token_id_field(ck.generation_config, "bos_token_id");
        if (bos < 0) bos = ck.config.bos_token_id;
        eos = token_id_field(ck.generation_config, "eos_token_id");
        if (eos < 0) eos = ck.config.eos_token_id;
        model_id = xlstm_large_lm_json(ck.config);
        hf_model = std::make_unique<XLSTMLargeLM>(std::move(ck.model), model_id);
        model = hf_model.get();
      } else {
        ours = load_model(o->model);
        model = ours.model.get();
        if (raw_ids) codec = std::make_unique<IdCodec>();
        else codec = std::make_unique<VocabCodec>(ours.vocab);
        model_id = ours.config;
        if (!o->prompt_given && o->prompts_file.empty()) prompts[0] = "\n";
        XLSTM_CHECK(o->tokenizer.empty(), ValueError,
                    "--tokenizer is for Hugging Face models; this checkpoint has its own vocabulary");
        if (o->bf16) model->set_decode_bf16(true);
      }
      XLSTM_CHECK(!o->bf16 || !hf_model, ValueError,
                  "--bf16 is for LSTM checkpoints; a Hugging Face model decodes in the dtype it "
                  "is stored in");
      // Token ids of the prompts.
      bool continuing = !o->load_state.empty();
      XLSTM_CHECK(!o->stream || (B == 1 && !o->prompt_given), ValueError,
                  "--stream reads the prompt from standard input: no --prompt/--prompt-ids/--prompts-file");
      if (o->stream) prompts[0].clear();
      std::vector<std::vector<int64_t>> ids;
      for (int64_t b = 0; b < B; ++b) {
        std::vector<int64_t> p;
        // BOS before text prompts of HF models (xLSTM-7B was trained with it at every document
        // start); token-id prompts are taken exactly as given.
        const bool text_prompt = dynamic_cast<BpeCodec*>(codec.get()) != nullptr;
        if (bos >= 0 && text_prompt && !o->no_bos && !continuing) p.push_back(bos);
        auto enc = codec->encode(prompts[(size_t)b], B == 1 ? "--prompt" : str("prompt ", b + 1));
        p.insert(p.end(), enc.begin(), enc.end());
        XLSTM_CHECK(!p.empty() || continuing || o->stream, ValueError,
                    "the prompt is empty; hint: give --prompt text");
        ids.push_back(std::move(p));
      }
      GenerationStart start;
      if (continuing) {
        SafeTensorsFile f(o->load_state);
        auto md = f.metadata();
        XLSTM_CHECK(md.count("format") && md["format"] == "xlstm-generation-state", ValueError,
                    o->load_state, ": not a state written by `xlstm generate --save-state`");
        XLSTM_CHECK(md.count("model") && json::parse(md["model"]) == model_id, ValueError,
                    o->load_state, ": the state was made with a different model");
        for (auto& n : f.names()) {
          if (n == "logits") start.logits = f.get(n).to(DType::F32);
          else if (n.rfind("state.", 0) == 0) start.state[n.substr(6)] = f.get(n).clone();
        }
        XLSTM_CHECK(start.logits.defined(), ValueError, o->load_state, ": tensor 'logits' is missing");
        XLSTM_CHECK(start.logits.ndim() == 2 && start.logits.dim(0) == B, ValueError, o->load_state,
                    ": holds ", start.logits.ndim() == 2 ? start.logits.dim(0) : 0,
                    " rows, but ", B, " prompts were given");
      }
      if (o->stream) {  // prefill stdin chunk by chunk, then generate from the state
        std::unique_ptr<LMState> st = continuing ? model->import_state(start.state, o->load_state)
                                                 : model->new_state(1);
        Tensor last = continuing ? start.logits : Tensor();
        std::vector<int64_t> pending = ids[0];  // BOS for HF text models
        std::string carry;
        std::vector<char> buf(1 << 16);
        int64_t consumed = 0;
        bool eof = false;
        while (!eof) {
          const size_t n = std::fread(buf.data(), 1, buf.size(), stdin);
          eof = n < buf.size();
          std::string text = carry + std::string(buf.data(), n);
          carry.clear();
          if (!eof) {  // cut after the last newline (else space): complete characters and words
            size_t cut = text.find_last_of('\n');
            if (cut == std::string::npos) cut = text.find_last_of(' ');
            if (cut != std::string::npos) {
              carry = text.substr(cut + 1);
              text.resize(cut + 1);
            } else {
              carry = text;
              text.clear();
            }
          }
          auto enc = codec->encode(text, "standard input");
          pending.insert(pending.end(), enc.begin(), enc.end());
          if (pending.empty()) continue;
          Tensor x({1, (int64_t)pending.size()}, DType::I64);
          std::copy(pending.begin(), pending.end(), x.data<int64_t>());
          last = model->prefill(x, *st);
          consumed += (int64_t)pending.size();
          pending.clear();
        }
        XLSTM_CHECK(last.defined(), ValueError, "standard input is empty");
        std::fprintf(stderr, "read %lld tokens from standard input\n", (long long)consumed);
        start.state = model->export_state(*st);
        start.logits = last;
        continuing = true;
        ids[0].clear();
      }
      BatchOptions opt;
      opt.max_tokens = o->tokens;
      opt.sampling = o->s;
      opt.seed = o->seed;
      if (eos >= 0 && !o->ignore_eos) opt.stop_ids.push_back(eos);
      std::vector<StopFilter> filters(B, StopFilter(o->stops));
      std::vector<std::string> text((size_t)B);
      const bool stream = B == 1;
      if (stream) {  // echo the prompt, then stream the continuation
        std::fwrite(prompts[0].data(), 1, prompts[0].size(), stdout);
        std::fflush(stdout);
      }
      BatchResult r = generate_batch(*model, ids, opt, [&](int64_t b, int64_t id) {
        StopFilter& sf = filters[(size_t)b];
        const std::string piece = sf.add(codec->push(b, id));
        text[(size_t)b] += piece;
        if (stream && !piece.empty()) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        }
        return !sf.stopped();
      }, continuing ? &start : nullptr);
      for (int64_t b = 0; b < B; ++b) {
        StopFilter& sf = filters[(size_t)b];
        const std::string tail = sf.stopped() ? "" : sf.add(codec->flush(b)) + sf.finish();
        text[(size_t)b] += tail;
        if (stream) {
          std::fwrite(tail.data(), 1, tail.size(), stdout);
          std::fputc('\n', stdout);
        } else {
          const std::string reason = sf.stopped() ? "stop_string" : r.stop_reason[(size_t)b] == "stop_id" ? "eos" : r.stop_reason[(size_t)b];
          std::cout << json{{"prompt", prompts[(size_t)b]},
                            {"completion", text[(size_t)b]},
                            {"tokens", r.tokens[(size_t)b].size()},
                            {"stop_reason", reason}}
                           .dump(-1, ' ', false, json::error_handler_t::replace)
                    << "\n";
        }
      }
      std::fflush(stdout);
      if (!o->save_state.empty()) {
        std::map<std::string, Tensor> t;
        for (auto& [n, v] : r.state) t["state." + n] = v;
        t["logits"] = r.logits;
        save_safetensors(o->save_state, t,
                         {{"format", "xlstm-generation-state"}, {"model", model_id.dump()},
                          {"rows", std::to_string(B)}});
      }
      return 0;
    };
  });
}

}  // namespace xlstm::cli
