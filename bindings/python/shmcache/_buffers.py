"""_buffers.py - reusable per-thread ctypes buffers and out-parameters for the library's calls.

A get copies the value into a caller's buffer; allocating a fresh ctypes buffer per call would
cost more than the lookup. Each thread keeps one buffer per slot ("recv" for what shmc_get
returns, "work" for what shmc_encode/shmc_decode produce) and grows it when the library answers
SHMC_E_BUFFER_TOO_SMALL with the size it needs. Threads (the event loop's, each executor
thread's, each web worker thread's) never share a buffer, so no lock is needed; coroutines on
one loop thread cannot interleave inside a synchronous call either.

A slot is one tuple (ref, data, view, capacity, out, out_ref, served, served_ref), so the hot path
gets all it needs with one thread-local lookup (each costs about what a dict lookup and an
attribute access do together):
  * data: a bytearray that owns the memory. Its own methods read the buffer without copying it
    out: data.startswith(stored) compares a value with bytes kept earlier, data[i] reads a
    header byte, each for a fraction of what slicing a memoryview and copying costs;
  * ref: byref() of a ctypes array over the same memory: what an _ffi.hot function is passed.
    A byref object goes through a foreign call as it is, where the array itself would first be
    converted into a new argument object, every call;
  * view: a memoryview of data, for zero-copy slices handed to decoders;
  * capacity: the length as a size_t argument (_ffi.size_t_of), passed as it is;
  * out, out_ref: the thread's size_t out-parameter and its byref(), for the length the library
    writes back (the same objects in both slots and as state().size / .size_ref);
  * served, served_ref: the thread's uint32_t out-parameter for the tier that answered a
    shmc_tget, and its byref() (state().u32b / .u32b_ref).

A buffer grown past RETAIN_MAX is used for that call only and dropped, so a single huge value
does not pin megabytes in every thread of the pool for the life of the process.
"""
import ctypes
import threading

INITIAL_SIZE = 64 * 1024
RETAIN_MAX = 1024 * 1024


def _slot(size, st):
    data = bytearray(size)
    ref = ctypes.byref((ctypes.c_char * size).from_buffer(data))  # keeps the array alive
    return (ref, data, memoryview(data), ctypes.c_size_t.from_param(size), st.size, st.size_ref,
            st.u32b, st.u32b_ref)


class _ThreadState(threading.local):
    def __init__(self):
        # Out-parameters reused by every call of this thread, with their byref()s.
        self.size = ctypes.c_size_t()
        self.size_ref = ctypes.byref(self.size)
        self.u32 = ctypes.c_uint32()
        self.u32_ref = ctypes.byref(self.u32)
        self.u32b = ctypes.c_uint32()
        self.u32b_ref = ctypes.byref(self.u32b)
        self.u64a = ctypes.c_uint64()
        self.u64a_ref = ctypes.byref(self.u64a)
        self.u64b = ctypes.c_uint64()
        self.u64b_ref = ctypes.byref(self.u64b)
        self.recv = _slot(INITIAL_SIZE, self)
        self.work = None  # made on first use: the hot set path builds envelopes without it


_state = _ThreadState()


def state():
    """This thread's scratch state: the .recv and .work slots, and the out-parameters .size,
    .u32, .u32b, .u64a, .u64b with their byref()s (.size_ref, ...). The thread-local object
    itself, for hot paths that read several of its attributes."""
    return _state


def slot(name, at_least=0):
    """(ref, data, view, capacity, out, out_ref, served, served_ref) of this thread's slot name
    ("recv" or "work"), at least at_least bytes (and INITIAL_SIZE) long (module docstring)."""
    current = getattr(_state, name)
    if current is not None and len(current[1]) >= at_least:
        return current
    size = INITIAL_SIZE
    while size < at_least:
        size *= 2
    new = _slot(size, _state)
    if size <= RETAIN_MAX:
        setattr(_state, name, new)
    return new
