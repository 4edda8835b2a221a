"""Bus1 from Python: capability-based, zero-copy IPC for Linux.

    import bus1
    peer = bus1.connect()                      # $BUS1_ADDRESS, or the user bus
    node = peer.create_node()
    peer.publish(node, "org.example.inbox")
    with peer.receive(timeout=5) as message:   # message.payload: read-only memoryview
        data = bytes(message.payload)          # in place in the sender's pool until released

    target = other.lookup("org.example.inbox", timeout=5)
    with other.loan(4096, reader=target) as buffer:   # writable memoryview into this peer's pool
        buffer[:5] = b"hello"
        other.send(target, buffer, size=5)             # sent as is: nothing copied
    other.send(target, b"bytes")                       # the copying convenience

A peer is used by one thread at a time, and so are its loans and messages
(releasing a message counts as using its peer). Waiting calls release the GIL.
Errors are `Bus1Error` subclasses carrying the errno value libbus1 returned.
"""
import ctypes
import errno as _errno

from . import _native
from ._native import MESSAGE_DATA, MESSAGE_NODE_DESTROYED, MESSAGE_NODE_RELEASED, WAIT_BUSY, WAIT_DEFAULT, WAIT_PARK, WAIT_SPIN

__all__ = ["connect", "Peer", "Message", "Bus1Error", "WouldBlock", "TimedOut", "NotConnected", "NameUnknown",
           "NameTaken", "UnknownHandle", "ChannelClosed", "NodeDestroyed", "PayloadTooLarge", "library_version",
           "WAIT_DEFAULT", "WAIT_BUSY", "WAIT_SPIN", "WAIT_PARK",
           "MESSAGE_DATA", "MESSAGE_NODE_DESTROYED", "MESSAGE_NODE_RELEASED"]

__version__ = "0.10.0"


class Bus1Error(OSError):
    """A libbus1 call failed: `errno` is the (positive) errno value, `strerror` its description."""


class WouldBlock(Bus1Error):
    """Nothing to receive, no room in a ring, or no room in the pool, and no wait was asked for (EAGAIN)."""


class TimedOut(Bus1Error):
    """A wait reached its timeout (ETIMEDOUT)."""


class NotConnected(Bus1Error):
    """The peer was disconnected (ENOTCONN)."""


class NameUnknown(Bus1Error):
    """Nothing is published under the name, or no bus at the address (ENOENT)."""


class NameTaken(Bus1Error):
    """The name is published by someone else (EEXIST)."""


class UnknownHandle(Bus1Error):
    """Not a handle of this peer (EBADF)."""


class ChannelClosed(Bus1Error):
    """The channel behind a handle closed: its peer left (EPIPE), or the bus did (ECONNRESET)."""


class NodeDestroyed(Bus1Error):
    """The node a handle names was destroyed (EIDRM)."""


class PayloadTooLarge(Bus1Error):
    """Larger than one pool slice can be (EMSGSIZE)."""


_CLASSES = {
    _errno.EAGAIN: WouldBlock, _errno.ETIMEDOUT: TimedOut, _errno.ENOTCONN: NotConnected, _errno.ENOENT: NameUnknown,
    _errno.EEXIST: NameTaken, _errno.EBADF: UnknownHandle, _errno.EPIPE: ChannelClosed, _errno.ECONNRESET: ChannelClosed,
    _errno.EIDRM: NodeDestroyed, _errno.EMSGSIZE: PayloadTooLarge,
}


def _check(result, what):
    """Raises the Bus1Error subclass for a negative result; returns the result otherwise."""
    if result < 0:
        code = -result
        raise _CLASSES.get(code, Bus1Error)(code, "%s: %s" % (what, _native.lib.bus1_strerror(result).decode()))
    return result


def _nanoseconds(timeout):
    """A timeout in seconds (None: forever) as libbus1's nanoseconds."""
    return _native.FOREVER if timeout is None else max(0, int(timeout * 1e9))


_ARRAY_TYPES = {}


def _view(address, size):
    """A memoryview of `size` bytes at `address` (ctypes array types are made once
    per size: making one costs more than the rest of a message)."""
    array = _ARRAY_TYPES.get(size)
    if array is None:
        array = _ARRAY_TYPES[size] = ctypes.c_char * size
    return memoryview(array.from_address(address)).cast("B")


def library_version():
    """The version of the libbus1 this package loaded."""
    return _native.lib.bus1_version().decode()


class _Closing:
    """An object that owns a libbus1 object: `close()` frees it, and so do the end
    of a `with` block and collection."""

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()

    def __del__(self):
        self.close()


