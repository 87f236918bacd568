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

The hot path. `fast_get(key, default=None, tier=None)` and `fast_set(key, value, ttl=None,
tier=None)` are SyncCacheManager's get and set (which takes them as its own, see sync.py), and
what CacheManager calls for an L1-only get or set with the default tier: get_value/set_value
below, or, once open, closures made by _make_get/_make_l1_set (at the end of this file), which
do the same, the common case in one function each: get when the default tiers are L1 or
L1+L2, set when they are L1 alone. With L1+L2 by default, `l1_step` is CacheManager's inline L1
part of a get (the Redis part runs in its thread pool).

Local decoded-object reuse (config.local_cache_size > 0): `local` maps a key, as the caller gave it
(str or bytes, before the namespace), to (its stored key, that key's length as a size_t argument,
the stored bytes, the object decoded from them). A get whose stored bytes are byte for byte those
of the entry returns the entry's object without decoding: the bytes are compared whole, so a
changed value (set by any process, or copied from Redis) is never missed. Keyed by the caller's key
so that a hit needs neither encoding the key nor hashing new bytes (a str keeps its hash); every
insertion uses the caller's key, so each dict key always maps to the one stored key it stands for.
At most local_cache_size keys; when full, the key decoded longest ago goes first. Emptied on close
and in a forked child.

