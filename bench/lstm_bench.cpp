// LSTM (torch.nn.LSTM semantics, one layer, f32) against oneDNN's own LSTM primitive.
//
//   lstm/B{B}_T{T}_I{I}_H{H}/{fwd,fwdbwd}          ours: LSTM<float>::forward_into (+ backward_into)
//   onednn/lstm/B{B}_T{T}_I{I}_H{H}/{fwd,fwdbwd}   oneDNN lstm_forward (+ lstm_backward)
//   lstm_step/B1_H1024/fwd, onednn/lstm_step/...   one decode step (B = 1, I = H = 1024)
//   lstm_step_bf16/B1_H1024/fwd                     the same with bf16 weights (set_step_bf16)
//   onednn/lstm_step_bf16/B1_H1024/fwd              oneDNN's bf16 configuration (bf16 x, h, W)
//
// Ours is timed at the module's API: batch-first (B, T, I) in and (B, T, H) out, so the two
// boundary transposes are included; oneDNN gets its native time-major layout. fwdbwd computes
// dx and the parameter gradients (no dh0 / dc0: zero initial state), as a training step does.
// GEMM flops: forward 2*B*T*4H*(I+H); backward exactly twice that (dx, dW_ih, dh, dW_hh).
#include <benchmark/benchmark.h>

#include <string>

#include "bench_util.h"
#include "nn/lstm.h"
#include "onednn_lstm.h"

namespace {

using namespace xlstm;
using namespace xlstm::bench;

struct Config {
  int64_t B, T, I, H;
  std::string name() const {
    return "B" + std::to_string(B) + "_T" + std::to_string(T) + "_I" + std::to_string(I) + "_H" +
           std::to_string(H);
  }
  double fwd_flops() const { return 2.0 * B * T * 4 * H * (I + H); }
};

enum class Pass { Fwd, FwdBwd };

struct OursFixture {
  LSTM<float> m;
  Tensor x, out, hn, cn, dout, dx, none_h, none_c;
  OursFixture(const Config& c, Pass pass) : m(LSTMConfig{c.I, c.H}, 0) {
    x = randn({c.B, c.T, c.I}, 1);
    out = Tensor({c.B, c.T, c.H}, DType::F32);
    hn = Tensor({1, c.B, c.H}, DType::F32);
    cn = Tensor({1, c.B, c.H}, DType::F32);
    dout = randn({c.B, c.T, c.H}, 2);
    dx = Tensor({c.B, c.T, c.I}, DType::F32);
    run(pass);  // warm-up: grows and touches every workspace, builds the oneDNN primitives
  }
  void run(Pass pass) {
    m.forward_into(x, Tensor(), Tensor(), LstmMode::Eval, nullptr, out, hn, cn);
    if (pass == Pass::FwdBwd) m.backward_into(dout, Tensor(), Tensor(), dx, none_h, none_c);
  }
};

void BM_lstm(benchmark::State& st, Config c, Pass pass) {
  auto& f = fixture<OursFixture>("lstm" + c.name() + (pass == Pass::Fwd ? "f" : "b"),
                                 [&] { return std::make_unique<OursFixture>(c, pass); });
  for (auto _ : st) {
    f.run(pass);
    benchmark::DoNotOptimize(f.out.data<float>());
  }
  set_counters(st, c.fwd_flops() * (pass == Pass::Fwd ? 1 : 3), (double)c.B * c.T);
}

void BM_onednn_lstm(benchmark::State& st, Config c, Pass pass) {
  const auto mode = pass == Pass::Fwd ? OnednnLstm::Mode::Inference : OnednnLstm::Mode::Training;
  auto& f = fixture<OnednnLstm>("onednn" + c.name() + (pass == Pass::Fwd ? "f" : "b"), [&] {
    auto p = std::make_unique<OnednnLstm>(c.B, c.T, c.I, c.H, mode);
    if (pass == Pass::Fwd) p->forward(); else p->forward_backward();  // warm-up
    return p;
  });
  for (auto _ : st) {
    if (pass == Pass::Fwd) f.forward(); else f.forward_backward();
    benchmark::DoNotOptimize(f.output());
  }
  set_counters(st, c.fwd_flops() * (pass == Pass::Fwd ? 1 : 3), (double)c.B * c.T);
}

struct StepFixture {
  LSTM<float> m;
  Tensor x, h, c;
  StepFixture(int64_t H, bool bf16) : m(LSTMConfig{H, H}, 0) {
    x = randn({1, H}, 1);
    h = randn({1, 1, H}, 2, 0.5);
    c = randn({1, 1, H}, 3, 0.5);
    m.set_step_bf16(bf16);
    m.step(x, h, c);  // warm-up
  }
};

void BM_lstm_step(benchmark::State& st, int64_t H, bool bf16) {
  auto& f = fixture<StepFixture>("step" + std::to_string(H) + (bf16 ? "bf16" : ""),
                                 [&] { return std::make_unique<StepFixture>(H, bf16); });
  for (auto _ : st) {
    f.m.step(f.x, f.h, f.c);
    benchmark::DoNotOptimize(f.h.data<float>());
  }
  set_counters(st, 2.0 * 4 * H * (H + H), 1);
}

void BM_onednn_lstm_step(benchmark::State& st, int64_t H, bool bf16) {
  auto& f = fixture<OnednnLstm>("onednn_step" + std::to_string(H) + (bf16 ? "bf16" : ""), [&] {
    auto p = std::make_unique<OnednnLstm>(1, 1, H, H, bf16 ? OnednnLstm::Mode::StepBf16
                                                           : OnednnLstm::Mode::Step);
    p->step();
    return p;
  });
  for (auto _ : st) {
    f.step();
    benchmark::DoNotOptimize(f.output());
  }
  set_counters(st, 2.0 * 4 * H * (H + H), 1);
}

void timing_for(benchmark::internal::Benchmark* b) { timing(b, 3, 0.3); }

int register_all() {
  const Config configs[] = {{32, 128, 128, 256}, {64, 256, 512, 512}, {16, 512, 1024, 1024}};
  for (const Config& c : configs) {
    for (Pass p : {Pass::Fwd, Pass::FwdBwd}) {
      const std::string sfx = c.name() + (p == Pass::Fwd ? "/fwd" : "/fwdbwd");
      benchmark::RegisterBenchmark(("lstm/" + sfx).c_str(), BM_lstm, c, p)->Apply(timing_for);
      benchmark::RegisterBenchmark(("onednn/lstm/" + sfx).c_str(), BM_onednn_lstm, c, p)
          ->Apply(timing_for);
    }
  }
  benchmark::RegisterBenchmark("lstm_step/B1_H1024/fwd", BM_lstm_step, int64_t{1024}, false)
      ->Apply(timing_for);
  benchmark::RegisterBenchmark("lstm_step_bf16/B1_H1024/fwd", BM_lstm_step, int64_t{1024}, true)
      ->Apply(timing_for);
  benchmark::RegisterBenchmark("onednn/lstm_step/B1_H1024/fwd", BM_onednn_lstm_step,
                               int64_t{1024}, false)
      ->Apply(timing_for);
  benchmark::RegisterBenchmark("onednn/lstm_step_bf16/B1_H1024/fwd", BM_onednn_lstm_step,
                               int64_t{1024}, true)
      ->Apply(timing_for);
  return 0;
}
const int registered = register_all();

}  // namespace

XLSTM_BENCH_PEAK();
BENCHMARK_MAIN();
