"""_ffi.py - every foreign function of libshmcache, declared in one table.

This is the package's only contact with ctypes. It mirrors lib/include/shmcache/shmcache.h: the
constants, the five option/statistics structures (field for field, reserved arrays included, so
that sizes and offsets match the C ABI exactly; tests/test_ffi_layout.py compiles the header and
compares), and one row per function: name, restype, argtypes, errcheck.

Two kinds of functions:
  * calls whose nonzero return is always a failure (open, attach, stats, info, unlink, purge, ...)
    have errcheck=_check: a failure raises the matching shmcache.errors class, with the text of
    shmc_errmsg() read at once, in the thread that made the call (the message is per thread);
  * calls whose codes are ordinary outcomes (get: SHMC_E_NOTFOUND is a miss; encode/decode:
    SHMC_E_BUFFER_TOO_SMALL means "grow and retry") return the int and the caller decides.
Raising for a miss would cost more than the lookup itself.

Data arguments (keys, values, buffers) are c_void_p: ctypes passes a bytes object's own storage
or a ctypes buffer without copying, and the length always travels beside it, so NUL bytes are
fine. The Redis tier's functions (shmc_l2_*, shmc_t*) are declared only if the loaded library has
them (HAS_L2); a library built before them still serves L1.

The hot path. A call through argtypes converts every argument with its type's from_param, about
a third of a get's whole cost from Python. So the value calls (shmc_get, shmc_set, shmc_tget,
shmc_tset, shmc_encode, shmc_decode) are also reachable as `hot.<name>`: the same functions,
through a second CDLL object on the same library handle, with restype set and no argtypes.
Callers of `hot` must pass only ready argument objects, bytes or None, never a Python int (ctypes
would pass it as a C int). The cheapest ready objects are the ones ctypes passes as they are,
without first converting them into a new argument object (which it does, every call, for a
ctypes instance such as c_size_t(n) or a buffer):
  * values by value: c_size_t.from_param(n), c_uint32.from_param(n), ... (the argument object
    argtypes would build, built once): size_t_of(), u32_of(), u64_of() below;
  * pointers: byref() of a ctypes object: out-parameters, buffers (slot() below), and the handle
    (Segment.hv).
`lib` keeps the declared, checked form of every function for everything else.
"""
import ctypes
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_int, c_int64,
                    c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)

from ._libpath import load_library
from .errors import make_error

# ---- constants (pinned in shmcache.h) ------------------------------------------------------------
MAX_KEY_LEN = 4096
MAX_VALUE_LEN = 64 * 1024 * 1024

OK = 0
E_NOTFOUND = -1
E_EXISTS = -2
E_INVAL = -3
E_KEY_TOO_LONG = -4
E_VALUE_TOO_LARGE = -5
E_BUFFER_TOO_SMALL = -6
E_LOCK_TIMEOUT = -7
E_NOSPC = -8
E_VERSION = -9
E_CORRUPT = -10
E_BAD_PATTERN = -11
E_PERM = -14
E_NO_SEGMENT = -16
E_BUSY = -17
E_BAD_ENVELOPE = -21
E_L2_UNAVAILABLE = -22
E_L2_NOT_CONFIGURED = -23
E_L2_REPLY = -24

OPEN_NO_CREATE = 0x1
OPEN_ALLOW_FOREIGN_OWNER = 0x2
OPEN_REPLACE_INCOMPATIBLE = 0x4

ENVELOPE_MAGIC = 0xC5
ENVELOPE_HEADER = 2
SER_RAW, SER_JSON, SER_PICKLE, SER_MSGPACK, SER_STR = 0, 1, 2, 3, 4

TIER_L1, TIER_L2, TIER_BOTH = 1, 2, 3
TGET_AFTER_L1_MISS = 0x100  # shmc_tget: the caller has just missed L1 itself; ask Redis only
FLAG_FROM_L2 = 0x80000000
L2_NO_SUBSCRIBE = 0x1
L2_NO_PUBLISH = 0x2


# ---- structures ----------------------------------------------------------------------------------
class CacheHandle(Structure):
    """The opaque shmc_cache; only ever used through CacheP."""


CacheP = POINTER(CacheHandle)


