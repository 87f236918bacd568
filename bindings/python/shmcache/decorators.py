"""decorators.py - @cached and @cache_invalidate, for async and sync functions alike, with the
stampede protection of @cached (single flight, stale-while-revalidate, XFetch early refresh).

Both decorators take a `resolve` callable that returns the manager to use, called at each call
of the decorated function, not when it is decorated. The module-level shmcache.cached resolves
the default manager (create_cache_manager), so functions can be decorated at import time, before
any manager exists; CacheManager.cached resolves to that manager. A manager gives the decorators
two things: `core` (its CacheCore, which does every get and set) and `off_loop(fn, *args)`
(a coroutine running fn in the manager's threads; the async managers only).

An async function gets an async wrapper (lookups in L1 inline, Redis off the event loop); a sync
function a sync wrapper (for Flask, Django, scripts, or FastAPI's `def` endpoints, which run in
a thread pool). Do not call a sync cached function from inside a coroutine when Redis is
configured: on an L1 miss it waits for Redis on the event loop's thread.

@cached: a hit returns the stored value, as the type the function returned (the return
annotation rebuilds it, see _returns; a result that would come back different raises TypeError
at the miss, before anything is stored); a miss calls the function and stores its result
(unless it is None and cache_none is False: "nothing found" is not cached by default). A result
too large for the cache is returned uncached, with a warning logged once a minute (with Redis in
the tiers, a result too large for L1 alone is stored in Redis).

Keys (see keys.py): every argument is part of the key, `self` included (an instance needs a
stable key: __cache_key__(), a dataclass or a pydantic model; ignore_self=True leaves it out).

Stampedes (docs/stampede.md). single_flight is on by default: when a key is missing, one caller
per host computes it while the others (in any process) wait for its value, at most
wait_timeout, then compute themselves. The library's shmc_fetch decides what each caller does:

  HIT, STALE                 the value (STALE: past its TTL but within stale_ttl, while another
                             caller refreshes it): returned at once;
  STALE_REFRESH,             the value, returned at once, and this caller holds the lease: the
  EARLY_REFRESH              function runs again in the background (an asyncio task, or a
                             thread for a sync function) and its result replaces the value;
  COMPUTE                    no value, this caller holds the lease: it calls the function and
                             stores the result with shmc_fetch_complete, which also releases the
                             lease, so the callers waiting for it get the value at once;
  COMPUTE_UNLEASED           no value and no lease (it waited wait_timeout, or every lease slot
                             of the stripe was taken): it computes as a plain @cached would.
A function that raises, or returns None without cache_none, gives the lease back
(shmc_fetch_abandon): the next waiter takes it and calls the function itself. Options:
single_flight=False (a plain cache: every missing caller computes), stale_ttl=S (serve the old
value for S seconds after the TTL while one caller refreshes it), early_refresh=True or a beta
(XFetch), lease_timeout (5 s) and wait_timeout (2 x lease) bound a computation and a wait,
cross_host_lock=True (with Redis) makes one host compute for all. Single flight keeps its
leases in shared memory: on a cache whose tiers leave L1 out (Redis only) the default turns it
off, and asking for it explicitly is an error.

Where a call waits. A sync function waits in its own thread, inside the library. An async
function never blocks the event loop: its first shmc_fetch is made inline with
SHMC_FETCH_NO_WAIT, which settles from L1 alone everything that needs no wait and no Redis (a
hit costs about what a get does); only its BUSY answer sends the same fetch, without the flag,
to a pool of waiting threads of the process (apart from the manager's pool, which stores use).
Coroutines of one process that want the same key meanwhile wait for that one call (within the
same wait bound) and then look again, so a process uses one thread per key however many
requests wait for it. Whatever may reach Redis (a store with Redis, the release of a lease
holding the Redis lock) runs off the loop too. Leases always end: a lease this process holds is
given back when its cache is closed (CacheCore.close), and a store that ends a lease is never
cancelled with its caller.

@cache_invalidate: after the function returns or raises (a failed update may have committed
part of its work, and an extra miss is cheap), remove every key matching the patterns. Patterns
may name the function's arguments: "user_profile:{user_id}*"; each value is rendered as in
keys (and glob-escaped). A pattern may also be a callable taking the function's arguments.
Patterns are formatted and checked before the function runs, so a bad pattern fails before any
side effect.
"""
import asyncio
import concurrent.futures
import functools
import inspect
import math
import os
import threading
import time
import weakref

