"""_flight.py - the stampede options of @cached: single flight, stale-while-revalidate, XFetch
early refresh and the cross-host Redis lock, over the library's shmc_fetch (docs/stampede.md).

When a hot key expires, every worker that asks for it misses at once and recomputes it. With
these options a cached call goes through shmc_fetch instead of a get, and the library decides
what each caller does:

  HIT, STALE                 the value (STALE: past its TTL but within stale_ttl, while another
                             caller refreshes it): returned at once;
  STALE_REFRESH,             the value, returned at once, and this caller holds the lease: the
  EARLY_REFRESH              function runs again in the background (an asyncio task, or a
                             thread for a sync function) and its result replaces the value;
  COMPUTE                    no value, this caller holds the lease: it calls the function and
                             stores the result with shmc_fetch_complete, which also releases the
                             lease, so the callers waiting for it (in any process of the host)
                             get the value at once;
  COMPUTE_UNLEASED           no value and no lease (it waited wait_timeout, or every lease slot
                             of the stripe was taken): it computes as a plain @cached would.
A function that raises, or returns None without cache_none, gives the lease back
(shmc_fetch_abandon): the next waiter takes it and calls the function itself.

Where it waits. A caller waits only on a miss while another caller computes the value, at most
wait_timeout (2 x lease_timeout by default). A sync function waits in its own thread, inside the
library. An async function never blocks the event loop: the first shmc_fetch is made inline with
SHMC_FETCH_NO_WAIT, which settles from L1 alone everything that needs no wait and no Redis (a
hit costs about what a get does); only its BUSY answer sends the same fetch, without the flag,
to a pool of waiting threads of the process (apart from the manager's pool, which stores use:
a long wait never holds up a store). Coroutines of one process that want the same key meanwhile
wait for that one call (an asyncio future, within the same wait bound) and then look again, so a
process uses one thread per key however many requests wait for it. Whatever may reach Redis (a
store with Redis, the release of a lease holding the Redis lock) runs off the loop too.

Leases always end: a lease this process holds is given back when its cache is closed
(CacheCore.close), and a store that ends a lease is never cancelled with its caller.

Values are stored in the usual envelope under the usual key, so get(), the CLI and a plain
@cached on the same key read them; a stale value is visible to shmc_fetch only.
"""
import asyncio
import concurrent.futures
import math
import os
import threading
import time
import weakref

from . import _ffi
from ._core import MISS
from ._envelope import encode_into
from ._ffi import (E_LOCK_TIMEOUT, FETCH_BUSY, FETCH_COMPUTE_UNLEASED, FETCH_EARLY_REFRESH,
                   FETCH_HIT, FETCH_L2_LOCK, FETCH_NO_WAIT, FETCH_STALE_REFRESH, OK, TIER_L1,
                   TIER_L2)
from ._telemetry import log
from .errors import ValueTooLargeError, make_error

_MAX_LEASE_S = 3600  # the library's bound on lease_ms (one hour)
_REFRESH_OUTCOMES = (FETCH_STALE_REFRESH, FETCH_EARLY_REFRESH)


def _seconds(value, what, allow_zero):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{what} must be a number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero) or math.isinf(value):
        raise ValueError(f"{what} must be {'>= 0' if allow_zero else '> 0'} seconds and finite, "
                         f"got {value}")
    return value


