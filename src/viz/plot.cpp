#include "viz/plot.h"

#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>

#include "io/atomic_file.h"
#include "viz/plot_draw.h"
#include "xlstm/error.h"

namespace xlstm {
namespace viz {

// ------------------------------------------------------------------------ shared helpers

Canvas::Canvas(int w, int h, const char* what) {
  XLSTM_CHECK(w >= 200 && w <= 8192 && h >= 200 && h <= 8192, ValueError, "[", what,
              "] width and height must be in [200, 8192], got ", w, "x", h);
  surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
  cr = cairo_create(surface);
  XLSTM_CHECK(cairo_status(cr) == CAIRO_STATUS_SUCCESS, IoError, "[", what,
              "] cairo could not create a ", w, "x", h, " image");
  width = w, height = h;
  scale = std::min(w / 900.0, h / 540.0);
  scale = std::max(scale, 0.8);  // keep text readable on small images
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
}

Canvas::~Canvas() {
  if (cr) cairo_destroy(cr);
  if (surface) cairo_surface_destroy(surface);
}

static cairo_status_t append_png(void* closure, const unsigned char* data, unsigned int n) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), n);
  return CAIRO_STATUS_SUCCESS;
}

std::string Canvas::png() {
  cairo_surface_flush(surface);
  std::string out;
  const cairo_status_t st = cairo_surface_write_to_png_stream(surface, append_png, &out);
  XLSTM_CHECK(st == CAIRO_STATUS_SUCCESS, IoError, "[plot] PNG encoding failed: ",
              cairo_status_to_string(st));
  return out;
}

void Canvas::font(double size, bool bold) {
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size * scale);
}

double Canvas::text_width(const std::string& s) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  return e.x_advance;
}

double Canvas::text_height() {
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  return fe.ascent + fe.descent;
}

void Canvas::text(double x, double y, const std::string& s, double ha, double va, double angle) {
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  const double w = text_width(s), h = fe.ascent + fe.descent;
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_rotate(cr, angle);
  cairo_move_to(cr, -ha * w, -va * h + fe.ascent);
  cairo_show_text(cr, s.c_str());
  cairo_restore(cr);
}

void Canvas::rgb(uint32_t c, double alpha) {
  cairo_set_source_rgba(cr, ((c >> 16) & 255) / 255.0, ((c >> 8) & 255) / 255.0, (c & 255) / 255.0,
                        alpha);
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> r;
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return r;
  const double raw = (hi - lo) / std::max(target, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  const double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1) {
    const double v = k * step;
    r.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return r;
}

std::string tick_label(double v, double step) {
  char buf[32];
  const double a = std::max(std::fabs(v), std::fabs(step));
  if (v == 0) return "0";
  if (a >= 1e6 || a < 1e-4) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  } else {
    const int dec = std::max(0, (int)std::ceil(-std::log10(std::fabs(step)) - 1e-9));
    std::snprintf(buf, sizeof buf, "%.*f", std::min(dec, 8), v);
  }
  return buf;
}

}  // namespace viz

using namespace viz;