from . import _ffi
from ._core import MISS, log
from ._ffi import (E_LOCK_TIMEOUT, FETCH_BUSY, FETCH_COMPUTE_UNLEASED, FETCH_EARLY_REFRESH,
                   FETCH_HIT, FETCH_L2_LOCK, FETCH_NO_WAIT, FETCH_STALE_REFRESH, OK, TIER_L1,
                   TIER_L2)
from ._returns import Returns
from .config import CacheTier
from .errors import ShmcacheError, ValueTooLargeError, make_error
from .keys import FunctionKeys

_MAX_LEASE_S = 3600  # the library's bound on lease_ms (one hour)
_REFRESH_OUTCOMES = (FETCH_STALE_REFRESH, FETCH_EARLY_REFRESH)


def _check_plain_function(func, what):
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(f"@{what} cannot wrap a generator function ({func.__qualname__}): "
                        "its result is consumed lazily; cache a function returning a list")
    if not callable(func):
        raise TypeError(f"@{what} needs a function, got {type(func).__name__}")


# ---- @cached ---------------------------------------------------------------------------------------
class _Function:
    """What one decorated function needs at each call: its keys, its return type per serializer,
    its stampede policy and options."""

    def __init__(self, func, key_prefix, key_builder, ignore_self, policy, ttl, tier,
                 cache_none):
        self.func = func
        self.keys = FunctionKeys(func, key_prefix, ignore_self=ignore_self)
        self.key_builder = key_builder
        self.policy = policy
        self.ttl, self.tier, self.cache_none = ttl, tier, cache_none
        if ttl is not None:
            _seconds(ttl, "ttl", True)
        self._returns = {}  # serializer name -> Returns
        try:  # an annotation that cannot be rebuilt fails here, at decoration ...
            self._returns["json"] = Returns.of(func, "json")
            self._error = None
        except TypeError as e:  # ... unless the cache turns out to pickle (see returns())
            self._error = e

    def key(self, core, args, kwargs):
        """The key (before the namespace) of one call."""
        if self.key_builder is not None:
            return self.key_builder(*args, **kwargs)
        return self.keys.key(args, kwargs, core.config.key_separator)

    def returns(self, core):
        """The Returns for core's serializer, or None with pickle (which keeps types)."""
        name = core.codec.name
        found = self._returns.get(name)
        if found is not None or name == "pickle":
            return found
        if self._error is not None:
            raise self._error
        found = self._returns[name] = Returns.of(self.func, name)
        return found

    def encode(self, core, result, returns):
        """(serializer, payload) of a result, after checking it comes back as itself: TypeError
        (with the fix) for a result a hit would return differently."""
        encoded = core.codec.dumps(result)
        if returns is not None:
            returns.check(result, core.codec.loads(*encoded))
        return encoded

    def too_large(self, core, err):
        # Rate-limited like the core's own events: a function whose results are always too
        # large would otherwise log on every call.
        core.logs.event(f"too-large:{self.func.__qualname__}",
                        f"result of {self.func.__qualname__} not cached: {err}")

    def not_stored(self, core, err):
        core.logs.event(f"not-stored:{self.func.__qualname__}",
                        f"result of {self.func.__qualname__} not cached: {err}")

    def storable(self, result):
        return result is not None or self.cache_none