class FlightPolicy:
    """The stampede options of one decorated function, checked when it is decorated.

    single_flight  one computation per key per host (None: on if any other option is given);
    stale_ttl      seconds after the TTL during which the old value is served at once while one
                   caller refreshes it (stale-while-revalidate);
    early_refresh  XFetch: True (beta 1.0) or a beta > 0; hits close to expiry refresh early,
                   with a probability that grows with the recorded compute time;
    lease_timeout  how long a computation may take before another caller takes over (5 s);
    wait_timeout   how long a caller waits for another's computation (2 x lease_timeout);
    cross_host_lock  with Redis: one host computes for all (SET NX PX in Redis).
    """

    __slots__ = ("enabled", "stale_ms", "beta", "lease_ms", "wait_ms", "cross_host", "_options",
                 "_last")

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
        self.enabled = bool(single_flight) or bool(given)
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
        self._last = (None, None, None, None)  # (core, has_l2, (ttl, tier), refs): the last used

    def wait_seconds(self):
        """The bound on a wait for another caller's computation, in seconds."""
        return (self.wait_ms or 2 * self.lease_ms) / 1000

    def options(self, core, ttl, tier):
        """(NO_WAIT options ref, waiting options ref, tiers) for a call on core's cache. The
        structures are made once per cache (and again if it gains or loses Redis)."""
        has_l2 = core.has_l2
        last = self._last
        if last[0] is core and last[1] == has_l2 and last[2] == (ttl, tier):
            return last[3]
        made = self._options.get(core)
        if made is not None and made[0] == has_l2 and made[1] == (ttl, tier):
            self._last = (core, has_l2, (ttl, tier), made[2])
            return made[2]
        tiers = core.tiers(tier)
        if not tiers & TIER_L1:
            raise ValueError("single flight keeps its leases in the shared-memory tier: "
                             f"tier={tier!r} leaves it out (use the default tier or 'both')")
        if self.cross_host and not tiers & TIER_L2:
            raise ValueError("cross_host_lock=True needs Redis (redis_url) and a tier that "
                             "includes it")
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
        self._last = (core, has_l2, (ttl, tier), refs)
        return refs


# ---- one call ------------------------------------------------------------------------------------
class _Results(threading.local):
    def __init__(self):
        self.result = _ffi.FetchResult()
        self.ref = _ffi.ctypes.byref(self.result)


_results = _Results()


def fetch(core, key, opts_ref):
    """shmc_fetch on core's segment: (outcome, lease, value or MISS). A value that does not
    decode is MISS with the outcome kept (the caller computes; a lease it holds is its own)."""
    seg = core.segment()
    st = _results
    res = st.result
    rc, raw = seg.fetch(key, opts_ref, res, st.ref)
    if rc != OK:
        raise make_error(rc, f"{_ffi.error_message(rc)} (key {key[:80]!r})")
    outcome, lease = res.outcome, res.lease
    if lease:
        core.held_leases.add((key, lease))  # given back by close() if still held then
    if outcome > FETCH_EARLY_REFRESH:
        if outcome != FETCH_BUSY:
            core.counters.add("misses")
        return outcome, lease, MISS
    served = TIER_L2 if res.served_by == TIER_L2 else TIER_L1
    if served == TIER_L2:
        core.logs.state("redis", False)  # Redis answered
    return outcome, lease, core.decoded(seg, key, served, raw, True)


def complete(core, key, value, compute_ms, opts_ref, tiers, lease):
    """Store value under key and release the lease (0: none). True if stored. Raises what a set
    raises (TypeError for a value the serializer cannot encode, ValueTooLargeError), after
    giving the lease back."""
    seg = core.segment()
    try:
        serializer, payload = core.codec.dumps(value)
        buf, n = encode_into(serializer, payload, core.threshold)
        if n > seg.max_value_len:
            raise ValueTooLargeError(
                _ffi.E_VALUE_TOO_LARGE,
                f"value of {n} bytes as stored is over this segment's limit of "
                f"{seg.max_value_len} bytes (max_value_len); not cached (key {key[:80]!r})")
    except BaseException:
        abandon(core, key, lease)
        raise
    rc = seg.fetch_complete(key, buf, n, compute_ms, opts_ref, lease)  # ends the lease
    core.held_leases.discard((key, lease))
    return core.stored(rc, key, tiers)


def abandon(core, key, lease):
    """Give the lease back without a value, if one is held; never raises (the lease then ends at
    its deadline, lease_timeout after it was granted)."""
    if not lease:
        return
    core.held_leases.discard((key, lease))
    try:
        rc = core.segment().fetch_abandon(key, lease)
        if rc not in (OK, E_LOCK_TIMEOUT):
            log.debug("shmcache: abandoning a lease failed: %s", _ffi.error_message(rc))
    except Exception as e:  # a stopped cache: the lease ends at its deadline
        log.debug("shmcache: abandoning a lease failed: %s", e)


