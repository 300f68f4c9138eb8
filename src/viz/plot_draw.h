// Internal drawing helpers shared by the line plot and the heatmap (src/viz only).
#pragma once
#include <cairo.h>

#include <cstdint>
#include <string>
#include <vector>

namespace xlstm::viz {

// A white RGB image with a cairo context; sizes scale with the image (scale = 1 at 900x540).
struct Canvas {
  Canvas(int w, int h, const char* what);  // ValueError for sizes outside [200, 8192]
  ~Canvas();
  Canvas(const Canvas&) = delete;
  Canvas& operator=(const Canvas&) = delete;

  std::string png();                             // encodes the image
  void font(double size, bool bold = false);     // DejaVu Sans, size in points at scale 1
  double text_width(const std::string& s);
  double text_height();                          // ascent + descent of the current font
  // Draws s anchored at (x, y): ha/va = 0 left/top, 0.5 centre, 1 right/bottom; rotated by angle.
  void text(double x, double y, const std::string& s, double ha, double va, double angle = 0);
  void rgb(uint32_t c, double alpha = 1.0);      // 0xRRGGBB

  cairo_surface_t* surface = nullptr;
  cairo_t* cr = nullptr;
  int width = 0, height = 0;
  double scale = 1;
};

// About `target` ticks at 1/2/5 x 10^k steps inside [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target);
// A tick value printed with as many decimals as the step needs.
std::string tick_label(double v, double step);

}  // namespace xlstm::viz
