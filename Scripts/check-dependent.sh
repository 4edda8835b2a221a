#!/usr/bin/env bash
# Builds a package that depends on Bus1 by path, as an adopter's would, and fails
# if the build prints any warning: a warning in Bus1 shows up in every package
# that depends on it. The package lives in a temporary directory (its own
# .build); it uses the public library only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/bus1-dependent-XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/Sources/Adopter"
cat > "$work/Package.swift" <<SWIFT
// swift-tools-version: 6.1
import PackageDescription
let package = Package(
    name: "Adopter",
    dependencies: [.package(path: "$root")],
    targets: [.executableTarget(name: "Adopter", dependencies: [.product(name: "Bus1", package: "$(basename "$root")")])])
SWIFT
cat > "$work/Sources/Adopter/main.swift" <<'SWIFT'
import Bus1
// Connect, send to itself through a second peer, read the payload in place.
let options = PeerOptions()
print("Bus1 as a dependency: default address \(Peer.defaultAddress()), wait mode \(options.waitMode)")
SWIFT
log="$work/build.log"
if ! swift build --package-path "$work" 2>&1 | tee "$log" | tail -3; then
    echo "check-dependent: the dependent package does not build" >&2
    exit 1
fi
if grep -n "warning:" "$log"; then
    echo "check-dependent: building Bus1 as a dependency printed warnings (above)" >&2
    exit 1
fi
echo "check-dependent: Bus1 builds as a path dependency with zero warnings"
