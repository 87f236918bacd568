"""_core.py - the cache's behaviour, synchronously: what both managers and the decorators run.

CacheCore turns a call into Segment calls and decides what each outcome means:
  * a miss is a miss, whatever caused it: absent, expired, a stripe lock held by a stopped
    process (SHMC_E_LOCK_TIMEOUT), Redis down or answering errors (SHMC_E_L2_*), a value that is
    not a valid envelope, or one this process refuses to decode (an unsigned pickle, a value that
    no longer fits the function's return type). Each cause is counted, and logged without
    flooding (LogDiscipline). A get never raises for them;
  * caller errors raise: a key over 4096 bytes, a value over the limits (ValueTooLargeError), a
    value the serializer cannot encode, a malformed pattern;
  * a set with both tiers while Redis is down has written L1 and dropped the L2 write: that is
    reported as stored (True), counted and logged, not raised;
  * a value too large for L1 with Redis in the tiers is stored in Redis alone (and any older L1
    copy dropped); without Redis it raises ValueTooLargeError;
  * a damaged value (not an envelope, or a payload that does not parse) is deleted from the
    tier that served it, so that the next set is not needed to clear it for every reader.

One path. `lookup()` is the only get and `store()`/`store_encoded()` the only set: the managers,
the decorators, single flight and warming all call them. What makes them cheap is kept inside:
a str key is encoded inline; the value is read into this thread's receive buffer
(Segment.receive) and an uncompressed envelope decoded straight from it; and the local
decoded-object reuse below. Counters are itertools.count objects (next() is one C call, atomic
under the GIL: exact without a lock).

Local decoded-object reuse (config.local_cache_size, on by default): `local` maps a key, as the
caller gave it (str or bytes, before the namespace), to (its stored key, the stored bytes, the
object decoded from them, the reviver that made it, the key's length as a foreign argument). A lookup whose stored bytes are byte for
byte those of the entry, read with the same reviver, returns the entry's object without
decoding: every hit still reads the shared segment and compares the bytes whole, so a value
changed by any process (or copied from Redis) is never missed, and the cost is a memcmp. A hit
therefore returns the SAME object as the previous hit (as functools.lru_cache and cachetools
do): callers must not mutate it; local_cache_size=0 gives a fresh copy each time. At most
local_cache_size keys of at most LOCAL_MAX_BYTES each; when full, the key decoded longest ago
goes first. Emptied on close and in a forked child.

Statistics (build_stats) and the health check (check_health) are here too: they read the same
segment and counters.

After fork() the child keeps using the same handle (the library supports it), but this object's
locks and counters are made fresh in the child (os.register_at_fork below).
"""
import asyncio
import collections
import itertools
import logging
import os
import threading
import time
import weakref

from . import _ffi
from ._ffi import (E_BAD_ENVELOPE, E_L2_REPLY, E_L2_UNAVAILABLE, E_LOCK_TIMEOUT, E_NOTFOUND,
                   ENVELOPE_MAGIC, MAX_VALUE_LEN, OK, TGET_AFTER_L1_MISS, TIER_BOTH, TIER_L1,
                   TIER_L2)
from ._segment import (HEADERS, Segment, SegmentClosedError, encode_into, raise_code, unwrap,
                       validate_pattern)
from .config import CacheStrategy, CacheTier, redact_url
from .errors import ShmcacheError, ValueTooLargeError, make_error
from .keys import KeySpace
from .serialization import Codec, UndecodableValue

log = logging.getLogger("shmcache")

MISS = object()  # lookup() result for "no value"; None is a value that can be cached
LOCAL_MAX_BYTES = 1024 * 1024  # larger values are decoded at each hit, not kept per process
L2_ERROR_WINDOW = 60.0  # seconds: get_stats()["l2_cache"]["errors"] counts errors this recent