def cached(resolve, ttl=None, key_prefix=None, tier=None, key_builder=None, cache_none=False, *,
           single_flight=None, stale_ttl=None, early_refresh=None, lease_timeout=None,
           wait_timeout=None, cross_host_lock=False, ignore_self=False):
    """The decorator; see the module docstring. key_builder(*args, **kwargs) -> str replaces
    the automatic key (the namespace is still applied)."""
    policy = FlightPolicy(single_flight, stale_ttl, early_refresh, lease_timeout, wait_timeout,
                          cross_host_lock)

    def decorate(func):
        _check_plain_function(func, "cached")
        fn = _Function(func, key_prefix, key_builder, ignore_self, policy, ttl, tier, cache_none)

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def wrapper(*args, **kwargs):
                manager = resolve()
                core = manager.core
                key = fn.key(core, args, kwargs)
                returns = fn.returns(core)
                revive = returns.revive if returns is not None else None
                tiers = core.default_tiers if tier is None else core.tiers(tier)
                if policy.applies(tiers):
                    first = None
                    if core.is_open:  # the first fetch, inline: a hit returns from here
                        first = _fetch(core, key, core.stored_key(key),
                                       policy.options(core, ttl, tier)[0], revive)
                        if first[0] == FETCH_HIT and first[2] is not MISS:
                            return first[2]
                    return await _call_async(manager, fn, key, args, kwargs, tiers, returns,
                                             first)
                value = await core.alookup(manager.off_loop, key, tiers, revive)
                if value is not MISS:
                    return value
                result = await func(*args, **kwargs)
                if fn.storable(result):
                    try:
                        encoded = fn.encode(core, result, returns)
                        await core.astore_encoded(manager.off_loop, core.stored_key(key),
                                                  encoded, ttl, tiers)
                    except ValueTooLargeError as e:
                        fn.too_large(core, e)
                    except ShmcacheError as e:  # stopped meanwhile: the result still counts
                        fn.not_stored(core, e)
                return result
        else:
            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                core = resolve().core
                key = fn.key(core, args, kwargs)
                returns = fn.returns(core)
                tiers = core.default_tiers if tier is None else core.tiers(tier)
                if policy.applies(tiers):
                    return _call_sync(core, fn, key, args, kwargs, tiers, returns)
                value = core.lookup(key, tiers, True,
                                    returns.revive if returns is not None else None)
                if value is not MISS:
                    return value
                result = func(*args, **kwargs)
                if fn.storable(result):
                    try:
                        core.store_encoded(core.stored_key(key), fn.encode(core, result, returns),
                                           ttl, tiers)
                    except ValueTooLargeError as e:
                        fn.too_large(core, e)
                    except ShmcacheError as e:  # stopped meanwhile: the result still counts
                        fn.not_stored(core, e)
                return result

        def cache_key(*args, **kwargs):
            """The key (before the namespace) that a call with these arguments uses."""
            return fn.key(resolve().core, args, kwargs)

        wrapper.cache_key = cache_key
        wrapper.cache_key_prefix = fn.keys.prefix
        return wrapper

    return decorate


# ---- single flight: the policy -------------------------------------------------------------------
def _seconds(value, what, allow_zero):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{what} must be a number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero) or math.isinf(value):
        raise ValueError(f"{what} must be {'>= 0' if allow_zero else '> 0'} seconds and finite, "
                         f"got {value}")
    return value


def _dead_ref():
    return None


