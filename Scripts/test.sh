#!/usr/bin/env bash
# The test command (README, .ci/run): builds the release binaries, which the tool
# tests run as well as the debug ones (an optimiser-only crash must fail the
# tests), then runs every test. Arguments go to `swift test` (e.g. --filter).
set -euo pipefail
cd "$(dirname "$0")/.."

swift build -c release
swift test "$@"
