"""libbus1 through ctypes: finding the library, and every function of bus1.h with
its argument and result types (ctypes releases the GIL during each call, so a
waiting receive never holds up other Python threads)."""
import ctypes
import os

FOREVER = -1

WAIT_DEFAULT, WAIT_BUSY, WAIT_SPIN, WAIT_PARK = 0, 1, 2, 3
MESSAGE_DATA, MESSAGE_NODE_DESTROYED, MESSAGE_NODE_RELEASED = 0, 1, 2


class Statistics(ctypes.Structure):
    """struct bus1_statistics."""

    _fields_ = [(name, ctypes.c_uint64) for name in (
        "messages_sent", "messages_received", "pool_bytes_in_use", "slices_in_use", "parks",
        "credit_waits", "loan_waits", "messages_abandoned", "violations_detected")]


def _candidates():
    """Where libbus1.so may be, in order: $BUS1_LIBRARY, the copy installed with
    this package, the Swift build folders of a source checkout this file lies in."""
    explicit = os.environ.get("BUS1_LIBRARY")
    if explicit:
        yield explicit
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "libbus1.so")
    root = os.path.abspath(os.path.join(here, "..", "..", ".."))
    for build in ("release", "debug"):
        yield os.path.join(root, ".build", build, "libbus1.so")


def _load():
    tried = []
    for path in _candidates():
        if os.path.exists(path):
            return ctypes.CDLL(path), path
        tried.append(path)
    raise ImportError("libbus1.so not found (tried: %s); build it with `swift build -c release --product bus1` "
                      "or set BUS1_LIBRARY" % ", ".join(tried))


lib, path = _load()

_peer = ctypes.c_void_p
_loan = ctypes.c_void_p
_message = ctypes.c_void_p
_u64 = ctypes.c_uint64
_i64 = ctypes.c_int64
_size = ctypes.c_size_t
_int = ctypes.c_int

_SIGNATURES = {
    "bus1_version": (ctypes.c_char_p, []),
    "bus1_strerror": (ctypes.c_char_p, [_int]),
    "bus1_connect": (_int, [ctypes.c_char_p, ctypes.POINTER(_peer)]),
    "bus1_disconnect": (_int, [_peer]),
    "bus1_peer_free": (None, [_peer]),
    "bus1_peer_id": (_u64, [_peer]),
    "bus1_node_create": (_int, [_peer, ctypes.POINTER(_u64)]),
    "bus1_name_publish": (_int, [_peer, _u64, ctypes.c_char_p]),
    "bus1_name_lookup": (_int, [_peer, ctypes.c_char_p, _i64, ctypes.POINTER(_u64)]),
    "bus1_handle_release": (_int, [_peer, _u64]),
    "bus1_node_destroy": (_int, [_peer, ctypes.POINTER(_u64), _size]),
    "bus1_loan_create": (_int, [_peer, _size, _u64, _i64, ctypes.POINTER(_loan)]),
    "bus1_loan_data": (ctypes.c_void_p, [_loan]),
    "bus1_loan_capacity": (_size, [_loan]),
    "bus1_loan_set_size": (_int, [_loan, _size]),
    "bus1_loan_free": (None, [_loan]),
    "bus1_send": (_int, [_peer, _loan, _u64, _i64]),
    "bus1_try_send": (_int, [_peer, _loan, _u64]),
    "bus1_send_multicast": (_int, [_peer, _loan, ctypes.POINTER(_u64), _size, _i64]),
    "bus1_send_attached": (_int, [_peer, _loan, _u64, ctypes.POINTER(_u64), _size, ctypes.POINTER(_int), _size, _i64]),
    "bus1_receive": (_int, [_peer, _int, _i64, ctypes.POINTER(_message)]),
    "bus1_message_data": (ctypes.c_void_p, [_message]),
    "bus1_message_size": (_size, [_message]),
    "bus1_message_kind": (_int, [_message]),
    "bus1_message_ticket": (_u64, [_message]),
    "bus1_message_node": (_u64, [_message]),
    "bus1_message_sender": (_u64, [_message]),
    "bus1_message_credentials": (_int, [_message, ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_int32)]),
    "bus1_message_handle_count": (_size, [_message]),
    "bus1_message_handle": (_u64, [_message, _size]),
    "bus1_message_take_fds": (_int, [_message, ctypes.POINTER(_int), _size]),
    "bus1_message_release": (None, [_message]),
    "bus1_readiness_fd": (_int, [_peer]),
    "bus1_readiness_arm": (_int, [_peer]),
    "bus1_peer_statistics": (_int, [_peer, ctypes.POINTER(Statistics)]),
    "bus1_topic_host": (_int, [ctypes.c_char_p, ctypes.c_char_p, _int, ctypes.c_uint32, ctypes.POINTER(ctypes.c_void_p)]),
    "bus1_topic_publish": (_int, [ctypes.c_void_p, ctypes.c_void_p, _size, _i64, ctypes.POINTER(_u64)]),
    "bus1_topic_serve": (_int, [ctypes.c_void_p]),
    "bus1_topic_wait_for_subscribers": (_int, [ctypes.c_void_p, _size, _i64]),
    "bus1_topic_flush": (_int, [ctypes.c_void_p, _i64]),
    "bus1_topic_free": (None, [ctypes.c_void_p]),
    "bus1_subscribe": (_int, [ctypes.c_char_p, ctypes.c_char_p, _i64, ctypes.POINTER(ctypes.c_void_p)]),
    "bus1_subscription_receive": (_int, [ctypes.c_void_p, _i64, ctypes.POINTER(_message), ctypes.POINTER(_u64),
                                         ctypes.POINTER(_u64)]),
    "bus1_subscription_missed": (_u64, [ctypes.c_void_p]),
    "bus1_subscription_free": (None, [ctypes.c_void_p]),
    "bus1_service_create": (_int, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]),
    "bus1_service_next": (_int, [ctypes.c_void_p, _i64, ctypes.POINTER(_message)]),
    "bus1_service_reply": (_int, [ctypes.c_void_p, _message, ctypes.c_void_p, _size]),
    "bus1_service_fail": (_int, [ctypes.c_void_p, _message, ctypes.c_char_p]),
    "bus1_service_free": (None, [ctypes.c_void_p]),
    "bus1_client_create": (_int, [ctypes.c_char_p, ctypes.c_char_p, _i64, ctypes.POINTER(ctypes.c_void_p)]),
    "bus1_client_call": (_int, [ctypes.c_void_p, ctypes.c_void_p, _size, _i64, ctypes.POINTER(ctypes.c_void_p),
                                ctypes.POINTER(_size)]),
    "bus1_client_free": (None, [ctypes.c_void_p]),
}

libc = ctypes.CDLL(None)
libc.free.argtypes = [ctypes.c_void_p]
libc.free.restype = None

for _name, (_result, _arguments) in _SIGNATURES.items():
    _function = getattr(lib, _name)
    _function.restype = _result
    _function.argtypes = _arguments
