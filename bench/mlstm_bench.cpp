// mLSTM kernel (f32, ScaleOn::Q, exact backward), raw kernels with a caller-kept workspace and
// cache (allocation-free once warm). NH = 4 heads, DHQK = DHV = D/4, zero initial state, no
// final state requested (as bench/torch_ref.py's eager chunkwise loop).
//
//   mlstm_chunkwise/B{B}_T{T}_D{D}_NH4/{fwd,fwdbwd}   chunk L = 64
//   mlstm_parallel/B{B}_T{T}_D{D}_NH4/{fwd,fwdbwd}    query tiles of 64 rows, causal key range
// fwd runs without a cache (inference); fwdbwd is forward with the cache, then backward.
//   mlstm_layer/B32_T128_D128_NH4/{fwd,fwdbwd}       the whole MLSTMLayer of the xlstm-*-small
//       presets (inner 256, q/k/v in 4x4 blocks, conv 4, chunkwise L 64) through its Tensor
//       API: flops are the kernel's (inner width) plus the projections (up 2ND*2I, down 2NI*D,
//       gates 2*2N*3I*NH, q/k/v 3*2N*I*4; backward twice those).
//
// GEMM flops are those of the gemm calls the kernels make, per (batch, head):
//   chunkwise, per chunk (L rows, K = DHQK, V = DHV):
//     forward   Q K^T 2L^2K + A V 2L^2V + Qb C 2LKV + Ka^T V 2LKV        (the L x L blocks are
//     backward  dKa 2LKV, dV_state 2LKV, Q K^T again 2L^2K,                full GEMMs, the
//               intra: dV 2L^2V, dnum V^T 2L^2V, dQ 2L^2K, dK 2L^2K,       masked half included)
//               inter: dQb 2LKV, dC 2LKV
//   parallel, per tile (Lq query rows, Lk = tile end keys):
//     forward   2 Lq Lk (K + V);   backward   Q K^T again 2 Lq Lk K + 4 Lq Lk (K + V)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bench_util.h"
#include "cpu/mlstm.h"
#include "nn/mlstm.h"

