"""_segment.py - one open handle on a segment (shmc_cache *), with the Redis tier if attached.

Segment is the thin, synchronous layer over the C calls, and the package's only user of the
handle: bytes keys in, library codes and bytes out. It decides nothing about misses, logging or
defaults; _core does. Its interface: receive() and store() for values (the value left in this
thread's receive buffer, see _ffi.slot), fetch()/fetch_complete()/fetch_abandon() for single
flight, contains(), delete(), purge(), and the figures; the envelope helpers at the end. Every
method may be called from any thread at once: the C handle is immutable after open
(shmc_l2_attach is done before the Segment is shared).

Value calls go through _ffi.hot (no argtypes: every argument a ready ctypes object); the rest
through _ffi.lib, declared and checked.

Closing safely. shmc_close frees the handle, so it must not run while another thread is inside a
call with it (a web worker thread still serving while the app shuts down, an executor thread
still waiting on Redis). Two counters, `entered` and `left` (itertools.count: next() on one is
a single C call, atomic under the GIL), carry the protocol:
  * a call does next(entered), THEN reads the handle; if it is None the segment is closed: it
    does next(left) and refuses. Otherwise it does next(left) when it returns;
  * close() sets the handles to None, THEN waits until left and entered are equal, reading
    left first, then entered, and then frees the handle.
Either a call's next(entered) comes before close()'s read of entered, and then close() sees
entered ahead of left until that call has left, or it comes after, and then so does its read of
the handle, which is None by then. Reading left first makes one equal pair of readings prove
that, at the instant entered was read, every call that had entered had also left (left never
passes entered). A call therefore costs two next() (about 30 ns together), no lock. close()
polls (every call in flight is bounded: an L1 call by the lock timeout, a Redis call by
redis_command_timeout), which is fine for a call made once per process life.
"""
import ctypes
import itertools
import threading
import time

from . import _ffi
from ._ffi import (E_BAD_ENVELOPE, E_BUFFER_TOO_SMALL, ENVELOPE_HEADER, ENVELOPE_MAGIC, OK,
                   TIER_L1, TIER_L2, U32_ZERO, CacheP, hot, lib, raise_for, size_t_of, u32_of,
                   u64_of)
from .errors import ShmcacheError

_byref = ctypes.byref
_shmc_get = hot.shmc_get
_shmc_set = hot.shmc_set
_shmc_read_into = hot.shmc_read_into
_UNCHANGED_L1 = (OK, TIER_L1, None)  # receive()'s answer for bytes equal to the expected ones
# receive() indexes the slot's L1 shmc_read structure and its byref() with literals (cheaper than
# a global lookup on every get); they must stay where _ffi puts them.
assert (_ffi.SLOT_READ_L1, _ffi.SLOT_READ_L1_REF) == (8, 9)
_SIZES, _N_SIZES = _ffi._SIZES, _ffi.SIZES_CACHED
_thread = _ffi.thread_state()  # a threading.local: each thread sees its own buffers through it
_READ_RETRIES = 8  # the value may be replaced by a larger one between two calls


class SegmentClosedError(ShmcacheError):
    """The segment handle was closed (the manager was stopped) while this call was made."""

    def __init__(self, name):
        super().__init__(_ffi.E_INVAL, f"segment '{name}' is closed (manager stopped)")