namespace {

constexpr uint32_t kPalette[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};

// Ticks for a log10 axis spanning [llo, lhi] (log10 units): decades, else 1-2-5, else 1..9,
// else linear ticks. Returned as data values.
std::vector<double> log_ticks(double llo, double lhi) {
  const double lo = std::pow(10.0, llo), hi = std::pow(10.0, lhi);
  const std::vector<std::vector<int>> sets = {{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
  for (size_t k = 0; k < sets.size(); ++k) {
    std::vector<double> r;
    for (int e = (int)std::floor(llo) - 1; e <= (int)std::ceil(lhi); ++e)
      for (int m : sets[k]) {
        const double v = m * std::pow(10.0, e);
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) r.push_back(v);
      }
    // Less than a decade: 1..9 leaves gaps at the low end; linear ticks read better.
    if (r.size() >= (k < 2 ? 3u : 5u) && r.size() <= 12) return r;
  }
  return nice_ticks(lo, hi, 8);  // log spacing crowds the top: ask for more
}

std::string log_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

std::string render_line_plot_png(const LinePlot& p) {
  Canvas cv(p.width, p.height, "line plot");
  cairo_t* cr = cv.cr;
  const bool logy = p.yscale == AxisScale::Log;
  auto ok = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && (!logy || y > 0);
  };
  auto ty = [&](double y) { return logy ? std::log10(y) : y; };

  // Data ranges (y in axis units: log10 for a log axis).
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (size_t s = 0; s < p.series.size(); ++s) {
    const Series& se = p.series[s];
    XLSTM_CHECK(se.x.size() == se.y.size(), ValueError, "[line plot] series '", se.label, "' has ",
                se.x.size(), " x values but ", se.y.size(), " y values");
    for (size_t i = 0; i < se.x.size(); ++i)
      if (ok(se.x[i], se.y[i])) {
        xlo = std::min(xlo, se.x[i]), xhi = std::max(xhi, se.x[i]);
        ylo = std::min(ylo, ty(se.y[i])), yhi = std::max(yhi, ty(se.y[i]));
      }
  }
  for (const Band& b : p.bands) {
    XLSTM_CHECK(b.x.size() == b.lo.size() && b.x.size() == b.hi.size(), ValueError,
                "[line plot] band '", b.label, "' has ", b.x.size(), " x, ", b.lo.size(), " lo and ",
                b.hi.size(), " hi values");
    XLSTM_CHECK(b.alpha > 0 && b.alpha <= 1, ValueError, "[line plot] band '", b.label,
                "' alpha must be in (0, 1], got ", b.alpha);
    for (size_t i = 0; i < b.x.size(); ++i)
      if (ok(b.x[i], b.lo[i]) && ok(b.x[i], b.hi[i])) {
        xlo = std::min(xlo, b.x[i]), xhi = std::max(xhi, b.x[i]);
        ylo = std::min({ylo, ty(b.lo[i]), ty(b.hi[i])});
        yhi = std::max({yhi, ty(b.lo[i]), ty(b.hi[i])});
      }
  }
  if (xlo <= xhi)  // vertical markers widen an x range that has data
    for (const VLine& v : p.vlines)
      if (std::isfinite(v.x)) xlo = std::min(xlo, v.x), xhi = std::max(xhi, v.x);
  const bool empty = !(xlo <= xhi);
  if (empty) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  if (xhi == xlo) xlo -= std::max(std::fabs(xlo) * 0.1, 0.5), xhi += std::max(std::fabs(xhi) * 0.1, 0.5);
  if (yhi == ylo) {
    const double d = logy ? 0.1 : (ylo != 0 ? std::fabs(ylo) * 0.1 : 1.0);
    ylo -= d, yhi += d;
  } else {
    const double d = (yhi - ylo) * 0.05;
    ylo -= d, yhi += d;
  }

  std::vector<double> yt = logy ? log_ticks(ylo, yhi) : nice_ticks(ylo, yhi, 6);
  std::vector<double> xt = nice_ticks(xlo, xhi, 7);
  const double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1, xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  std::vector<std::string> ytl, xtl;
  const bool log_decades = logy && yt.size() > 1 && yt[1] / yt[0] >= 2 - 1e-9;
  for (double v : yt) ytl.push_back(log_decades ? log_label(v) : tick_label(v, ystep));
  for (double v : xt) xtl.push_back(tick_label(v, xstep));

  // Layout.
  const double S = cv.scale, pad = 12 * S, gap = 6 * S, tick = 5 * S;
  cv.font(17, true);
  const double title_h = p.title.empty() ? 0 : cv.text_height() + gap;
  cv.font(14);
  const double label_h = cv.text_height();
  cv.font(12);
  const double tick_h = cv.text_height();
  double ytw = 0;
  for (auto& s : ytl) ytw = std::max(ytw, cv.text_width(s));
  const double left = pad + (p.ylabel.empty() ? 0 : label_h + gap) + ytw + gap + tick;
  const double top = pad + title_h;
  const double bottom = tick + gap + tick_h + (p.xlabel.empty() ? 0 : gap + label_h) + pad;
  const double right = pad + (xtl.empty() ? 0 : cv.text_width(xtl.back()) / 2);
  const double pw = p.width - left - right, ph = p.height - top - bottom;
  auto px = [&](double x) { return left + (x - xlo) / (xhi - xlo) * pw; };
  auto py = [&](double y) { return top + ph - (ty(y) - ylo) / (yhi - ylo) * ph; };

  // Grid, ticks and tick labels.
  cairo_set_line_width(cr, 1.0);
  cv.font(12);
  for (size_t i = 0; i < yt.size(); ++i) {
    const double y = std::round(py(yt[i])) + 0.5;
    cv.rgb(0xe6e6e6);
    cairo_move_to(cr, left, y), cairo_line_to(cr, left + pw, y), cairo_stroke(cr);
    cv.rgb(0x333333);
    cairo_move_to(cr, left - tick, y), cairo_line_to(cr, left, y), cairo_stroke(cr);
    cv.text(left - tick - gap, y, ytl[i], 1.0, 0.5);
  }
  for (size_t i = 0; i < xt.size(); ++i) {
    const double x = std::round(px(xt[i])) + 0.5;
    cv.rgb(0xe6e6e6);
    cairo_move_to(cr, x, top), cairo_line_to(cr, x, top + ph), cairo_stroke(cr);
    cv.rgb(0x333333);
    cairo_move_to(cr, x, top + ph), cairo_line_to(cr, x, top + ph + tick), cairo_stroke(cr);
    cv.text(x, top + ph + tick + gap, xtl[i], 0.5, 0.0);
  }
  cv.rgb(0x333333);
  cairo_rectangle(cr, std::round(left) + 0.5, std::round(top) + 0.5, std::round(pw), std::round(ph));
  cairo_stroke(cr);

  // Titles.
  if (!p.title.empty()) cv.font(17, true), cv.text(left + pw / 2, pad, p.title, 0.5, 0.0);
  cv.font(14);
  if (!p.xlabel.empty()) cv.text(left + pw / 2, p.height - pad, p.xlabel, 0.5, 1.0);
  if (!p.ylabel.empty()) cv.text(pad, top + ph / 2, p.ylabel, 0.5, 0.0, -M_PI / 2);
  if (empty) cv.text(left + pw / 2, top + ph / 2, "no data", 0.5, 0.5);

  // Series, clipped to the plot area.
  std::vector<uint32_t> colors;
  size_t next_color = 0;
  for (auto& se : p.series) colors.push_back(se.rgb ? se.rgb : kPalette[next_color++ % 10]);
  std::vector<uint32_t> band_colors;
  for (auto& b : p.bands) band_colors.push_back(b.rgb ? b.rgb : kPalette[next_color++ % 10]);
  cairo_save(cr);
  cairo_rectangle(cr, left, top, pw, ph);
  cairo_clip(cr);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  // Bands: one closed polygon per run of drawable points (lo forward, hi backward).
  for (size_t k = 0; k < p.bands.size(); ++k) {
    const Band& b = p.bands[k];
    cv.rgb(band_colors[k], b.alpha);
    size_t i = 0;
    while (i < b.x.size()) {
      auto good = [&](size_t j) { return ok(b.x[j], b.lo[j]) && ok(b.x[j], b.hi[j]); };
      if (!good(i)) { ++i; continue; }
      size_t j = i;
      while (j < b.x.size() && good(j)) ++j;
      cairo_move_to(cr, px(b.x[i]), py(b.lo[i]));
      for (size_t m = i + 1; m < j; ++m) cairo_line_to(cr, px(b.x[m]), py(b.lo[m]));
      for (size_t m = j; m-- > i;) cairo_line_to(cr, px(b.x[m]), py(b.hi[m]));
      cairo_close_path(cr);
      cairo_fill(cr);
      i = j;
    }
  }
  for (const VLine& v : p.vlines) {
    if (!std::isfinite(v.x)) continue;
    const double x = std::round(px(v.x)) + 0.5;
    const double dash[] = {6.0 * S, 4.0 * S};
    cv.rgb(v.rgb);
    cairo_set_line_width(cr, 1.5 * S);
    cairo_set_dash(cr, dash, 2, 0);
    cairo_move_to(cr, x, top), cairo_line_to(cr, x, top + ph), cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
    if (!v.label.empty()) {  // beside the line, on the side with more room
      const bool right_half = x > left + pw / 2;
      cv.font(11.5);
      cv.text(right_half ? x - gap * 0.7 : x + gap * 0.7, top + gap, v.label, right_half ? 1.0 : 0.0, 0.0);
    }
  }
  for (size_t s = 0; s < p.series.size(); ++s) {
    const Series& se = p.series[s];
    cv.rgb(colors[s]);
    cairo_set_line_width(cr, 2.0 * S);
    bool pen = false;
    for (size_t i = 0; i < se.x.size(); ++i) {
      if (!ok(se.x[i], se.y[i])) { pen = false; continue; }
      if (pen) cairo_line_to(cr, px(se.x[i]), py(se.y[i]));
      else cairo_move_to(cr, px(se.x[i]), py(se.y[i]));
      pen = true;
    }
    cairo_stroke(cr);
    const bool marks = p.markers == LinePlot::Markers::Always ||
                       (p.markers == LinePlot::Markers::Auto && se.x.size() <= 60);
    if (marks)
      for (size_t i = 0; i < se.x.size(); ++i)
        if (ok(se.x[i], se.y[i])) {
          cairo_arc(cr, px(se.x[i]), py(se.y[i]), 3.2 * S, 0, 2 * M_PI);
          cairo_fill(cr);
        }
  }
  cairo_restore(cr);

  // Legend (a top corner inside the axes): series, then bands.
  std::vector<size_t> shown, shown_bands;
  for (size_t s = 0; s < p.series.size(); ++s)
    if (!p.series[s].label.empty()) shown.push_back(s);
  for (size_t k = 0; k < p.bands.size(); ++k)
    if (!p.bands[k].label.empty()) shown_bands.push_back(k);
  if (!shown.empty() || !shown_bands.empty()) {
    cv.font(12.5);
    const double lh = cv.text_height() * 1.35, sample = 26 * S;
    double tw = 0;
    for (size_t s : shown) tw = std::max(tw, cv.text_width(p.series[s].label));
    for (size_t k : shown_bands) tw = std::max(tw, cv.text_width(p.bands[k].label));
    const size_t entries = shown.size() + shown_bands.size();
    const double bw = gap * 3 + sample + tw, bh = lh * entries + gap * 1.5;
    const double bx = p.legend == LinePlot::Legend::TopLeft ? left + gap * 1.5
                                                            : left + pw - bw - gap * 1.5;
    const double by = top + gap * 1.5;
    cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
    cairo_rectangle(cr, bx, by, bw, bh);
    cairo_fill_preserve(cr);
    cv.rgb(0xbbbbbb);
    cairo_set_line_width(cr, 1.0);
    cairo_stroke(cr);
    for (size_t k = 0; k < shown.size(); ++k) {
      const double cy = by + gap * 0.75 + lh * (k + 0.5);
      cv.rgb(colors[shown[k]]);
      cairo_set_line_width(cr, 2.5 * S);
      cairo_move_to(cr, bx + gap, cy), cairo_line_to(cr, bx + gap + sample, cy), cairo_stroke(cr);
      cv.rgb(0x222222);
      cv.text(bx + gap * 2 + sample, cy, p.series[shown[k]].label, 0.0, 0.5);
    }
    for (size_t k = 0; k < shown_bands.size(); ++k) {
      const Band& b = p.bands[shown_bands[k]];
      const double cy = by + gap * 0.75 + lh * (shown.size() + k + 0.5);
      cv.rgb(band_colors[shown_bands[k]], b.alpha);
      cairo_rectangle(cr, bx + gap, cy - lh * 0.3, sample, lh * 0.6);
      cairo_fill(cr);
      cv.rgb(0x222222);
      cv.text(bx + gap * 2 + sample, cy, b.label, 0.0, 0.5);
    }
  }
  return cv.png();
}

void save_line_plot(const std::string& path, const LinePlot& plot) {
  write_file_atomic(path, render_line_plot_png(plot));
}

void png_size(const std::string& path, int& width, int& height) {
  std::ifstream f(path, std::ios::binary);
  XLSTM_CHECK(f.good(), IoError, path, ": cannot open for reading");
  unsigned char h[24] = {0};
  f.read(reinterpret_cast<char*>(h), 24);
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  XLSTM_CHECK(f.gcount() == 24 && std::equal(sig, sig + 8, h) && std::equal(h + 12, h + 16, "IHDR"),
              IoError, path, ": not a PNG file");
  auto be32 = [&](int o) {
    return (int)((uint32_t)h[o] << 24 | (uint32_t)h[o + 1] << 16 | (uint32_t)h[o + 2] << 8 | h[o + 3]);
  };
  width = be32(16), height = be32(20);
}

}  // namespace xlstm
