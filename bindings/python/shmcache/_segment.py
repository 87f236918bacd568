"""_segment.py - one open handle on a segment (shmc_cache *), with the Redis tier if attached.

Segment is the thin, synchronous layer over the C calls: bytes keys in, (code, serializer,
payload) out, envelopes applied on the way (see _envelope). It decides nothing about misses,
logging or defaults; _core does. Every method may be called from any thread at once: the C
handle is immutable after open (shmc_l2_attach is done before the Segment is shared).

Closing safely. shmc_close frees the handle, so it must not run while another thread is inside a
call with it (a web worker thread still serving while the app shuts down, an executor thread
still waiting on Redis). Every call registers itself in a small counter under a lock; close()
refuses new calls at once and frees the handle only when the last call in flight has returned.
That costs two uncontended lock operations per call, well under a microsecond.
"""
import ctypes
import threading

from . import _buffers, _ffi
from ._envelope import decode_from, encode_into
from ._ffi import (E_BUFFER_TOO_SMALL, ENVELOPE_HEADER, ENVELOPE_MAGIC, OK, TIER_L1, TIER_L2,
                   CacheP, lib, raise_for)
from .errors import ShmcacheError, ValueTooLargeError

_byref = ctypes.byref


class SegmentClosedError(ShmcacheError):
    """The segment handle was closed (the manager was stopped) while this call was made."""

    def __init__(self, name):
        super().__init__(_ffi.E_INVAL, f"segment '{name}' is closed (manager stopped)")


class Segment:
    """An open shmc_cache handle. Use as a context manager or call close()."""

    def __init__(self, name, options):
        handle = CacheP()
        lib.shmc_open(name.encode(), _byref(options), _byref(handle))  # raises on failure
        self.name = name
        self._h = handle
        self._l2 = False
        info = _ffi.Info()
        lib.shmc_get_info(handle, _byref(info))
        self.max_value_len = info.max_value_len  # fixed for the segment's life
        self._lock = threading.Lock()
        self._active = 0
        self._drained = threading.Condition(self._lock)

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

    def close(self):
        """Refuse new calls, wait for the calls in flight, then shmc_close. Idempotent."""
        with self._lock:
            handle, self._h = self._h, None
            while self._active:
                self._drained.wait()
        if handle is not None:
            lib.shmc_close(handle)

    def after_fork_in_child(self):
        # Only the forking thread exists in the child: calls that other threads had in flight
        # will never return here, and the lock may have been held by one of them.
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._active = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _enter(self):
        with self._lock:
            h = self._h
            if h is None:
                raise SegmentClosedError(self.name)
            self._active += 1
            return h

    def _leave(self):
        with self._lock:
            self._active -= 1
            if not self._active and self._h is None:
                self._drained.notify_all()

    # ---- values ----------------------------------------------------------------------------------
    def read(self, key, tiers=TIER_L1, fill_ttl_ms=0):
        """Look key up: (code, served_by, serializer, payload).

        code OK with the decoded envelope, SHMC_E_BAD_ENVELOPE if the stored bytes are not an
        envelope, or the library's code (NOTFOUND, LOCK_TIMEOUT, L2_UNAVAILABLE, KEY_TOO_LONG...)
        with None for the rest. tiers == L1 uses shmc_get, which any library has.
        """
        h = self._enter()
        try:
            st = _buffers.state()
            buf, view = _buffers.buffer_and_view("recv")
            for _ in range(8):  # the value may be replaced by a larger one between two calls
                if tiers == TIER_L1:
                    rc = lib.shmc_get(h, key, len(key), buf, len(buf), _byref(st.size), None,
                                      None)
                    served = TIER_L1
                else:
                    rc = lib.shmc_tget(h, key, len(key), buf, len(buf), _byref(st.size), None,
                                       None, tiers, fill_ttl_ms, _byref(st.u32b))
                    served = st.u32b.value
                if rc != E_BUFFER_TOO_SMALL:
                    break
                buf, view = _buffers.buffer_and_view("recv", st.size.value)
            if rc != OK:
                return rc, None, None, None
            n = st.size.value
            # Fast path for the common envelope: magic, then a header byte with neither the zstd
            # bit nor a reserved bit set (the format of shmcache.h), the payload follows as is.
            # Anything else (compressed, damaged, not an envelope) goes to shmc_decode, which
            # decompresses and validates.
            if n >= ENVELOPE_HEADER and view[0] == ENVELOPE_MAGIC and not view[1] & 0xF0:
                return OK, served, view[1], view[ENVELOPE_HEADER:n].tobytes()
            rc, serializer, payload = decode_from(buf, n)
            return rc, served, serializer, payload
        finally:
            self._leave()

    def write(self, key, serializer, payload, threshold, l1_ttl_ms, l2_ttl_ms, tiers=TIER_L1):
        """Store payload under key in an envelope; returns the library's code.

        Raises ValueTooLargeError, with nothing stored anywhere, if L1 is asked and the envelope
        is over the segment's max_value_len: shmc_tset writes L2 before L1, so without this
        check a value L1 refuses would still land in Redis while the caller is told it failed.
        """
        h = self._enter()
        try:
            buf, n = encode_into(serializer, payload, threshold)
            if tiers & TIER_L1 and n > self.max_value_len:
                raise ValueTooLargeError(
                    _ffi.E_VALUE_TOO_LARGE,
                    f"value of {n} bytes as stored (envelope, compressed where smaller) is over "
                    f"this segment's limit of {self.max_value_len} bytes (max_value_len); "
                    f"nothing stored (key {key[:80]!r})")
            if tiers == TIER_L1:
                return lib.shmc_set(h, key, len(key), buf, n, 0, l1_ttl_ms)
            return lib.shmc_tset(h, key, len(key), buf, n, 0, l1_ttl_ms, l2_ttl_ms, tiers)
        finally:
            self._leave()

    def contains(self, key, tiers=TIER_L1):
        """OK if key is live in one of the tiers (the value is not copied out of L1)."""
        h = self._enter()
        try:
            st = _buffers.state()
            rc = lib.shmc_get(h, key, len(key), None, 0, _byref(st.size), None, None) \
                if tiers & TIER_L1 else _ffi.E_NOTFOUND
            if rc == E_BUFFER_TOO_SMALL:
                return OK
            if rc == OK or not tiers & TIER_L2:
                return rc
            buf = _buffers.buffer("recv")
            for _ in range(8):
                rc = lib.shmc_tget(h, key, len(key), buf, len(buf), _byref(st.size), None, None,
                                   TIER_L2, 0, None)
                if rc != E_BUFFER_TOO_SMALL:
                    return rc
                buf = _buffers.buffer("recv", st.size.value)
            return rc
        finally:
            self._leave()

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
            st = _buffers.state()
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


def unlink(name, force=False):
    """Remove the segment called name (shmc_unlink); returns the library's code."""
    return lib.shmc_unlink(name.encode(), 1 if force else 0)


def validate_pattern(pattern):
    """Raise BadPatternError if pattern (bytes) is not a valid glob."""
    lib.shmc_glob_match(pattern, len(pattern), b"", 0)


def raise_code(rc):
    """Raise the exception for rc; only valid right after the call that returned it."""
    raise_for(rc)
