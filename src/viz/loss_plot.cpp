#include "viz/loss_plot.h"

#include <cmath>

#include "io/metrics.h"
#include "viz/plot.h"

namespace xlstm {

void save_loss_plot(const std::string& png, const std::string& csv, const std::string& title,
                    const std::string& ylabel) {
  MetricsTable t = read_metrics_csv(csv);
  LinePlot p;
  p.title = title;
  p.xlabel = "step";
  p.ylabel = ylabel;
  Series tr{"train", {}, {}, 0}, va{"validation", {}, {}, 0};
  const auto steps = t.values("step"), loss = t.values("loss"), vl = t.values("val_loss");
  for (size_t i = 0; i < steps.size(); ++i) {
    if (std::isfinite(loss[i])) tr.x.push_back(steps[i]), tr.y.push_back(loss[i]);
    if (std::isfinite(vl[i])) va.x.push_back(steps[i]), va.y.push_back(vl[i]);
  }
  p.series = {tr, va};
  save_line_plot(png, p);
}

}  // namespace xlstm
