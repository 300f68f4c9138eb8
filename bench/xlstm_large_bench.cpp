// xLSTM-Large inference benchmarks (issue 4 "Targets"): a randomly initialised ~125M-parameter
// model in the Hugging Face `xlstm` format, written once in F32 and once in BF16 with
// save_hf_checkpoint and loaded back with load_hf_checkpoint(HfLoad::Mapped) (zero-copy views).
//
//   model (default): H 768, 12 blocks, 4 heads, vocab 50304, qk_dim_factor 0.5 (QK 384,
//     DHQK 96), v_dim_factor 1.0 (VD 768, DHV 192), ffn_proj_factor 2.667 (U 2048), no biases,
//     head tied to the embedding (lm_head.weight absent from the file: the loader's tie
//     fallback) -> 123,670,368 parameters. --untied keeps lm_head.weight (as the 7B does):
//     162,303,840 parameters.
//   every weight is drawn at random (uniform, std 1/sqrt(fan_in) for matrices, non-zero gate
//   weights, norm weights 1 +- 0.1), not the HF init, whose zero gate weights would make the
//   FFN output exactly zero and the torch comparison weak.
//
// Phases (each measurement runs in a fresh process: the driver re-executes this program with
// OMP_NUM_THREADS set, so thread counts and peak-RSS numbers do not leak between phases):
//   --phase all        (default) the driver: writes the checkpoints (or reuses --dir), runs the
//                      phases below for every thread count, optionally the PyTorch script, and
//                      prints the markdown tables of docs/perf.md.
//   --phase write      writes DIR/f32 and DIR/bf16.
//   --phase bandwidth  machine copy bandwidth over 1 GiB buffers (best of 7), and read-only
//                      sums over 1 GiB on 4 KiB and on huge pages (RESULT lines only).
//   --phase decode     batch-1 decode tokens/s (4-token prompt, 16 warm-up tokens, then
//                      --reps runs of --tokens greedy tokens, state carried) and, interleaved
//                      with it, the same token's matrix-vector products alone (the library
//                      kernel, and an alternative 4-rows-per-pass kernel for comparison), plus
//                      the logit soft cap alone (std::tanh as forward does, and PwMath::tanh).
//   --phase prefill    forward of (1, --seq) random tokens from a zero state (state out, all
//                      logits, as forward returns them); 1 warm-up, --prefill-reps timed; plus
//                      the head GEMM, a fresh (S, V) logits buffer (4 KiB and huge pages) and
//                      the logit soft cap alone, for attribution.
//   --phase load       VmRSS / VmHWM / RssAnon / RssFile before load, after load, after the
//                      first and second decode token.
//   --phase logits     ours on a short input for bench/torch_xlstm_large.py to compare:
//                      input_ids (2, 130), logits of the full forward (2, 130, V), and
//                      step_logits (2, 30, V): positions 100..129 decoded token by token after
//                      a 100-token prefill (the decode path benchmarked above).
//   --merge LOG,...    the tables again from saved stderr logs, best over all their runs.
// Every measurement prints `RESULT key=value ...` lines (the driver parses them).
//
// Bandwidth bound: a decode token reads every stored weight byte once (the embedding only one
// row when the head is untied); bound tokens/s = copy bandwidth / bytes per token, where copy
// bandwidth counts bytes read + written (STREAM convention) of a 1 GiB memcpy split over the
// threads.
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cpu/fastmath.h"
#include "cpu/linear.h"
#include "cpu/simd.h"
#include "io/safetensors.h"
#include "models/hf.h"
#include "models/xlstm_large.h"
#include "xlstm/rng.h"

namespace {

using namespace xlstm;
namespace fs = std::filesystem;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double cpu_s() {  // CPU time of the whole process (all threads)
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}
double best(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

struct Args {
  std::string phase = "all", dir, dtype = "f32", torch_script, python = "/usr/bin/python3";
  std::vector<int> threads = {1, 2};
  std::vector<std::string> merge;  // --merge LOG,LOG,...
  int tokens = 32, reps = 5, prefill_reps = 3, seq = 2048, repeat = 1;
  bool untied = false, keep = false;
};

std::vector<int> parse_ints(const std::string& s) {
  std::vector<int> r;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) r.push_back(std::stoi(x));
  return r;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&]() -> std::string {
      XLSTM_CHECK(i + 1 < argc, ValueError, "option ", k, " needs a value");
      return argv[++i];
    };
    if (k == "--phase") a.phase = val();
    else if (k == "--dir") a.dir = val();
    else if (k == "--dtype") a.dtype = val();
    else if (k == "--threads") a.threads = parse_ints(val());
    else if (k == "--tokens") a.tokens = std::stoi(val());
    else if (k == "--reps") a.reps = std::stoi(val());
    else if (k == "--prefill-reps") a.prefill_reps = std::stoi(val());
    else if (k == "--seq") a.seq = std::stoi(val());
    else if (k == "--repeat") a.repeat = std::stoi(val());
    else if (k == "--merge") {
      a.phase = "merge";
      std::stringstream ss(val());
      for (std::string f; std::getline(ss, f, ',');) a.merge.push_back(f);
    }
    else if (k == "--torch") a.torch_script = val();
    else if (k == "--python") a.python = val();
    else if (k == "--untied") a.untied = true;
    else if (k == "--keep") a.keep = true;
    else if (k == "--help" || k == "-h") {
      std::printf(
          "usage: xlstm_large_bench [--dir DIR] [--keep] [--untied] [--threads 1,2] [--repeat 1]\n"
          "         [--tokens 32] [--reps 5] [--prefill-reps 3] [--seq 2048]\n"
          "         [--torch bench/torch_xlstm_large.py] [--python /usr/bin/python3]\n"
          "         [--phase all|write|bandwidth|decode|prefill|load|logits] [--dtype f32|bf16]\n"
          "       xlstm_large_bench --merge LOG,LOG,... [--threads 1,2] [--seq 2048]\n"
          "Writes a random ~125M xLSTM-Large HF checkpoint (F32 and BF16) to DIR (default: a new\n"
          "temp directory, removed at the end unless --keep; an existing DIR with f32/ and bf16/\n"
          "is reused) and prints decode, prefill, bandwidth and load-memory tables. Each\n"
          "measurement runs in a fresh process; --repeat K runs them all K times round-robin\n"
          "and keeps the best of each (for a shared, noisy machine). --torch also times the\n"
          "PyTorch script and checks its logits against ours. The children's output goes to\n"
          "stderr; --merge prints the tables again from saved stderr logs, best of all runs.\n");
      std::exit(0);
    } else {
      throw ValueError("unknown option '" + k + "' (see --help)");
    }
  }
  XLSTM_CHECK(a.tokens > 0 && a.reps > 0 && a.prefill_reps > 0 && a.seq > 0 && a.repeat > 0,
              ValueError, "--tokens, --reps, --prefill-reps, --seq and --repeat must be > 0");
  XLSTM_CHECK(a.dtype == "f32" || a.dtype == "bf16", ValueError, "--dtype must be f32 or bf16");
  return a;
}

