// The loss.png of a training run: the "loss" and "val_loss" columns of its metrics CSV
// (io/metrics.h) against "step", non-finite entries (steps without a validation) left out.
#pragma once
#include <string>

namespace xlstm {

// Reads `csv`, writes the PNG to `png`. Throws IoError / ValueError naming the file.
void save_loss_plot(const std::string& png, const std::string& csv, const std::string& title,
                    const std::string& ylabel);

}  // namespace xlstm
