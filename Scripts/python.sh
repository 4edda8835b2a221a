#!/usr/bin/env bash
# The Python package's tests: installs Sources/python (which copies libbus1.so
# from .build) into a virtual environment of its own (.build/pyvenv, seeing the
# system's packages), adds pytest if the system has none, and runs the tests
# against live bus1d processes (they need `swift build -c release` and, for the
# Swift peers, `swift build --build-tests`). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build -c release --product bus1   # a no-op when it is up to date; never test a stale library
python3 -m venv --system-site-packages .build/pyvenv
.build/pyvenv/bin/python -m pip install -q --no-deps ./Sources/python
.build/pyvenv/bin/python -c "import pytest" 2>/dev/null || .build/pyvenv/bin/python -m pip install -q pytest
cd Sources/python
exec ../../.build/pyvenv/bin/python -m pytest -q -p no:cacheprovider "$@"