// ---------------------------------------------------------------- the model

XLSTMLargeConfig bench_config(bool untied) {
  XLSTMLargeConfig c;
  c.vocab_size = 50304;
  c.embedding_dim = 768;
  c.num_heads = 4;
  c.num_blocks = 12;
  c.qk_dim_factor = 0.5;
  c.v_dim_factor = 1.0;
  c.ffn_proj_factor = 2.667;
  c.ffn_round_up_to_multiple_of = 64;
  c.chunk_size = 64;
  c.tie_word_embeddings = !untied;
  return c;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Uniform random weights (fast to draw for 10^8 values; the distribution does not matter for
// speed, only that nothing is trivially zero for the torch comparison).
void randomize(XLSTMLarge<float>& m, uint64_t seed) {
  const int64_t NH = m.config().num_heads;
  uint64_t idx = 0;
  for (auto& p : m.params()) {
    Rng r(seed + 7919 * ++idx);
    Tensor& t = *p.value;
    float* d = t.data<float>();
    const int64_t n = t.numel();
    auto uni = [&](double mean, double std) {  // uniform with this mean and std
      const double a = std * std::sqrt(3.0);
      for (int64_t j = 0; j < n; ++j) d[j] = (float)(mean + r.uniform(-a, a));
    };
    const std::string& nm = p.name;
    if (nm == "backbone.embeddings.weight" || nm == "lm_head.weight") {
      uni(0.0, 0.3);  // tied head: logits ~ 0.3 sqrt(H) = 8 before the cap of 30
    } else if (t.ndim() == 2) {
      uni(0.0, 1.0 / std::sqrt((double)t.dim(1)));
    } else if (ends_with(nm, "igate_preact.bias")) {
      uni(-2.0, 1.0);
    } else if (ends_with(nm, "fgate_preact.bias")) {
      for (int64_t h = 0; h < n; ++h)
        d[h] = (float)(3.0 + 3.0 * (NH == 1 ? 0.0 : (double)h / (double)(NH - 1)) + r.uniform(-0.5, 0.5));
    } else if (ends_with(nm, ".bias")) {
      uni(0.0, 0.1);
    } else {
      uni(1.0, 0.1);  // norm weights
    }
  }
}

// Rewrites DIR/model.safetensors without lm_head.weight (save_hf_checkpoint always writes the
// head, for transformers' sake): the loader then ties the head to the embedding.
void drop_head(const std::string& dir) {
  const std::string path = dir + "/model.safetensors";
  std::map<std::string, Tensor> keep;
  std::map<std::string, std::string> meta;
  {
    SafeTensorsFile f(path);
    for (auto& n : f.names())
      if (n != "lm_head.weight") keep[n] = f.get(n);
    meta = f.metadata();
  }
  save_safetensors(path, keep, meta);
}

void phase_write(const std::string& dir, bool untied) {
  const XLSTMLargeConfig cfg = bench_config(untied);
  XLSTMLarge<float> m(cfg, ParamAlloc::Init);
  randomize(m, 42);
  int64_t nparams = 0;
  for (auto& p : m.params()) nparams += p.value->numel();
  fs::create_directories(dir);
  for (DType dt : {DType::F32, DType::BF16}) {
    const std::string sub = dir + (dt == DType::F32 ? "/f32" : "/bf16");
    save_hf_checkpoint(sub, m, nlohmann::json(), "", dt);
    if (!untied) drop_head(sub);
  }
  std::printf("RESULT write params=%lld H=%lld L=%lld NH=%lld QK=%lld VD=%lld U=%lld V=%lld tied=%d\n",
              (long long)nparams, (long long)cfg.embedding_dim, (long long)cfg.num_blocks,
              (long long)cfg.num_heads, (long long)cfg.qk_dim(), (long long)cfg.v_dim(),
              (long long)cfg.ffn_dim(), (long long)cfg.vocab_size, untied ? 0 : 1);
}

// ---------------------------------------------------------------- memory

// Sum of 64-bit words, parallel over the threads: a read-bandwidth kernel.
uint64_t read_sum(const void* p, size_t bytes) {
  const uint64_t* w = static_cast<const uint64_t*>(p);
  const int64_t n = (int64_t)(bytes / 8);
  uint64_t acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += w[i];
  return acc;
}

volatile uint64_t g_sink = 0;

inline float widen_w(float v) { return v; }
inline float widen_w(uint16_t v) { return bf16_to_f32(v); }

void phase_bandwidth() {
  const size_t bytes = size_t(1) << 30;
  char* src = static_cast<char*>(std::aligned_alloc(4096, bytes));
  char* dst = static_cast<char*>(std::aligned_alloc(4096, bytes));
  XLSTM_CHECK(src && dst, ValueError, "bandwidth: cannot allocate 2 GiB");
  const int nt = omp_get_max_threads();
  // First touch by the thread that will use each part (pages on its node; faults not timed).
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < (int64_t)bytes; i += 4096) src[i] = (char)i, dst[i] = 0;
  auto copy = [&] {
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      const size_t per = bytes / (size_t)T;
      std::memcpy(dst + per * (size_t)t, src + per * (size_t)t, per);
    }
  };
  // A third buffer on transparent huge pages (2 MiB): is the 4 KiB paging of the others (and
  // of the mapped checkpoint) a limit for reading?
  char* huge = static_cast<char*>(std::aligned_alloc(size_t(2) << 20, bytes));
  XLSTM_CHECK(huge, ValueError, "bandwidth: cannot allocate 1 GiB");
  madvise(huge, bytes, MADV_HUGEPAGE);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < (int64_t)bytes; i += 4096) huge[i] = (char)i;
  std::vector<double> tc, tr, th;
  copy();
  for (int r = 0; r < 7; ++r) {
    double t0 = now_s();
    copy();
    tc.push_back(now_s() - t0);
    t0 = now_s();
    g_sink = g_sink + read_sum(src, bytes);
    tr.push_back(now_s() - t0);
    t0 = now_s();
    g_sink = g_sink + read_sum(huge, bytes);
    th.push_back(now_s() - t0);
  }
  std::printf("RESULT bandwidth threads=%d copy_gbs=%.2f read_gbs=%.2f read_huge_gbs=%.2f "
              "copy_gbs_median=%.2f read_gbs_median=%.2f\n",
              nt, 2.0 * (double)bytes / best(tc) / 1e9, (double)bytes / best(tr) / 1e9,
              (double)bytes / best(th) / 1e9, 2.0 * (double)bytes / median(tc) / 1e9,
              (double)bytes / median(tr) / 1e9);
  std::free(src);
  std::free(dst);
  std::free(huge);
}

