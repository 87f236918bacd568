"""_core.py - the cache's behaviour, synchronously: what both managers run.

CacheCore turns a manager call into Segment calls and decides what each outcome means:
  * a miss is a miss, whatever caused it: absent, expired, a stripe lock held by a stopped
    process (SHMC_E_LOCK_TIMEOUT), Redis down or answering errors (SHMC_E_L2_*), a value that is
    not a valid envelope, or one this process refuses to decode (an unsigned pickle). Each cause
    is counted, and logged without flooding (see _telemetry). A get never raises for them;
  * caller errors raise: a key over 4096 bytes, a value over the segment's max_value_len, a
    value the serializer cannot encode, a malformed pattern;
  * a set with both tiers while Redis is down has written L1 and dropped the L2 write: that is
    reported as stored (True), counted and logged, not raised;
  * a damaged value (not an envelope, or a payload that does not parse) is deleted from the
    tier that served it, so that the next set is not needed to clear it for every reader.

Every method here may wait on Redis when the tier mask includes L2 (each Redis call is bounded
by redis_command_timeout). CacheManager (async) therefore runs those off the event loop and calls
the L1-only paths inline; SyncCacheManager calls everything directly.

After fork() the child keeps using the same handle (the library supports it), but this object's
locks and counters are made fresh in the child (os.register_at_fork below).
"""
import os
import threading
import weakref

from . import _ffi
from ._ffi import (E_BAD_ENVELOPE, E_L2_REPLY, E_L2_UNAVAILABLE, E_LOCK_TIMEOUT, E_NOTFOUND, OK,
                   TIER_BOTH, TIER_L1, TIER_L2)
from ._segment import Segment, raise_code, validate_pattern
from ._telemetry import Counters, LogDiscipline, log
from .config import CacheStrategy, CacheTier
from .errors import ShmcacheError, make_error
from .keys import KeySpace
from .serialization import Codec, UndecodableValue

MISS = object()  # lookup() result for "no value"; None is a value that can be cached