class FlightPolicy:
    """The stampede options of one decorated function, checked when it is decorated.

    single_flight  one computation per key per host (None: on, unless the call's tiers leave
                   out the shared memory its leases live in; False: off);
    stale_ttl      seconds after the TTL during which the old value is served at once while one
                   caller refreshes it (stale-while-revalidate);
    early_refresh  XFetch: True (beta 1.0) or a beta > 0; hits close to expiry refresh early,
                   with a probability that grows with the recorded compute time;
    lease_timeout  how long a computation may take before another caller takes over (5 s);
    wait_timeout   how long a caller waits for another's computation (2 x lease_timeout);
    cross_host_lock  with Redis: one host computes for all (SET NX PX in Redis).
    """

    __slots__ = ("enabled", "explicit", "stale_ms", "beta", "lease_ms", "wait_ms", "cross_host",
                 "_options", "_last")

    def __init__(self, single_flight=None, stale_ttl=None, early_refresh=None,
                 lease_timeout=None, wait_timeout=None, cross_host_lock=False):
        others = {"stale_ttl": stale_ttl, "early_refresh": early_refresh,
                  "lease_timeout": lease_timeout, "wait_timeout": wait_timeout,
                  "cross_host_lock": cross_host_lock or None}
        given = [name for name, v in others.items() if v is not None and v is not False]
        if single_flight is not None and not isinstance(single_flight, bool):
            raise TypeError(f"single_flight must be True, False or None, not {single_flight!r}")
        if single_flight is False and given:
            raise ValueError(f"{', '.join(given)} need(s) single_flight; drop "
                             "single_flight=False")
        self.enabled = single_flight is not False
        self.explicit = bool(single_flight) or bool(given)  # asked for: an error if impossible
        self.stale_ms = 0
        if stale_ttl is not None:
            self.stale_ms = int(round(_seconds(stale_ttl, "stale_ttl", True) * 1000))
            if self.stale_ms >= 2 ** 32:
                raise ValueError(f"stale_ttl must be below 49 days, got {stale_ttl}")
        if early_refresh is None or early_refresh is False:
            self.beta = 0.0
        elif early_refresh is True:
            self.beta = 1.0  # the paper's choice
        else:
            self.beta = float(_seconds(early_refresh, "early_refresh (XFetch beta)", False))
        self.lease_ms = 5000
        if lease_timeout is not None:
            _seconds(lease_timeout, "lease_timeout", False)
            if lease_timeout > _MAX_LEASE_S:
                raise ValueError(f"lease_timeout must be at most {_MAX_LEASE_S} s, "
                                 f"got {lease_timeout}")
            self.lease_ms = max(1, int(round(lease_timeout * 1000)))
        self.wait_ms = 0  # the library's default: 2 x lease
        if wait_timeout is not None:
            self.wait_ms = max(1, int(round(_seconds(wait_timeout, "wait_timeout", False) * 1000)))
            if self.wait_ms >= 2 ** 32:
                raise ValueError(f"wait_timeout must be below 49 days, got {wait_timeout}")
        if not isinstance(cross_host_lock, bool):
            raise TypeError(f"cross_host_lock must be True or False, not {cross_host_lock!r}")
        self.cross_host = cross_host_lock
        # Per cache: (has_l2, (ttl, tier), refs), refs as options() returns them.
        self._options = weakref.WeakKeyDictionary()
        # (weak ref to the core, has_l2, (ttl, tier), refs): the last used; weak, so that a
        # decorated function does not keep a stopped manager alive.
        self._last = (_dead_ref, None, None, None)

    def applies(self, tiers):
        """True if a call on these tiers goes through single flight. Its leases live in shared
        memory: tiers without L1 turn the default off, and raise when it was asked for."""
        if not self.enabled:
            return False
        if tiers & TIER_L1:
            if self.cross_host and not tiers & TIER_L2:
                raise ValueError("cross_host_lock=True needs Redis (redis_url) and a tier that "
                                 "includes it")
            return True
        if self.explicit:
            raise ValueError("single flight keeps its leases in the shared-memory tier: this "
                             "call's tiers leave it out (use the default tier or 'both', or "
                             "single_flight=False)")
        return False

    def wait_seconds(self):
        """The bound on a wait for another caller's computation, in seconds."""
        return (self.wait_ms or 2 * self.lease_ms) / 1000

    def options(self, core, ttl, tier):
        """(NO_WAIT options ref, waiting options ref, tiers) for a call on core's cache. The
        structures are made once per cache (and again if it gains or loses Redis)."""
        has_l2 = core.has_l2
        last = self._last
        if last[0]() is core and last[1] == has_l2 and last[2] == (ttl, tier):
            return last[3]
        made = self._options.get(core)
        if made is not None and made[0] == has_l2 and made[1] == (ttl, tier):
            self._last = (weakref.ref(core), has_l2, (ttl, tier), made[2])
            return made[2]
        tiers = core.tiers(tier)
        opts = _ffi.default_fetch_options()
        opts.tiers = tiers
        opts.flags = FETCH_L2_LOCK if self.cross_host else 0
        opts.ttl_ms, opts.l2_ttl_ms = core.ttls(ttl)
        opts.fill_ttl_ms = core.fill_ttl_ms
        opts.stale_ttl_ms = self.stale_ms
        opts.lease_ms = self.lease_ms
        opts.wait_ms = self.wait_ms
        opts.xfetch_beta = self.beta
        nowait = _ffi.FetchOptions.from_buffer_copy(opts)
        nowait.flags |= FETCH_NO_WAIT
        # A byref keeps its structure alive: the refs are all a call needs.
        refs = (_ffi.ctypes.byref(nowait), _ffi.ctypes.byref(opts), tiers)
        self._options[core] = (has_l2, (ttl, tier), refs)
        self._last = (weakref.ref(core), has_l2, (ttl, tier), refs)
        return refs