struct Mem {
  double rss = 0, hwm = 0, anon = 0, file = 0;  // MiB
};
Mem read_mem() {
  Mem m;
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);) {
    auto get = [&](const char* key, double& out) {
      const size_t n = std::strlen(key);
      if (line.compare(0, n, key) == 0) out = std::atof(line.c_str() + n) / 1024.0;  // kB -> MiB
    };
    get("VmRSS:", m.rss);
    get("VmHWM:", m.hwm);
    get("RssAnon:", m.anon);
    get("RssFile:", m.file);
  }
  return m;
}

// ---------------------------------------------------------------- inference helpers

Tensor make_ids(int64_t B, int64_t S, int64_t V, uint64_t seed) {
  Tensor t({B, S}, DType::I64);
  Rng r(seed);
  int64_t* p = t.data<int64_t>();
  for (int64_t j = 0; j < B * S; ++j) p[j] = (int64_t)r.below((uint64_t)V);
  return t;
}

int64_t argmax_last(const Tensor& logits) {
  const int64_t V = logits.dim(2), S = logits.dim(1);
  const float* l = logits.data<float>() + (S - 1) * V;
  return (int64_t)(std::max_element(l, l + V) - l);
}

// Bytes a decode token reads: every stored parameter once; an untied embedding only one row.
double bytes_per_token(XLSTMLarge<float>& m) {
  double b = 0;
  for (auto& p : m.params()) {
    if (p.name == "backbone.embeddings.weight" && !m.config().tie_word_embeddings)
      b += (double)p.value->nbytes() / (double)p.value->dim(0);
    else
      b += (double)p.value->nbytes();
  }
  return b;
}

double stored_param_count(XLSTMLarge<float>& m) {
  double n = 0;
  for (auto& p : m.params()) n += (double)p.value->numel();
  return n;
}

// An alternative batch-1 GEMV for comparison with the library's (bench evidence only): four
// weight rows per pass share each x load (8 independent FMA chains instead of 2) and one
// horizontal reduction per row at the end; same parallel split over 16-row tasks.
#if defined(__AVX512F__)
inline __m512 load16w(const float* w) { return _mm512_loadu_ps(w); }
inline __m512 load16w(const uint16_t* w) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
  // maskz forms: GCC 12 warns about the undefined vectors inside the plain intrinsics.
  return _mm512_castsi512_ps(
      _mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
}
template <class W>
void gemv_alt(int64_t I, int64_t O, const float* x, const W* w, float* y) {
  const int64_t tasks = (O + 15) / 16;
#pragma omp parallel for schedule(static) if (O * I > 65536)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o1 = std::min(O, (t + 1) * 16);
    int64_t o = t * 16;
    for (; o + 4 <= o1; o += 4) {
      const W* r0 = w + o * I;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      int64_t i = 0;
      for (; i + 32 <= I; i += 32) {
        const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
        a0 = _mm512_fmadd_ps(load16w(r0 + i), x0, a0);
        b0 = _mm512_fmadd_ps(load16w(r0 + i + 16), x1, b0);
        a1 = _mm512_fmadd_ps(load16w(r0 + I + i), x0, a1);
        b1 = _mm512_fmadd_ps(load16w(r0 + I + i + 16), x1, b1);
        a2 = _mm512_fmadd_ps(load16w(r0 + 2 * I + i), x0, a2);
        b2 = _mm512_fmadd_ps(load16w(r0 + 2 * I + i + 16), x1, b2);
        a3 = _mm512_fmadd_ps(load16w(r0 + 3 * I + i), x0, a3);
        b3 = _mm512_fmadd_ps(load16w(r0 + 3 * I + i + 16), x1, b3);
      }
      float s[4] = {hsum16(_mm512_add_ps(a0, b0)),
                    hsum16(_mm512_add_ps(a1, b1)),
                    hsum16(_mm512_add_ps(a2, b2)),
                    hsum16(_mm512_add_ps(a3, b3))};
      for (int r = 0; r < 4; ++r) {
        const W* row = r0 + r * I;
        for (int64_t j = i; j < I; ++j) s[r] += widen_w(row[j]) * x[j];
        y[o + r] = s[r];
      }
    }
    for (; o < o1; ++o) {
      float acc = 0.f;
      for (int64_t j = 0; j < I; ++j) acc += widen_w(w[o * I + j]) * x[j];
      y[o] = acc;
    }
  }
}
#endif