After fork() the child keeps using the same handle (the library supports it), but this object's
locks and counters are made fresh in the child (os.register_at_fork below).
"""
import collections
import os
import threading
import weakref

from . import _buffers, _ffi
from ._envelope import HEADERS
from ._ffi import (E_BAD_ENVELOPE, E_BUFFER_TOO_SMALL, E_L2_REPLY, E_L2_UNAVAILABLE,
                   E_LOCK_TIMEOUT, E_NOTFOUND, ENVELOPE_MAGIC, OK, TIER_BOTH, TIER_L1, TIER_L2, hot)
from ._segment import Segment, raise_code, unwrap, validate_pattern
from ._telemetry import Counters, LogDiscipline, log
from .config import CacheStrategy, CacheTier
from .errors import ShmcacheError, make_error
from .keys import KeySpace
from .serialization import Codec, UndecodableValue

MISS = object()  # lookup() result for "no value"; None is a value that can be cached
_LOCAL_KEY_TYPES = (str, bytes)  # keys `local` holds: hashable, immutable, never reinterpreted


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
        self.threshold = config.compression_threshold if config.enable_compression else 0
        self.l1_ttl_ms = seconds_to_ms(config.memory_cache_ttl, "memory_cache_ttl")
        self._l2_ttl_ms = seconds_to_ms(config.redis_ttl, "redis_ttl")
        self.local = collections.OrderedDict() if config.local_cache_size else None
        self._local_max = config.local_cache_size
        self._default_tiers = None  # the tier mask of calls that name none; known at open
        self._segment = None
        self._state = _Lifecycle.NEW
        self._open_lock = threading.Lock()
        self._facades = weakref.WeakSet()
        # Single-flight leases this process holds now, as (stored key, lease): given back by
        # close(), so that stopping a worker mid-computation never leaves the host's other
        # callers waiting for a value that will not come (see _flight).
        self.held_leases = set()
        self._disarm()
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
            self._default_tiers = self.tiers()
            self._arm(seg)
            return seg

    def close(self):
        """Close the handle once every call in flight has returned. A later call raises until
        open() is called again."""
        with self._open_lock:
            seg, self._segment = self._segment, None
            if self._state == _Lifecycle.OPEN:
                self._state = _Lifecycle.CLOSED
            self._disarm()
        if seg is not None:
            self._give_back_leases(seg)
            seg.close()
        if self.local is not None:
            self.local.clear()

    def _give_back_leases(self, seg):
        while self.held_leases:
            try:
                key, lease = self.held_leases.pop()
            except KeyError:  # emptied by a finishing computation meanwhile
                break
            try:
                seg.fetch_abandon(key, lease)
            except Exception:  # bounded by its deadline anyway
                pass

    def _arm(self, seg):
        """Install the hot path for seg. REQUIRES: _open_lock held, seg open."""
        tiers = self._default_tiers
        if tiers == TIER_L1:
            self._install(_make_get(self, seg, TIER_L1), _make_l1_set(self, seg), True, None)
        elif tiers == TIER_BOTH:
            # Sets go to Redis first anyway: the general set_value is no slower than Redis.
            self._install(_make_get(self, seg, TIER_BOTH), self.set_value, False,
                          _make_get(self, seg, TIER_L1, final=False))

    def _disarm(self):
        self._install(self.get_value, self.set_value, False, None)

    def _install(self, get, set, l1_only, l1_step):
        self.fast_get, self.fast_set = get, set
        self.l1_only = l1_only  # a get with the default tier never needs Redis
        self.l1_step = l1_step  # with L1+L2 by default: CacheManager's inline L1 part, or None
        for facade in list(self._facades):
            facade._use(get, set)

    def bind_facade(self, facade):
        """Call facade._use(get, set) with the current fast_get and fast_set, now and each time
        they change: SyncCacheManager takes them as its own get and set (see sync.py)."""
        self._facades.add(facade)
        facade._use(self.fast_get, self.fast_set)

    def get_value(self, key, default=None, tier=None):
        """SyncCacheManager.get: the value of key (str or bytes, before the namespace) in the
        tiers (the default ones for None), or default. fast_get when not armed."""
        value = self.lookup(self.keys.key(key), self.tiers(tier), True, key)
        return default if value is MISS else value

    def set_value(self, key, value, ttl=None, tier=None):
        """SyncCacheManager.set: store value under key. fast_set when not armed."""
        return self.store(self.keys.key(key), value, ttl, self.tiers(tier))

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
        if tier is None:
            if self._default_tiers is not None:
                return self._default_tiers
            wanted = self.config.cache_tier
        else:
            wanted = CacheTier.parse(tier)
        available = TIER_BOTH if self.has_l2 else TIER_L1
        if self._segment is None and self.config.l2_enabled:
            available = TIER_BOTH  # not open yet: it will have L2 once opened
        return int(wanted) & available

    def ttls(self, ttl):
        """(l1_ttl_ms, l2_ttl_ms): the given TTL for both tiers, else each tier's default."""
        if ttl is None:
            return self.l1_ttl_ms, self._l2_ttl_ms
        ms = seconds_to_ms(ttl)
        return ms, ms

    @property
    def fill_ttl_ms(self):
        return self.l1_ttl_ms

    # ---- operations ------------------------------------------------------------------------------
    def lookup(self, key, tiers, final=True, local_key=None):
        """The decoded value of key (stored key bytes) in the tiers, or MISS. final=False: an L1
        step that a tiered lookup will follow, so a miss here is not yet counted as one.
        local_key: the key as the caller gave it (before the namespace), under which `local`
        keeps decoded values if it is a str or bytes; None: `local` is not used."""
        if not tiers:
            return self._miss(final)
        seg = self.segment()
        rc, served, raw = seg.read_envelope(key, tiers, self.l1_ttl_ms)
        if rc != OK:
            return self.read_failed(rc, seg, key, tiers, final)
        if served == TIER_L2:
            self.logs.state("redis", False)
        if self.local is not None and type(local_key) in _LOCAL_KEY_TYPES:
            entry = self.local.get(local_key)
            if entry is not None and entry[2] == raw:
                self.counters.add("hits_l1" if served == TIER_L1 else "hits_l2")
                return entry[3]
        return self.decoded(seg, key, served, raw, final, local_key)

    def decoded(self, seg, key, served, raw, final, local_key=None):
        """The value of the stored bytes raw of key (served by that tier), or MISS for a value
        that is not an envelope or does not decode (counted, logged, removed if damaged).
        Remembered in `local` under local_key, when given and `local` is on."""
        rc, serializer, payload = unwrap(raw)
        if rc != OK:
            return self.read_failed(rc, seg, key, served, final)
        try:
            value = self.codec.loads(serializer, payload)
        except UndecodableValue as e:
            self.undecodable(seg, key, served, e)
            return self._miss(final)
        if self.local is not None and type(local_key) in _LOCAL_KEY_TYPES:
            self.remember(local_key, (key, _ffi.size_t_of(len(key)), raw, value))
        self.counters.add("hits_l1" if served == TIER_L1 else "hits_l2")
        return value

    def remember(self, local_key, entry):
        """Keep entry, (stored key, its length as a size_t argument, stored bytes, value), under
        local_key as the newest; drop
        the oldest beyond the bound. Each step is one atomic operation under the GIL, so threads
        may race here freely: at worst an entry is replaced by an equally valid one, or the
        bound is briefly passed."""
        local = self.local
        local.pop(local_key, None)
        local[local_key] = entry
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
        rc = self.segment().write(key, serializer, payload, self.threshold, l1_ttl, l2_ttl,
                                  tiers)
        return self.stored(rc, key, tiers)

    def stored(self, rc, key, tiers):
        """A store's outcome from the library's code: True on OK (counted), else store_failed."""
        if rc == OK:
            self.counters.add("sets")
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
                self.counters.add("sets")
                return True
            return False
        if rc == E_LOCK_TIMEOUT:
            self.lock_timeout(key)
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
            self.lock_timeout(key)
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
            self.lock_timeout(key)
            return False
        if rc in (E_L2_UNAVAILABLE, E_L2_REPLY):
            self._l2_failure(rc)
            return False
        raise_code(rc)

    def stored_pattern(self, pattern):
        """The stored-key pattern (bytes) for pattern; BadPatternError if malformed."""
        from ._segment import validate_pattern
        p = self.keys.pattern(pattern)
        validate_pattern(p)
        return p

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
        """(Stats, Info, L2Stats or None, FlightStats or None) of the segment."""
        seg = self.segment()
        l2 = seg.l2_stats() if with_l2 and seg.has_l2 else None
        return seg.stats(), seg.info(), l2, seg.flight_stats()

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