# ---- single flight: one fetch, one store ---------------------------------------------------------
class _Results(threading.local):
    def __init__(self):
        self.result = _ffi.FetchResult()
        self.ref = _ffi.ctypes.byref(self.result)


_results = _Results()


def _fetch(core, key, k, opts_ref, revive):
    """shmc_fetch of k (the stored form of key) on core's segment: (outcome, lease, value or
    MISS). A value that does not decode is MISS with the outcome kept (the caller computes; a
    lease it holds is its own)."""
    seg = core.segment()
    st = _results
    res = st.result
    rc, got = seg.fetch(k, opts_ref, res, st.ref)
    if rc != OK:
        raise make_error(rc, f"{_ffi.error_message(rc)} (key {k[:80]!r})")
    outcome, lease = res.outcome, res.lease
    if lease:
        core.held_leases.add((k, lease))  # given back by close() if still held then
    if outcome > FETCH_EARLY_REFRESH:
        if outcome != FETCH_BUSY:
            core.counters.add("misses")
        return outcome, lease, MISS
    served = TIER_L2 if res.served_by == TIER_L2 else TIER_L1
    try:
        return outcome, lease, core.received(seg, k, key, served, got, True, revive)
    except BaseException:  # a refresh lease must not outlive a failed decode
        _abandon(core, k, lease)
        raise


def _complete(core, k, encoded, compute_ms, opts_ref, tiers, lease, ttl):
    """Store an encoded value under k and release the lease (0: none). True if stored. Raises
    ValueTooLargeError (after giving the lease back) for a value no tier of the call takes.
    ttl: the function's (None: the tiers' defaults), for a value written outside the lease."""
    seg = core.segment()
    try:
        envelope, n, write_tiers = core.envelope(seg, k, encoded, tiers)
    except BaseException:
        _abandon(core, k, lease)
        raise
    if write_tiers != tiers:  # too large for L1: Redis alone, and the waiters read it there
        try:
            return core.write(seg, k, envelope, n, ttl, tiers, write_tiers)
        finally:
            _abandon(core, k, lease)
    rc = seg.fetch_complete(k, envelope, n, compute_ms, opts_ref, lease)  # ends the lease
    core.held_leases.discard((k, lease))
    return core.stored(rc, k, tiers)


def _abandon(core, k, lease):
    """Give the lease back without a value, if one is held; never raises (the lease then ends at
    its deadline, lease_timeout after it was granted)."""
    if not lease:
        return
    core.held_leases.discard((k, lease))
    try:
        rc = core.segment().fetch_abandon(k, lease)
        if rc not in (OK, E_LOCK_TIMEOUT):
            log.debug("shmcache: abandoning a lease failed: %s", _ffi.error_message(rc))
    except Exception as e:  # a stopped cache: the lease ends at its deadline
        log.debug("shmcache: abandoning a lease failed: %s", e)


def _compute_ms_since(start):
    """Milliseconds since start (time.monotonic()), at least 1: XFetch needs a positive cost."""
    return max(1, min(int(math.ceil((time.monotonic() - start) * 1000)), 2 ** 32 - 1))


def _store(core, fn, k, result, compute_ms, opts_ref, tiers, lease, returns):
    """The end of a computation under a lease: store the result (or give the lease back)."""
    if not fn.storable(result):
        _abandon(core, k, lease)
        return
    try:
        encoded = fn.encode(core, result, returns)
    except BaseException:
        _abandon(core, k, lease)
        raise
    try:
        _complete(core, k, encoded, compute_ms, opts_ref, tiers, lease, fn.ttl)
    except ValueTooLargeError as e:
        fn.too_large(core, e)
    except ShmcacheError as e:  # the cache was stopped meanwhile: the result is still returned
        fn.not_stored(core, e)