class Segment:
    """An open shmc_cache handle. Use as a context manager or call close().

    Attributes of the closing protocol (module docstring), used by the hot path too: the
    counters `entered` and `left`, and `hv`, the handle as _ffi.hot calls take it, None once
    closed. `_h` is the same handle typed (CacheP) for _ffi.lib calls.
    """

    def __init__(self, name, options):
        handle = CacheP()
        lib.shmc_open(name.encode(), _byref(options), _byref(handle))  # raises on failure
        self.name = name
        self._h = handle
        # The handle as _ffi.hot functions take it: byref() of a ctypes object placed at the
        # handle's address (nothing ever reads or writes it) passes exactly the handle's value,
        # and, being a byref, without a conversion object made per call as a c_void_p needs.
        self._anchor = ctypes.c_char.from_address(ctypes.cast(handle, ctypes.c_void_p).value)
        self.hv = ctypes.byref(self._anchor)
        self._l2 = False
        info = _ffi.Info()
        lib.shmc_get_info(handle, _byref(info))
        self.max_value_len = info.max_value_len  # fixed for the segment's life
        self.entered = itertools.count()
        self.left = itertools.count()
        self._stranded = 0  # calls in flight in other threads when this process was forked
        self._close_lock = threading.Lock()

    # ---- lifetime --------------------------------------------------------------------------------
    @property
    def closed(self):
        return self._h is None

    @property
    def has_l2(self):
        return self._l2

    def attach_l2(self, options):
        """shmc_l2_attach. REQUIRES: no other thread uses this Segment yet."""
        lib.shmc_l2_attach(self._h, _byref(options))
        self._l2 = True

    def close(self, leases=None):
        """Refuse new calls, wait for the calls in flight, then shmc_close. Idempotent; a second
        close() returns once the first has freed the handle. leases: a callable returning the
        single-flight leases, (key, lease) pairs, this process still holds; called once no call
        is in flight (a call that was waiting in shmc_fetch may just have been granted one), and
        each is given back before the handle is freed."""
        with self._close_lock:
            handle = self._h
            self.hv = self._h = None  # before reading the counters: see the module docstring
            pause = 0.00005
            while self.in_flight() > self._stranded:
                time.sleep(pause)
                pause = min(pause * 2, 0.005)
            if handle is None:
                return
            for key, lease in (leases() if leases is not None else ()):
                lib.shmc_fetch_abandon(handle, key, len(key), lease)  # bounded by its deadline
            lib.shmc_close(handle)

    def in_flight(self):
        """How many calls are in flight (entered, not yet left); left is read first."""
        left = _count_value(self.left)
        return _count_value(self.entered) - left

    def after_fork_in_child(self):
        # Only the forking thread exists in the child: calls that other threads had in flight
        # will never return here (close() must not wait for them), and the lock may have been
        # held by one of them. The counters stay: the hot path holds them.
        self._close_lock = threading.Lock()
        self._stranded = self.in_flight()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _enter(self):
        """Register a call in flight and return the typed handle (see the module docstring)."""
        next(self.entered)
        h = self._h
        if h is None:
            next(self.left)
            raise SegmentClosedError(self.name)
        return h

    def _enter_hot(self):
        """_enter() for _ffi.hot calls: the handle as they take it (hv)."""
        next(self.entered)
        h = self.hv
        if h is None:
            next(self.left)
            raise SegmentClosedError(self.name)
        return h

    def _leave(self):
        next(self.left)

    # ---- values ----------------------------------------------------------------------------------
    # The value calls leave what they read in this thread's receive buffer (_ffi.slot) and return
    # (code, ..., data, view, size): data is the bytearray, view a memoryview of it, size how
    # many bytes the value has. Both stay valid until this thread's next call into the segment:
    # callers compare or decode in place and copy out only what they keep.
    def receive(self, key, tiers=TIER_L1, fill_ttl_ms=0, klen=None, expected=None):
        """Look key (bytes) up: (code, served_by, value). value is a private copy (a bytearray)
        of the stored bytes; None when code is not OK, or when the stored bytes are byte for byte
        `expected` (the caller's copy: nothing is copied, the caller already has them).

        tiers == L1 is an L1 read; anything else reads L1, then Redis on a miss, copying a Redis
        hit into L1 for fill_ttl_ms, and served_by says which tier answered. tiers may carry
        SHMC_TGET_AFTER_L1_MISS (the caller has just missed L1 itself: it is not asked again).
        One shmc_read_into, into this thread's buffer, whose shmc_read structure (in the thread's
        slot) carries the buffer, the mask and the results. klen: len(key) as size_t_of() makes
        it, if the caller keeps it. Raises SegmentClosedError once closed.

        Why a copy, made here: between the foreign call and the copy (or the comparison with
        expected) nothing allocates a tracked object, so no garbage collection, and no __del__
        that uses the cache on this thread, can overwrite the buffer before its bytes are taken.
        (Signal handlers that use the cache are not supported: Python may run them between any
        two bytecodes.) Written for speed: this is every get."""
        if klen is None:
            n = len(key)
            klen = _SIZES[n] if n < _N_SIZES else size_t_of(n)
        slot = _thread.recv
        next(self.entered)
        try:
            h = self.hv  # read after next(entered): the closing protocol
            if h is None:
                raise SegmentClosedError(self.name)
            if tiers == 1:  # TIER_L1
                rc = _shmc_read_into(h, key, klen, slot[9])
                if rc == 0:
                    size = slot[8].value_len
                    data = slot[1]
                    if expected is not None and size == len(expected) and \
                            data.startswith(expected):
                        return _UNCHANGED_L1
                    return 0, 1, data[:size]
                if rc != E_BUFFER_TOO_SMALL:
                    return rc, 1, None
                slot = _ffi.slot("recv", slot[8].value_len)  # grow first, then ask again
            retries = _READ_RETRIES
            while True:
                r = slot[_ffi.SLOT_READ_ANY]
                if r.tiers != tiers:
                    r.tiers = tiers
                if r.fill_ttl_ms != fill_ttl_ms:
                    r.fill_ttl_ms = fill_ttl_ms
                rc = _shmc_read_into(h, key, klen, slot[_ffi.SLOT_READ_ANY_REF])
                if rc == 0:
                    size = r.value_len
                    data = slot[1]
                    if expected is not None and size == len(expected) and \
                            data.startswith(expected):
                        return 0, r.served_by, None
                    return 0, r.served_by, data[:size]
                retries -= 1
                if rc != E_BUFFER_TOO_SMALL or not retries:
                    return rc, r.served_by, None
                # The value is larger than this thread's buffer: grow it and ask again (the
                # value may be replaced by a larger one in between, hence the loop).
                slot = _ffi.slot("recv", r.value_len)
        finally:
            next(self.left)

    def store(self, key, envelope, n, l1_ttl_ms, l2_ttl_ms, tiers=TIER_L1):
        """Store the n bytes of envelope (bytes, or a byref from encode_into()) under
        key in the tiers; the library's code. REQUIRES: n <= max_value_len when tiers has L1
        (the core checks: shmc_tset writes L2 before L1, and an L1 refusal after a Redis write
        would leave the caller told "failed" about a value that was stored)."""
        n_key = len(key)
        klen = _SIZES[n_key] if n_key < _N_SIZES else size_t_of(n_key)
        vlen = _SIZES[n] if n < _N_SIZES else size_t_of(n)
        next(self.entered)
        try:
            h = self.hv
            if h is None:
                raise SegmentClosedError(self.name)
            if tiers == TIER_L1:
                return _shmc_set(h, key, klen, envelope, vlen, U32_ZERO, u64_of(l1_ttl_ms))
            return hot.shmc_tset(h, key, klen, envelope, vlen, U32_ZERO, u64_of(l1_ttl_ms),
                                 u64_of(l2_ttl_ms), u32_of(tiers))
        finally:
            next(self.left)

    # ---- single flight (see _flight) ---------------------------------------------------------
    def fetch(self, key, opts_ref, result, result_ref):
        """shmc_fetch with the options behind opts_ref (a byref of FetchOptions), the outcome in
        result (this thread's FetchResult, result_ref its byref): (code, value), value a private
        copy of the stored bytes as receive() makes it, or None for outcomes that carry none."""
        n = len(key)
        klen = _SIZES[n] if n < _N_SIZES else size_t_of(n)
        ref, data, view, cap, *_ = _thread.recv
        next(self.entered)
        try:
            h = self.hv  # read after next(entered): the closing protocol
            if h is None:
                raise SegmentClosedError(self.name)
            for _ in range(_READ_RETRIES):
                rc = hot.shmc_fetch(h, key, klen, ref, cap, opts_ref, result_ref)
                if rc != E_BUFFER_TOO_SMALL:
                    break
                ref, data, view, cap, *_ = _ffi.slot("recv", result.value_len)
            if rc != OK or result.outcome > _ffi.FETCH_EARLY_REFRESH:
                return rc, None
            return OK, data[:result.value_len]
        finally:
            next(self.left)

    def fetch_complete(self, key, buf, n, compute_ms, opts_ref, lease):
        """shmc_fetch_complete of the n bytes of buf (an envelope); the library's code. Releases
        the lease (if any) whatever the outcome. REQUIRES: n <= max_value_len."""
        h = self._enter()
        try:
            return lib.shmc_fetch_complete(h, key, len(key), buf, n, 0, compute_ms, opts_ref,
                                           lease)
        finally:
            self._leave()

    def fetch_abandon(self, key, lease):
        """shmc_fetch_abandon: give the lease back without a value (a waiter takes it over)."""
        h = self._enter()
        try:
            return lib.shmc_fetch_abandon(h, key, len(key), lease)
        finally:
            self._leave()

    def contains(self, key, tiers=TIER_L1):
        """OK if key is live in one of the tiers (the value is not copied out of L1)."""
        klen = size_t_of(len(key))
        st = _ffi.thread_state()
        h = self._enter_hot()
        try:
            rc = _shmc_get(h, key, klen, None, size_t_of(0), st.size_ref, None, None) \
                if tiers & TIER_L1 else _ffi.E_NOTFOUND
            if rc == E_BUFFER_TOO_SMALL:
                return OK
            if rc == OK or not tiers & TIER_L2:
                return rc
            ref, _, _, cap, out, out_ref, *_ = st.recv
            for _ in range(_READ_RETRIES):
                rc = hot.shmc_tget(h, key, klen, ref, cap, out_ref, None, None,
                                   u32_of(TIER_L2), u64_of(0), None)
                if rc != E_BUFFER_TOO_SMALL:
                    return rc
                ref, _, _, cap, out, out_ref, *_ = _ffi.slot("recv", out.value)
            return rc
        finally:
            next(self.left)

    def delete(self, key, tiers=TIER_L1):
        h = self._enter()
        try:
            if tiers == TIER_L1:
                return lib.shmc_del(h, key, len(key))
            return lib.shmc_tdel(h, key, len(key), tiers)
        finally:
            self._leave()

    def purge(self, pattern, tiers=TIER_L1):
        """Remove keys matching the glob pattern: (code, removed_l1, removed_l2)."""
        h = self._enter()
        try:
            st = _ffi.thread_state()
            st.u64a.value = st.u64b.value = 0
            if tiers == TIER_L1:
                rc = lib.shmc_purge(h, pattern, len(pattern), _byref(st.u64a))
            else:
                rc = lib.shmc_tpurge(h, pattern, len(pattern), tiers, _byref(st.u64a),
                                     _byref(st.u64b))
            return rc, st.u64a.value, st.u64b.value
        finally:
            self._leave()

    # ---- figures ---------------------------------------------------------------------------------
    def stats(self):
        h = self._enter()
        try:
            out = _ffi.Stats()
            lib.shmc_get_stats(h, _byref(out))
            return out
        finally:
            self._leave()

    def info(self):
        h = self._enter()
        try:
            out = _ffi.Info()
            lib.shmc_get_info(h, _byref(out))
            return out
        finally:
            self._leave()

    def flight_stats(self):
        """shmc_flight_get_stats: the host's single-flight figures (None with an older library)."""
        if not _ffi.HAS_FLIGHT:
            return None
        h = self._enter()
        try:
            out = _ffi.FlightStats()
            lib.shmc_flight_get_stats(h, _byref(out))
            return out
        finally:
            self._leave()

    def l2_ping(self):
        """shmc_l2_ping: one PING to Redis; the library's code (counts no lookup)."""
        h = self._enter()
        try:
            return lib.shmc_l2_ping(h)
        finally:
            self._leave()

    def l2_stats(self):
        """shmc_l2_get_stats, or zeros (configured 0) without a Redis tier."""
        out = _ffi.L2Stats()
        if not self._l2:
            return out
        h = self._enter()
        try:
            lib.shmc_l2_get_stats(h, _byref(out))
            return out
        finally:
            self._leave()

    def check(self):
        """shmc_check: (code, CheckReport)."""
        h = self._enter()
        try:
            out = _ffi.CheckReport()
            return lib.shmc_check(h, _byref(out)), out
        finally:
            self._leave()


