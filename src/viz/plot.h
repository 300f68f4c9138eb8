// PNG figures drawn with cairo: line plots (loss curves) and heatmaps (gate activations over
// time). Files are written atomically (rendered to memory, then temp file + fsync + rename), so
// a viewer never sees a half-written PNG and a failed render leaves the old file in place.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace xlstm {

enum class AxisScale { Linear, Log };

struct Series {
  std::string label;        // legend text; series with an empty label are not in the legend
  std::vector<double> x, y; // same length; non-finite points (and y <= 0 on a log axis) are
                            // skipped and break the line
  uint32_t rgb = 0;         // 0xRRGGBB; 0 = next color of the default palette
};

// A shaded area between lo and hi over x (e.g. a forecast's quantile band), drawn under the
// series. Points where x, lo or hi is not finite are skipped and break the area.
struct Band {
  std::string label;               // legend text (a filled swatch); empty: not in the legend
  std::vector<double> x, lo, hi;   // same length
  uint32_t rgb = 0;                // 0xRRGGBB; 0 = next color of the default palette
  double alpha = 0.25;             // fill opacity in (0, 1]
};

// A dashed vertical line across the axes at x (e.g. the forecast origin), with an optional
// label at its top.
struct VLine {
  double x = 0;
  std::string label;
  uint32_t rgb = 0x555555;
};

struct LinePlot {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  std::vector<Band> bands;     // drawn first, in order; they count toward the axis ranges
  std::vector<VLine> vlines;   // drawn after the bands; they count toward the x range
  AxisScale yscale = AxisScale::Linear;
  int width = 900, height = 540;  // pixels, each in [200, 8192]
  // Draw point markers; Auto: only for series with at most 60 points.
  enum class Markers { Auto, Always, Never } markers = Markers::Auto;
  // Corner of the axes that holds the legend.
  enum class Legend { TopRight, TopLeft } legend = Legend::TopRight;
};

// ValueError for bad sizes or x/y length mismatches; IoError if the file cannot be written.
// A plot without any drawable point renders empty axes with "no data".
void save_line_plot(const std::string& path, const LinePlot& plot);
std::string render_line_plot_png(const LinePlot& plot);  // the PNG bytes

enum class Colormap {
  Viridis,    // sequential (dark blue -> yellow)
  Diverging,  // blue - white - red, centred on 0 when the range is automatic
};

// values[r * cols + c] is drawn at row r (top to bottom) and column c (left to right).
struct Heatmap {
  std::string title, xlabel, ylabel, colorbar_label;
  int64_t rows = 0, cols = 0;
  std::vector<double> values;  // rows*cols; NaN cells are drawn gray
  Colormap colormap = Colormap::Viridis;
  double vmin = 0, vmax = 0;   // color range; vmin == vmax: automatic (data min/max)
  // Optional tick labels per column / row (e.g. the characters of a text); when absent the
  // axes show indices. When there are too many to fit, an evenly spaced subset is drawn.
  std::vector<std::string> col_labels, row_labels;
  int width = 900, height = 540;
};

void save_heatmap(const std::string& path, const Heatmap& map);
std::string render_heatmap_png(const Heatmap& map);

// Reads width and height from a PNG's IHDR (IoError naming the file if it is not a PNG).
void png_size(const std::string& path, int& width, int& height);

}  // namespace xlstm