class Options(Structure):
    _fields_ = [
        ("size_bytes", c_uint64),
        ("max_entries", c_uint64),
        ("n_stripes", c_uint32),
        ("strategy", c_uint32),
        ("lock_timeout_ms", c_uint32),
        ("mode", c_uint32),
        ("flags", c_uint32),
        ("max_value_len", c_uint32),
        ("reserved", c_uint8 * 64),
    ]


class Stats(Structure):
    _fields_ = [
        ("hits", c_uint64),
        ("misses", c_uint64),
        ("sets", c_uint64),
        ("deletes", c_uint64),
        ("evictions", c_uint64),
        ("expirations", c_uint64),
        ("lock_recoveries", c_uint64),
        ("lock_timeouts", c_uint64),
        ("entries", c_uint64),
        ("bytes_used", c_uint64),
        ("bytes_capacity", c_uint64),
        ("bytes_data", c_uint64),
        ("reserved", c_uint64 * 8),
    ]


class Info(Structure):
    _fields_ = [
        ("name", c_char * 256),
        ("layout_version", c_uint32),
        ("n_stripes", c_uint32),
        ("size_bytes", c_uint64),
        ("max_entries", c_uint64),
        ("max_key_len", c_uint32),
        ("max_value_len", c_uint32),
        ("strategy", c_uint32),
        ("block_size", c_uint32),
        ("owner_uid", c_uint32),
        ("mode", c_uint32),
        ("attached", c_uint32),
        ("creator_pid", c_uint32),
        ("created_unix_ms", c_uint64),
        ("reserved", c_uint64 * 8),
    ]


class CheckReport(Structure):
    _fields_ = [
        ("stripes_checked", c_uint32),
        ("stripes_damaged", c_uint32),
        ("stripes_repaired", c_uint32),
        ("stripes_skipped", c_uint32),
        ("entries_checked", c_uint64),
        ("entries_dropped", c_uint64),
        ("reserved", c_uint64 * 4),
    ]


class L2Options(Structure):
    # The char * fields point into bytes objects the caller keeps alive for the duration of
    # shmc_l2_attach, which copies them.
    _fields_ = [
        ("url", c_char_p),
        ("key_prefix", c_char_p),
        ("key_separator", c_char_p),
        ("connect_timeout_ms", c_uint32),
        ("command_timeout_ms", c_uint32),
        ("max_connections", c_uint32),
        ("retry_on_timeout", c_uint32),
        ("breaker_threshold", c_uint32),
        ("breaker_cooldown_ms", c_uint32),
        ("flags", c_uint32),
        ("outage_write_ttl_ms", c_uint32),
        ("link_lease_ms", c_uint32),
        ("reserved32", c_uint32),
        ("tracking_prefix", c_char_p),
        ("reserved", c_uint8 * 48),
    ]


class L2Stats(Structure):
    _fields_ = [
        ("configured", c_uint32),
        ("connected", c_uint32),
        ("breaker_open", c_uint32),
        ("subscribed", c_uint32),
        ("subscriber_pid", c_uint32),
        ("invalidation_mode", c_uint32),
        ("hits", c_uint64),
        ("misses", c_uint64),
        ("sets", c_uint64),
        ("deletes", c_uint64),
        ("errors", c_uint64),
        ("timeouts", c_uint64),
        ("dropped_writes", c_uint64),
        ("breaker_opens", c_uint64),
        ("fills", c_uint64),
        ("invalidations_sent", c_uint64),
        ("invalidations_applied", c_uint64),
        ("resyncs", c_uint64),
        ("resync_dropped", c_uint64),
        ("reserved", c_uint64 * 8),
    ]


class FetchOptions(Structure):
    _fields_ = [
        ("tiers", c_uint32),
        ("flags", c_uint32),
        ("ttl_ms", c_uint64),
        ("stale_ttl_ms", c_uint64),
        ("l2_ttl_ms", c_uint64),
        ("fill_ttl_ms", c_uint64),
        ("lease_ms", c_uint32),
        ("wait_ms", c_uint32),
        ("xfetch_beta", c_double),
        ("reserved", c_uint8 * 64),
    ]