def connect(address=None):
    """Connects to the bus at `address` (None: $BUS1_ADDRESS, then the user bus)."""
    handle = ctypes.c_void_p()
    _check(_native.lib.bus1_connect(address.encode() if address else None, ctypes.byref(handle)), "connect")
    return Peer(handle)


class Peer(_Closing):
    """A peer on the bus. Close it with `close()` or a `with` block."""

    def __init__(self, handle):
        self._handle = handle
        self._loans = {}  # id of each loan's memoryview -> the loan

    def close(self):
        """Disconnects and frees the peer (loans not sent are given back first)."""
        if self._handle:
            for loan in list(self._loans.values()):
                loan.free()
            _native.lib.bus1_peer_free(self._handle)
            self._handle = None

    @property
    def id(self):
        return _native.lib.bus1_peer_id(self._handle)

    # Nodes, names, handles

    def create_node(self):
        """Creates a node of this peer; returns its handle."""
        node = ctypes.c_uint64()
        _check(_native.lib.bus1_node_create(self._handle, ctypes.byref(node)), "create_node")
        return node.value

    def publish(self, node, name):
        """Publishes one of this peer's nodes under `name`."""
        _check(_native.lib.bus1_name_publish(self._handle, node, name.encode()), "publish %s" % name)

    def lookup(self, name, timeout=None):
        """This peer's handle to the node published under `name`, waiting up to
        `timeout` seconds (None: forever, 0: no wait) for it to be published."""
        handle = ctypes.c_uint64()
        _check(_native.lib.bus1_name_lookup(self._handle, name.encode(), _nanoseconds(timeout), ctypes.byref(handle)),
               "lookup %s" % name)
        return handle.value

    def release(self, handle):
        """Gives back one reference to a handle of another peer's node."""
        _check(_native.lib.bus1_handle_release(self._handle, handle), "release")

    def destroy(self, *nodes):
        """Destroys nodes of this peer (up to 32 at once); every holder is notified."""
        array = (ctypes.c_uint64 * len(nodes))(*nodes)
        _check(_native.lib.bus1_node_destroy(self._handle, array, len(nodes)), "destroy")

    # Sending

    def loan(self, size, reader=0, timeout=None):
        """A writable memoryview of `size` bytes of this peer's pool, readable by the
        owner of `reader`'s node (0: this peer's uid), as a context manager: send it
        with `send(handle, buffer)`; leaving the block unsent gives it back."""
        return _LoanContext(self, size, reader, timeout)

    def send(self, handle, data, size=None, timeout=None):
        """Sends `data` to the node `handle` names, waiting up to `timeout` seconds
        for room in the receiver's ring. A buffer from `loan()` is sent as is (its
        first `size` bytes; default: all of it), zero-copy; anything else (bytes,
        bytearray, memoryview) is copied into a loan first."""
        loan = self._loans.get(id(data)) if isinstance(data, memoryview) else None
        if loan is None:
            view = memoryview(data).cast("B")
            if size is not None:
                view = view[:size]
            loan = _Loan(self, view.nbytes, handle, timeout)
            loan.buffer[:view.nbytes] = view
            size = view.nbytes
        loan.send(handle, loan.size if size is None else size, timeout)

    def multicast(self, handles, data, timeout=None):
        """Sends one copy of `data` to every node in `handles`, atomically (the
        slice is readable by the owner of the first; all must share its uid)."""
        view = memoryview(data).cast("B")
        loan = _Loan(self, view.nbytes, handles[0], timeout)
        loan.buffer[:view.nbytes] = view
        array = (ctypes.c_uint64 * len(handles))(*handles)
        raw = loan.take()
        _check(_native.lib.bus1_send_multicast(self._handle, raw, array, len(handles), _nanoseconds(timeout)), "multicast")

    # Receiving

    def receive(self, timeout=None, mode=WAIT_DEFAULT):
        """The next message (a `Message`), waiting up to `timeout` seconds (None:
        forever, 0: only if one is ready) in `mode`. The GIL is released while it waits."""
        message = ctypes.c_void_p()
        _check(_native.lib.bus1_receive(self._handle, mode, _nanoseconds(timeout), ctypes.byref(message)), "receive")
        return Message(message)

    def readiness_fd(self):
        """A descriptor that turns readable when the peer may have something to do
        (for select, poll, selectors, asyncio's add_reader)."""
        return _check(_native.lib.bus1_readiness_fd(self._handle), "readiness_fd")

    def arm_readiness(self):
        """Arms the readiness descriptor: True if the peer is ready now (receive
        again instead of waiting)."""
        return _check(_native.lib.bus1_readiness_arm(self._handle), "arm_readiness") == 1

    def statistics(self):
        """The peer's counters, as a dict."""
        counters = _native.Statistics()
        _check(_native.lib.bus1_peer_statistics(self._handle, ctypes.byref(counters)), "statistics")
        return {name: getattr(counters, name) for name, _ in counters._fields_}


