#!/usr/bin/env bash
# Configures and builds into build/ (Release). Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" > build/cmake.log 2>&1 || { cat build/cmake.log; exit 1; }
ninja -C build -j"$(nproc)"
