"""_buffers.py - reusable per-thread ctypes buffers for values going in and out of the library.

A get copies the value into a caller's buffer; allocating a fresh ctypes buffer per call would
cost more than the lookup. Each thread keeps one buffer per slot ("recv" for what shmc_get
returns, "work" for what shmc_encode/shmc_decode produce) and grows it when the library answers
SHMC_E_BUFFER_TOO_SMALL with the size it needs. Threads (the event loop's, each executor
thread's, each web worker thread's) never share a buffer, so no lock is needed; coroutines on
one loop thread cannot interleave inside a synchronous call either.

A buffer grown past RETAIN_MAX is used for that call only and dropped, so a single huge value
does not pin megabytes in every thread of the pool for the life of the process.
"""
import ctypes
import threading

INITIAL_SIZE = 64 * 1024
RETAIN_MAX = 1024 * 1024


class _ThreadState(threading.local):
    def __init__(self):
        self.buffers = {}
        # Out-parameters reused by every call of this thread (byref() of an existing object is
        # cheaper than constructing one per call).
        self.size = ctypes.c_size_t()
        self.u32 = ctypes.c_uint32()
        self.u32b = ctypes.c_uint32()
        self.u64a = ctypes.c_uint64()
        self.u64b = ctypes.c_uint64()


_state = _ThreadState()


def state():
    """This thread's scratch state: .size, .u32, .u32b, .u64a, .u64b and the buffers."""
    return _state


def buffer(slot, at_least=0):
    """This thread's buffer for slot, at least at_least bytes (and INITIAL_SIZE) long."""
    return buffer_and_view(slot, at_least)[0]


def buffer_and_view(slot, at_least=0):
    """(buffer, memoryview of its bytes) for slot: reading a few bytes or a slice through the
    view costs a fraction of a ctypes call."""
    buffers = _state.buffers
    pair = buffers.get(slot)
    if pair is not None and len(pair[0]) >= at_least:
        return pair
    size = INITIAL_SIZE
    while size < at_least:
        size *= 2
    buf = ctypes.create_string_buffer(size)
    pair = (buf, memoryview(buf).cast("B"))
    if size <= RETAIN_MAX:
        buffers[slot] = pair
    return pair