namespace {

using namespace xlstm;
using namespace xlstm::bench;

struct Config {
  int64_t B, T, D, NH;
  std::string name() const {
    return "B" + std::to_string(B) + "_T" + std::to_string(T) + "_D" + std::to_string(D) + "_NH" +
           std::to_string(NH);
  }
};

enum class Pass { Fwd, FwdBwd };
constexpr int64_t kChunk = 64;  // chunkwise L (MlstmOptions::chunk_size)
constexpr int64_t kTileQ = 64;  // parallel form's query tile (src/cpu/mlstm_parallel.cpp)

double chunkwise_flops(const Config& c, Pass pass) {
  const double K = (double)c.D / c.NH, V = K;
  double fwd = 0, bwd = 0;
  for (int64_t t0 = 0; t0 < c.T; t0 += kChunk) {
    const double L = (double)std::min(kChunk, c.T - t0);
    fwd += 2 * L * L * (K + V) + 4 * L * K * V;
    bwd += 2 * L * L * K + 4 * L * L * (K + V) + 8 * L * K * V;
  }
  const double bh = (double)c.B * c.NH;
  return bh * (pass == Pass::Fwd ? fwd : fwd + bwd);
}

double parallel_flops(const Config& c, Pass pass) {
  const double K = (double)c.D / c.NH, V = K;
  double fwd = 0, bwd = 0;
  for (int64_t r0 = 0; r0 < c.T; r0 += kTileQ) {
    const double Lq = (double)std::min(kTileQ, c.T - r0), Lk = (double)r0 + Lq;
    fwd += 2 * Lq * Lk * (K + V);
    bwd += 2 * Lq * Lk * K + 4 * Lq * Lk * (K + V);
  }
  const double bh = (double)c.B * c.NH;
  return bh * (pass == Pass::Fwd ? fwd : fwd + bwd);
}

struct Fixture {
  MlstmForm form;
  MlstmDims d;
  MlstmOptions o;
  std::vector<float> q, k, v, i, f, h, dh, dq, dk, dv, di, df;
  MlstmCache<float> cache;
  MlstmWorkspace ws;
  Fixture(const Config& c, MlstmForm fm, Pass pass) : form(fm) {
    const int64_t DH = c.D / c.NH, BH = c.B * c.NH;
    d = {c.B, c.NH, c.T, DH, DH};
    o.chunk_size = kChunk;
    auto vec = [](int64_t n, uint64_t seed, double scale, float shift = 0.f) {
      std::vector<float> x((size_t)n);
      fill_normal(x.data(), n, seed, scale);
      for (float& e : x) e += shift;
      return x;
    };
    q = vec(BH * c.T * DH, 1, 1.0), k = vec(BH * c.T * DH, 2, 1.0), v = vec(BH * c.T * DH, 3, 1.0);
    i = vec(BH * c.T, 4, 1.0), f = vec(BH * c.T, 5, 1.0, 3.f);  // forget gates mostly open
    h.assign(q.size(), 0.f);
    dh = vec(BH * c.T * DH, 6, 1.0);
    dq.assign(q.size(), 0.f), dk.assign(q.size(), 0.f), dv.assign(q.size(), 0.f);
    di.assign(i.size(), 0.f), df.assign(i.size(), 0.f);
    run(pass);  // warm-up: sizes the workspace and the cache, touches the pages
  }
  void run(Pass pass) {
    MlstmInputs<float> in;
    in.q = q.data(), in.k = k.data(), in.v = v.data(), in.i = i.data(), in.f = f.data();
    MlstmCache<float>* cp = pass == Pass::FwdBwd ? &cache : nullptr;
    if (form == MlstmForm::Chunkwise) {
      MlstmOutputs<float> out;
      out.h = h.data();
      mlstm_chunkwise_forward<float>(d, o, in, out, cp, ws);
    } else {
      mlstm_parallel_forward<float>(d, o, in, h.data(), cp, ws);
    }
    if (pass == Pass::Fwd) return;
    MlstmGrads<float> g;
    g.dq = dq.data(), g.dk = dk.data(), g.dv = dv.data(), g.di = di.data(), g.df = df.data();
    if (form == MlstmForm::Chunkwise) {
      MlstmOutputGrads<float> dout;
      dout.dh = dh.data();
      mlstm_chunkwise_backward<float>(d, o, in, h.data(), dout, cache, g, ws);
    } else {
      mlstm_parallel_backward<float>(d, o, in, h.data(), dh.data(), cache, g, ws);
    }
  }
};

void BM_mlstm(benchmark::State& st, Config c, MlstmForm form, Pass pass) {
  auto& fx = fixture<Fixture>(
      std::string(mlstm_form_name(form)) + c.name() + (pass == Pass::Fwd ? "f" : "b"),
      [&] { return std::make_unique<Fixture>(c, form, pass); });
  for (auto _ : st) {
    fx.run(pass);
    benchmark::DoNotOptimize(fx.h.data());
  }
  const double flops =
      form == MlstmForm::Chunkwise ? chunkwise_flops(c, pass) : parallel_flops(c, pass);
  set_counters(st, flops, (double)c.B * c.T);
}

struct LayerFixture {
  MLSTMLayer<float> layer;
  Tensor x, dy;
  explicit LayerFixture(const Config& c) : layer(config(c)) {
    Rng rng(7);
    layer.reset_parameters(rng);
    x = randn({c.B, c.T, c.D}, 1);
    dy = randn({c.B, c.T, c.D}, 2);
    run(Pass::FwdBwd);
  }
  static MLSTMLayerConfig config(const Config& c) {
    MLSTMLayerConfig k;
    k.embedding_dim = c.D;
    k.num_heads = c.NH;
    k.form = MlstmForm::Chunkwise;
    k.chunk_size = kChunk;
    return k;
  }
  Tensor run(Pass pass) {
    Tensor y = layer.forward(x, Mode::Train);
    if (pass == Pass::Fwd) return y;
    return layer.backward(dy);
  }
};

void BM_mlstm_layer(benchmark::State& st, Config c, Pass pass) {
  auto& fx = fixture<LayerFixture>("layer" + c.name(),
                                   [&] { return std::make_unique<LayerFixture>(c); });
  for (auto _ : st) {
    Tensor r = fx.run(pass);
    benchmark::DoNotOptimize(r.data<float>());
  }
  const int64_t I = fx.layer.config().inner(), N = c.B * c.T;
  const double proj = 2.0 * N * (c.D * 2.0 * I + I * c.D + 2.0 * 3 * I * c.NH + 3.0 * I * 4);
  const Config inner{c.B, c.T, I, c.NH};
  set_counters(st, proj * (pass == Pass::Fwd ? 1 : 3) + chunkwise_flops(inner, pass),
               (double)c.B * c.T);
}

void timing_for(benchmark::internal::Benchmark* b) { timing(b, 3, 0.3); }

int register_all() {
  struct Case {
    const char* prefix;
    MlstmForm form;
    Config c;
  };
  const Case cases[] = {
      {"mlstm_chunkwise/", MlstmForm::Chunkwise, {64, 256, 512, 4}},
      {"mlstm_chunkwise/", MlstmForm::Chunkwise, {16, 512, 1024, 4}},
      {"mlstm_parallel/", MlstmForm::Parallel, {64, 256, 512, 4}},
  };
  for (const Case& k : cases)
    for (Pass p : {Pass::Fwd, Pass::FwdBwd})
      benchmark::RegisterBenchmark(
          (k.prefix + k.c.name() + (p == Pass::Fwd ? "/fwd" : "/fwdbwd")).c_str(), BM_mlstm, k.c,
          k.form, p)
          ->Apply(timing_for);
  const Config layer{32, 128, 128, 4};
  for (Pass p : {Pass::Fwd, Pass::FwdBwd})
    benchmark::RegisterBenchmark(
        ("mlstm_layer/" + layer.name() + (p == Pass::Fwd ? "/fwd" : "/fwdbwd")).c_str(),
        BM_mlstm_layer, layer, p)
        ->Apply(timing_for);
  return 0;
}
const int registered = register_all();

}  // namespace

XLSTM_BENCH_PEAK();
BENCHMARK_MAIN();
