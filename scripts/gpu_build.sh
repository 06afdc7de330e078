#!/usr/bin/env bash
# Builds sluice on the GPU machine (Ubuntu 24.04, CUDA 13, no network): unpacks the carried .deb files into a
# private prefix, installs the carried wheels, configures with that prefix and builds. Prints the test
# command to run next. Usage: scripts/gpu_build.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-gpu}
PREFIX=/tmp/sluice-prefix
mkdir -p "$PREFIX"
for f in .debs/*.deb; do dpkg -x "$f" "$PREFIX"; done
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_PREFIX_PATH="$PREFIX/usr"
cmake --build "$BUILD" --parallel
echo "built in $BUILD; run tests with: PYTHONPATH=/tmp/site LD_LIBRARY_PATH=$LD_LIBRARY_PATH ctest --test-dir $BUILD"