def compute_ms_since(start):
    """Milliseconds since start (time.monotonic()), at least 1: XFetch needs a positive cost."""
    return max(1, min(int(math.ceil((time.monotonic() - start) * 1000)), 2 ** 32 - 1))


def _store(core, key, result, compute_ms, opts_ref, tiers, lease, cache_none, too_large):
    if result is None and not cache_none:
        abandon(core, key, lease)
        return
    try:
        complete(core, key, result, compute_ms, opts_ref, tiers, lease)
    except ValueTooLargeError as e:
        too_large(e)


# ---- sync ----------------------------------------------------------------------------------------
def call_sync(core, policy, key, func, args, kwargs, ttl, tier, cache_none, too_large):
    """One call of a sync function under policy (see the module docstring)."""
    k = core.keys.key(key)
    _, wait_ref, tiers = policy.options(core, ttl, tier)
    outcome, lease, value = fetch(core, k, wait_ref)
    if value is not MISS:
        if outcome in _REFRESH_OUTCOMES:
            _refresh_in_thread(core, k, func, args, kwargs, wait_ref, tiers, lease, cache_none,
                               too_large)
        return value
    start = time.monotonic()
    try:
        result = func(*args, **kwargs)
    except BaseException:
        abandon(core, k, lease)
        raise
    _store(core, k, result, compute_ms_since(start), wait_ref, tiers, lease, cache_none,
           too_large)
    return result


class _ProcessPool:
    """A thread pool of this process, made on first use and made again in a forked child (the
    parent's threads do not exist there)."""

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

    def after_fork_in_child(self):
        self._lock = threading.Lock()  # a parent thread may have held it at fork


# Background refreshes of sync functions and lease releases that may need Redis.
_background_pool = _ProcessPool("shmcache-refresh", 4)
# Async callers waiting for another's computation: one thread per key waited for, per process
# (coroutines of the process that want the same key wait for that thread's call).
_wait_pool = _ProcessPool("shmcache-wait", 32)


def _refresh_in_thread(core, k, func, args, kwargs, opts_ref, tiers, lease, cache_none,
                       too_large):
    def refresh():
        start = time.monotonic()
        try:
            result = func(*args, **kwargs)
        except BaseException as e:
            abandon(core, k, lease)
            log.warning("shmcache: background refresh of key %r failed: %r", k[:80], e)
            return
        try:
            _store(core, k, result, compute_ms_since(start), opts_ref, tiers, lease, cache_none,
                   too_large)
        except Exception as e:
            log.warning("shmcache: background refresh of key %r not stored: %r", k[:80], e)

    try:
        _background_pool.get().submit(refresh)
    except RuntimeError:  # interpreter shutting down: no refresh, the lease ends at its deadline
        abandon(core, k, lease)


# ---- async ---------------------------------------------------------------------------------------
# Per event loop, the keys some coroutine of this process is working on (waiting for in a thread,
# or computing under the lease), keyed (cache core, stored key), each with the future the others
# wait for.
_working = weakref.WeakKeyDictionary()
_tasks = set()  # background refreshes: the loop keeps only weak references to tasks