# ---- single flight: sync -------------------------------------------------------------------------
def _call_sync(core, fn, key, args, kwargs, tiers, returns):
    """One call of a sync function under its policy (see the module docstring)."""
    k = core.stored_key(key)
    _, wait_ref, tiers = fn.policy.options(core, fn.ttl, fn.tier)
    revive = returns.revive if returns is not None else None
    outcome, lease, value = _fetch(core, key, k, wait_ref, revive)
    if value is not MISS:
        if outcome in _REFRESH_OUTCOMES:
            _refresh_in_thread(core, fn, k, args, kwargs, wait_ref, tiers, lease, returns)
        return value
    start = time.monotonic()
    try:
        result = fn.func(*args, **kwargs)
    except BaseException:
        _abandon(core, k, lease)
        raise
    _store(core, fn, k, result, _compute_ms_since(start), wait_ref, tiers, lease, returns)
    return result


class ProcessPool:
    """A thread pool of this process, made on first use and made again in a forked child (the
    parent's threads do not exist there). Also each CacheManager's pool (manager.py)."""

    def __init__(self, name, threads):
        self._name, self._threads = name, threads
        self._pool, self._pid = None, None
        self._lock = threading.Lock()

    def get(self):
        pid = os.getpid()
        pool = self._pool
        if pool is not None and self._pid == pid:
            return pool
        with self._lock:
            if self._pool is None or self._pid != pid:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self._threads, thread_name_prefix=self._name)
                self._pid = pid
            return self._pool

    def take(self):
        """The pool, forgotten here (the next get() makes a new one), for the caller to shut
        down; None if there is none in this process (a parent's pool: its threads are not
        here)."""
        with self._lock:
            pool, self._pool = self._pool, None
            return pool if self._pid == os.getpid() else None

    def after_fork_in_child(self):
        self._lock = threading.Lock()  # a parent thread may have held it at fork


# Background refreshes of sync functions and lease releases that may need Redis.
_background_pool = ProcessPool("shmcache-refresh", 4)
# Async callers waiting for another's computation: one thread per key waited for, per process
# (coroutines of the process that want the same key wait for that thread's call).
_wait_pool = ProcessPool("shmcache-wait", 32)


def _refresh_in_thread(core, fn, k, args, kwargs, opts_ref, tiers, lease, returns):
    def refresh():
        start = time.monotonic()
        try:
            result = fn.func(*args, **kwargs)
        except BaseException as e:
            _abandon(core, k, lease)
            log.warning("shmcache: background refresh of key %r failed: %r", k[:80], e)
            return
        try:
            _store(core, fn, k, result, _compute_ms_since(start), opts_ref, tiers, lease,
                   returns)
        except Exception as e:
            log.warning("shmcache: background refresh of key %r not stored: %r", k[:80], e)

    token = core.refreshes.add(fn.policy.lease_ms)  # stop() lets it finish (see CacheCore)

    def tracked():
        core.refreshes.running(token)
        try:
            refresh()
        finally:
            core.refreshes.done(token)

    try:
        _background_pool.get().submit(tracked)
    except RuntimeError:  # interpreter shutting down: no refresh, the lease ends at its deadline
        core.refreshes.done(token)
        _abandon(core, k, lease)


# ---- single flight: async ------------------------------------------------------------------------
# Per event loop, the keys some coroutine of this process is working on (waiting for in a thread,
# or computing under the lease), keyed (cache core, stored key), each with the future the others
# wait for.
_working = weakref.WeakKeyDictionary()
_tasks = set()  # background refreshes: the loop keeps only weak references to tasks


async def _call_async(manager, fn, key, args, kwargs, tiers, returns, first=None):
    """One call of an async function under its policy (see the module docstring). first: what
    the wrapper's own inline fetch gave, if it made one (not a hit)."""
    core = manager.core
    if not core.is_open:
        await manager.off_loop(core.segment)  # opening may wait (creation by another process)
    k = core.stored_key(key)
    revive = returns.revive if returns is not None else None
    nowait_ref, wait_ref, tiers = fn.policy.options(core, fn.ttl, fn.tier)
    outcome, lease, value, work = await acquire_async(core, fn.policy, key, k, nowait_ref,
                                                      wait_ref, revive, first)
    if value is not MISS:
        if outcome in _REFRESH_OUTCOMES:
            spawn_refresh(core, k, lease, fn.policy.lease_ms,
                          _refresh_async(manager, fn, k, args, kwargs, wait_ref, tiers, lease,
                                         returns))
        return value
    return await _compute_async(manager, fn, k, args, kwargs, wait_ref, tiers, lease, returns,
                                work)