class Read(Structure):
    """shmc_read: shmc_read_into's buffer, tier mask and results in one structure (four foreign
    arguments instead of eleven: ctypes pays about 25 ns for each)."""
    _fields_ = [
        ("buf", c_void_p),
        ("cap", c_size_t),
        ("value_len", c_size_t),
        ("tiers", c_uint32),
        ("served_by", c_uint32),
        ("fill_ttl_ms", c_uint64),
        ("flags", c_uint32),
        ("reserved32", c_uint32),
        ("ttl_left_ms", c_int64),
        ("reserved", c_uint8 * 32),
    ]


class FetchResult(Structure):
    _fields_ = [
        ("outcome", c_uint32),
        ("flags", c_uint32),
        ("value_len", c_uint64),
        ("lease", c_uint64),
        ("ttl_left_ms", c_int64),
        ("served_by", c_uint32),
        ("waited_ms", c_uint32),
        ("reserved", c_uint64 * 4),
    ]


class FlightStats(Structure):
    _fields_ = [
        ("leases_granted", c_uint64),
        ("waits", c_uint64),
        ("stampedes_avoided", c_uint64),
        ("lease_timeouts", c_uint64),
        ("takeovers", c_uint64),
        ("stale_served", c_uint64),
        ("early_refreshes", c_uint64),
        ("unleased", c_uint64),
        ("abandoned", c_uint64),
        ("l2_locks", c_uint64),
        ("l2_lock_busy", c_uint64),
        ("l2_served", c_uint64),
        ("leases_held", c_uint64),
        ("leases_reclaimable", c_uint64),
        ("lease_slots", c_uint64),
        ("reserved", c_uint64 * 8),
    ]


# shmc_fetch_result.outcome (single flight; docs/stampede.md)
FETCH_HIT = 1
FETCH_STALE = 2
FETCH_STALE_REFRESH = 3
FETCH_EARLY_REFRESH = 4
FETCH_COMPUTE = 5
FETCH_COMPUTE_UNLEASED = 6
FETCH_BUSY = 7  # only with FETCH_NO_WAIT: settle it again without the flag, off the event loop
FETCH_L2_LOCK = 0x1
FETCH_NO_WAIT = 0x2

SCAN_FN = CFUNCTYPE(c_int, c_void_p, c_size_t, c_size_t, c_int64, c_void_p)


# ---- errors --------------------------------------------------------------------------------------
def error_message(code):
    """The specific message of the last failure in this thread, else the generic one."""
    msg = lib.shmc_errmsg()
    if msg:
        return msg.decode("utf-8", "replace")
    return lib.shmc_strerror(code).decode("utf-8", "replace")


def raise_for(code):
    """Raise the exception for a nonzero return code. Call it in the thread that got the code."""
    raise make_error(code, error_message(code))


def _check(rc, func, args):
    if rc != 0:
        raise_for(rc)
    return rc


def _check_match(rc, func, args):
    # shmc_glob_match: 1 match, 0 no match, negative error.
    if rc < 0:
        raise_for(rc)
    return rc


# ---- the function table --------------------------------------------------------------------------
_size_p = POINTER(c_size_t)
_u32_p = POINTER(c_uint32)
_u64_p = POINTER(c_uint64)
_i64_p = POINTER(c_int64)

