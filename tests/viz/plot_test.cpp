// PNG plots (viz/plot.h): files are valid PNGs of the requested size, written atomically;
// bad input is rejected. Set XLSTM_PLOT_KEEP=dir to keep the images for a visual check.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "viz/plot.h"
#include "xlstm/error.h"

using namespace xlstm;
namespace fs = std::filesystem;

// fontconfig (under cairo's text API) keeps a process-wide cache that it never frees; tell
// LeakSanitizer (sanitizer builds only; an unused function otherwise).
extern "C" const char* __lsan_default_suppressions() { return "leak:libfontconfig.so\n"; }

namespace {
struct OutDir {
  fs::path path;
  bool keep = false;
  OutDir() {
    if (const char* k = std::getenv("XLSTM_PLOT_KEEP")) {
      path = k, keep = true;
    } else {
      path = fs::temp_directory_path() / ("xlstm_plot_test_" + std::to_string(::getpid()));
    }
    fs::create_directories(path);
  }
  ~OutDir() {
    if (!keep) fs::remove_all(path);
  }
  std::string file(const std::string& n) const { return (path / n).string(); }
};

LinePlot loss_plot() {
  LinePlot p;
  p.title = "char-LM training (xLSTM[1:1], 2 blocks)";
  p.xlabel = "step";
  p.ylabel = "loss (nats/token)";
  Series train{"train loss", {}, {}}, val{"validation loss", {}, {}};
  for (int s = 0; s <= 2000; s += 10) {
    train.x.push_back(s);
    train.y.push_back(1.3 + 3.0 * std::exp(-s / 300.0) + 0.05 * std::sin(s * 0.37));
  }
  for (int s = 0; s <= 2000; s += 200) {
    val.x.push_back(s);
    val.y.push_back(1.45 + 3.0 * std::exp(-s / 320.0));
  }
  p.series = {train, val};
  return p;
}
}  // namespace

TEST(Plot, LinePlotIsPngOfRequestedSize) {
  OutDir d;
  LinePlot p = loss_plot();
  save_line_plot(d.file("loss.png"), p);
  int w = 0, h = 0;
  png_size(d.file("loss.png"), w, h);
  EXPECT_EQ(w, 900);
  EXPECT_EQ(h, 540);
  p.yscale = AxisScale::Log;
  p.width = 640, p.height = 400;
  p.title += " (log y)";
  save_line_plot(d.file("loss_log.png"), p);
  png_size(d.file("loss_log.png"), w, h);
  EXPECT_EQ(w, 640);
  EXPECT_EQ(h, 400);
  // No temp files left behind.
  for (auto& e : fs::directory_iterator(d.path))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
}

TEST(Plot, DegenerateInputsStillRender) {
  OutDir d;
  LinePlot p;
  p.title = "empty";
  save_line_plot(d.file("empty.png"), p);  // no series: "no data"
  p.series = {{"one point", {5}, {2.0}}, {"nan", {1, 2, 3}, {NAN, INFINITY, NAN}}};
  save_line_plot(d.file("one.png"), p);
  p.yscale = AxisScale::Log;
  p.series = {{"flat", {0, 1, 2}, {1.0, 1.0, 1.0}}, {"neg", {0, 1}, {-1.0, 0.0}}};
  save_line_plot(d.file("flat_log.png"), p);
  int w, h;
  png_size(d.file("flat_log.png"), w, h);
  EXPECT_EQ(w, 900);
}

TEST(Plot, RejectsBadInput) {
  OutDir d;
  LinePlot p;
  p.series = {{"bad", {1, 2}, {1}}};
  EXPECT_THROW(render_line_plot_png(p), ValueError);
  p.series.clear();
  p.width = 50;
  EXPECT_THROW(render_line_plot_png(p), ValueError);
  p.width = 900;
  EXPECT_THROW(save_line_plot(d.file("no/such/dir/x.png"), p), IoError);
  std::ofstream(d.file("text.png")) << "not a png at all, really not";
  int w, h;
  EXPECT_THROW(png_size(d.file("text.png"), w, h), IoError);
}

TEST(Plot, HeatmapIsPngOfRequestedSize) {
  OutDir d;
  Heatmap m;
  m.title = "input gate i_t over time";
  m.xlabel = "time step";
  m.ylabel = "unit";
  m.colorbar_label = "activation";
  m.rows = 16, m.cols = 48;
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c)
      m.values.push_back(1 / (1 + std::exp(-std::sin(0.2 * c + 0.5 * r) * 3)));
  m.values[5] = NAN;
  const std::string text = "The quick brown fox jumps over the lazy dog. Hi!";
  for (char ch : text) m.col_labels.push_back(std::string(1, ch));
  save_heatmap(d.file("heat.png"), m);
  int w, h;
  png_size(d.file("heat.png"), w, h);
  EXPECT_EQ(w, 900);
  EXPECT_EQ(h, 540);

  // Diverging, explicit range, large matrix (binned), size 700x300.
  Heatmap g;
  g.title = "cell state";
  g.rows = 1200, g.cols = 1500, g.colormap = Colormap::Diverging, g.vmin = -2, g.vmax = 2, g.width = 700, g.height = 300;
  g.values.resize((size_t)(g.rows * g.cols));
  for (int64_t r = 0; r < g.rows; ++r)
    for (int64_t c = 0; c < g.cols; ++c)
      g.values[(size_t)(r * g.cols + c)] = 1.7 * std::sin(r * 0.006) * std::cos(c * 0.004);
  save_heatmap(d.file("heat_div.png"), g);
  png_size(d.file("heat_div.png"), w, h);
  EXPECT_EQ(w, 700);
  EXPECT_EQ(h, 300);

  Heatmap bad = m;
  bad.values.pop_back();
  EXPECT_THROW(render_heatmap_png(bad), ValueError);
  bad = m;
  bad.col_labels.pop_back();
  EXPECT_THROW(render_heatmap_png(bad), ValueError);
  bad = m;
  bad.vmin = 1, bad.vmax = 0;
  EXPECT_THROW(render_heatmap_png(bad), ValueError);
  bad.rows = 0;
  EXPECT_THROW(render_heatmap_png(bad), ValueError);
}