class Work:
    """A key some coroutine of this process is computing: the others of the process wait for
    finish() (see acquire_async)."""

    __slots__ = ("working", "wk", "done")

    def __init__(self, working, wk, done):
        self.working, self.wk, self.done = working, wk, done

    def finish(self):
        _finish(self.working, self.wk, self.done)


async def acquire_async(core, policy, key, k, nowait_ref, wait_ref, revive, first=None):
    """The single-flight part of an async call, up to what the caller must do:
    (outcome, lease, value, work). A value (not MISS): return it, and with a refresh outcome
    also refresh it under the lease. MISS: compute, store under the lease (0: none), and call
    work.finish() (work may be None) once stored or given up, whatever happens.

    The first fetch is made inline with NO_WAIT (first: one the caller already made). On BUSY,
    a coroutine of this process already on the key is waited for (within the wait bound, as a
    wait for another process would be), then the key is looked at again; otherwise this
    coroutine waits in a thread (_waiting_fetch), and the others of the process wait for it."""
    if first is None:
        first = _fetch(core, key, k, nowait_ref, revive)  # inline: never blocks
    outcome, lease, value = first
    if outcome == FETCH_HIT and value is not MISS:
        return outcome, lease, value, None  # the common case
    loop = asyncio.get_running_loop()
    working = _working.get(loop)
    if working is None:
        working = _working[loop] = {}
    wk = (core, k)
    join_deadline = None
    while outcome == FETCH_BUSY:
        other = working.get(wk)
        if other is not None:
            core.counters.add("flight_joined")
            if join_deadline is None:
                join_deadline = loop.time() + policy.wait_seconds()
            try:
                await asyncio.wait_for(asyncio.shield(other), join_deadline - loop.time())
            except asyncio.TimeoutError:
                outcome, lease, value = FETCH_COMPUTE_UNLEASED, 0, MISS
                break
            outcome, lease, value = _fetch(core, key, k, nowait_ref, revive)
            continue
        done = working[wk] = loop.create_future()
        try:
            outcome, lease, value = await _waiting_fetch(core, key, k, wait_ref, revive)
        except BaseException:
            _finish(working, wk, done)
            raise
        if value is MISS:  # this caller computes; the others of this process wait for it
            return outcome, lease, value, Work(working, wk, done)
        _finish(working, wk, done)
    if value is not MISS:
        return outcome, lease, value, None
    work = None
    if lease and wk not in working:
        work = Work(working, wk, working.setdefault(wk, loop.create_future()))
    return outcome, lease, value, work


def spawn_refresh(core, k, lease, lease_ms, coro):
    """Run a background refresh (a coroutine holding a lease of lease_ms) as a task of the
    running loop. A task cancelled before it ran (its loop shut down) still ends its lease.
    stop() lets it finish first (see CacheCore.refreshes, CacheManager.stop)."""
    task = asyncio.get_running_loop().create_task(coro)
    token = core.refreshes.add(lease_ms, task)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    task.add_done_callback(lambda t: core.refreshes.done(token))
    task.add_done_callback(lambda t: t.cancelled() and _abandon_soon(core, k, lease))
    return task


async def _waiting_fetch(core, key, k, opts_ref, revive):
    """_fetch() in this process's waiting threads (their own pool: a wait, up to wait_timeout,
    must never hold a thread that a store needs). If the caller is cancelled meanwhile (a client
    went away), a lease the fetch still obtains is given back at once: waiters must not wait for
    a computation nobody will make."""
    cf = _wait_pool.get().submit(_fetch, core, key, k, opts_ref, revive)
    try:
        return await asyncio.wrap_future(cf)
    except asyncio.CancelledError:
        def give_back(f):
            if not f.cancelled() and f.exception() is None:
                _abandon_soon(core, k, f.result()[1])
        cf.add_done_callback(give_back)
        raise


