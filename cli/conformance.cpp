// `xlstm conformance PATH...`: runs the golden cases of the official implementations.
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "conformance/runner.h"

namespace xlstm::cli {

void add_conformance(CLI::App& app, std::function<int()>& run) {
  struct Opts { std::vector<std::string> paths; std::string precision = "same"; };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "conformance",
      "Check the engine against golden cases (safetensors files or folders of them) produced by "
      "the official implementations. Prints one PASS/FAIL/SKIP line per case and 'N passed, M "
      "failed'; exits 0 only if none failed.");
  sub->add_option("paths", o->paths, "case files or folders (e.g. ../shared/conformance)")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option("--precision", o->precision,
                  "same: compute in the case dtype with its strict tolerances; f32: compute in "
                  "float32 and use the cases' *_fp32_impl tolerances")
      ->check(CLI::IsMember({"same", "f32"}));
  sub->callback([o, &run] {
    run = [o] {
      auto prec = o->precision == "f32" ? conformance::ImplPrecision::F32
                                        : conformance::ImplPrecision::Same;
      auto s = conformance::run(o->paths, prec, std::cout);
      return s.failed == 0 ? 0 : 1;
    };
  });
}

}  // namespace xlstm::cli