def _count_value(counter):
    """The next value an itertools.count will give, from its repr "count(N)"."""
    return int(repr(counter)[6:-1])


def unwrap(raw):
    """(code, serializer, payload bytes) of stored bytes: OK, or SHMC_E_BAD_ENVELOPE with
    None, None for bytes that are not an envelope.

    Fast path for the common envelope: magic, then a header byte with neither the zstd bit nor
    a reserved bit set (the format of shmcache.h): the payload follows as is. Anything else
    (compressed, damaged, not an envelope) goes to shmc_decode, which decompresses and
    validates."""
    if len(raw) >= ENVELOPE_HEADER and raw[0] == ENVELOPE_MAGIC and not raw[1] & 0xF0:
        return OK, raw[1], raw[ENVELOPE_HEADER:]
    return decode_from(raw, len(raw))


def unlink(name, force=False):
    """Remove the segment called name (shmc_unlink); returns the library's code."""
    return lib.shmc_unlink(name.encode(), 1 if force else 0)


def validate_pattern(pattern):
    """Raise BadPatternError if pattern (bytes) is not a valid glob."""
    lib.shmc_glob_match(pattern, len(pattern), b"", 0)


def raise_code(rc):
    """Raise the exception for rc; only valid right after the call that returned it."""
    raise_for(rc)


