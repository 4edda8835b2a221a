#!/usr/bin/env bash
# Installs Bus1's system dependency (liburing, Debian's liburing-dev) if missing, and the
# tools some tests and scripts use (systemd's, valgrind).
set -euo pipefail
if ! pkg-config --exists liburing 2>/dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq liburing-dev pkg-config >/dev/null
fi
pkg-config --modversion liburing >/dev/null
# systemd's tools, for the socket-activation and unit-file tests (skipped with a reason without them).
if ! command -v systemd-socket-activate >/dev/null || ! command -v systemd-analyze >/dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq systemd >/dev/null
fi
# valgrind, for Scripts/profile.sh (instructions per message under callgrind; its test is
# skipped with a reason without it).
if ! command -v valgrind >/dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind >/dev/null
fi
