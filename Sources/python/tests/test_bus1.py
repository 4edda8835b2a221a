"""The bus1 package against a live bus1d: Python with Python, Python with Swift
in both directions (byte for byte), zero copy shown from /proc/self/maps, the GIL
released while waiting, and typed errors."""
import os
import subprocess
import sys
import threading
import time

import pytest

import bus1
import pattern


def test_import_and_version():
    assert bus1.library_version() == bus1.__version__


def test_python_to_python_copying_and_zero_copy(bus):
    with bus1.connect() as consumer, bus1.connect() as producer:
        node = consumer.create_node()
        consumer.publish(node, "py.inbox")
        target = producer.lookup("py.inbox", timeout=5)
        producer.send(target, b"copied")
        with producer.loan(64, reader=target) as buffer:
            buffer[:5] = b"hello"
            producer.send(target, buffer, size=5)
        with consumer.receive(timeout=5) as first, consumer.receive(timeout=5) as second:
            assert bytes(first.payload) == b"copied" and bytes(second.payload) == b"hello"
            assert first.kind == bus1.MESSAGE_DATA and first.node == node and first.sender == producer.id
            assert first.pid == os.getpid() and first.uid == os.geteuid()
            assert second.ticket > first.ticket
            assert first.payload.readonly
        assert producer.statistics()["messages_sent"] == 2


