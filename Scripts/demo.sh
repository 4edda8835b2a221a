#!/usr/bin/env bash
# The main job on a fresh machine: set up, build release, run the two-process demo.
set -euo pipefail
cd "$(dirname "$0")/.."
./Scripts/setup.sh
swift build -c release --product bus1-demo
exec .build/release/bus1-demo "$@"
