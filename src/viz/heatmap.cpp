// Heatmaps (viz/plot.h): a matrix as a colored image with labelled axes and a colorbar.
#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "io/atomic_file.h"
#include "viz/plot.h"
#include "viz/plot_draw.h"
#include "xlstm/error.h"

namespace xlstm {

using namespace viz;

namespace {

struct Rgb { double r, g, b; };

// Control points, evenly spaced on [0, 1]; linear interpolation between them.
constexpr Rgb kViridis[] = {{68, 1, 84},     {71, 44, 122},  {59, 81, 139},
                            {44, 113, 142},  {33, 144, 141}, {39, 173, 129},
                            {92, 200, 99},   {170, 220, 50}, {253, 231, 37}};
constexpr Rgb kDiverging[] = {{33, 102, 172}, {146, 197, 222}, {247, 247, 247},
                              {244, 165, 130}, {178, 24, 43}};

Rgb colormap(Colormap cm, double t) {
  const Rgb* pts = cm == Colormap::Viridis ? kViridis : kDiverging;
  const int n = cm == Colormap::Viridis ? 9 : 5;
  t = std::min(1.0, std::max(0.0, t)) * (n - 1);
  const int i = std::min((int)t, n - 2);
  const double f = t - i;
  return {(pts[i].r + f * (pts[i + 1].r - pts[i].r)) / 255,
          (pts[i].g + f * (pts[i + 1].g - pts[i].g)) / 255,
          (pts[i].b + f * (pts[i + 1].b - pts[i].b)) / 255};
}

// Averages values (rows x cols) into at most max_r x max_c bins (one per pixel of the plot
// area: a box filter, and cairo then only ever scales up), ignoring NaN.
std::vector<double> bin(const Heatmap& m, int64_t max_r, int64_t max_c, int64_t& R, int64_t& C) {
  R = std::min(m.rows, std::max<int64_t>(1, max_r)), C = std::min(m.cols, std::max<int64_t>(1, max_c));
  if (R == m.rows && C == m.cols) return m.values;
  std::vector<double> sum((size_t)(R * C), 0.0), cnt((size_t)(R * C), 0.0);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) {
      const double v = m.values[(size_t)(r * m.cols + c)];
      if (std::isnan(v)) continue;
      const size_t k = (size_t)((r * R / m.rows) * C + c * C / m.cols);
      sum[k] += v, cnt[k] += 1;
    }
  for (size_t k = 0; k < sum.size(); ++k) sum[k] = cnt[k] > 0 ? sum[k] / cnt[k] : std::nan("");
  return sum;
}

// Indices of the labels to draw along an axis of n cells and `len` pixels, each label needing
// `need` pixels: labels given -> every k-th; none -> nice integer ticks.
std::vector<int64_t> tick_indices(int64_t n, double len, double need, bool labelled) {
  std::vector<int64_t> r;
  if (labelled) {
    const int64_t stride = std::max<int64_t>(1, (int64_t)std::ceil(n * need / std::max(len, 1.0)));
    for (int64_t i = 0; i < n; i += stride) r.push_back(i);
    return r;
  }
  if (n == 1) return {0};
  const int target = std::max(2, std::min(10, (int)(len / std::max(need, 1.0))));
  for (double v : nice_ticks(0, (double)(n - 1), target))
    if (v == std::floor(v) && v >= 0 && v <= n - 1) r.push_back((int64_t)v);
  return r;
}

}  // namespace