async def call_async(manager, policy, key, func, args, kwargs, ttl, tier, cache_none, too_large):
    """One call of an async function under policy (see the module docstring)."""
    core = manager._core
    if not core.is_open:
        await manager._off_loop(core.segment)  # opening may wait (creation by another process)
    k = core.keys.key(key)
    nowait_ref, wait_ref, tiers = policy.options(core, ttl, tier)
    outcome, lease, value = fetch(core, k, nowait_ref)  # inline: never blocks
    if outcome == FETCH_HIT and value is not MISS:
        return value  # the common case
    loop = asyncio.get_running_loop()
    working = _working.get(loop)
    if working is None:
        working = _working[loop] = {}
    wk = (core, k)
    join_deadline = None
    while outcome == FETCH_BUSY:
        other = working.get(wk)
        if other is not None:
            # A coroutine of this process is on this key: wait for it (within the wait bound,
            # as a wait for another process would be), then look again.
            core.counters.add("flight_joined")
            if join_deadline is None:
                join_deadline = loop.time() + policy.wait_seconds()
            try:
                await asyncio.wait_for(asyncio.shield(other), join_deadline - loop.time())
            except asyncio.TimeoutError:
                outcome, lease, value = FETCH_COMPUTE_UNLEASED, 0, MISS
                break
            outcome, lease, value = fetch(core, k, nowait_ref)
            continue
        done = working[wk] = loop.create_future()
        try:
            outcome, lease, value = await _waiting_fetch(core, k, wait_ref)
        except BaseException:
            _finish(working, wk, done)
            raise
        if value is MISS:  # this caller computes; the others of this process wait for it
            return await _compute_async(core, k, func, args, kwargs, wait_ref, tiers, lease,
                                        cache_none, too_large, manager, working, wk, done)
        _finish(working, wk, done)
    if value is not MISS:
        if outcome in _REFRESH_OUTCOMES:
            task = loop.create_task(_refresh_async(core, k, func, args, kwargs, wait_ref, tiers,
                                                   lease, cache_none, too_large, manager))
            _tasks.add(task)
            task.add_done_callback(_tasks.discard)
            # A task cancelled before it ran (its loop shut down) still ends its lease.
            task.add_done_callback(lambda t: t.cancelled() and _abandon_soon(core, k, lease))
        return value
    done = None
    if lease and wk not in working:
        done = working[wk] = loop.create_future()
    return await _compute_async(core, k, func, args, kwargs, wait_ref, tiers, lease, cache_none,
                                too_large, manager, working, wk, done)


async def _waiting_fetch(core, k, opts_ref):
    """fetch() in this process's waiting threads (their own pool: a wait, up to wait_timeout,
    must never hold a thread that a store needs). If the caller is cancelled meanwhile (a client
    went away), a lease the fetch still obtains is given back at once: waiters must not wait for
    a computation nobody will make."""
    cf = _wait_pool.get().submit(fetch, core, k, opts_ref)
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
    """abandon() without waiting: with Redis, a lease may hold a Redis lock whose release is a
    round trip, so it is made in a background thread, never on the event loop."""
    if not lease:
        return
    if core.has_l2:
        try:
            _background_pool.get().submit(abandon, core, k, lease)
            return
        except RuntimeError:  # shutting down: give it back here
            pass
    abandon(core, k, lease)


async def _compute_async(core, k, func, args, kwargs, opts_ref, tiers, lease, cache_none,
                         too_large, manager, working, wk, done):
    try:
        start = time.monotonic()
        try:
            result = await func(*args, **kwargs)
        except BaseException:
            _abandon_soon(core, k, lease)
            raise
        await _store_async(core, k, result, compute_ms_since(start), opts_ref, tiers, lease,
                           cache_none, too_large, manager)
        return result
    finally:
        _finish(working, wk, done)


async def _store_async(core, k, result, compute_ms, opts_ref, tiers, lease, cache_none,
                       too_large, manager):
    if tiers & TIER_L2 or (lease and core.has_l2):
        # Redis is written (or its lock released) in the same call: off the event loop, and
        # shielded: a caller cancelled meanwhile must not cancel the store, which ends the lease.
        cf = manager._executor().submit(_store, core, k, result, compute_ms, opts_ref, tiers,
                                        lease, cache_none, too_large)
        await asyncio.shield(asyncio.wrap_future(cf))
    else:
        _store(core, k, result, compute_ms, opts_ref, tiers, lease, cache_none, too_large)


async def _refresh_async(core, k, func, args, kwargs, opts_ref, tiers, lease, cache_none,
                         too_large, manager):
    start = time.monotonic()
    try:
        result = await func(*args, **kwargs)
    except BaseException as e:
        _abandon_soon(core, k, lease)
        if not isinstance(e, Exception):
            raise
        log.warning("shmcache: background refresh of key %r failed: %r", k[:80], e)
        return
    try:
        await _store_async(core, k, result, compute_ms_since(start), opts_ref, tiers, lease,
                           cache_none, too_large, manager)
    except Exception as e:
        log.warning("shmcache: background refresh of key %r not stored: %r", k[:80], e)


def _after_fork_in_child():
    _background_pool.after_fork_in_child()
    _wait_pool.after_fork_in_child()
    _working.clear()  # the parent's loops and futures
    _tasks.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
