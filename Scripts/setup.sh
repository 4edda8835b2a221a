#!/usr/bin/env bash
# Installs Bus1's system dependency (liburing, Debian's liburing-dev) if missing, and the
# tools some tests and scripts use (systemd's, valgrind).
set -euo pipefail

# Installs Debian packages (apt; sudo unless root).
install_packages() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! pkg-config --exists liburing 2>/dev/null; then install_packages liburing-dev pkg-config; fi
pkg-config --modversion liburing >/dev/null
# systemd's tools, for the socket-activation and unit-file tests (disabled with a reason without them).
if ! command -v systemd-socket-activate >/dev/null || ! command -v systemd-analyze >/dev/null; then install_packages systemd; fi
# valgrind, for Scripts/profile.sh (instructions per message under callgrind; its test is
# disabled with a reason without it).
if ! command -v valgrind >/dev/null; then install_packages valgrind; fi