std::string render_heatmap_png(const Heatmap& m) {
  XLSTM_CHECK(m.rows >= 1 && m.cols >= 1, ValueError, "[heatmap] needs rows, cols >= 1, got ",
              m.rows, "x", m.cols);
  XLSTM_CHECK((int64_t)m.values.size() == m.rows * m.cols, ValueError, "[heatmap] ", m.rows, "x",
              m.cols, " needs ", m.rows * m.cols, " values, got ", m.values.size());
  XLSTM_CHECK(m.col_labels.empty() || (int64_t)m.col_labels.size() == m.cols, ValueError,
              "[heatmap] ", m.col_labels.size(), " column labels for ", m.cols, " columns");
  XLSTM_CHECK(m.row_labels.empty() || (int64_t)m.row_labels.size() == m.rows, ValueError,
              "[heatmap] ", m.row_labels.size(), " row labels for ", m.rows, " rows");
  XLSTM_CHECK(std::isfinite(m.vmin) && std::isfinite(m.vmax) && m.vmin <= m.vmax, ValueError,
              "[heatmap] color range must be finite with vmin <= vmax, got [", m.vmin, ", ",
              m.vmax, "]");
  Canvas cv(m.width, m.height, "heatmap");
  cairo_t* cr = cv.cr;

  // Color range.
  double lo = m.vmin, hi = m.vmax;
  if (lo == hi) {
    lo = INFINITY, hi = -INFINITY;
    for (double v : m.values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (m.colormap == Colormap::Diverging) {
      const double a = std::max(std::fabs(lo), std::fabs(hi));
      lo = -a, hi = a;
    }
    if (lo == hi) lo -= 0.5, hi += 0.5;
  }

  // Layout.
  const double S = cv.scale, pad = 12 * S, gap = 6 * S, tick = 4 * S, bar_w = 18 * S;
  cv.font(17, true);
  const double title_h = m.title.empty() ? 0 : cv.text_height() + gap;
  cv.font(14);
  const double label_h = cv.text_height();
  cv.font(11);
  const double tick_h = cv.text_height();
  std::vector<double> bt = nice_ticks(lo, hi, 6);
  const double bstep = bt.size() > 1 ? bt[1] - bt[0] : 1;
  double btw = 0;
  for (double v : bt) btw = std::max(btw, cv.text_width(tick_label(v, bstep)));
  auto row_label = [&](int64_t r) { return m.row_labels.empty() ? std::to_string(r) : m.row_labels[(size_t)r]; };
  auto col_label = [&](int64_t c) { return m.col_labels.empty() ? std::to_string(c) : m.col_labels[(size_t)c]; };
  double ylw = m.row_labels.empty() ? cv.text_width(std::to_string(m.rows - 1)) : 0;
  double xlw = m.col_labels.empty() ? cv.text_width(std::to_string(m.cols - 1)) : 0;
  for (auto& s : m.row_labels) ylw = std::max(ylw, cv.text_width(s));
  for (auto& s : m.col_labels) xlw = std::max(xlw, cv.text_width(s));
  ylw = std::min(ylw, 160 * S);

  const double left = pad + (m.ylabel.empty() ? 0 : label_h + gap) + ylw + gap + tick;
  const double top = pad + title_h;
  const double bottom = tick + gap + tick_h + (m.xlabel.empty() ? 0 : gap + label_h) + pad;
  const double right = pad + (m.colorbar_label.empty() ? 0 : label_h + gap) + btw + gap + tick +
                       bar_w + 2.5 * gap;
  const double pw = m.width - left - right, ph = m.height - top - bottom;
  XLSTM_CHECK(pw > 20 && ph > 20, ValueError, "[heatmap] image ", m.width, "x", m.height,
              " is too small for its labels");

  // The matrix as an image, scaled into the plot area.
  int64_t R, C;
  const std::vector<double> vals = bin(m, (int64_t)ph, (int64_t)pw, R, C);
  cairo_surface_t* img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)C, (int)R);
  XLSTM_CHECK(cairo_surface_status(img) == CAIRO_STATUS_SUCCESS, IoError,
              "[heatmap] cairo could not create a ", C, "x", R, " image");
  cairo_surface_flush(img);
  unsigned char* px = cairo_image_surface_get_data(img);
  const int stride = cairo_image_surface_get_stride(img);
  for (int64_t r = 0; r < R; ++r) {
    uint32_t* row = reinterpret_cast<uint32_t*>(px + r * stride);
    for (int64_t c = 0; c < C; ++c) {
      const double v = vals[(size_t)(r * C + c)];
      Rgb k = std::isnan(v) ? Rgb{0.6, 0.6, 0.6} : colormap(m.colormap, (v - lo) / (hi - lo));
      row[c] = (uint32_t)std::lround(k.r * 255) << 16 | (uint32_t)std::lround(k.g * 255) << 8 |
               (uint32_t)std::lround(k.b * 255);
    }
  }
  cairo_surface_mark_dirty(img);
  cairo_save(cr);
  cairo_rectangle(cr, left, top, pw, ph);
  cairo_clip(cr);
  cairo_translate(cr, left, top);
  cairo_scale(cr, pw / C, ph / R);
  cairo_set_source_surface(cr, img, 0, 0);
  cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
  cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
  cairo_paint(cr);
  cairo_restore(cr);
  cairo_surface_destroy(img);
  cv.rgb(0x333333);
  cairo_set_line_width(cr, 1.0);
  cairo_rectangle(cr, left, top, pw, ph);
  cairo_stroke(cr);

  // Axis ticks at cell centres.
  cv.font(11);
  for (int64_t r : tick_indices(m.rows, ph, tick_h * 1.1, !m.row_labels.empty())) {
    const double y = top + (r + 0.5) * ph / m.rows;
    cairo_move_to(cr, left - tick, y), cairo_line_to(cr, left, y), cairo_stroke(cr);
    cv.text(left - tick - gap, y, row_label(r), 1.0, 0.5);
  }
  for (int64_t c : tick_indices(m.cols, pw, xlw + 0.6 * gap, !m.col_labels.empty())) {
    const double x = left + (c + 0.5) * pw / m.cols;
    cairo_move_to(cr, x, top + ph), cairo_line_to(cr, x, top + ph + tick), cairo_stroke(cr);
    cv.text(x, top + ph + tick + gap, col_label(c), 0.5, 0.0);
  }

  // Colorbar.
  const double bx = left + pw + 2.5 * gap;
  const int steps = std::max(2, (int)ph);
  for (int i = 0; i < steps; ++i) {
    const Rgb k = colormap(m.colormap, 1.0 - (i + 0.5) / steps);
    cairo_set_source_rgb(cr, k.r, k.g, k.b);
    cairo_rectangle(cr, bx, top + ph * i / steps, bar_w, ph / steps + 0.6);
    cairo_fill(cr);
  }
  cv.rgb(0x333333);
  cairo_rectangle(cr, bx, top, bar_w, ph);
  cairo_stroke(cr);
  for (double v : bt) {
    const double y = top + ph - (v - lo) / (hi - lo) * ph;
    cairo_move_to(cr, bx + bar_w, y), cairo_line_to(cr, bx + bar_w + tick, y), cairo_stroke(cr);
    cv.text(bx + bar_w + tick + gap, y, tick_label(v, bstep), 0.0, 0.5);
  }

  // Titles.
  if (!m.title.empty()) cv.font(17, true), cv.text(left + pw / 2, pad, m.title, 0.5, 0.0);
  cv.font(14);
  if (!m.xlabel.empty()) cv.text(left + pw / 2, m.height - pad, m.xlabel, 0.5, 1.0);
  if (!m.ylabel.empty()) cv.text(pad, top + ph / 2, m.ylabel, 0.5, 0.0, -M_PI / 2);
  if (!m.colorbar_label.empty())
    cv.text(m.width - pad, top + ph / 2, m.colorbar_label, 0.5, 0.0, M_PI / 2);
  return cv.png();
}

void save_heatmap(const std::string& path, const Heatmap& map) {
  write_file_atomic(path, render_heatmap_png(map));
}

}  // namespace xlstm