def seconds_to_ms(seconds, what="ttl"):
    """A TTL in seconds (int or float, 0 = never expires) as whole milliseconds."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if not seconds >= 0:
        raise ValueError(f"{what} must be >= 0 seconds (0: never expires), got {seconds}")
    if seconds == 0:
        return 0
    return max(1, int(round(seconds * 1000)))  # a positive TTL never rounds to "never expires"


class CacheCore:
    """Synchronous cache operations on one segment (and its Redis tier). Thread-safe."""

    def __init__(self, config):
        self.config = config
        self.keys = KeySpace(config.key_prefix, config.key_separator)
        self._head = self.keys.head
        self.codec = Codec(config.serializer, config.pickle_secret)
        self.counters = Counters()
        self.logs = LogDiscipline(config.shm_name)
        self.threshold = config.compression_threshold if config.enable_compression else 0
        self.l1_ttl_ms = seconds_to_ms(config.memory_cache_ttl, "memory_cache_ttl")
        self._l2_ttl_ms = seconds_to_ms(config.redis_ttl, "redis_ttl")
        self.local = collections.OrderedDict() if config.local_cache_size else None
        self._local_max = config.local_cache_size
        counter = self.counters.counter
        self._hits = (None, counter("hits_l1"), counter("hits_l2"))  # by the tier that served
        self._hits_l1 = self._hits[1]
        self._misses = counter("misses")
        self._sets = counter("sets")
        # The tier mask of calls that name none (what the configuration asks, as the cache will
        # have it once open: open() fails rather than open without a Redis tier it was asked for).
        self.default_tiers = self._mask(config.cache_tier, config.l2_enabled)
        self._segment = None
        self._stopped = False
        self._open_lock = threading.Lock()
        self._l2_errors = collections.deque()  # (monotonic time, host error count) samples
        # Single-flight leases this process holds now, as (stored key, lease): given back by
        # close(), so that stopping a worker mid-computation never leaves the host's other
        # callers waiting for a value that will not come (see decorators).
        self.held_leases = set()
        # Background refreshes (stale-while-revalidate, early refresh) still computing: close()
        # lets them finish and store first, so that stopping a worker does not throw away a
        # value it is computing and make a sibling compute it again.
        self.refreshes = PendingRefreshes()
        _FORK_AWARE.add(self)

    # ---- lifecycle -------------------------------------------------------------------------------
    @property
    def is_open(self):
        return self._segment is not None

    @property
    def has_l2(self):
        seg = self._segment
        return seg is not None and seg.has_l2

    def open(self):
        """Open the segment (and attach Redis) if not open yet; returns the Segment."""
        with self._open_lock:
            if self._segment is not None:
                return self._segment
            seg = Segment(self.config.shm_name, self._options())
            try:
                if self.config.l2_enabled:
                    if not _ffi.HAS_L2:
                        raise ShmcacheError(_ffi.E_L2_NOT_CONFIGURED,
                                            f"redis_url is set but {_ffi.LIB_PATH} (libshmcache "
                                            f"{_ffi.library_version()}) has no Redis tier")
                    seg.attach_l2(self._l2_options())
                self._warn_if_geometry_differs(seg)
            except BaseException:
                seg.close()
                raise
            self._stopped = False
            self.default_tiers = self._mask(self.config.cache_tier, seg.has_l2)
            self._segment = seg
            if seg.has_l2:
                # Errors before this start are not this run's: the window begins here.
                self._l2_errors.clear()
                self._l2_errors.append((time.monotonic(), seg.l2_stats().errors))
            return seg

    def close(self):
        """Close the handle once every call in flight has returned, and every background
        refresh has stored its value (or its lease has run out). A later call raises until
        open() is called again."""
        self.refreshes.wait()
        with self._open_lock:
            seg, self._segment = self._segment, None
            if seg is not None:
                self._stopped = True
        if seg is not None:
            seg.close(self._take_leases)  # given back once no call is in flight
        if self.local is not None:
            self.local.clear()

    def _take_leases(self):
        """Every lease this process still holds, forgotten here (close() gives them back)."""
        taken = []
        while self.held_leases:
            try:
                taken.append(self.held_leases.pop())
            except KeyError:  # emptied by a finishing computation meanwhile
                break
        return taken

    def segment(self):
        """The open Segment; opens it on first use (before start()), raises once stopped."""
        seg = self._segment
        if seg is not None:
            return seg
        if self._stopped:
            raise ShmcacheError(_ffi.E_INVAL, f"cache '{self.config.shm_name}' was stopped; "
                                "call start() to use it again")
        return self.open()

    def _options(self):
        cfg = self.config
        opts = _ffi.default_options()
        opts.size_bytes = cfg.shm_size
        opts.max_entries = cfg.memory_cache_size
        opts.strategy = int(cfg.memory_cache_strategy)
        return opts

    def _l2_options(self):
        cfg = self.config
        opts = _ffi.default_l2_options()
        # The namespace is applied by Python to every key (see keys.py), so the library gets
        # none: L1 and L2 keys are then the same bytes.
        self._l2_url = cfg.l2_url.encode()  # kept alive for the duration of the attach
        opts.url = self._l2_url
        # Tracking then reports only this namespace's keys, not every write to the database.
        self._l2_watch = (cfg.key_prefix + cfg.key_separator).encode() if cfg.key_prefix else None
        opts.tracking_prefix = self._l2_watch
        opts.connect_timeout_ms = seconds_to_ms(cfg.redis_connect_timeout)
        opts.command_timeout_ms = seconds_to_ms(cfg.redis_command_timeout)
        opts.max_connections = cfg.redis_max_connections
        opts.retry_on_timeout = 1 if cfg.redis_retry_on_timeout else 0
        return opts

    def _warn_if_geometry_differs(self, seg):
        # Geometry applies only when a segment is created; a segment made earlier (by another
        # service, or before a config change) keeps its own. Say so once, at open.
        info = seg.info()
        cfg = self.config
        # A segment made with the default keeps the default of the build that made it (S3-FIFO
        # before W-TinyLFU): only a strategy the config names is worth a warning.
        wanted_strategy = cfg.memory_cache_strategy
        diffs = []
        if info.size_bytes != cfg.shm_size:
            diffs.append(f"size {info.size_bytes} bytes (config: {cfg.shm_size})")
        if info.max_entries != cfg.memory_cache_size:
            diffs.append(f"max entries {info.max_entries} (config: {cfg.memory_cache_size})")
        if wanted_strategy != CacheStrategy.DEFAULT and info.strategy != wanted_strategy:
            diffs.append(f"strategy {CacheStrategy(info.strategy).name} "
                         f"(config: {wanted_strategy.name})")
        if diffs:
            log.warning("shmcache[%s]: the existing segment was created with %s; geometry is "
                        "fixed at creation (recreate it with `shmcache-cli destroy` to change it)",
                        cfg.shm_name, ", ".join(diffs))

    # ---- tiers -----------------------------------------------------------------------------------
    def tiers(self, tier=None):
        """The library tier mask for a call: the tier asked (else the config's), restricted to
        the tiers this cache has. 0 when only L2 is asked and there is none."""
        if tier is None:
            return self.default_tiers
        return self._mask(CacheTier.parse(tier), self.has_l2 if self._segment is not None
                          else self.config.l2_enabled)

    @staticmethod
    def _mask(wanted, has_l2):
        return int(wanted) & (TIER_BOTH if has_l2 else TIER_L1)

    def ttls(self, ttl):
        """(l1_ttl_ms, l2_ttl_ms): the given TTL for both tiers, else each tier's default."""
        if ttl is None:
            return self.l1_ttl_ms, self._l2_ttl_ms
        ms = seconds_to_ms(ttl)
        return ms, ms

    @property
    def fill_ttl_ms(self):
        return self.l1_ttl_ms

    def stored_key(self, key):
        """The stored key (bytes, namespace applied) of a caller's key (str or bytes)."""
        if type(key) is str and key:
            return self._head + key.encode() if self._head else key.encode()
        return self.keys.key(key)  # bytes, or raises for a wrong type or an empty key

    # ---- get -------------------------------------------------------------------------------------
    def lookup(self, key, tiers, final=True, revive=None):
        """The value of key (as the caller gave it: str or bytes, before the namespace) in the
        tiers, or MISS. The one get of the package.

        tiers: a mask from tiers(), possibly with TGET_AFTER_L1_MISS. final=False: an L1 step
        that a Redis lookup will follow (the async manager's), so a miss here is not yet
        counted. revive: a callable turning the decoded value into the caller's type (the
        decorators' return types, see _returns); a value it refuses is a miss."""
        # Written for speed (every get comes here): locals, no helper calls on a hit.
        local = self.local
        entry = None
        if local is not None:
            try:
                entry = local.get(key)  # only str and bytes keys are ever put there
            except TypeError:  # unhashable: stored_key() below says what is wrong with it
                pass
        if entry is not None:
            k, stored, value, entry_revive, klen = entry
            expected = stored if entry_revive is revive else None
        else:
            k, klen, expected = self.stored_key(key), None, None
        if not tiers:
            return self._miss(final)
        seg = self._segment
        if seg is None:
            seg = self.segment()
        try:
            rc, served, got = seg.receive(k, tiers, self.l1_ttl_ms, klen, expected)
        except SegmentClosedError:  # stopped meanwhile: reopens on demand, or says it stopped
            seg = self.segment()
            rc, served, got = seg.receive(k, tiers, self.l1_ttl_ms)
        if rc:
            return self.read_failed(rc, seg, k, tiers, final)
        if got is None:
            # Byte for byte what was decoded last time (compared in place, nothing copied): the
            # object decoded from them. This is the common hit.
            if served == 1:  # TIER_L1
                next(self._hits_l1)
            else:
                self.logs.state("redis", False)  # Redis answered
                next(self._hits[served])
            return value
        return self.received(seg, k, key, served, got, final, revive, False)

    def received(self, seg, k, key, served, got, final, revive=None, reuse=True):
        """The value of got, the stored bytes of k (a private copy, see Segment.receive) from
        the tier served, or MISS for a value that is not an envelope or does not decode
        (counted, logged, removed if damaged). Remembered in `local` under key when it is on;
        with reuse, `local`'s object when got is the bytes it was decoded from. Shared by
        lookup() (which has compared itself) and single flight's fetch."""
        if served != TIER_L1:
            self.logs.state("redis", False)  # Redis answered
        size = len(got)
        local = self.local
        keep = local is not None and type(key) in _LOCAL_KEY_TYPES and size <= LOCAL_MAX_BYTES
        if reuse and keep:
            entry = local.get(key)
            if entry is not None and entry[3] is revive and entry[1] == got:
                next(self._hits[served])
                return entry[2]
        if size > 1 and got[0] == ENVELOPE_MAGIC and not got[1] & 0xF0:
            serializer, payload = got[1], memoryview(got)[2:]  # uncompressed: no second copy
        else:  # compressed, or damaged: the library checks (and decompresses)
            rc, serializer, payload = unwrap(bytes(got))
            if rc != OK:
                return self.read_failed(rc, seg, k, served, final)
        try:
            value = self.codec.loads(serializer, payload)
        except UndecodableValue as e:
            self.undecodable(seg, k, served, e)
            return self._miss(final)
        if revive is not None:
            try:
                value = revive(value)
            except Exception as e:  # stored by an older version of the function, say
                self.undecodable(seg, k, served, UndecodableValue(
                    "wrong-type", f"does not fit the function's return type: {e!r}"))
                return self._miss(final)
        if keep:
            # got is this call's own copy, never written again: kept as the stored bytes.
            self.remember(key, (k, got, value, revive, _ffi.size_t_of(len(k))))
        next(self._hits[served])
        return value

    def remember(self, key, entry):
        """Keep entry, (stored key, stored bytes, value, reviver, the stored key's length as a
        foreign size_t argument), under key as the newest; drop
        the oldest beyond the bound. Each step is one atomic operation under the GIL, so threads
        may race here freely: at worst an entry is replaced by an equally valid one, or the
        bound is briefly passed."""
        local = self.local
        local.pop(key, None)
        local[key] = entry
        while len(local) > self._local_max:
            try:
                local.popitem(last=False)
            except KeyError:  # emptied by another thread meanwhile
                break

    def read_failed(self, rc, seg, key, served, final):
        """A lookup's outcome for a code other than OK: MISS, counted and logged by cause;
        raises for the caller's errors (KEY_TOO_LONG, INVAL...). served: the tier mask asked,
        or the tier that served bytes that turned out not to be an envelope."""
        if rc == E_NOTFOUND:
            if served & TIER_L2:
                self.logs.state("redis", False)
        elif rc == E_LOCK_TIMEOUT:
            self.lock_timeout(key)
        elif rc in (E_L2_UNAVAILABLE, E_L2_REPLY):
            self._l2_failure(rc)
        elif rc == E_BAD_ENVELOPE:
            self.undecodable(seg, key, served if served in (TIER_L1, TIER_L2) else TIER_L1,
                             UndecodableValue("damaged", "not a shmcache value envelope"))
        else:
            raise_code(rc)  # KEY_TOO_LONG, INVAL...: the caller's error
        return self._miss(final)

    def _miss(self, final):
        if final:
            next(self._misses)
        return MISS

    # ---- set -------------------------------------------------------------------------------------
    def store(self, key, value, ttl, tiers):
        """Serialize and store value under key (as the caller gave it). True if stored in L1 (or
        in L2 when only L2 was asked or L1 cannot hold it), False if a transient failure kept it
        out ("not cached this time"). The one set of the package."""
        k = self.stored_key(key)
        if ttl is not None:
            seconds_to_ms(ttl)  # a bad ttl raises before anything is encoded
        return self.store_encoded(k, self.codec.dumps(value), ttl, tiers)

    def store_encoded(self, k, encoded, ttl, tiers):
        """store() of a stored key and a value already serialized: (serializer id, payload)."""
        if not tiers:
            return False
        seg = self.segment()
        envelope, n, write = self.envelope(seg, k, encoded, tiers)
        return self.write(seg, k, envelope, n, ttl, tiers, write)

    def write(self, seg, k, envelope, n, ttl, asked, write):
        """Store an envelope from envelope() in the tiers it said (write) out of those asked;
        the outcome as stored() gives it. When L1 was left out (too large for it), this host's
        L1 copy of k is dropped after the Redis write, so that no reader refills it from the
        old Redis value in between."""
        l1_ttl, l2_ttl = self.ttls(ttl)
        rc = seg.store(k, envelope, n, l1_ttl, l2_ttl, write)
        if write != asked:
            seg.delete(k, TIER_L1)  # an older, smaller value must not be served from L1
        return self.stored(rc, k, write)

    def envelope(self, seg, k, encoded, tiers):
        """(envelope, length, tiers to write) for an encoded value. A value too large for L1
        goes to Redis alone when the tiers include it (write() then drops its L1 copy); else,
        and for any value over the library's limit, ValueTooLargeError with nothing stored."""
        serializer, payload = encoded
        n = len(payload)
        if n > MAX_VALUE_LEN:
            raise ValueTooLargeError(
                _ffi.E_VALUE_TOO_LARGE,
                f"value of {n} bytes is over the library's limit of {MAX_VALUE_LEN} bytes "
                f"for any tier; nothing stored (key {_show(k)})")
        if not self.threshold or n < self.threshold:
            envelope, size = HEADERS[serializer] + payload, n + 2
        else:
            envelope, size = encode_into(serializer, payload, self.threshold)
        if tiers & TIER_L1 and size > seg.max_value_len:
            if tiers & TIER_L2:
                self.logs.event("l1-too-large", f"value of {size} bytes for key {_show(k)} is "
                                f"over L1's limit of {seg.max_value_len} bytes "
                                "(max_value_len): stored in Redis only")
                return envelope, size, TIER_L2
            raise ValueTooLargeError(
                _ffi.E_VALUE_TOO_LARGE,
                f"value of {size} bytes as stored (envelope, compressed where smaller) is over "
                f"this segment's limit of {seg.max_value_len} bytes (max_value_len); nothing "
                f"stored (key {_show(k)})")
        return envelope, size, tiers

    def stored(self, rc, key, tiers):
        """A store's outcome from the library's code: True on OK (counted), else store_failed."""
        if rc == OK:
            next(self._sets)
            if tiers & TIER_L2:
                self.logs.state("redis", False)  # Redis answered
            return True
        return self.store_failed(rc, key, tiers)

    def store_failed(self, rc, key, tiers):
        """A store's outcome for a code other than OK (see store())."""
        if rc in (E_L2_UNAVAILABLE, E_L2_REPLY):
            # The library wrote L2 first and L1 anyway: L1 holds the value, the L2 write was
            # dropped (and counted in the segment's dropped_writes).
            self._l2_failure(rc)
            self.counters.add("l2_dropped_writes")
            if tiers & TIER_L1:
                next(self._sets)
                return True
            return False
        if rc == E_LOCK_TIMEOUT:
            self.lock_timeout(key)
            self.counters.add("set_errors")
            return False
        raise make_error(rc, f"{_ffi.error_message(rc)} (key {_show(key)})")

    # ---- the same, for an event loop -------------------------------------------------------------
    # L1 work (shared memory, no I/O: a few microseconds) runs inline on the loop, since handing
    # it to a thread would cost more than the work; what may wait on Redis runs through
    # off_loop(fn, *args), a coroutine that runs fn in the caller's threads.
    async def alookup(self, off_loop, key, tiers, revive=None):
        """lookup() with L1 inline and, on an L1 miss, Redis in a thread. L1 is asked once:
        the Redis step is shmc_tget with TGET_AFTER_L1_MISS, so the statistics count one L1
        miss and one L2 lookup."""
        if tiers & TIER_L2:
            if tiers & TIER_L1:
                value = self.lookup(key, TIER_L1, False, revive)
                if value is not MISS:
                    return value
                tiers |= AFTER_L1_MISS
            return await off_loop(self.lookup, key, tiers, True, revive)
        return self.lookup(key, tiers, True, revive)

    async def astore(self, off_loop, key, value, ttl, tiers):
        """store(): the value is serialized on the loop, when the call is made (a caller that
        mutates its object after the await does not change what is stored); Redis in a
        thread."""
        k = self.stored_key(key)
        if ttl is not None:
            seconds_to_ms(ttl)
        return await self.astore_encoded(off_loop, k, self.codec.dumps(value), ttl, tiers)

    async def astore_encoded(self, off_loop, k, encoded, ttl, tiers):
        if tiers & TIER_L2:
            return await off_loop(self.store_encoded, k, encoded, ttl, tiers)
        return self.store_encoded(k, encoded, ttl, tiers)

    # ---- other operations ------------------------------------------------------------------------
    def remove(self, key, tiers):
        """Delete key (as the caller gave it) from the tiers. True if one of them held it."""
        k = self.stored_key(key)
        if not tiers:
            return False
        rc = self.segment().delete(k, tiers)
        if rc == OK:
            self.counters.add("deletes")
            return True
        if rc == E_NOTFOUND:
            return False
        if rc in (E_L2_UNAVAILABLE, E_L2_REPLY):
            # L1 was deleted after the failed L2 delete, but whether it held the key is not
            # reported; the L2 copy stays until its TTL (or the next delete).
            self._l2_failure(rc)
            self.counters.add("l2_dropped_writes")
            return False
        if rc == E_LOCK_TIMEOUT:
            self.lock_timeout(k)
            return False
        raise make_error(rc, f"{_ffi.error_message(rc)} (key {_show(k)})")

    def contains(self, key, tiers):
        """True if key (as the caller gave it) is live in one of the tiers."""
        k = self.stored_key(key)
        if not tiers:
            return False
        rc = self.segment().contains(k, tiers)
        if rc == OK:
            return True
        if rc == E_NOTFOUND:
            return False
        if rc == E_LOCK_TIMEOUT:
            self.lock_timeout(k)
            return False
        if rc in (E_L2_UNAVAILABLE, E_L2_REPLY):
            self._l2_failure(rc)
            return False
        raise_code(rc)

    def stored_pattern(self, pattern):
        """The stored-key pattern (bytes) for pattern; BadPatternError if malformed."""
        p = self.keys.pattern(pattern)
        validate_pattern(p)
        return p

    def purge(self, pattern, tiers):
        """Remove every key matching the glob pattern (stored form, see stored_pattern); the
        number removed (the larger of the two tiers' counts: a key usually lives in both)."""
        validate_pattern(pattern)
        if not tiers:
            return 0
        rc, n1, n2 = self.segment().purge(pattern, tiers)
        removed = max(n1, n2)
        self.counters.add("purges")
        if rc == OK:
            if tiers & TIER_L2:
                self.logs.state("redis", False)
            return removed
        if rc in (E_L2_UNAVAILABLE, E_L2_REPLY):
            self._l2_failure(rc)
            return removed
        if rc == E_LOCK_TIMEOUT:
            # Some stripes were skipped: their matching keys stay until their TTL.
            self.counters.add("lock_timeouts")
            self.logs.event("purge-lock-timeout", "purge skipped a stripe whose lock timed out "
                            f"(pattern {_show(pattern)}); matching keys there remain")
            return removed
        raise_code(rc)

    # ---- figures ---------------------------------------------------------------------------------
    def raw_figures(self, with_l2=True):
        """(Stats, Info, L2Stats or None, FlightStats or None) of the segment."""
        seg = self.segment()
        l2 = seg.l2_stats() if with_l2 and seg.has_l2 else None
        return seg.stats(), seg.info(), l2, seg.flight_stats()

    def stats(self, with_l2=True):
        """The get_stats() dictionary (see build_stats)."""
        st, info, l2, flight = self.raw_figures(with_l2)
        recent = self.recent_l2_errors(l2.errors) if l2 is not None else 0
        return build_stats(self.config, st, info, l2, self.counters.snapshot(), flight, recent)

    def recent_l2_errors(self, total):
        """Of the host's lifetime L2 error count total, how many happened in the last
        L2_ERROR_WINDOW seconds as this process saw it (sampled at open and at each call
        here): a restarted, healthy service reads 0, a failing one the errors of the last
        minute, whatever happened long ago."""
        now = time.monotonic()
        samples = self._l2_errors
        samples.append((now, total))
        # Keep the newest sample at or before the window's start: the baseline to subtract.
        while len(samples) > 2 and samples[1][0] <= now - L2_ERROR_WINDOW:
            samples.popleft()
        try:
            base = samples[0][1]
        except IndexError:  # emptied by another thread's close meanwhile
            return 0
        return max(0, total - base)

    def probe_l2(self):
        """One bounded Redis round trip (a PING, which counts no lookup), unless this
        process's circuit breaker is open (Redis is known to be down: no need to wait to say
        so); returns the L2Stats after it. "connected" alone only says the last call worked,
        which may have been long before Redis went away."""
        seg = self.segment()
        st = seg.l2_stats()
        if not st.breaker_open:
            rc = seg.l2_ping()
            if rc == OK:
                self.logs.state("redis", False)
            elif rc in (E_L2_UNAVAILABLE, E_L2_REPLY):
                self._l2_failure(rc)
            st = seg.l2_stats()
        return st

    def health(self):
        """The health_check() dictionary (see check_health)."""
        return check_health(self)

    # ---- outcomes --------------------------------------------------------------------------------
    def lock_timeout(self, key):
        self.counters.add("lock_timeouts")
        self.logs.event("lock-timeout", "a stripe lock timed out (a process holding it is "
                        f"stopped or very slow), key {_show(key)}; treated as a miss")

    def _l2_failure(self, rc):
        detail = _ffi.error_message(rc)  # read now: the message belongs to this thread's last call
        if rc == E_L2_UNAVAILABLE:
            self.counters.add("l2_unavailable")
            self.logs.state("redis", True, detail)
        else:
            self.counters.add("l2_reply_errors")
            self.logs.event("redis-reply", f"Redis answered with an error: {detail}")

    def undecodable(self, seg, key, served, err):
        reason = err.reason
        if reason == "unsigned-pickle":
            self.counters.add("rejected_pickles")
        elif reason == "bad-signature":
            self.counters.add("bad_signatures")
        elif reason == "damaged":
            self.counters.add("bad_envelopes")
        else:
            self.counters.add("undecodable")
        self.logs.event(f"undecodable-{reason}", f"key {_show(key)}: {err}; treated as a miss")
        if reason == "damaged":
            # Not a value any reader can use: remove it from the tier that served it (an L2
            # value was also copied into L1 on the way).
            seg.delete(key, TIER_BOTH if served == TIER_L2 else TIER_L1)


_LOCAL_KEY_TYPES = (str, bytes)  # keys `local` holds: hashable, immutable, never reinterpreted
AFTER_L1_MISS = TGET_AFTER_L1_MISS  # for lookup(): "L1 was just asked, go on to Redis"


def _show(key, limit=80):
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    return repr(text if len(text) <= limit else text[:limit] + "...")


# ---- this process's counters ---------------------------------------------------------------------
# What this manager did in this process (the segment's own counters are host-wide and come from
# shmc_get_stats). Reported under get_stats()["process"].
COUNTERS = (
    "hits_l1", "hits_l2", "misses", "sets", "set_errors", "deletes", "purges",
    "lock_timeouts", "l2_unavailable", "l2_reply_errors", "l2_dropped_writes",
    "bad_envelopes", "rejected_pickles", "bad_signatures", "undecodable", "warmed",
    # Calls of a single-flight function that waited for another coroutine of this process on
    # the same key (see decorators): stampedes avoided that the host's counters do not see.
    "flight_joined",
    # HTTP response caching (responses.py): responses served from the cache, responses stored,
    # requests that bypassed it (a private header), responses that could not be stored.
    "http_hits", "http_stores", "http_bypass", "http_uncacheable",
)


def count_value(counter):
    """The next value an itertools.count will give, from its repr "count(N)" (pickling, the
    other way to read it, is deprecated for itertools from Python 3.12)."""
    return int(repr(counter)[6:-1])


class Counters:
    """One itertools.count per counter: next() on it is a single C call, atomic under the GIL,
    so counting costs no lock and loses nothing. add(name, n) with n > 1 (warming's batch
    totals) goes to a small locked table instead of n next() calls.

    A count cannot be reset or read directly: its value is read with count_value(), and a fork
    does not replace the counts (the core holds them) but records the parent's values as the
    child's zero.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = {name: itertools.count() for name in COUNTERS}
        self._bulk = dict.fromkeys(COUNTERS, 0)
        self._base = dict.fromkeys(COUNTERS, 0)

    def counter(self, name):
        """The itertools.count behind name: next() on it adds 1."""
        return self._counts[name]

    def add(self, name, n=1):
        if n == 1:
            next(self._counts[name])
        elif n:
            with self._lock:
                self._bulk[name] += n

    def _raw(self):
        with self._lock:
            bulk = dict(self._bulk)
        return {name: count_value(c) + bulk[name] for name, c in self._counts.items()}

    def snapshot(self):
        raw = self._raw()
        out = {name: raw[name] - self._base[name] for name in COUNTERS}
        # Every get ends as exactly one of these, so the total costs no counter of its own.
        out["gets"] = out["hits_l1"] + out["hits_l2"] + out["misses"]
        return out

    def after_fork_in_child(self):
        # Another thread of the parent may have held the lock at fork; the child's copy of it
        # would stay locked forever. The child starts its own counts from zero.
        self._lock = threading.Lock()
        self._base = self._raw()


# ---- logging without flooding --------------------------------------------------------------------
class LogDiscipline:
    """A cache must not flood the log when Redis goes away at 5,000 requests per second.
    Conditions that come and go (Redis unavailable) are logged once when they start and once
    when they end (state()); isolated events (a damaged value, a refused pickle) at most once
    per kind per minute (event()), with the running count in the message. Everything is counted
    whether or not it is logged."""

    EVENT_INTERVAL = 60.0

    def __init__(self, segment_name):
        self._where = f"shmcache[{segment_name}]"
        self._lock = threading.Lock()
        self._failing = {}  # condition -> True while failing
        self._last_event = {}  # kind -> monotonic time of the last log line
        self._event_counts = {}

    def state(self, condition, failing, detail=""):
        """Record whether condition is failing now; log only when that changes."""
        if self._failing.get(condition, False) == failing:
            return  # the common case, without the lock
        with self._lock:
            if self._failing.get(condition, False) == failing:
                return
            self._failing[condition] = failing
        if failing:
            log.warning("%s: %s (pid %d): %s; treating as a miss, serving on", self._where,
                        condition, os.getpid(), detail or "failing")
        else:
            log.info("%s: %s: recovered (pid %d)", self._where, condition, os.getpid())

    def is_failing(self, condition):
        return self._failing.get(condition, False)

    def event(self, kind, message, level=logging.WARNING):
        now = time.monotonic()
        with self._lock:
            self._event_counts[kind] = count = self._event_counts.get(kind, 0) + 1
            last = self._last_event.get(kind)
            if last is not None and now - last < self.EVENT_INTERVAL:
                return
            self._last_event[kind] = now
        log.log(level, "%s: %s (%d so far in pid %d)", self._where, message, count, os.getpid())

    def after_fork_in_child(self):
        self._lock = threading.Lock()
        self._failing = {}
        self._last_event = {}
        self._event_counts = {}


# ---- get_stats() ---------------------------------------------------------------------------------
def _rate(hits, misses):
    total = hits + misses
    return round(hits / total, 6) if total else 0.0


def build_stats(config, st, info, l2, process_counters, flight=None, l2_recent_errors=0):
    """The get_stats() dict from shmc_stats, shmc_info, shmc_l2_stats (or None), the process's
    counters, shmc_flight_stats (or None) and the L2 errors of the recent window.

    The guide's shape comes first:

        {"l1_cache": {"hits", "misses", "hit_rate", "size", "max_size"},
         "l2_cache": {"hits", "misses", "hit_rate", "connected", "errors"},
         "total_hits", "total_misses", "total_sets"}

    Every count there is host-wide: L1 counters live in the segment and count what every
    process of the host did; L2 counters too. Each lookup is counted once per tier it asked:
    a get that misses L1 and asks Redis is one L1 miss and one L2 hit or miss.
      * l1_cache.size is the number of live entries, max_size the segment's entry limit
        (0 = limited by memory only);
      * l2_cache.connected: Redis answers this process (its last call, or the probe made by
        start(), worked, and its circuit breaker is closed); l2_cache.errors: Redis errors of the last L2_ERROR_WINDOW
        (60) seconds, host-wide (the lifetime count is l2_detail.errors);
      * total_hits = L1 hits + L2 hits; total_misses = lookups that no tier answered (L2
        misses with a Redis tier, L1 misses without); total_sets = values written to L1, not
        counting the L1 copies of L2 hits.
    Extra keys: "segment" (memory, evictions, geometry), "l2_detail" (every L2 counter),
    "process" (this manager's own counts in this process, see COUNTERS) and "single_flight"
    (the host's shmc_fetch figures; docs/stampede.md).
    """
    l1 = {
        "hits": st.hits,
        "misses": st.misses,
        "hit_rate": _rate(st.hits, st.misses),
        "size": st.entries,
        "max_size": info.max_entries,
    }
    if l2 is not None and l2.configured:
        l2_block = {
            "hits": l2.hits,
            "misses": l2.misses,
            "hit_rate": _rate(l2.hits, l2.misses),
            "connected": bool(l2.connected) and not l2.breaker_open,
            "errors": l2_recent_errors,
        }
        total_misses = l2.misses
        fills = l2.fills
    else:
        l2_block = {"hits": 0, "misses": 0, "hit_rate": 0.0, "connected": False, "errors": 0}
        total_misses = st.misses
        fills = 0
    return {
        "l1_cache": l1,
        "l2_cache": l2_block,
        "total_hits": l1["hits"] + l2_block["hits"],
        "total_misses": total_misses,
        "total_sets": max(0, st.sets - fills),
        "segment": segment_block(st, info),
        "l2_detail": l2_detail(config, l2),
        "process": dict(process_counters, pid=os.getpid()),
        "single_flight": flight_block(flight),
    }


def flight_block(flight):
    """The host's single-flight figures (shmc_fetch; docs/stampede.md), {} if unavailable."""
    if flight is None:
        return {}
    return {name: getattr(flight, name) for name, _ in flight._fields_ if name != "reserved"}


def segment_block(st, info):
    return {
        "name": info.name.decode("utf-8", "replace"),
        "size_bytes": info.size_bytes,
        "bytes_used": st.bytes_used,
        "bytes_capacity": st.bytes_capacity,
        "bytes_data": st.bytes_data,
        "entries": st.entries,
        "max_entries": info.max_entries,
        "max_value_len": info.max_value_len,
        "sets": st.sets,
        "deletes": st.deletes,
        "evictions": st.evictions,
        "expirations": st.expirations,
        "lock_timeouts": st.lock_timeouts,
        "lock_recoveries": st.lock_recoveries,
        "strategy": _strategy_name(info.strategy),
        "n_stripes": info.n_stripes,
        "attached": info.attached,
        "layout_version": info.layout_version,
    }


def l2_detail(config, l2):
    if l2 is None or not l2.configured:
        return {"configured": False}
    out = {"configured": True, "url": redact_url(config.redis_url)}
    for name, _ in l2._fields_:
        if name not in ("reserved", "reserved32", "configured"):
            value = getattr(l2, name)
            out[name] = bool(value) if name in ("connected", "breaker_open", "subscribed") \
                else value
    return out


def _strategy_name(value):
    try:
        return CacheStrategy(value).name
    except ValueError:
        return str(value)


# ---- health_check() ------------------------------------------------------------------------------
def check_health(core):
    """Is the cache usable from this process, and is Redis reachable:

        {"status": "healthy" | "degraded" | "unhealthy",
         "segment": name, "pid": pid,
         "l1": {"ok": bool, "entries", "bytes_used", "bytes_capacity", "lock_timeouts"} or
               {"ok": False, "error": "..."},
         "l2": {"configured": bool, "connected": bool, "breaker_open": bool, "subscribed": bool}}

    unhealthy: the segment cannot be opened or read (the service runs without a cache).
    degraded: L1 works but a configured Redis tier is not reachable from this process (gets
    fall back to L1 and the computation; writes reach L1 only).

    L1 is checked by reading the segment's statistics and geometry, which takes every stripe's
    counters but no lock: a health check must not disturb the cache or wait on it. Redis is
    checked with one PING (shmc_l2_ping), bounded by redis_command_timeout, so the answer is
    about Redis now, not at this process's last call; it counts no lookup. While the circuit
    breaker is open no probe is sent: Redis is degraded."""
    report = {"status": "healthy", "segment": core.config.shm_name, "pid": os.getpid()}
    try:
        st, _info, _, _ = core.raw_figures(with_l2=False)
        report["l1"] = {"ok": True, "entries": st.entries, "bytes_used": st.bytes_used,
                        "bytes_capacity": st.bytes_capacity, "lock_timeouts": st.lock_timeouts}
    except ShmcacheError as e:
        report["l1"] = {"ok": False, "error": str(e)}
    if core.config.l2_enabled:
        l2 = {"configured": True, "connected": False, "breaker_open": False, "subscribed": False}
        if report["l1"]["ok"]:
            try:
                st2 = core.probe_l2()
                l2.update(connected=bool(st2.connected), breaker_open=bool(st2.breaker_open),
                          subscribed=bool(st2.subscribed))
            except ShmcacheError as e:
                l2["error"] = str(e)
        report["l2"] = l2
    else:
        report["l2"] = {"configured": False, "connected": False}
    if not report["l1"]["ok"]:
        report["status"] = "unhealthy"
    elif report["l2"]["configured"] and not report["l2"]["connected"]:
        report["status"] = "degraded"
    return report


# ---- background refreshes ------------------------------------------------------------------------
class PendingRefreshes:
    """The background refreshes of one cache that are still computing, each with its own lease's
    deadline: close() waits for each no longer than that, since by then another caller may take
    the lease over and compute the value itself. Never for one that cannot progress while the
    caller blocks: a refresh running in the calling thread (a function that stops its own
    manager), or a task of the event loop that the calling thread runs."""

    _tokens = itertools.count()  # one numbering per process: a token is never reused, fork or not

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._pending = {}  # token -> (deadline (time.monotonic()), task or None)
        self._here = threading.local()  # .token: the thread refresh this thread is running

    def add(self, lease_ms, task=None):
        """A refresh begins under a lease of lease_ms; returns its token for done()."""
        token = next(self._tokens)
        with self._cond:
            self._pending[token] = (time.monotonic() + lease_ms / 1000, task)
        return token

    def running(self, token):
        """A thread refresh begins to run in the calling thread."""
        self._here.token = token

    def done(self, token):
        if getattr(self._here, "token", None) == token:
            self._here.token = None
        with self._cond:
            self._pending.pop(token, None)
            self._cond.notify_all()

    def wait(self):
        """Wait until each refresh in progress now has ended, or its lease has (refreshes begun
        meanwhile are not waited for). The async stop() calls it off the loop, so that the
        loop's refresh tasks run meanwhile."""
        try:
            own_loop = asyncio.get_running_loop()
        except RuntimeError:
            own_loop = None
        own_token = getattr(self._here, "token", None)
        with self._cond:
            waited = {}
            for token, (end, task) in list(self._pending.items()):
                if task is not None and (task.done() or task.get_loop().is_closed()):
                    del self._pending[token]  # its loop died with it: it will never say done
                elif token != own_token and (task is None or task.get_loop() is not own_loop):
                    waited[token] = end
            while True:
                now = time.monotonic()
                ends = [end for token, end in waited.items()
                        if token in self._pending and end > now]
                if not ends:
                    return
                self._cond.wait(min(ends) - now)


# ---- fork ----------------------------------------------------------------------------------------
_FORK_AWARE = weakref.WeakSet()


def _after_fork_in_child():
    for core in list(_FORK_AWARE):
        core._open_lock = threading.Lock()
        if core._segment is not None:
            core._segment.after_fork_in_child()
        core.counters.after_fork_in_child()
        core.logs.after_fork_in_child()
        if core.local is not None:
            core.local.clear()
        core.held_leases = set()  # the parent's: this process must not give them back
        core.refreshes = PendingRefreshes()  # the parent's threads and tasks are not here
        core._l2_errors = collections.deque()


os.register_at_fork(after_in_child=_after_fork_in_child)