void phase_decode(const Args& a) {
  const std::string dir = a.dir + "/" + a.dtype;
  HfCheckpoint ck = load_hf_checkpoint(dir, HfLoad::Mapped);
  XLSTMLarge<float>& m = *ck.model;
  const int64_t V = m.vocab_size();
  XLSTMLargeState st;
  Tensor logits = m.forward(make_ids(1, 4, V, 1), Mode::Eval, nullptr, &st);
  Tensor tok({1, 1}, DType::I64);
  auto step = [&] {
    tok.data<int64_t>()[0] = argmax_last(logits);
    logits = m.forward(tok, Mode::Eval, &st, &st);
  };
  for (int w = 0; w < 16; ++w) step();  // pages the weights in, grows every scratch buffer
  const double bpt = bytes_per_token(m);
  double all_bytes = 0;
  for (auto& p : m.params()) all_bytes += (double)p.value->nbytes();
  // The matrix-vector products of one token alone (same kernel, same matrices, nothing else):
  // the rest of a decode step is 1/decode - 1/gemv.
  std::vector<float> x(4096, 0.01f), y((size_t)V);
  auto gemvs = [&] {
    for (auto& p : m.params()) {
      const Tensor& w = *p.value;
      if (w.ndim() != 2) continue;
      if (p.name == "backbone.embeddings.weight" && !m.config().tie_word_embeddings) continue;
      linear_forward_mixed(1, w.dim(1), w.dim(0), x.data(), w.raw(), w.dtype(), nullptr, y.data());
    }
  };
  auto gemvs_alt = [&] {
#if defined(__AVX512F__)
    for (auto& p : m.params()) {
      const Tensor& w = *p.value;
      if (w.ndim() != 2) continue;
      if (p.name == "backbone.embeddings.weight" && !m.config().tie_word_embeddings) continue;
      if (w.dtype() == DType::F32)
        gemv_alt(w.dim(1), w.dim(0), x.data(), w.data<float>(), y.data());
      else
        gemv_alt(w.dim(1), w.dim(0), x.data(), static_cast<const uint16_t*>(w.raw()), y.data());
    }
#endif
  };
  // Read bandwidth over the mapped weights themselves (what a decode token streams).
  auto read_weights = [&] {
    uint64_t s = 0;
    for (auto& p : m.params()) s += read_sum(p.value->raw(), p.value->nbytes());
    g_sink = g_sink + s;
  };
  gemvs();
  gemvs_alt();
  // Interleaved repetitions, so that changes of the machine's load hit every variant alike.
  // Rates per wall-clock second, and (decode) per second of process CPU time.
  std::vector<double> tps, tps_cpu, tg, tg_cpu, tga, tr;
  for (int r = 0; r < a.reps; ++r) {
    double t0 = now_s(), c0 = cpu_s();
    for (int i = 0; i < a.tokens; ++i) step();
    tps.push_back((double)a.tokens / (now_s() - t0));
    tps_cpu.push_back((double)a.tokens * omp_get_max_threads() / (cpu_s() - c0));
    t0 = now_s();
    c0 = cpu_s();
    for (int i = 0; i < a.tokens; ++i) gemvs();
    tg.push_back((double)a.tokens / (now_s() - t0));
    tg_cpu.push_back((double)a.tokens * omp_get_max_threads() / (cpu_s() - c0));
    t0 = now_s();
    for (int i = 0; i < a.tokens; ++i) gemvs_alt();
    tga.push_back((double)a.tokens / (now_s() - t0));
    t0 = now_s();
    read_weights();
    tr.push_back(now_s() - t0);
  }
  // The logit soft cap as forward applies it (one thread, std::tanh per element).
  const float cc = (float)m.config().output_logit_soft_cap;
  std::vector<double> tcap;
  for (int r = 0; r < 20; ++r) {
    const double t0 = now_s();
    for (int64_t j = 0; j < V; ++j) y[j] = cc * std::tanh(y[j] / cc);
    tcap.push_back(now_s() - t0);
  }
  // The soft cap with the library's vectorisable tanh (cpu/fastmath.h), for comparison.
  std::vector<double> tcf;
  for (int r = 0; r < 20; ++r) {
    const double t0 = now_s();
#pragma omp simd
    for (int64_t j = 0; j < V; ++j) y[j] = cc * PwMath<float>::tanh(y[j] / cc);
    tcf.push_back(now_s() - t0);
  }
  std::printf("RESULT decode dtype=%s threads=%d tok_s_median=%.2f tok_s_best=%.2f "
              "bytes_per_token=%.0f params=%.0f weights_read_gbs=%.2f gemv_tok_s=%.2f "
              "softcap_ms=%.3f softcap_fast_ms=%.3f gemv_alt_tok_s=%.2f tok_s_cpu_best=%.2f "
              "gemv_tok_s_cpu_best=%.2f\n",
              a.dtype.c_str(), omp_get_max_threads(), median(tps),
              *std::max_element(tps.begin(), tps.end()), bpt, stored_param_count(m),
              all_bytes / best(tr) / 1e9, *std::max_element(tg.begin(), tg.end()),
              1e3 * median(tcap), 1e3 * median(tcf), *std::max_element(tga.begin(), tga.end()),
              *std::max_element(tps_cpu.begin(), tps_cpu.end()),
              *std::max_element(tg_cpu.begin(), tg_cpu.end()));
}