# ---- the value envelope --------------------------------------------------------------------------
# The library's value envelope (shmc_encode / shmc_decode) from Python.
#
# Every value this package stores is wrapped by the C library itself: a 2-byte header (magic
# 0xC5, serializer id, a "zstd" bit) and the payload, compressed with zstd when it is at least the
# threshold long and compression makes it smaller. Because the C code does it, shmcache-cli and any
# other reader decode exactly what Python wrote, and the reverse.
#
# The one thing done here is the uncompressed envelope, which the header defines as the two header
# bytes followed by the payload as is: when no compression can apply (threshold 0, or a payload
# shorter than the threshold) encode_into() concatenates them itself, which costs a tenth of the
# foreign call (tests/test_hotpath.py checks the bytes are shmc_encode's). Compression, and
# every check on the way back in, stay in the library.
#
# encode_into()/decode_from() work in this thread's reusable buffers (_ffi.slot) and are what
# the hot path uses; encode()/decode() return fresh bytes for everyone else (tests, tools).
_shmc_encode = hot.shmc_encode
_shmc_decode = hot.shmc_decode
# Header of an uncompressed envelope, by serializer id (0-15; the zstd bit clear).
HEADERS = tuple(bytes((ENVELOPE_MAGIC, ser)) for ser in range(16))