class _Loan:
    """A slice of a peer's pool, loaned: `buffer` is a writable memoryview of it."""

    def __init__(self, peer, size, reader, timeout):
        self.peer = peer
        self.size = size
        self._raw = ctypes.c_void_p()
        _check(_native.lib.bus1_loan_create(peer._handle, size, reader, _nanoseconds(timeout), ctypes.byref(self._raw)),
               "loan")
        address = _native.lib.bus1_loan_data(self._raw)
        self.buffer = _view(address, size)
        peer._loans[id(self.buffer)] = self

    def take(self):
        """The C loan, for a send that takes it. The buffer is released first: while
        something still holds it (BufferError), nothing is taken. Views sliced
        from the buffer are not seen by Python and must not be used after."""
        self.buffer.release()
        raw, self._raw = self._raw, None
        self.peer._loans.pop(id(self.buffer), None)
        return raw

    def send(self, handle, size, timeout):
        _check(_native.lib.bus1_loan_set_size(self._raw, size), "send: size")
        raw = self.take()
        _check(_native.lib.bus1_send(self.peer._handle, raw, handle, _nanoseconds(timeout)), "send")

    def free(self):
        if self._raw:
            _native.lib.bus1_loan_free(self.take())


class _LoanContext:
    def __init__(self, peer, size, reader, timeout):
        self._loan = _Loan(peer, size, reader, timeout)

    def __enter__(self):
        return self._loan.buffer

    def __exit__(self, *exception):
        self._loan.free()  # nothing if it was sent


class Message:
    """A received message: `payload` is a read-only memoryview of the bytes, in
    place in the sender's pool (numpy can wrap it: `numpy.frombuffer(payload)`).
    `release()` (or leaving a `with` block, or the message being collected)
    returns the slice to the sender; see `release()` for what must not outlive it."""

    def __init__(self, raw):
        self._raw = raw
        self.kind = _native.lib.bus1_message_kind(raw)
        size = _native.lib.bus1_message_size(raw)
        self.address = _native.lib.bus1_message_data(raw) or 0
        self.payload = _view(self.address, size).toreadonly() if size else memoryview(b"")

    # Read when asked for: a ctypes call each, which a receive loop need not pay.

    @property
    def ticket(self):
        """The bus-wide ticket of the message (its place in the global order)."""
        return _native.lib.bus1_message_ticket(self._raw)

    @property
    def node(self):
        """This peer's node it was sent to (for MESSAGE_NODE_DESTROYED: the handle to the destroyed node)."""
        return _native.lib.bus1_message_node(self._raw)

    @property
    def sender(self):
        """The sending peer's id."""
        return _native.lib.bus1_message_sender(self._raw)

    @property
    def handles(self):
        """The handles that came with it (each holds a reference: `peer.release` it)."""
        lib = _native.lib
        return [lib.bus1_message_handle(self._raw, i) for i in range(lib.bus1_message_handle_count(self._raw))]

    def _credentials(self):
        uid, pid = ctypes.c_uint32(), ctypes.c_int32()
        if _native.lib.bus1_message_credentials(self._raw, ctypes.byref(uid), ctypes.byref(pid)) == 0:
            return uid.value, pid.value
        return None, None

    @property
    def uid(self):
        """The sender's uid as the coordinator stamped it (None for notifications)."""
        return self._credentials()[0]

    @property
    def pid(self):
        """The sender's pid as the coordinator stamped it (None for notifications)."""
        return self._credentials()[1]

    def take_fds(self):
        """The file descriptors that came with it (yours to close)."""
        fds = (ctypes.c_int * 4)()
        count = _check(_native.lib.bus1_message_take_fds(self._raw, fds, 4), "take_fds")
        return list(fds[:count])

    def release(self):
        """Returns the slice to its sender; `payload` is released with it (using it
        raises ValueError). While something still holds the payload's buffer
        (BufferError) nothing is released. Views sliced from the payload are not
        seen by Python and must not be used after: they would read whatever the
        sender writes there next, or crash the process once the sender is gone
        and its memory unmapped. Copy what must outlive the message (`bytes(...)`)."""
        if self._raw:
            self.payload.release()
            _native.lib.bus1_message_release(self._raw)
            self._raw = None

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.release()

    def __del__(self):
        try:
            self.release()
        except BufferError:
            pass  # still held by a buffer consumer: the slice stays out rather than be reused under it