void phase_prefill(const Args& a) {
  const std::string dir = a.dir + "/" + a.dtype;
  HfCheckpoint ck = load_hf_checkpoint(dir, HfLoad::Mapped);
  XLSTMLarge<float>& m = *ck.model;
  const XLSTMLargeConfig& c = m.config();
  const int64_t V = c.vocab_size, H = c.embedding_dim, S = a.seq;
  const Tensor ids = make_ids(1, S, V, 2);
  // Every position's logits (what PyTorch's forward returns), and the last position's only
  // (Logits::Last: what `generate` needs after a prompt).
  auto run = [&](XLSTMLarge<float>::Logits rows) {
    XLSTMLargeState st;
    Tensor logits = m.forward(ids, Mode::Eval, nullptr, &st, rows);
    g_sink = g_sink + (uint64_t)argmax_last(logits);
  };
  run(XLSTMLarge<float>::Logits::All);  // warm-up
  std::vector<double> ts, tl;
  for (int r = 0; r < a.prefill_reps; ++r) {
    double t0 = now_s();
    run(XLSTMLarge<float>::Logits::All);
    ts.push_back(now_s() - t0);
    t0 = now_s();
    run(XLSTMLarge<float>::Logits::Last);
    tl.push_back(now_s() - t0);
  }
  // Attribution: the head GEMM alone (into a buffer already touched) and a fresh (S, V) buffer
  // written once (what a forward returning every position's logits pays for its output).
  const Tensor* head = nullptr;
  for (auto& p : m.params())
    if (p.name == (c.tie_word_embeddings ? "backbone.embeddings.weight" : "lm_head.weight"))
      head = p.value;
  std::vector<float> x((size_t)(S * H), 0.01f), y((size_t)(S * V));
  linear_forward_mixed(S, H, V, x.data(), head->raw(), head->dtype(), nullptr, y.data());
  std::vector<double> th, ta, tah;
  for (int r = 0; r < 2; ++r) {
    double t0 = now_s();
    linear_forward_mixed(S, H, V, x.data(), head->raw(), head->dtype(), nullptr, y.data());
    th.push_back(now_s() - t0);
    t0 = now_s();
    {
      Tensor fresh = Tensor::empty({1, S, V}, DType::F32);
      float* f = fresh.data<float>();
      for (int64_t j = 0; j < S * V; j += 1024) f[j] = 1.f;  // one touch per 4 KiB page
      g_sink = g_sink + (uint64_t)f[S * V - 1024];
    }
    ta.push_back(now_s() - t0);
    t0 = now_s();
    {  // the same on transparent huge pages (2 MiB: 512x fewer faults)
      const size_t nb = ((size_t)(S * V) * sizeof(float) + (size_t(2) << 20) - 1) & ~((size_t(2) << 20) - 1);
      float* f = static_cast<float*>(std::aligned_alloc(size_t(2) << 20, nb));
      XLSTM_CHECK(f, ValueError, "prefill: cannot allocate ", nb, " bytes");
      madvise(f, nb, MADV_HUGEPAGE);
      for (int64_t j = 0; j < S * V; j += 1024) f[j] = 1.f;
      g_sink = g_sink + (uint64_t)f[S * V - 1024];
      std::free(f);
    }
    tah.push_back(now_s() - t0);
  }
  // The logit soft cap over all S*V logits as forward applies it (one thread, std::tanh).
  const float cc = (float)c.output_logit_soft_cap;
  double t0 = now_s();
  for (int64_t j = 0; j < S * V; ++j) y[(size_t)j] = cc * std::tanh(y[(size_t)j] / cc);
  const double tcap = now_s() - t0;
  std::printf("RESULT prefill dtype=%s threads=%d seq=%lld s_median=%.4f s_best=%.4f "
              "s_last_median=%.4f s_last_best=%.4f "
              "head_gemm_s=%.4f logits_alloc_s=%.4f logits_alloc_huge_s=%.4f softcap_s=%.4f\n",
              a.dtype.c_str(), omp_get_max_threads(), (long long)S, median(ts), best(ts),
              median(tl), best(tl), best(th), best(ta), best(tah), tcap);
}

void phase_load(const Args& a) {
  const std::string dir = a.dir + "/" + a.dtype;
  const Mem m0 = read_mem();
  const double t0 = now_s();
  HfCheckpoint ck = load_hf_checkpoint(dir, HfLoad::Mapped);
  const double t_load = now_s() - t0;
  const Mem m1 = read_mem();
  XLSTMLarge<float>& m = *ck.model;
  Tensor tok({1, 1}, DType::I64);
  tok.data<int64_t>()[0] = 0;
  XLSTMLargeState st;
  double t1 = now_s();
  Tensor logits = m.forward(tok, Mode::Eval, nullptr, &st);
  const double t_first = now_s() - t1;
  const Mem m2 = read_mem();
  tok.data<int64_t>()[0] = argmax_last(logits);
  logits = m.forward(tok, Mode::Eval, &st, &st);
  const Mem m3 = read_mem();
  const double wmib = (double)ck.stored_bytes / (1024.0 * 1024.0);
  auto pr = [&](const char* at, const Mem& x) {
    std::printf("RESULT load dtype=%s at=%s rss_mib=%.1f hwm_mib=%.1f anon_mib=%.1f file_mib=%.1f "
                "weights_mib=%.1f\n",
                a.dtype.c_str(), at, x.rss, x.hwm, x.anon, x.file, wmib);
  };
  pr("before_load", m0);
  pr("after_load", m1);
  pr("after_token1", m2);
  pr("after_token2", m3);
  std::printf("RESULT loadtime dtype=%s load_s=%.4f first_token_s=%.4f\n", a.dtype.c_str(), t_load,
              t_first);
}

