#!/usr/bin/env bash
# Build edibroker with its tests and run them all. With EDIBROKER_SANITIZE=1 the build uses
# AddressSanitizer + UBSan (a separate build folder).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/tools/install-deps.sh"
dir="$here/build-test"
extra=()
if [ "${EDIBROKER_SANITIZE:-0}" = "1" ]; then
  dir="$here/build-asan"
  extra=(-DEDIBROKER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
cmake -S "$here" -B "$dir" -G Ninja -DEDIBROKER_WERROR=ON "${extra[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
cd "$dir" && ctest --output-on-failure --timeout 600