def seconds_to_ms(seconds, what="ttl"):
    """A TTL in seconds (int or float, 0 = never expires) as whole milliseconds."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if not seconds >= 0:
        raise ValueError(f"{what} must be >= 0 seconds (0: never expires), got {seconds}")
    if seconds == 0:
        return 0
    return max(1, int(round(seconds * 1000)))  # a positive TTL never rounds to "never expires"


class _Lifecycle:
    NEW, OPEN, CLOSED = "new", "open", "closed"


class CacheCore:
    """Synchronous cache operations on one segment (and its Redis tier). Thread-safe."""

    def __init__(self, config):
        self.config = config
        self.keys = KeySpace(config.key_prefix, config.key_separator)
        self.codec = Codec(config.serializer, config.pickle_secret)
        self.counters = Counters()
        self.logs = LogDiscipline(config.shm_name)
        self._threshold = config.compression_threshold if config.enable_compression else 0
        self._l1_ttl_ms = seconds_to_ms(config.memory_cache_ttl, "memory_cache_ttl")
        self._l2_ttl_ms = seconds_to_ms(config.redis_ttl, "redis_ttl")
        self._segment = None
        self._state = _Lifecycle.NEW
        self._open_lock = threading.Lock()
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
            self._segment = seg
            self._state = _Lifecycle.OPEN
            return seg

    def close(self):
        """Close the handle once every call in flight has returned. A later call raises until
        open() is called again."""
        with self._open_lock:
            seg, self._segment = self._segment, None
            if self._state == _Lifecycle.OPEN:
                self._state = _Lifecycle.CLOSED
        if seg is not None:
            seg.close()

    def segment(self):
        seg = self._segment
        if seg is not None:
            return seg
        if self._state == _Lifecycle.CLOSED:
            raise ShmcacheError(_ffi.E_INVAL, f"cache '{self.config.shm_name}' was stopped; "
                                "call start() to use it again")
        return self.open()  # first use before start(): open on demand

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
        self._l2_url = cfg.redis_url.encode()  # kept alive for the duration of the attach
        opts.url = self._l2_url
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
        wanted_strategy = cfg.memory_cache_strategy
        if wanted_strategy == CacheStrategy.DEFAULT:
            wanted_strategy = CacheStrategy.S3FIFO
        diffs = []
        if info.size_bytes != cfg.shm_size:
            diffs.append(f"size {info.size_bytes} bytes (config: {cfg.shm_size})")
        if info.max_entries != cfg.memory_cache_size:
            diffs.append(f"max entries {info.max_entries} (config: {cfg.memory_cache_size})")
        if info.strategy != wanted_strategy:
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
        wanted = self.config.cache_tier if tier is None else CacheTier.parse(tier)
        available = TIER_BOTH if self.has_l2 else TIER_L1
        if self._segment is None and self.config.l2_enabled:
            available = TIER_BOTH  # not open yet: it will have L2 once opened
        return int(wanted) & available

    def ttls(self, ttl):
        """(l1_ttl_ms, l2_ttl_ms): the given TTL for both tiers, else each tier's default."""
        if ttl is None:
            return self._l1_ttl_ms, self._l2_ttl_ms
        ms = seconds_to_ms(ttl)
        return ms, ms

    @property
    def fill_ttl_ms(self):
        return self._l1_ttl_ms

    # ---- operations ------------------------------------------------------------------------------
    def lookup(self, key, tiers, final=True):
        """The decoded value of key in the tiers, or MISS. final=False: an L1 step that a tiered
        lookup will follow, so a miss here is not yet counted as one."""
        if not tiers:
            return self._miss(final)
        seg = self.segment()
        rc, served, serializer, payload = seg.read(key, tiers, self.fill_ttl_ms)
        if rc == OK:
            if served == TIER_L2:
                self.logs.state("redis", False)
            try:
                value = self.codec.loads(serializer, payload)
            except UndecodableValue as e:
                self._undecodable(seg, key, served, e)
                return self._miss(final)
            self.counters.add("hits_l1" if served == TIER_L1 else "hits_l2")
            return value
        if rc == E_NOTFOUND:
            if tiers & TIER_L2:
                self.logs.state("redis", False)
        elif rc == E_LOCK_TIMEOUT:
            self._lock_timeout(key)
        elif rc in (E_L2_UNAVAILABLE, E_L2_REPLY):
            self._l2_failure(rc)
        elif rc == E_BAD_ENVELOPE:
            self._undecodable(seg, key, served or TIER_L1,
                              UndecodableValue("damaged", "not a shmcache value envelope"))
        else:
            raise_code(rc)  # KEY_TOO_LONG, INVAL...: the caller's error
        return self._miss(final)

    def _miss(self, final):
        if final:
            self.counters.add("misses")
        return MISS

    def store(self, key, value, ttl, tiers):
        """Serialize and store value. True if stored in L1 (or in L2 when only L2 was asked),
        False if a transient failure kept it out ("not cached this time")."""
        return self.store_encoded(key, self.codec.dumps(value), ttl, tiers)

    def store_encoded(self, key, encoded, ttl, tiers):
        """store() of a value already serialized: encoded is (serializer id, payload)."""
        serializer, payload = encoded
        if not tiers:
            return False
        l1_ttl, l2_ttl = self.ttls(ttl)
        rc = self.segment().write(key, serializer, payload, self._threshold, l1_ttl, l2_ttl,
                                  tiers)
        if rc == OK:
            self.counters.add("sets")
            if tiers & TIER_L2:
                self.logs.state("redis", False)
            return True
        if rc in (E_L2_UNAVAILABLE, E_L2_REPLY):
            # The library wrote L2 first and L1 anyway: L1 holds the value, the L2 write was
            # dropped (and counted in the segment's dropped_writes).
            self._l2_failure(rc)
            self.counters.add("l2_dropped_writes")
            if tiers & TIER_L1:
                self.counters.add("sets")
                return True
            return False
        if rc == E_LOCK_TIMEOUT:
            self._lock_timeout(key)
            self.counters.add("set_errors")
            return False
        raise make_error(rc, f"{_ffi.error_message(rc)} (key {_show(key)})")

    def remove(self, key, tiers):
        """Delete key from the tiers. True if it was removed from one of them."""
        if not tiers:
            return False
        rc = self.segment().delete(key, tiers)
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
            self._lock_timeout(key)
            return False
        raise make_error(rc, f"{_ffi.error_message(rc)} (key {_show(key)})")

    def contains(self, key, tiers):
        if not tiers:
            return False
        rc = self.segment().contains(key, tiers)
        if rc == OK:
            return True
        if rc == E_NOTFOUND:
            return False
        if rc == E_LOCK_TIMEOUT:
            self._lock_timeout(key)
            return False
        if rc in (E_L2_UNAVAILABLE, E_L2_REPLY):
            self._l2_failure(rc)
            return False
        raise_code(rc)

    def purge(self, pattern, tiers):
        """Remove every key matching the glob pattern; the number removed (the larger of the two
        tiers' counts: a key usually lives in both)."""
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
        """(Stats, Info, L2Stats or None) of the segment."""
        seg = self.segment()
        l2 = seg.l2_stats() if with_l2 and seg.has_l2 else None
        return seg.stats(), seg.info(), l2

    def probe_l2(self):
        """One bounded Redis round trip (a lookup of a key nobody uses), unless this process's
        circuit breaker is open (Redis is known to be down: no need to wait to say so); returns
        the L2Stats after it. "connected" alone only says the last call worked, which may have
        been long before Redis went away."""
        seg = self.segment()
        st = seg.l2_stats()
        if not st.breaker_open:
            probe = self.keys.key("__shmcache_health__")
            rc = seg.contains(probe, TIER_L2)
            if rc in (OK, E_NOTFOUND):
                self.logs.state("redis", False)
            elif rc in (E_L2_UNAVAILABLE, E_L2_REPLY):
                self._l2_failure(rc)
            st = seg.l2_stats()
        return st

    # ---- outcomes --------------------------------------------------------------------------------
    def _lock_timeout(self, key):
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

    def _undecodable(self, seg, key, served, err):
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


def _show(key, limit=80):
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    return repr(text if len(text) <= limit else text[:limit] + "...")


# ---- fork --------------------------------------------------------------------------------------
_FORK_AWARE = weakref.WeakSet()


def _after_fork_in_child():
    for core in list(_FORK_AWARE):
        core._open_lock = threading.Lock()
        if core._segment is not None:
            core._segment.after_fork_in_child()
        core.counters.after_fork_in_child()
        core.logs.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