# name: (restype, argtypes, errcheck)
_CORE = {
    "shmc_version": (c_char_p, [], None),
    "shmc_strerror": (c_char_p, [c_int], None),
    "shmc_errmsg": (c_char_p, [], None),
    "shmc_options_default": (None, [POINTER(Options)], None),
    "shmc_open": (c_int, [c_char_p, POINTER(Options), POINTER(CacheP)], _check),
    "shmc_close": (None, [CacheP], None),
    "shmc_unlink": (c_int, [c_char_p, c_int], None),
    "shmc_read_into": (c_int, [CacheP, c_void_p, c_size_t, POINTER(Read)], None),
    "shmc_get": (c_int, [CacheP, c_void_p, c_size_t, c_void_p, c_size_t, _size_p, _u32_p,
                         _i64_p], None),
    "shmc_set": (c_int, [CacheP, c_void_p, c_size_t, c_void_p, c_size_t, c_uint32, c_uint64],
                 None),
    "shmc_add": (c_int, [CacheP, c_void_p, c_size_t, c_void_p, c_size_t, c_uint32, c_uint64],
                 None),
    "shmc_del": (c_int, [CacheP, c_void_p, c_size_t], None),
    "shmc_touch": (c_int, [CacheP, c_void_p, c_size_t, c_uint64], None),
    "shmc_incr": (c_int, [CacheP, c_void_p, c_size_t, c_int64, _i64_p], None),
    "shmc_purge": (c_int, [CacheP, c_void_p, c_size_t, _u64_p], None),
    "shmc_scan": (c_int, [CacheP, c_void_p, c_size_t, SCAN_FN, c_void_p], None),
    "shmc_clear": (c_int, [CacheP, _u64_p], None),
    "shmc_get_stats": (c_int, [CacheP, POINTER(Stats)], _check),
    "shmc_stripe_stats": (c_int, [CacheP, c_uint32, POINTER(Stats)], _check),
    "shmc_get_info": (c_int, [CacheP, POINTER(Info)], _check),
    "shmc_check": (c_int, [CacheP, POINTER(CheckReport)], None),
    "shmc_glob_match": (c_int, [c_void_p, c_size_t, c_void_p, c_size_t], _check_match),
    "shmc_encode_bound": (c_size_t, [c_size_t], None),
    "shmc_encode": (c_int, [c_uint32, c_void_p, c_size_t, c_size_t, c_int, c_void_p, c_size_t,
                            _size_p], None),
    "shmc_decode": (c_int, [c_void_p, c_size_t, _u32_p, c_void_p, c_size_t, _size_p], None),
}

_L2 = {
    "shmc_l2_options_default": (None, [POINTER(L2Options)], None),
    "shmc_l2_attach": (c_int, [CacheP, POINTER(L2Options)], _check),
    "shmc_tget": (c_int, [CacheP, c_void_p, c_size_t, c_void_p, c_size_t, _size_p, _u32_p, _i64_p,
                          c_uint32, c_uint64, _u32_p], None),
    "shmc_tset": (c_int, [CacheP, c_void_p, c_size_t, c_void_p, c_size_t, c_uint32, c_uint64,
                          c_uint64, c_uint32], None),
    "shmc_tdel": (c_int, [CacheP, c_void_p, c_size_t, c_uint32], None),
    "shmc_tpurge": (c_int, [CacheP, c_void_p, c_size_t, c_uint32, _u64_p, _u64_p], None),
    "shmc_l2_get_stats": (c_int, [CacheP, POINTER(L2Stats)], _check),
    "shmc_l2_ping": (c_int, [CacheP], None),
}

# Single flight (shmc_fetch*): the decorators' stampede options (see decorators) and the statistics.
_FLIGHT = {
    "shmc_fetch_options_default": (None, [POINTER(FetchOptions)], None),
    "shmc_fetch": (c_int, [CacheP, c_void_p, c_size_t, c_void_p, c_size_t,
                           POINTER(FetchOptions), POINTER(FetchResult)], None),
    "shmc_fetch_complete": (c_int, [CacheP, c_void_p, c_size_t, c_void_p, c_size_t, c_uint32,
                                    c_uint32, POINTER(FetchOptions), c_uint64], None),
    "shmc_fetch_abandon": (c_int, [CacheP, c_void_p, c_size_t, c_uint64], None),
    "shmc_flight_get_stats": (c_int, [CacheP, POINTER(FlightStats)], _check),
}


def _declare(library, table):
    for name, (restype, argtypes, errcheck) in table.items():
        fn = getattr(library, name)
        fn.restype = restype
        fn.argtypes = argtypes
        if errcheck is not None:
            fn.errcheck = errcheck


lib, LIB_PATH = load_library()
_declare(lib, _CORE)
HAS_L2 = all(hasattr(lib, name) for name in _L2)
if HAS_L2:
    _declare(lib, _L2)
HAS_FLIGHT = all(hasattr(lib, name) for name in _FLIGHT)
if HAS_FLIGHT:
    _declare(lib, _FLIGHT)

# The hot path's view of the same functions (see the module docstring): no argtypes.
hot = ctypes.CDLL(LIB_PATH, handle=lib._handle)
for _name in ("shmc_read_into", "shmc_get", "shmc_set", "shmc_encode", "shmc_decode") + \
        (("shmc_tget", "shmc_tset") if HAS_L2 else ()) + (("shmc_fetch",) if HAS_FLIGHT else ()):
    getattr(hot, _name).restype = c_int