void phase_logits(const Args& a) {
  HfCheckpoint ck = load_hf_checkpoint(a.dir + "/f32", HfLoad::Mapped);
  XLSTMLarge<float>& m = *ck.model;
  const int64_t B = 2, S = 130, P = 100, V = m.vocab_size();
  const Tensor ids = make_ids(B, S, V, 3);
  Tensor logits = m.forward(ids, Mode::Eval);
  // Prefill P tokens, then decode S - P tokens one at a time.
  Tensor prompt({B, P}, DType::I64);
  const int64_t* src = ids.data<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    std::copy(src + b * S, src + b * S + P, prompt.data<int64_t>() + b * P);
  XLSTMLargeState st;
  m.forward(prompt, Mode::Eval, nullptr, &st);
  Tensor steps({B, S - P, V}, DType::F32);
  Tensor tok({B, 1}, DType::I64);
  for (int64_t t = P; t < S; ++t) {
    for (int64_t b = 0; b < B; ++b) tok.data<int64_t>()[b] = src[b * S + t];
    const Tensor l = m.forward(tok, Mode::Eval, &st, &st);
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(steps.data<float>() + (b * (S - P) + (t - P)) * V, l.data<float>() + b * V,
                  sizeof(float) * V);
  }
  const std::string out = a.dir + "/ours_logits.safetensors";
  save_safetensors(out, {{"input_ids", ids}, {"logits", logits}, {"step_logits", steps}},
                   {{"prefill_len", std::to_string(P)}});
  std::printf("RESULT logits file=%s\n", out.c_str());
}

// ---------------------------------------------------------------- driver

using Result = std::map<std::string, std::string>;

// Appends `line` to `out` when it is a `RESULT kind key=value ...` line.
void parse_result(const std::string& line, std::vector<Result>& out) {
  if (line.compare(0, 7, "RESULT ") != 0) return;
  std::stringstream ss(line.substr(7));
  Result r;
  ss >> r["kind"];
  for (std::string kv; ss >> kv;) {
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) r[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  out.push_back(r);
}

// Runs `cmd` (a shell command), echoes its output to stderr, returns its RESULT lines parsed.
std::vector<Result> run_child(const std::string& cmd) {
  std::fprintf(stderr, "+ %s\n", cmd.c_str());
  FILE* p = popen(cmd.c_str(), "r");
  XLSTM_CHECK(p, IoError, "cannot run: ", cmd);
  std::vector<Result> out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) {
    std::fputs(buf, stderr);
    parse_result(buf, out);
  }
  const int rc = pclose(p);
  if (rc != 0) {  // recorded and reported at the end; the other measurements go on
    std::fprintf(stderr, "child failed (status %d): %s\n", rc, cmd.c_str());
    out.push_back({{"kind", "failed"}, {"cmd", cmd}, {"status", std::to_string(rc)}});
  }
  return out;
}

double num(const Result& r, const std::string& k) {
  auto it = r.find(k);
  XLSTM_CHECK(it != r.end(), ValueError, "child result has no '", k, "'");
  return std::atof(it->second.c_str());
}

const Result* find(const std::vector<Result>& rs, const std::string& kind,
                   std::initializer_list<std::pair<const char*, std::string>> where) {
  for (auto& r : rs) {
    if (r.at("kind") != kind) continue;
    bool ok = true;
    for (auto& [k, v] : where) ok = ok && r.count(k) && r.at(k) == v;
    if (ok) return &r;
  }
  return nullptr;
}

// Collapses the results of repeated runs: one per (kind, dtype, threads, at), each field the
// best over the runs (rates *gbs / *tok_s*: highest; times *_s / *_ms: lowest; memory *_mib:
// highest, the conservative side); other fields from the first run.
std::vector<Result> merge_best(const std::vector<Result>& rs) {
  std::vector<Result> out;
  auto id = [](const Result& r) {
    std::string k;
    for (const char* f : {"kind", "dtype", "threads", "at"}) k += (r.count(f) ? r.at(f) : "") + "|";
    return r.at("kind") == "failed" ? k + r.at("cmd") : k;
  };
  auto ends = [](const std::string& s, const char* suf) { return ends_with(s, suf); };
  for (const Result& r : rs) {
    Result* m = nullptr;
    for (auto& o : out)
      if (id(o) == id(r)) m = &o;
    if (!m) {
      out.push_back(r);
      continue;
    }
    for (auto& [k, v] : r) {
      if (!m->count(k)) {  // a field only later runs have
        (*m)[k] = v;
        continue;
      }
      const double a = std::atof(m->at(k).c_str()), b = std::atof(v.c_str());
      const bool rate = k.find("gbs") != std::string::npos || k.find("tok_s") != std::string::npos;
      const bool mem = ends(k, "_mib");
      const bool time = ends(k, "_s") || ends(k, "_ms") || k.rfind("s_", 0) == 0;
      if (((rate || mem) && b > a) || (time && !rate && b < a)) (*m)[k] = v;
    }
  }
  return out;
}

