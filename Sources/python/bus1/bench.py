"""Round-trip latency of Bus1 from Python, beside a bare Python floor measured in
the same run:

    bus1d &                       # or BUS1_ADDRESS=... of a running bus
    python -m bus1.bench [--iterations 20000] [--sizes 64,1048576]

Per size and wait mode, a ping-pong with an echo process (this module again,
`--echo`): the sender loans `size` bytes, writes the first and last byte in place
and sends; the echo reads them and answers the same way; the sender reads the
reply's last byte. Modes: `busy` (receive spins) and `park` (receive sleeps at once).

The floors do the same with nothing but Python: two slots in one
multiprocessing.shared_memory block and a sequence word per direction; `busy`
spins on the word, `park` sleeps in a blocking os.read of a pipe the other side
writes a byte to after storing its word. Each row prints p50/p90/p99 in µs and
Bus1 p50 ÷ floor p50.
"""
import argparse
import os
import struct
import subprocess
import sys
import time
from multiprocessing import resource_tracker, shared_memory

import bus1

MODES = {"busy": bus1.WAIT_BUSY, "park": bus1.WAIT_PARK}


def percentiles(samples):
    ordered = sorted(samples)
    return [ordered[min(len(ordered) - 1, int(len(ordered) * p))] / 1000 for p in (0.5, 0.9, 0.99)]


def touch(buffer, size, marker):
    buffer[0] = marker
    buffer[size - 1] = marker


# Bus1

def bus1_round_trips(size, mode, iterations, warmup):
    name = "bench.py.%d.%d" % (os.getpid(), time.monotonic_ns())
    with bus1.connect() as peer:
        peer.publish(peer.create_node(), name + ".parent")
        echo = subprocess.Popen([sys.executable, "-m", "bus1.bench", "--echo", name, "--size", str(size), "--mode", mode])
        target = peer.lookup(name + ".echo", timeout=20)
        samples = []
        for i in range(warmup + iterations):
            marker = (i | 1) & 0xFF
            t0 = time.perf_counter_ns()
            with peer.loan(size, reader=target) as buffer:
                touch(buffer, size, marker)
                peer.send(target, buffer)
            with peer.receive(timeout=60, mode=MODES[mode]) as reply:
                if reply.payload[size - 1] != marker:
                    raise RuntimeError("corrupt echo")
            if i >= warmup:
                samples.append(time.perf_counter_ns() - t0)
        peer.send(target, b"")  # an empty message stops the echo
        if echo.wait(timeout=60) != 0:
            raise RuntimeError("echo failed")
        return samples


def bus1_echo(name, size, mode):
    with bus1.connect() as peer:
        peer.publish(peer.create_node(), name + ".echo")
        parent = peer.lookup(name + ".parent", timeout=20)
        while True:
            with peer.receive(timeout=120, mode=MODES[mode]) as message:
                if message.kind != bus1.MESSAGE_DATA:
                    continue
                if len(message.payload) == 0:
                    break
                marker = message.payload[0] & message.payload[size - 1]
            with peer.loan(size, reader=parent) as buffer:
                touch(buffer, size, marker)
                peer.send(parent, buffer)
        # Stay until the parent took the last reply (leaving would take it along).
        while peer.statistics()["slices_in_use"]:
            time.sleep(0.0001)


# The floor: shared memory and Python alone

HEADER = 16  # two sequence words: [0] parent → echo, [8] echo → parent


def floor_round_trips(size, mode, iterations, warmup):
    block = shared_memory.SharedMemory(create=True, size=HEADER + 2 * size)
    to_echo, from_parent = os.pipe()
    to_parent, from_echo = os.pipe()
    echo = subprocess.Popen([sys.executable, "-m", "bus1.bench", "--floor-echo", block.name, "--size", str(size),
                             "--mode", mode, "--fds", "%d,%d" % (to_echo, from_echo)], pass_fds=(to_echo, from_echo))
    os.close(to_echo)
    os.close(from_echo)
    buffer = block.buf
    samples = []
    try:
        for i in range(warmup + iterations):
            marker = (i | 1) & 0xFF
            t0 = time.perf_counter_ns()
            touch(buffer[HEADER:HEADER + size], size, marker)
            struct.pack_into("<Q", buffer, 0, i + 1)
            if mode == "park":
                os.write(from_parent, b"x")
                os.read(to_parent, 1)
            while struct.unpack_from("<Q", buffer, 8)[0] != i + 1:
                pass
            if buffer[HEADER + 2 * size - 1] != marker:
                raise RuntimeError("corrupt echo")
            if i >= warmup:
                samples.append(time.perf_counter_ns() - t0)
        struct.pack_into("<Q", buffer, 0, 2 ** 64 - 1)  # stop
        if mode == "park":
            os.write(from_parent, b"x")
        echo.wait(timeout=60)
    finally:
        del buffer
        block.close()
        block.unlink()
    return samples


def floor_echo(name, size, mode, fds):
    wake_me, wake_parent = (int(x) for x in fds.split(","))
    block = shared_memory.SharedMemory(name=name)
    # Attaching registered it for removal at this process's exit (Python < 3.13):
    # the parent made it and removes it.
    resource_tracker.unregister(block._name, "shared_memory")
    buffer = block.buf
    seen = 0
    while True:
        if mode == "park":
            os.read(wake_me, 1)
        while struct.unpack_from("<Q", buffer, 0)[0] == seen:
            pass
        seen = struct.unpack_from("<Q", buffer, 0)[0]
        if seen == 2 ** 64 - 1:
            break
        marker = buffer[HEADER] & buffer[HEADER + size - 1]
        reply = buffer[HEADER + size:HEADER + 2 * size]
        touch(reply, size, marker)
        del reply
        struct.pack_into("<Q", buffer, 8, seen)
        if mode == "park":
            os.write(wake_parent, b"x")
    del buffer
    block.close()


def main():
    parser = argparse.ArgumentParser(prog="python -m bus1.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--sizes", default="64,1048576")
    parser.add_argument("--modes", default="busy,park")
    parser.add_argument("--echo", help=argparse.SUPPRESS)
    parser.add_argument("--floor-echo", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--fds", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.echo:
        return bus1_echo(arguments.echo, arguments.size, arguments.mode)
    if arguments.floor_echo:
        return floor_echo(arguments.floor_echo, arguments.size, arguments.mode, arguments.fds)
    sizes = [int(x) for x in arguments.sizes.split(",")]
    modes = arguments.modes.split(",")
    if arguments.iterations < 1 or any(s < 1 for s in sizes) or any(m not in MODES for m in modes):
        parser.error("--iterations ≥ 1, --sizes ≥ 1 byte, --modes from busy,park")
    print("libbus1 %s, Python %s; round trips in µs" % (bus1.library_version(), sys.version.split()[0]))
    print("%-5s %9s  %8s %8s %8s  %8s %8s %8s  %s" % ("mode", "size", "bus1 p50", "p90", "p99", "floor p50", "p90", "p99", "bus1 ÷ floor"))
    for mode in modes:
        for size in sizes:
            n = arguments.iterations if size <= 65536 else max(100, arguments.iterations // 10)
            warmup = min(arguments.warmup, n)
            ours = percentiles(bus1_round_trips(size, mode, n, warmup))
            floor = percentiles(floor_round_trips(size, mode, n, warmup))
            print("%-5s %9d  %8.2f %8.2f %8.2f  %9.2f %8.2f %8.2f  %.2f×" % (mode, size, *ours, *floor, ours[0] / floor[0]))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