# size_t arguments for the lengths most keys and small values have, made once: building one
# costs about 80 ns, indexing this tuple 20, and passing it 15 less than passing a c_size_t.
_SIZES = tuple(c_size_t.from_param(i) for i in range(1024))
SIZES_CACHED = len(_SIZES)
_size_t_arg = c_size_t.from_param


def size_t_of(n):
    """n as a size_t argument for a `hot` function (see the module docstring)."""
    return _SIZES[n] if n < SIZES_CACHED else _size_t_arg(n)


u32_of = c_uint32.from_param  # n as a uint32_t argument for a `hot` function
u64_of = c_uint64.from_param  # n as a uint64_t argument for a `hot` function
U32_ZERO = u32_of(0)


def library_version():
    """Version of the libshmcache actually loaded, "MAJOR.MINOR.PATCH"."""
    return lib.shmc_version().decode()


def default_options():
    opts = Options()
    lib.shmc_options_default(ctypes.byref(opts))
    return opts


def default_fetch_options():
    opts = FetchOptions()
    lib.shmc_fetch_options_default(ctypes.byref(opts))
    return opts


def default_l2_options():
    opts = L2Options()
    lib.shmc_l2_options_default(ctypes.byref(opts))
    return opts


# ---- per-thread buffers -------------------------------------------------------------------------
# Reusable per-thread ctypes buffers and out-parameters for the library's calls.
#
# A get copies the value into a caller's buffer; allocating a fresh ctypes buffer per call would
# cost more than the lookup. Each thread keeps one buffer per slot ("recv" for what shmc_get
# returns, "work" for what shmc_encode/shmc_decode produce) and grows it when the library answers
# SHMC_E_BUFFER_TOO_SMALL with the size it needs. Threads (the event loop's, each executor
# thread's, each web worker thread's) never share a buffer, so no lock is needed; coroutines on
# one loop thread cannot interleave inside a synchronous call either.
#
# A slot is one tuple (ref, data, view, capacity, out, out_ref, served, served_ref, then two
# shmc_read structures over the buffer with their byref()s), so the hot path gets all it needs
# with one thread-local lookup (each costs about what a dict lookup and an
# attribute access do together):
#   * data: a bytearray that owns the memory. Its own methods read the buffer without copying it
#     out: data.startswith(stored) compares a value with bytes kept earlier, data[i] reads a
#     header byte, each for a fraction of what slicing a memoryview and copying costs;
#   * ref: byref() of a ctypes array over the same memory: what an _ffi.hot function is passed.
#     A byref object goes through a foreign call as it is, where the array itself would first be
#     converted into a new argument object, every call;
#   * view: a memoryview of data, for zero-copy slices handed to decoders;
#   * capacity: the length as a size_t argument (_ffi.size_t_of), passed as it is;
#   * out, out_ref: the thread's size_t out-parameter and its byref(), for the length the library
#     writes back (the same objects in both slots and as thread_state().size / .size_ref);
#   * served, served_ref: the thread's uint32_t out-parameter for the tier that answered a
#     shmc_tget, and its byref() (thread_state().u32b / .u32b_ref).
#
# A buffer grown past RETAIN_MAX is used for that call only and dropped, so a single huge value
# does not pin megabytes in every thread of the pool for the life of the process.


INITIAL_SIZE = 64 * 1024
RETAIN_MAX = 1024 * 1024


def _slot(size, st):
    data = bytearray(size)
    array = (ctypes.c_char * size).from_buffer(data)
    ref = ctypes.byref(array)  # keeps the array alive
    # Two shmc_read structures over the same buffer: one for L1 reads (its mask never changes),
    # one whose mask and fill TTL the caller sets (see Segment.receive).
    l1, any_tier = Read(), Read()
    for r in (l1, any_tier):
        r.buf, r.cap, r.tiers = ctypes.addressof(array), size, TIER_L1
    return (ref, data, memoryview(data), ctypes.c_size_t.from_param(size), st.size, st.size_ref,
            st.u32b, st.u32b_ref, l1, ctypes.byref(l1), any_tier, ctypes.byref(any_tier))


# Where the shmc_read structures are in a slot.
SLOT_READ_L1, SLOT_READ_L1_REF, SLOT_READ_ANY, SLOT_READ_ANY_REF = 8, 9, 10, 11


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


def thread_state():
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