def _show(key, limit=80):
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    return repr(text if len(text) <= limit else text[:limit] + "...")


# ---- the hot path -------------------------------------------------------------------------------
# get and set on L1 alone, each as one function built when the segment opens.
#
# What a get costs from Python is mostly Python: the foreign call itself is a few hundred
# nanoseconds, and every attribute lookup, method call and argument conversion around it adds tens.
# So for the common call, a manager's get(key) or set(key, value) with the default tier and TTL
# (get on a cache whose default tiers are L1, or L1+L2; set on one whose default tier is L1 alone),
# CacheCore installs closures made here instead of its general methods. Everything they use is
# looked up once, when they are made:
#
#   * the foreign function through _ffi.hot (no argtypes), with argument objects ctypes passes
#     as they are (see _ffi): the handle (Segment.hv), sizes from _ffi's table, this thread's
#     receive buffer, capacity and out-parameter (one thread-local tuple, see _buffers);
#   * the segment's closing protocol (see _segment): next(entered), read `hv`, next(left);
#   * counters as itertools.count objects (next() is atomic under the GIL: exact, no lock);
#   * a non-empty str key is encoded here (after the namespace, if any, as one bytes
#     concatenation); any other key goes through KeySpace.key, which checks and raises;
#   * the envelope: an uncompressed one is checked and sliced here (the format of shmcache.h),
#     the payload decoded straight from the receive buffer; anything else goes to
#     CacheCore.decoded (and _envelope).
#     A set builds an uncompressed envelope itself when compression cannot apply.
#
# With local_cache_size, a get first compares the stored bytes, in the receive buffer, with
# those this process decoded last time for the key (CacheCore.local): equal bytes give the same
# object back, undecoded and uncopied.
#
# Any outcome other than a hit, a miss or a successful store (a closed handle, a value too large
# for the buffer, a compressed or damaged value, a lock timeout, Redis failing, an error to
# raise) is handed to CacheCore's general code, which does what it always did; only the common
# case is here.
# The closures hold the Segment they were made for: CacheCore replaces them when it closes, and a
# call that still reaches an old one finds `hv` None and takes the general path (which reopens or
# says the cache was stopped).

