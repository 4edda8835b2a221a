#!/usr/bin/env bash
# Builds the documentation of the Bus1 library (the DocC catalog Sources/Bus1/Bus1.docc
# and the doc comments of Sources/Bus1) into .build/docs/Bus1.doccarchive with
# swift-docc-plugin. Any DocC warning (a broken or ambiguous symbol link) fails the build.
# Overloads that differ only in `async` are linked by DocC's hash suffix
# (``Peer/receive(mode:timeout:)-8yrg1``); when a signature changes, the error names the new one.
# To read it: python3 -m http.server -d .build/docs/Bus1.doccarchive, then open
# http://localhost:8000/documentation/bus1 (extra arguments go to the plugin).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .build/docs
exec swift package --disable-sandbox --allow-writing-to-directory .build/docs \
    generate-documentation --target Bus1 --warnings-as-errors \
    --output-path .build/docs/Bus1.doccarchive "$@"