def mapping_of(address):
    """The /proc/self/maps line whose range holds `address`: (permissions, inode, path)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return fields[1], fields[4], fields[5] if len(fields) > 5 else ""
    raise AssertionError("no mapping holds %#x" % address)


def test_sixteen_mebibytes_are_received_in_place(bus):
    """The receiver's payload is the sender's pool memory itself: the memoryview's
    address lies in a read-only shared mapping of the same memfd (same inode) the
    sender wrote through, so nothing was copied."""
    size = 16 << 20
    with bus1.connect() as consumer, bus1.connect() as producer:
        consumer.publish(consumer.create_node(), "py.big")
        target = producer.lookup("py.big", timeout=5)
        with producer.loan(size, reader=target) as buffer:
            buffer[0], buffer[size - 1] = 0x5A, 0xA5
            written_at = mapping_of(bus1._native.ctypes.addressof(bus1._native.ctypes.c_char.from_buffer(buffer)))
            producer.send(target, buffer)
        with consumer.receive(timeout=5) as message:
            assert len(message.payload) == size
            assert message.payload[0] == 0x5A and message.payload[size - 1] == 0xA5
            read_at = mapping_of(message.address)
            assert read_at[0].startswith("r--s"), read_at  # read-only, shared
            assert written_at[0].startswith("rw-s"), written_at
            assert read_at[1] == written_at[1] and read_at[2].startswith("/memfd:"), (read_at, written_at)


def test_swift_producer_to_python_consumer(bus, test_peer):
    count = 1000
    with bus1.connect() as consumer:
        consumer.publish(consumer.create_node(), "py.from.swift")
        producer = subprocess.Popen([test_peer, "producer", "address=%s" % bus, "name=py.from.swift", "count=%d" % count],
                                    stdout=subprocess.PIPE, text=True)
        seq = 0
        while seq < count:
            with consumer.receive(timeout=60) as message:
                if message.kind != bus1.MESSAGE_DATA:
                    continue
                assert bytes(message.payload) == pattern.payload(seq), "message %d" % seq
                assert message.pid == producer.pid
                seq += 1
        output, _ = producer.communicate(timeout=60)
        assert producer.returncode == 0 and "OK sent=%d" % count in output, output


def test_python_producer_to_swift_consumer(bus, test_peer):
    count = 1000
    consumer = subprocess.Popen([test_peer, "consumer", "address=%s" % bus, "name=py.to.swift", "count=%d" % count],
                                stdout=subprocess.PIPE, text=True)
    assert consumer.stdout.readline().startswith("READY")
    with bus1.connect() as producer:
        target = producer.lookup("py.to.swift", timeout=20)
        for seq in range(count):
            data = pattern.payload(seq)
            if seq % 2:
                producer.send(target, data, timeout=60)  # copied in
            else:
                with producer.loan(len(data), reader=target) as buffer:  # written in place
                    buffer[:] = data
                    producer.send(target, buffer, timeout=60)
        output, _ = consumer.communicate(timeout=60)
        assert consumer.returncode == 0 and "OK received=%d" % count in output, output


def test_receive_releases_the_gil(bus):
    """A thread waiting in receive() leaves the interpreter to the others."""
    with bus1.connect() as waiter:
        waiter.publish(waiter.create_node(), "py.gil")
        outcome = []
        thread = threading.Thread(target=lambda: outcome.append(pytest.raises(bus1.TimedOut, waiter.receive, timeout=0.5)))
        started = time.monotonic()
        thread.start()
        spins = 0
        while thread.is_alive():
            spins += 1
        # A call holding the GIL would let this thread run not once in those 0.5 s.
        assert time.monotonic() - started >= 0.4 and spins > 1000, spins
        assert outcome and outcome[0].value.errno == 110


def test_errors_are_typed(bus):
    with bus1.connect() as peer:
        with pytest.raises(bus1.NameUnknown):
            peer.lookup("py.nobody", timeout=0)
        with pytest.raises(bus1.WouldBlock):
            peer.receive(timeout=0)
        with pytest.raises(bus1.TimedOut):
            peer.receive(timeout=0.01)
        with pytest.raises(bus1.UnknownHandle):
            peer.send(987654321, b"x")
        node = peer.create_node()
        peer.publish(node, "py.taken")
        with pytest.raises(bus1.NameTaken):
            peer.publish(peer.create_node(), "py.taken")
        with pytest.raises(bus1.PayloadTooLarge):
            peer.loan(1 << 40)
        with pytest.raises(bus1.Bus1Error):
            peer.publish(node, "")
    with pytest.raises(bus1.NameUnknown):
        bus1.connect("/nonexistent/bus1/socket")


def test_a_released_message_gives_its_slice_back_and_its_payload_up(bus):
    with bus1.connect() as consumer, bus1.connect() as producer:
        consumer.publish(consumer.create_node(), "py.hold")
        producer.send(producer.lookup("py.hold", timeout=5), b"held")
        message = consumer.receive(timeout=5)
        assert producer.statistics()["slices_in_use"] == 1
        message.release()
        with pytest.raises(ValueError):
            message.payload[0]
        message.release()  # twice is nothing
        deadline = time.monotonic() + 5
        while producer.statistics()["slices_in_use"] and time.monotonic() < deadline:
            time.sleep(0.001)
        assert producer.statistics()["slices_in_use"] == 0


def test_bench_prints_a_row_per_mode_and_size(bus):
    output = subprocess.run([sys.executable, "-m", "bus1.bench", "--iterations", "50", "--warmup", "5", "--sizes", "64,4096",
                             "--modes", "busy,park"], capture_output=True, text=True, timeout=300)
    assert output.returncode == 0, output.stderr
    rows = [line.split() for line in output.stdout.splitlines() if line.split()[:1] in (["busy"], ["park"])]
    assert [(row[0], row[1]) for row in rows] == [("busy", "64"), ("busy", "4096"), ("park", "64"), ("park", "4096")], output.stdout
    for row in rows:
        assert all(float(value) > 0 for value in row[2:8]) and row[8].endswith("×"), row


def in_background(body, results):
    """Runs `body` on a thread of its own; an exception it raises lands in `results`
    (which the test compares), not lost with the thread."""
    def run():
        try:
            body()
        except Exception as error:
            results.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_topic_from_python_to_subscribers(bus):
    from bus1.patterns import SKIP, Subscription, Topic

    with Topic("py.topic", history=2, when_full=SKIP) as topic:
        topic.publish(b"old-1")
        topic.publish(b"old-2")
        topic.publish(b"old-3")
        received = []

        def receive_four():
            with Subscription("py.topic", timeout=20) as subscription:
                for _ in range(4):
                    with subscription.receive(timeout=20) as message:
                        received.append((message.sequence, bytes(message.payload)))
                received.append(("missed", subscription.missed))

        thread = in_background(receive_four, received)
        topic.wait_for_subscribers(1, timeout=20)
        topic.publish(b"live-4")
        topic.publish(b"live-5")
        thread.join(timeout=60)
        assert received == [(2, b"old-2"), (3, b"old-3"), (4, b"live-4"), (5, b"live-5"), ("missed", 0)]
        deadline = time.monotonic() + 20  # the subscription was freed: it unsubscribed
        while topic.serve() and time.monotonic() < deadline:
            time.sleep(0.001)
        assert topic.serve() == 0


def test_request_reply_from_python(bus):
    from bus1.patterns import Client, Service

    with Service("py.upper") as service:
        answered = []

        def answer_three():
            for _ in range(3):
                with service.next(timeout=20) as request:
                    text = bytes(request.payload)
                    if text == b"fail":
                        service.fail(request, "asked to")
                    else:
                        service.reply(request, text.upper())
                    answered.append(text)

        thread = in_background(answer_three, answered)
        with Client("py.upper", timeout=20) as client:
            assert client.call(b"hello", timeout=20) == b"HELLO"
            assert client.call(b"", timeout=20) == b""
            with pytest.raises(bus1.Bus1Error) as failed:
                client.call(b"fail", timeout=20)
            assert failed.value.errno == 121  # EREMOTEIO: the service failed the call
        thread.join(timeout=60)
        assert answered == [b"hello", b"", b"fail"]
