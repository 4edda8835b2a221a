"""Topics (publish/subscribe) and request/reply, over libbus1's pattern functions
(the Swift library's Topic, TopicSubscriber, Service and ServiceClient). Each
object connects a peer of its own; use it from one thread at a time."""
import ctypes

from . import _native
from . import _check, _Closing, _nanoseconds, Message

BLOCK, SKIP, DISCONNECT = 0, 1, 2


def _address(address):
    return address.encode() if address else None


class _Owned(_Closing):
    """A libbus1 pattern object, freed by its type's `_free`."""

    _free = None

    def close(self):
        if self._handle:
            type(self)._free(self._handle)
            self._handle = None


class Topic(_Owned):
    """Hosts the topic `name`: `publish(data)` sends one copy to every subscriber
    (zero-copy for them: they read it in this topic's pool). `when_full`: BLOCK,
    SKIP or DISCONNECT; `history`: messages kept for late subscribers."""

    _free = staticmethod(_native.lib.bus1_topic_free)

    def __init__(self, name, address=None, when_full=BLOCK, history=0):
        self._handle = ctypes.c_void_p()
        _check(_native.lib.bus1_topic_host(_address(address), name.encode(), when_full, history, ctypes.byref(self._handle)),
               "host %s" % name)

    def publish(self, data, timeout=None):
        """Publishes a copy of `data`; returns its sequence number."""
        view = memoryview(data).cast("B")
        sequence = ctypes.c_uint64()
        buffer = (ctypes.c_char * view.nbytes).from_buffer_copy(view) if view.nbytes else None
        _check(_native.lib.bus1_topic_publish(self._handle, buffer, view.nbytes, _nanoseconds(timeout), ctypes.byref(sequence)),
               "publish")
        return sequence.value

    def serve(self):
        """Takes subscriptions and contributions in; returns the subscriber count."""
        return _check(_native.lib.bus1_topic_serve(self._handle), "serve")

    def wait_for_subscribers(self, count, timeout=None):
        _check(_native.lib.bus1_topic_wait_for_subscribers(self._handle, count, _nanoseconds(timeout)), "wait_for_subscribers")

    def flush(self, timeout=None):
        """Waits until every subscriber released everything published so far."""
        _check(_native.lib.bus1_topic_flush(self._handle, _nanoseconds(timeout)), "flush")


class Subscription(_Owned):
    """A subscription to the topic `name`: `receive()` returns a Message whose
    payload is read in place in the host's pool, with `sequence` and `missed_before`."""

    _free = staticmethod(_native.lib.bus1_subscription_free)

    def __init__(self, name, address=None, timeout=5):
        self._handle = ctypes.c_void_p()
        _check(_native.lib.bus1_subscribe(_address(address), name.encode(), _nanoseconds(timeout), ctypes.byref(self._handle)),
               "subscribe %s" % name)

    def receive(self, timeout=None):
        raw, sequence, missed = ctypes.c_void_p(), ctypes.c_uint64(), ctypes.c_uint64()
        _check(_native.lib.bus1_subscription_receive(self._handle, _nanoseconds(timeout), ctypes.byref(raw),
                                                     ctypes.byref(sequence), ctypes.byref(missed)), "receive")
        message = Message(raw)
        message.sequence, message.missed_before = sequence.value, missed.value
        return message

    @property
    def missed(self):
        """Messages missed in all."""
        return _native.lib.bus1_subscription_missed(self._handle)


class Service(_Owned):
    """Serves `name`: `next()` returns each call as a Message (its payload the
    request, `sender` the caller); answer with `reply(request, data)` or `fail`."""

    _free = staticmethod(_native.lib.bus1_service_free)

    def __init__(self, name, address=None):
        self._handle = ctypes.c_void_p()
        _check(_native.lib.bus1_service_create(_address(address), name.encode(), ctypes.byref(self._handle)),
               "serve %s" % name)

    def next(self, timeout=None):
        raw = ctypes.c_void_p()
        _check(_native.lib.bus1_service_next(self._handle, _nanoseconds(timeout), ctypes.byref(raw)), "next")
        return Message(raw)

    def reply(self, request, data):
        view = memoryview(data).cast("B")
        buffer = (ctypes.c_char * view.nbytes).from_buffer_copy(view) if view.nbytes else None
        _check(_native.lib.bus1_service_reply(self._handle, request._raw, buffer, view.nbytes), "reply")

    def fail(self, request, reason):
        _check(_native.lib.bus1_service_fail(self._handle, request._raw, reason.encode()), "fail")


class Client(_Owned):
    """A client of the service `name`: `call(data)` returns the reply's bytes (the
    GIL is released while it waits)."""

    _free = staticmethod(_native.lib.bus1_client_free)

    def __init__(self, name, address=None, timeout=5):
        self._handle = ctypes.c_void_p()
        _check(_native.lib.bus1_client_create(_address(address), name.encode(), _nanoseconds(timeout),
                                              ctypes.byref(self._handle)), "client of %s" % name)

    def call(self, data, timeout=None):
        view = memoryview(data).cast("B")
        buffer = (ctypes.c_char * view.nbytes).from_buffer_copy(view) if view.nbytes else None
        reply, size = ctypes.c_void_p(), ctypes.c_size_t()
        _check(_native.lib.bus1_client_call(self._handle, buffer, view.nbytes, _nanoseconds(timeout), ctypes.byref(reply),
                                            ctypes.byref(size)), "call")
        try:
            return ctypes.string_at(reply, size.value)
        finally:
            _native.libc.free(reply)