def _make_get(core, seg, tiers, final=True):
    """get(key, default=None, tier=None): get_value() for a cache whose default tier mask is
    tiers: L1 (one shmc_get) or L1+L2 (one shmc_tget, which goes to Redis on an L1 miss).
    final=False: an L1 step that a Redis lookup will follow (CacheManager's, which runs the
    Redis part off the event loop): a miss returns default without being counted yet."""
    head = core.keys.head
    key_of = core.keys.key
    state = _buffers.state()
    entered, left = seg.entered, seg.left
    tiered = tiers != TIER_L1
    shmc_call = hot.shmc_tget if tiered else hot.shmc_get
    tiers_arg, fill_arg = _ffi.u32_of(tiers), _ffi.u64_of(core.l1_ttl_ms)
    sizes, n_sizes, size_t_of = _ffi._SIZES, _ffi.SIZES_CACHED, _ffi.size_t_of
    loads = core.codec.loads
    hits_l1 = core.counters.counter("hits_l1")
    hits_l2 = core.counters.counter("hits_l2")
    misses = core.counters.counter("misses")
    local = core.local
    local_get = local.get if local is not None else None
    decoded = core.decoded
    general = core.lookup
    get_value = core.get_value
    tiers_of = core.tiers
    magic = ENVELOPE_MAGIC

    def get(key, default=None, tier=None):
        if tier is not None and tiers_of(tier) != tiers:  # (naming the default tier is fine)
            return get_value(key, default, tier)
        entry = None
        if local_get is not None:
            try:
                entry = local_get(key)
            except (TypeError, ValueError):  # unhashable: key_of below says what is wrong
                pass
        if entry is not None:
            # What key stands for, encoded and checked when it was remembered.
            k, klen, stored, value = entry
        else:
            if type(key) is str and key:
                k = head + key.encode() if head else key.encode()
            else:
                k = key_of(key)  # bytes, or raises for a wrong type or an empty key
            n = len(k)
            klen = sizes[n] if n < n_sizes else size_t_of(n)
        ref, data, view, cap, out, out_ref, served, served_ref = state.recv  # this thread's
        next(entered)
        try:
            h = seg.hv  # read after next(entered): the closing protocol
            if h is None:
                rc = None
            elif tiered:
                rc = shmc_call(h, k, klen, ref, cap, out_ref, None, None, tiers_arg, fill_arg,
                               served_ref)
            else:
                rc = shmc_call(h, k, klen, ref, cap, out_ref, None, None)
        finally:
            next(left)
        if rc == 0:
            size = out.value
            by = TIER_L1
            if tiered and served.value == TIER_L2:
                by = TIER_L2
                core.logs.state("redis", False)  # Redis answered
            if entry is not None:
                # Byte for byte, in place: no copy out of the buffer for a hit.
                if size == len(stored) and data.startswith(stored):
                    next(hits_l1 if by == TIER_L1 else hits_l2)
                    return value
            elif local_get is None and size > 1 and data[0] == magic and not data[1] & 0xF0:
                try:
                    value = loads(data[1], view[2:size])
                except UndecodableValue as e:
                    core.undecodable(seg, k, by, e)
                    if final:
                        next(misses)
                    return default
                next(hits_l1 if by == TIER_L1 else hits_l2)
                return value
            # Compressed, damaged, or to remember: the general decoder, on a copy.
            value = decoded(seg, k, by, view[:size].tobytes(), final, key)
        elif rc == E_NOTFOUND:
            if tiered:
                core.logs.state("redis", False)  # Redis answered
            if final:
                next(misses)
            return default
        elif rc is None or rc == E_BUFFER_TOO_SMALL:
            value = general(k, tiers, final, key)  # closed (reopens or raises), or larger
        else:  # a lock timeout, Redis failing (a miss, counted and logged), a caller's error
            value = core.read_failed(rc, seg, k, tiers, final)
        return default if value is MISS else value

    return get


def _make_l1_set(core, seg):
    """set(key, value, ttl=None, tier=None): set_value() for a cache whose tiers are L1 only."""
    head = core.keys.head
    key_of = core.keys.key
    entered, left = seg.entered, seg.left
    shmc_set = hot.shmc_set
    sizes, n_sizes, size_t_of = _ffi._SIZES, _ffi.SIZES_CACHED, _ffi.size_t_of
    dumps = core.codec.dumps
    sets = core.counters.counter("sets")
    # Below the threshold the envelope is the header and the payload (see _envelope).
    plain_below = core.threshold or float("inf")
    max_len = seg.max_value_len
    flags = _ffi.U32_ZERO
    default_ttl, u64_of = _ffi.u64_of(core.l1_ttl_ms), _ffi.u64_of
    general = core.store_encoded
    set_value = core.set_value
    tiers_of = core.tiers

    def set(key, value, ttl=None, tier=None):
        if tier is not None and tiers_of(tier) != TIER_L1:
            return set_value(key, value, ttl, tier)
        ttl_arg = default_ttl if ttl is None else u64_of(seconds_to_ms(ttl))  # checks ttl
        if type(key) is str and key:
            k = head + key.encode() if head else key.encode()
        else:
            k = key_of(key)
        ser, payload = dumps(value)
        n = len(payload) + 2
        if n - 2 >= plain_below or n > max_len:
            return general(k, (ser, payload), ttl, TIER_L1)  # compresses, or raises too large
        env = HEADERS[ser] + payload
        kn = len(k)
        next(entered)
        try:
            h = seg.hv
            if h is None:
                rc = None
            else:
                rc = shmc_set(h, k, sizes[kn] if kn < n_sizes else size_t_of(kn), env,
                              sizes[n] if n < n_sizes else size_t_of(n), flags, ttl_arg)
        finally:
            next(left)
        if rc == 0:
            next(sets)
            return True
        if rc is None:
            return general(k, (ser, payload), ttl, TIER_L1)  # closed: reopens or raises
        return core.store_failed(rc, k, TIER_L1)

    return set


# ---- fork --------------------------------------------------------------------------------------
_FORK_AWARE = weakref.WeakSet()


def _after_fork_in_child():
    for core in list(_FORK_AWARE):
        core._open_lock = threading.Lock()
        if core._segment is not None:
            core._segment.after_fork_in_child()
        core.counters.after_fork_in_child()
        core.logs.after_fork_in_child()
        if core.local is not None:
            core.local.clear()  # emptied in place: the hot path holds the dict
        core.held_leases = set()  # the parent's: this process must not give them back


os.register_at_fork(after_in_child=_after_fork_in_child)
