#!/usr/bin/env bash
# The test command (README, .ci/run): builds the release binaries, which the tool
# tests run as well as the debug ones (an optimiser-only crash must fail the
# tests) and both builds of libbus1.so (the C API tests link them), then runs
# every test. Arguments go to `swift test` (e.g. --filter);
# without arguments it then also runs the checks outside `swift test`:
#   - Scripts/python.sh: the Python package's tests (pytest, against live bus1d);
#   - Scripts/tsan.sh: the async tests under ThreadSanitizer;
#   - Scripts/check-dependent.sh: Bus1 as a path dependency builds without warnings;
#   - Scripts/docs.sh: the DocC catalog builds without warnings;
#   - Benchmarks/ builds (its micro-benchmarks are run by hand, but must not rot:
#     they once stopped compiling unnoticed).
set -euo pipefail
cd "$(dirname "$0")/.."

swift build -c release
swift build --product bus1   # the debug libbus1.so, which the C API tests link too
swift test "$@"
if [ $# -eq 0 ]; then
    ./Scripts/python.sh
    ./Scripts/tsan.sh
    ./Scripts/check-dependent.sh
    ./Scripts/docs.sh
    swift build --package-path Benchmarks
fi
