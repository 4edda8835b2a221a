#!/usr/bin/env bash
# The async tests under ThreadSanitizer: the reactor thread, cancellation, the
# interrupter, the readiness descriptor, the ServiceClient actor and the async test-peer roles (whose
# binaries are built with the sanitizer too, so a race in a child process fails
# its test). A build folder of its own (.build-tsan), so the plain debug build is
# left alone. Arguments go to `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --build-tests --sanitize=thread --scratch-path .build-tsan
BUS1_SANITIZER=thread swift test --skip-build --sanitize=thread --scratch-path .build-tsan \
    --filter "AsyncTests|ObservabilityTests|PollServiceTests|PatternTests/(concurrentCalls|serviceKilledMidCall|callTimeoutsAndHandOver)" "$@"
