#!/usr/bin/env bash
# Instruction profile of Bus1's message path (README: "Instruction profile").
#
# Counts the instructions per message of two paths with valgrind's callgrind:
#   round-trip  64 B unicast, a → b then b → a: loan, send, receive, release
#   batch       sendBatch of 64 × 64 B a → b, each received and released
# Two peers on one thread (Tools/bus1-profile): every message is already there
# when it is received, so nothing waits or spins. Callgrind collects only inside
# the measured function (--toggle-collect), and each path runs twice, with N and
# 2N messages: the difference ÷ N is the cost per message, so connecting, the
# warm-up and anything done once per run cancel out. Runs are deterministic
# (SWIFT_DETERMINISTIC_HASHING=1): the same build gives the same numbers.
#
# The binary: the release build of bus1-profile (`swift build -c release`, the one
# the tests and bus1-bench use), copied without its debug info, which valgrind
# 3.19 cannot read (DWARF 5); symbols are enough for counts per function.
# With --debug-info it builds into .build/profile with DWARF 4 instead, so
# `callgrind_annotate --auto=yes` on the kept outputs shows source lines.
#
# Usage: Scripts/profile.sh [--messages N] [--top K] [--keep DIR] [--debug-info] [--binary PATH]
#   --messages N   the smaller run's messages (default 20480; a multiple of 512
#                  keeps the rings' reclaim cycles whole, so the count is exact)
#   --top K        functions listed per path (default 10)
#   --keep DIR     keep the callgrind outputs (PATH.N.out) and logs in DIR
#   --debug-info   build .build/profile with DWARF 4 debug info (source lines)
#   --binary PATH  profile this bus1-profile; no build
# Prints the report on stdout (format in the README), build output and timing on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

messages=20480
top=10
keep=""
debug_info=0
binary=""
while [ $# -gt 0 ]; do
    case "$1" in
        --messages) messages="$2"; shift 2 ;;
        --top) top="$2"; shift 2 ;;
        --keep) keep="$2"; shift 2 ;;
        --debug-info) debug_info=1; shift ;;
        --binary) binary="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "profile.sh: unknown argument $1 (see --help)" >&2; exit 64 ;;
    esac
done
case "$messages" in ''|*[!0-9]*) echo "profile.sh: --messages: a positive multiple of 64" >&2; exit 64 ;; esac
if [ "$messages" -lt 64 ] || [ $((messages % 64)) -ne 0 ]; then
    echo "profile.sh: --messages: a positive multiple of 64 (the batch)" >&2; exit 64
fi
case "$top" in ''|*[!0-9]*) echo "profile.sh: --top: a number" >&2; exit 64 ;; esac

if ! command -v valgrind >/dev/null; then
    echo "profile.sh: valgrind is not installed: run Scripts/setup.sh (or apt-get install valgrind)" >&2
    exit 69
fi

start=$(date +%s)
work=$(mktemp -d /tmp/bus1-profile.XXXXXX)
trap 'rm -rf "$work"' EXIT
out="${keep:-$work}"
mkdir -p "$out"

if [ -n "$binary" ]; then
    build="given: $binary"
elif [ "$debug_info" = 1 ]; then
    swift build -c release --scratch-path .build/profile --product bus1-profile \
        -Xswiftc -dwarf-version=4 -Xcc -gdwarf-4 >&2
    binary=.build/profile/release/bus1-profile
    build="release, DWARF 4 debug info (.build/profile)"
else
    swift build -c release --product bus1-profile >&2
    binary=.build/release/bus1-profile
    build="release, debug info stripped (valgrind cannot read DWARF 5)"
fi
if [ "$debug_info" = 0 ]; then
    # A copy without .debug_* sections; the symbol table stays.
    objcopy=$(command -v objcopy || command -v llvm-objcopy || true)
    if [ -z "$objcopy" ]; then echo "profile.sh: neither objcopy nor llvm-objcopy found" >&2; exit 69; fi
    "$objcopy" --strip-debug "$binary" "$work/bus1-profile"
    binary="$work/bus1-profile"
fi

demangle() {
    if command -v swift >/dev/null && swift demangle --simplified </dev/null >/dev/null 2>&1; then
        swift demangle --simplified
    else
        cat
    fi
}

revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then revision="$revision (modified)"; fi
echo "Bus1 instruction profile at $revision; $(valgrind --version); binary: $build"
echo "each path: SWIFT_DETERMINISTIC_HASHING=1 valgrind --tool=callgrind --collect-atstart=no --toggle-collect=SYMBOL"
echo "  --collect-systime=yes bus1-profile run --path PATH --messages M, for M = $messages and $((2 * messages))"

large=$((2 * messages))
for path in round-trip batch; do
    case "$path" in
        round-trip) symbol=bus1_profile_round_trips ;;
        batch) symbol=bus1_profile_batches ;;
    esac
    for m in "$messages" "$large"; do
        if ! SWIFT_DETERMINISTIC_HASHING=1 valgrind --tool=callgrind --callgrind-out-file="$out/$path.$m.out" \
                --collect-atstart=no --toggle-collect="$symbol" --collect-systime=yes \
                "$binary" run --path "$path" --messages "$m" >"$out/$path.$m.log" 2>&1; then
            echo "profile.sh: the $path run of $m messages failed:" >&2
            cat "$out/$path.$m.log" >&2
            exit 1
        fi
    done
    echo
    "$binary" report --path "$path" --top "$top" \
        --small "$out/$path.$messages.out" --small-messages "$messages" \
        --large "$out/$path.$large.out" --large-messages "$large" \
        | demangle | cut -c1-160
done
echo "profile.sh: done in $(( $(date +%s) - start )) s${keep:+; callgrind outputs in $keep}" >&2
