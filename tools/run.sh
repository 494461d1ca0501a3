#!/usr/bin/env bash
# Build edibroker (release) and run it on its embedded defaults: SQLite file in ./edibroker-data,
# the demo registry (config/registry.xml) and the routing rules of routing-rules/.
# Extra arguments go to `edibroker serve` (e.g. --listen 127.0.0.1:9090).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/tools/install-deps.sh"
cmake -S "$here" -B "$here/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEDIBROKER_BUILD_TESTS=OFF >/dev/null
cmake --build "$here/build-release" --target edibroker
exec "$here/build-release/broker/edibroker" serve "$@"