def _finish(working, wk, done):
    if done is None:
        return
    if working.get(wk) is done:
        del working[wk]
    if not done.done():
        done.set_result(None)


def _abandon_soon(core, k, lease):
    """_abandon() without waiting: with Redis, a lease may hold a Redis lock whose release is a
    round trip, so it is made in a background thread, never on the event loop."""
    if not lease:
        return
    if core.has_l2:
        try:
            _background_pool.get().submit(_abandon, core, k, lease)
            return
        except RuntimeError:  # shutting down: give it back here
            pass
    _abandon(core, k, lease)


async def _compute_async(manager, fn, k, args, kwargs, opts_ref, tiers, lease, returns, work):
    core = manager.core
    try:
        start = time.monotonic()
        try:
            result = await fn.func(*args, **kwargs)
        except BaseException:
            _abandon_soon(core, k, lease)
            raise
        await _store_async(manager, fn, k, result, _compute_ms_since(start), opts_ref, tiers,
                           lease, returns)
        return result
    finally:
        if work is not None:
            work.finish()


async def _store_async(manager, fn, k, result, compute_ms, opts_ref, tiers, lease, returns):
    core = manager.core
    if tiers & TIER_L2 or (lease and core.has_l2):
        # Redis is written (or its lock released) in the same call: off the event loop, and
        # shielded: a caller cancelled meanwhile must not cancel the store, which ends the lease.
        await asyncio.shield(manager.off_loop(_store, core, fn, k, result, compute_ms, opts_ref,
                                              tiers, lease, returns))
    else:
        _store(core, fn, k, result, compute_ms, opts_ref, tiers, lease, returns)


async def _refresh_async(manager, fn, k, args, kwargs, opts_ref, tiers, lease, returns):
    core = manager.core
    start = time.monotonic()
    try:
        result = await fn.func(*args, **kwargs)
    except BaseException as e:
        _abandon_soon(core, k, lease)
        if not isinstance(e, Exception):
            raise
        log.warning("shmcache: background refresh of key %r failed: %r", k[:80], e)
        return
    try:
        await _store_async(manager, fn, k, result, _compute_ms_since(start), opts_ref, tiers,
                           lease, returns)
    except Exception as e:
        log.warning("shmcache: background refresh of key %r not stored: %r", k[:80], e)


# ---- @cache_invalidate ---------------------------------------------------------------------------
def cache_invalidate(resolve, patterns, tier=None):
    """The decorator; see the module docstring. tier None: every tier the cache has."""
    if not patterns:
        raise TypeError("@cache_invalidate needs at least one pattern")
    for p in patterns:
        if not (isinstance(p, str) or callable(p)):
            raise TypeError(f"@cache_invalidate patterns are str or callables, got {p!r}")
    purge_tier = CacheTier.BOTH if tier is None else CacheTier.parse(tier)

    def decorate(func):
        _check_plain_function(func, "cache_invalidate")
        keys = FunctionKeys(func)

        def prepared(core, args, kwargs):
            found = keys.patterns(patterns, args, kwargs, core.config.key_separator)
            return [core.stored_pattern(p) for p in found]  # checked before any side effect

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args, **kwargs):
                manager = resolve()
                core = manager.core
                todo = prepared(core, args, kwargs)
                try:
                    return await func(*args, **kwargs)
                finally:
                    tiers = core.tiers(purge_tier)
                    for p in todo:
                        await manager.off_loop(core.purge, p, tiers)
            return async_wrapper

        @functools.wraps(func)
        def sync_wrapper(*args, **kwargs):
            core = resolve().core
            todo = prepared(core, args, kwargs)
            try:
                return func(*args, **kwargs)
            finally:
                tiers = core.tiers(purge_tier)
                for p in todo:
                    core.purge(p, tiers)
        return sync_wrapper

    return decorate


def _after_fork_in_child():
    _background_pool.after_fork_in_child()
    _wait_pool.after_fork_in_child()
    _working.clear()  # the parent's loops and futures
    _tasks.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
