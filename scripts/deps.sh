#!/usr/bin/env bash
# Installs the Debian 12 packages the build and tests need (only what is missing).
set -euo pipefail
pkgs=(g++ cmake ninja-build pkg-config libdnnl-dev libopenblas-dev libcli11-dev nlohmann-json3-dev
      libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev libpng-dev libcairo2-dev libicu-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
