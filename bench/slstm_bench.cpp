// sLSTM (xlstm vanilla-backend semantics, f32).
//
//   slstm/B{B}_T{T}_H{H}_NH4/{fwd,fwdbwd}        the cell over a sequence: input (B, T, 4H)
//       already projected (as bench/torch_ref.py's eager loop), SLSTMCell::forward_raw /
//       backward_raw (allocation-free), recurrent weights "standard" (non-zero)
//   slstm_layer/B{B}_T{T}_D{D}_NH4/{fwd,fwdbwd}  the whole sLSTMLayer (conv 4 + SiLU, headwise
//       i f z o projections, cell, multi-head layer norm) through its Tensor API (which returns
//       fresh output / gradient tensors; glibc reuses those blocks across calls)
//
// GEMM flops (per head M = B rows per step, N = 4*DH, K = DH):
//   cell  forward 2*B*T*4H*DH (recurrent R y); backward twice that (dy_rec = draw R, dR)
//   layer adds the headwise gate projections, 4 gates x 2*B*T*H*DH = the same again, so
//         forward 2 * 2*B*T*4H*DH, backward twice the forward (dx and dW per projection).
#include <benchmark/benchmark.h>

#include <string>

#include "bench_util.h"
#include "nn/slstm.h"

namespace {

using namespace xlstm;
using namespace xlstm::bench;

struct Config {
  int64_t B, T, H, NH;
  std::string name(const char* hd) const {
    return "B" + std::to_string(B) + "_T" + std::to_string(T) + "_" + hd + std::to_string(H) +
           "_NH" + std::to_string(NH);
  }
  double recurrent_flops() const { return 2.0 * B * T * 4 * H * (H / NH); }
};

enum class Pass { Fwd, FwdBwd };

SLSTMCellConfig cell_config(const Config& c) {
  SLSTMCellConfig k;
  k.hidden_size = c.H;
  k.num_heads = c.NH;
  k.recurrent_weight_init = "standard";
  return k;
}

struct CellFixture {
  SLSTMCell<float> cell;
  SlstmShape s;
  SlstmLayout L;
  Tensor x, y, dy, dx;
  CellFixture(const Config& c, Pass pass) : cell(cell_config(c)) {
    Rng rng(7);
    cell.reset_parameters(rng);
    s = {c.B, c.T, c.NH, c.H / c.NH};
    L = SlstmLayout::cell(s);
    x = randn({c.B, c.T, 4 * c.H}, 1);
    y = Tensor({c.B, c.NH, c.T, c.H / c.NH}, DType::F32);
    dy = randn({c.B, c.NH, c.T, c.H / c.NH}, 2);
    dx = Tensor({c.B, c.T, 4 * c.H}, DType::F32);
    run(pass);  // warm-up: grows the cache, touches every page
  }
  void run(Pass pass) {
    cell.forward_raw(s, L, x.data<float>(), nullptr, y.data<float>(), nullptr);
    if (pass == Pass::FwdBwd)
      cell.backward_raw(s, L, dy.data<float>(), nullptr, dx.data<float>(), nullptr);
  }
};

void BM_slstm(benchmark::State& st, Config c, Pass pass) {
  auto& f = fixture<CellFixture>("cell" + c.name("H") + (pass == Pass::Fwd ? "f" : "b"),
                                 [&] { return std::make_unique<CellFixture>(c, pass); });
  for (auto _ : st) {
    f.run(pass);
    benchmark::DoNotOptimize(f.y.data<float>());
  }
  set_counters(st, c.recurrent_flops() * (pass == Pass::Fwd ? 1 : 3), (double)c.B * c.T);
}

struct LayerFixture {
  SLSTMLayer<float> layer;
  Tensor x, dout;
  LayerFixture(const Config& c, Pass pass) : layer(layer_config(c)) {
    Rng rng(7);
    layer.reset_parameters(rng);
    x = randn({c.B, c.T, c.H}, 1);
    dout = randn({c.B, c.T, c.H}, 2);
    run(pass);
  }
  static SLSTMLayerConfig layer_config(const Config& c) {
    SLSTMLayerConfig k;
    k.embedding_dim = c.H;
    k.num_heads = c.NH;
    k.recurrent_weight_init = "standard";
    return k;
  }
  Tensor run(Pass pass) {
    auto o = layer.forward(x);
    if (pass == Pass::Fwd) return o.output;
    return layer.backward(dout).input;
  }
};

void BM_slstm_layer(benchmark::State& st, Config c, Pass pass) {
  auto& f = fixture<LayerFixture>("layer" + c.name("D") + (pass == Pass::Fwd ? "f" : "b"),
                                  [&] { return std::make_unique<LayerFixture>(c, pass); });
  for (auto _ : st) {
    Tensor r = f.run(pass);
    benchmark::DoNotOptimize(r.data<float>());
  }
  set_counters(st, 2 * c.recurrent_flops() * (pass == Pass::Fwd ? 1 : 3), (double)c.B * c.T);
}

void timing_for(benchmark::internal::Benchmark* b) { timing(b, 3, 0.3); }

int register_all() {
  const Config configs[] = {{64, 256, 512, 4}, {16, 512, 1024, 4}, {16, 256, 512, 4}};
  for (const Config& c : configs)
    for (Pass p : {Pass::Fwd, Pass::FwdBwd})
      benchmark::RegisterBenchmark(
          ("slstm/" + c.name("H") + (p == Pass::Fwd ? "/fwd" : "/fwdbwd")).c_str(), BM_slstm, c,
          p)
          ->Apply(timing_for);
  const Config layer{16, 256, 512, 4};
  for (Pass p : {Pass::Fwd, Pass::FwdBwd})
    benchmark::RegisterBenchmark(
        ("slstm_layer/" + layer.name("D") + (p == Pass::Fwd ? "/fwd" : "/fwdbwd")).c_str(),
        BM_slstm_layer, layer, p)
        ->Apply(timing_for);
  return 0;
}
const int registered = register_all();

}  // namespace

XLSTM_BENCH_PEAK();
BENCHMARK_MAIN();
