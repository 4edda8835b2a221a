"""A live bus1d for each test (a release build if there is one, else debug), and
the Swift test peer (bus1-test-peer, built by `swift test`) for the tests that
talk to Swift. Both come from this checkout's .build folder."""
import os
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def built(name, builds=("release", "debug")):
    """The path of a package executable in this checkout, or None."""
    for build in builds:
        path = os.path.join(ROOT, ".build", build, name)
        if os.access(path, os.X_OK):
            return path
    return None


@pytest.fixture
def bus():
    """A bus1d on a fresh socket; its address is also $BUS1_ADDRESS for the test."""
    daemon = built("bus1d")
    if daemon is None:
        pytest.skip("bus1d not built: swift build -c release")
    directory = tempfile.mkdtemp(prefix="bus1-py-")
    address = os.path.join(directory, "bus")
    process = subprocess.Popen([daemon, "--config", "/dev/null", "--address", address],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not os.path.exists(address):
        assert process.poll() is None, "bus1d exited at start"
        assert time.monotonic() < deadline, "bus1d did not listen within 30 s"
        time.sleep(0.01)
    previous = os.environ.get("BUS1_ADDRESS")
    os.environ["BUS1_ADDRESS"] = address
    yield address
    if previous is None:
        del os.environ["BUS1_ADDRESS"]
    else:
        os.environ["BUS1_ADDRESS"] = previous
    process.terminate()
    assert process.wait(timeout=30) == 0, "bus1d did not stop cleanly"


@pytest.fixture
def test_peer():
    """The Swift test peer executable (skipped with the reason when it is not built)."""
    path = built("bus1-test-peer", builds=("debug",))
    if path is None:
        pytest.skip("bus1-test-peer not built: swift build --build-tests")
    return path