def encode_into(serializer, payload, threshold):
    """Wrap payload: (envelope, length), the envelope being bytes, or byref() of this thread's
    "work" buffer, valid until this thread's next encode or decode (either can be passed to an
    _ffi.hot function). threshold 0: no compression."""
    return _wrap(serializer, payload, threshold)[:2]


def _wrap(serializer, payload, threshold):
    """encode_into() and, for an envelope left in a buffer, a memoryview of that buffer."""
    n = len(payload)
    if (not threshold or n < threshold) and 0 <= serializer < 16:
        return HEADERS[serializer] + payload, n + 2, None
    ref, _, view, cap, out, out_ref, *_ = _ffi.slot("work", n + 2)
    while True:
        rc = _shmc_encode(u32_of(serializer), payload, size_t_of(n),
                          size_t_of(threshold), 0, ref, cap, out_ref)
        if rc == OK:
            return ref, out.value, view
        if rc != E_BUFFER_TOO_SMALL:
            raise_for(rc)
        # Compression may need a little more than the payload (zstd's bound); out says how much.
        ref, _, view, cap, out, out_ref, *_ = _ffi.slot("work", out.value)


def decode_from(src, length):
    """Unwrap length bytes at src (bytes or a byref): (OK, serializer, payload bytes), or
    (SHMC_E_BAD_ENVELOPE, None, None) for bytes that are not a valid envelope."""
    st = _ffi.thread_state()
    ref, _, view, cap, out, out_ref, *_ = _ffi.slot("work")
    while True:
        rc = _shmc_decode(src, size_t_of(length), st.u32_ref, ref, cap, out_ref)
        if rc == OK:
            return OK, st.u32.value, view[:out.value].tobytes()
        if rc == E_BUFFER_TOO_SMALL:
            ref, _, view, cap, out, out_ref, *_ = _ffi.slot("work", out.value)
            continue
        if rc == E_BAD_ENVELOPE:
            return rc, None, None
        raise_for(rc)


def encode(serializer, payload, threshold=0):
    """The envelope of payload as bytes."""
    env, n, view = _wrap(serializer, payload, threshold)
    return env if view is None else view[:n].tobytes()


def decode(data):
    """(serializer, payload) of an envelope; BadEnvelopeError if data is not one."""
    rc, serializer, payload = decode_from(data, len(data))
    if rc != OK:
        raise_for(rc)
    return serializer, payload