std::string self_exe() { return fs::read_symlink("/proc/self/exe").string(); }

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// The markdown tables of docs/perf.md from the (merged) results.
void print_tables(const std::vector<Result>& rs, const Args& a) {
  // Model.
  const Result* dec0 = find(rs, "decode", {{"dtype", "f32"}});
  if (const Result* w = find(rs, "write", {}))
    std::printf("model: H %s, %s blocks, %s heads, QK %s, VD %s, FFN %s, vocab %s, head %s: %s parameters\n\n",
                w->at("H").c_str(), w->at("L").c_str(), w->at("NH").c_str(), w->at("QK").c_str(),
                w->at("VD").c_str(), w->at("U").c_str(), w->at("V").c_str(),
                w->at("tied") == "1" ? "tied" : "untied", w->at("params").c_str());
  else if (dec0)
    std::printf("model: %.0f stored parameters (reused checkpoint)\n\n", num(*dec0, "params"));

  std::printf("| threads | copy GB/s (read + write) |\n|---:|---:|\n");
  for (int t : a.threads)
    if (const Result* r = find(rs, "bandwidth", {{"threads", std::to_string(t)}}))
      std::printf("| %d | %.1f |\n", t, num(*r, "copy_gbs"));

  std::printf("\n| weights | threads | MB read/token | tokens/s (median) | tokens/s (best) | ms/token | "
              "bound tokens/s | %% of bound (median) | %% of bound (best) | GEMVs alone tokens/s | "
              "GEMVs alone %% of bound | logit cap ms (std::tanh / PwMath) |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const char* dt : {"f32", "bf16"})
    for (int t : a.threads) {
      const Result* r = find(rs, "decode", {{"dtype", dt}, {"threads", std::to_string(t)}});
      const Result* bw = find(rs, "bandwidth", {{"threads", std::to_string(t)}});
      if (!r || !bw) continue;
      const double bpt = num(*r, "bytes_per_token"), med = num(*r, "tok_s_median"),
                   bst = num(*r, "tok_s_best");
      const double bound = num(*bw, "copy_gbs") * 1e9 / bpt, g = num(*r, "gemv_tok_s");
      std::printf("| %s | %d | %.1f | %.1f | %.1f | %.2f | %.1f | %.0f%% | %.0f%% | %.1f | %.0f%% | %s |\n",
                  dt, t, bpt / 1e6, med, bst, 1e3 / med, bound, 100 * med / bound,
                  100 * bst / bound, g, 100 * g / bound,
                  (std::to_string(num(*r, "softcap_ms")).substr(0, 5) + " / " +
                   (r->count("softcap_fast_ms") ? std::to_string(num(*r, "softcap_fast_ms")).substr(0, 5)
                                                : std::string("—"))).c_str());
    }

  std::printf("\n| weights | threads | logits of | ours s (median) | ours tokens/s | PyTorch s "
              "(median) | PyTorch tokens/s | PyTorch/ours | head GEMM s | fresh logits buffer s | "
              "same, huge pages s | std::tanh cap, 1 thread s |\n"
              "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const char* dt : {"f32", "bf16"})
    for (int t : a.threads) {
      const Result* r = find(rs, "prefill", {{"dtype", dt}, {"threads", std::to_string(t)}});
      if (!r) continue;
      const Result* pt = find(rs, "torch_prefill", {{"threads", std::to_string(t)}});
      for (bool last : {false, true}) {
        const char* key = last ? "s_last_median" : "s_median";
        if (!r->count(key)) continue;  // logs of older runs have no last-position timing
        const double s = num(*r, key);
        std::string tcol = "— | — | —";
        if (pt && pt->count(key) && std::string(dt) == "f32") {
          const double ps = num(*pt, key);
          char b[128];
          std::snprintf(b, sizeof b, "%.3f | %.0f | %.2f", ps, a.seq / ps, ps / s);
          tcol = b;
        }
        std::string attr = "— | — | — | —";
        if (!last) {
          const std::string huge = r->count("logits_alloc_huge_s")
                                       ? std::to_string(num(*r, "logits_alloc_huge_s")).substr(0, 5)
                                       : "—";
          char b[160];
          std::snprintf(b, sizeof b, "%.3f | %.3f | %s | %.3f", num(*r, "head_gemm_s"),
                        num(*r, "logits_alloc_s"), huge.c_str(), num(*r, "softcap_s"));
          attr = b;
        }
        std::printf("| %s | %d | %s | %.3f | %.0f | %s | %s |\n", dt, t,
                    last ? "last position" : "every position", s, a.seq / s, tcol.c_str(),
                    attr.c_str());
      }
    }

  std::printf("\n| weights | weight MiB | at | VmRSS MiB | VmHWM MiB | RssAnon MiB | RssFile MiB | "
              "HWM − RSS before load, MiB | / weights |\n|---|---:|---|---:|---:|---:|---:|---:|---:|\n");
  for (const char* dt : {"f32", "bf16"}) {
    const Result* r0 = find(rs, "load", {{"dtype", dt}, {"at", "before_load"}});
    if (!r0) continue;
    for (const char* at : {"before_load", "after_load", "after_token1", "after_token2"}) {
      const Result* r = find(rs, "load", {{"dtype", dt}, {"at", at}});
      const double add_mib = num(*r, "hwm_mib") - num(*r0, "rss_mib");
      std::printf("| %s | %.1f | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.3f |\n", dt,
                  num(*r, "weights_mib"), at, num(*r, "rss_mib"), num(*r, "hwm_mib"),
                  num(*r, "anon_mib"), num(*r, "file_mib"), add_mib, add_mib / num(*r, "weights_mib"));
    }
    if (const Result* lt = find(rs, "loadtime", {{"dtype", dt}}))
      std::printf("| %s | | load %.3f s, first token %.3f s | | | | | | |\n", dt, num(*lt, "load_s"),
                  num(*lt, "first_token_s"));
  }
  if (const Result* c = find(rs, "torch_check", {}))
    std::printf("\nPyTorch vs ours (F32 weights, B 2, 130 tokens, max |logit| %s): max |logits "
                "diff| %s against PyTorch f32, %s against PyTorch f64 (full forward); %s / %s "
                "(ours decoding positions 100..129 token by token after a 100-token prefill); "
                "PyTorch f32 vs f64 %s\n",
                c->at("max_abs_logit").c_str(), c->at("max_abs_prefill").c_str(),
                c->at("f64_max_abs_prefill").c_str(), c->at("max_abs_decode").c_str(),
                c->at("f64_max_abs_decode").c_str(), c->at("torch_f32_vs_f64").c_str());
  for (auto& r : rs)
    if (r.at("kind") == "failed")
      std::printf("\nFAILED (status %s, rows missing above): %s\n", r.at("status").c_str(),
                  r.at("cmd").c_str());
}

int driver(Args a) {
  bool temp = false;
  if (a.dir.empty()) {
    const char* td = std::getenv("TMPDIR");
    std::string tmpl = std::string(td && *td ? td : "/tmp") + "/xlstm_large_bench.XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    XLSTM_CHECK(mkdtemp(buf.data()), IoError, tmpl, ": mkdtemp failed");
    a.dir = buf.data();
    temp = !a.keep;
  }
  const std::string exe = "'" + self_exe() + "'", d = "'" + a.dir + "'";
  const char* wp = std::getenv("OMP_WAIT_POLICY");
  std::printf("load average before: %s; OMP_WAIT_POLICY=%s; dir %s\n", loadavg().c_str(),
              wp ? wp : "(unset)", a.dir.c_str());
  std::vector<Result> rs;
  auto add = [&](std::vector<Result> v) { rs.insert(rs.end(), v.begin(), v.end()); };
  std::error_code ec;
  if (fs::is_regular_file(a.dir + "/f32/config.json", ec) &&
      fs::is_regular_file(a.dir + "/bf16/config.json", ec)) {
    std::fprintf(stderr, "reusing the checkpoints in %s\n", a.dir.c_str());
  } else {
    add(run_child("OMP_NUM_THREADS=2 " + exe + " --phase write --dir " + d +
                  (a.untied ? " --untied" : "")));
  }
  const std::string common = " --dir " + d + " --tokens " + std::to_string(a.tokens) + " --reps " +
                             std::to_string(a.reps) + " --prefill-reps " +
                             std::to_string(a.prefill_reps) + " --seq " + std::to_string(a.seq);
  std::vector<std::string> cmds;  // the measurements, run --repeat times round-robin
  for (const char* dt : {"f32", "bf16"})
    cmds.push_back("OMP_NUM_THREADS=1 " + exe + " --phase load --dtype " + dt + common);
  for (int t : a.threads) {
    const std::string env = "OMP_NUM_THREADS=" + std::to_string(t) + " ";
    cmds.push_back(env + exe + " --phase bandwidth");
    for (const char* dt : {"f32", "bf16"}) {
      cmds.push_back(env + exe + " --phase decode --dtype " + dt + common);
      cmds.push_back(env + exe + " --phase prefill --dtype " + dt + common);
    }
  }
  if (!a.torch_script.empty()) {
    add(run_child("OMP_NUM_THREADS=2 " + exe + " --phase logits" + common));
    for (int t : a.threads) {
      const std::string ts = std::to_string(t);
      cmds.push_back("OMP_NUM_THREADS=" + ts + " OPENBLAS_NUM_THREADS=" + ts + " MKL_NUM_THREADS=" +
                     ts + " '" + a.python + "' '" + a.torch_script + "' --model " + d +
                     "/f32 --seq " + std::to_string(a.seq) + " --reps " +
                     std::to_string(a.prefill_reps) + " --threads " + ts +
                     (t == a.threads.front() ? " --check " + d + "/ours_logits.safetensors" : ""));
    }
  }
  for (int k = 0; k < a.repeat; ++k) {
    std::fprintf(stderr, "== round %d of %d, load %s\n", k + 1, a.repeat, loadavg().c_str());
    for (auto& c : cmds) add(run_child(c));
  }
  rs = merge_best(rs);
  std::printf("load average after: %s\n", loadavg().c_str());
  if (a.repeat > 1)
    std::printf("each number: the best of %d runs (rates: highest, times: lowest, memory: highest)\n",
                a.repeat);
  std::printf("\n");

  print_tables(rs, a);
  if (temp) fs::remove_all(a.dir, ec);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse_args(argc, argv);
    if (a.phase == "all") return driver(a);
    if (a.phase == "merge") {  // tables from saved stderr logs of earlier runs, best of all
      std::vector<Result> rs;
      for (const std::string& f : a.merge) {
        std::ifstream in(f);
        XLSTM_CHECK(in, IoError, f, ": cannot open");
        for (std::string line; std::getline(in, line);) parse_result(line, rs);
      }
      std::printf("best of the runs in %zu logs (rates: highest, times: lowest, memory: highest)\n\n",
                  a.merge.size());
      print_tables(merge_best(rs), a);
      return 0;
    }
    XLSTM_CHECK(!a.dir.empty() || a.phase == "bandwidth", ValueError, "--phase ", a.phase,
                " needs --dir");
    if (a.phase == "write") phase_write(a.dir, a.untied);
    else if (a.phase == "bandwidth") phase_bandwidth();
    else if (a.phase == "decode") phase_decode(a);
    else if (a.phase == "prefill") phase_prefill(a);
    else if (a.phase == "load") phase_load(a);
    else if (a.phase == "logits") phase_logits(a);
    else throw ValueError("unknown --phase '" + a.phase + "'");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
