"""manager.py - the managers: CacheManager (asyncio, the guide's) and SyncCacheManager, the
process's default manager with the module-level @cached / @cache_invalidate, monitoring, and
warming.

Both managers are thin: every get and set is one CacheCore call (see _core), so the two APIs
cannot drift apart.

CacheManager. Where each call runs:
  * L1 work (shared memory, no I/O; a get is about a microsecond from Python) runs inline on
    the event loop: handing it to a thread would cost more than the lookup itself;
  * anything that may wait on Redis runs in this manager's own thread pool, sized
    redis_max_connections (the library's per-process connection limit, so a thread never waits
    for a connection): a get that missed L1, a set/delete with L2 in the tiers, purges (which
    also walk every stripe), L2 statistics and the health probe. ctypes releases the GIL during
    the C call, so the loop keeps serving while a thread waits on Redis.
Values are serialized on the loop, at the moment set() is called, so a caller that mutates its
object after the await does not change what was stored. start() with Redis configured makes
one bounded probe, so that get_stats()["l2_cache"]["connected"] is true from the start for a
healthy Redis (a Redis that is down does not stop the service from starting).

SyncCacheManager: the same methods without async, for Flask, Django, scripts. Every call runs in
the caller's thread, including the ones that wait on Redis (each bounded by
redis_command_timeout). Two ways to get one: SyncCacheManager(config), with a handle of its own,
or CacheManager.sync, a facade over an async manager's handle for the sync functions of an
otherwise async application (stopping either stops both).

The default manager: the guide's applications create one manager at start-up and decorate
functions all over the code base, at import time, before that manager exists. So the module-
level decorators look the default manager up at each call (get_cache_manager), not when they
are applied.

Monitoring (enable_monitoring): a statistics line in the "shmcache.monitor" log every
monitor_interval seconds, per process: an asyncio task for CacheManager (started by start(), on
the loop that called it), a daemon thread for a standalone SyncCacheManager. Neither survives
fork(); a worker that wants the line starts its manager after the fork (the FastAPI lifespan
does). The most recent statistics are kept in the monitor's `.last`.

Warming (warm_cache): a data source is any of
  * a callable (sync or async) returning one of the below (a coroutine is awaited);
  * an iterable or async iterable (a list, a generator, an async generator, a cursor);
  * a mapping {key: value}.
It yields records: (key, value), (key, value, ttl_seconds), or a mapping
{"key": ..., "value": ..., "ttl": ...} (the record format of `shmcache-cli warm`). ttl None or
absent: the call's ttl, else the tiers' defaults. Records are taken warming_batch_size at a
time; each batch is written with one call into the cache (off the event loop when Redis is
involved), and the event loop gets a turn between batches. A record whose key or value cannot
be stored (too long, too large, not serializable) is skipped, counted and logged; a malformed
record (not a pair, triple or mapping) stops the run with TypeError, because that is a bug in
the source rather than bad data.

fork(): a manager started before fork (gunicorn --preload) works in the child: the thread pool
is recreated on first use in a new process, and the library reconnects to Redis by itself.
"""
import asyncio
import collections.abc
import dataclasses
import inspect
import logging
import os
import threading
import time
import weakref

from . import decorators as _decorators
from ._core import MISS, CacheCore, log, seconds_to_ms
from ._ffi import TIER_L2
from .config import CacheConfig

monitor_log = logging.getLogger("shmcache.monitor")


class CacheManager:
    """Async cache over this host's shared-memory segment, with Redis behind it if configured.

    Use `await start()` / `await stop()`, or `async with CacheManager(config) as cache:`.
    Calls made before start() open the segment on first use.
    """

    def __init__(self, config=None):
        if config is not None and not isinstance(config, CacheConfig):
            raise TypeError(f"config must be a CacheConfig, not {type(config).__name__}")
        self.config = config if config is not None else CacheConfig()
        self.core = CacheCore(self.config)  # what the decorators and the facade call
        self._pool = _decorators.ProcessPool(f"shmcache-{self.config.shm_name}",
                                             self.config.redis_max_connections)
        self._monitor = None
        self._sync = None
        _FORK_AWARE.add(self)

    def __repr__(self):
        state = "open" if self.core.is_open else "closed"
        return f"<CacheManager {self.config.shm_name!r} {state}, l2={self.core.has_l2}>"

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start(self):
        """Open the segment (creating it if needed) and attach Redis; idempotent. With Redis,
        one probe bounded by redis_connect_timeout + redis_command_timeout, whose failure is
        logged and does not stop the start."""
        core = self.core
        if not core.is_open:
            # Opening may wait up to 2 s for another process that is creating the segment.
            await self.off_loop(core.open)
            if core.has_l2:
                await self.off_loop(core.probe_l2)
        if self.config.enable_monitoring:
            if self._monitor is None:
                self._monitor = AsyncMonitor(self.config.shm_name, self.get_stats,
                                             self.config.monitor_interval)
            self._monitor.start()  # (re)starts it on this loop if it is not running here
        return self

    async def stop(self):
        """Stop monitoring, let calls in flight and background refreshes finish (each is
        bounded: a refresh by its lease_timeout), close the handle."""
        if self._monitor is not None:
            monitor, self._monitor = self._monitor, None
            await monitor.stop()
        loop = asyncio.get_running_loop()
        # Off the loop, so that its refresh tasks run meanwhile; before the pool their stores use
        # is shut down.
        await loop.run_in_executor(None, self.core.refreshes.wait)
        pool = self._pool.take()
        if pool is not None:
            await loop.run_in_executor(None, pool.shutdown, True)
        await loop.run_in_executor(None, self.core.close)

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()

    async def off_loop(self, fn, *args):
        """Run fn(*args) in this manager's thread pool (for work that may wait on Redis)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool.get(), fn, *args)

    # ---- the cache -------------------------------------------------------------------------------
    async def get(self, key, default=None, tier=None):
        """The value stored under key, or default. Never raises for a miss of any cause (absent,
        expired, lock timeout, Redis down, damaged or refused value); raises for a key that is
        not str/bytes, empty, or over 4096 bytes with the namespace. A hit of an unchanged value
        returns the same object as the previous hit (local_cache_size): do not mutate it."""
        core = self.core
        tiers = core.default_tiers if tier is None else core.tiers(tier)
        if tiers & TIER_L2:  # L1 inline, then Redis in the pool
            value = await core.alookup(self.off_loop, key, tiers)
        else:  # shared memory alone: inline, no thread hand-off
            value = core.lookup(key, tiers)
        return default if value is MISS else value

    async def set(self, key, value, ttl=None, tier=None):
        """Store value under key. ttl in seconds for every tier written (0: never expires);
        None: memory_cache_ttl in L1 and redis_ttl in L2. Returns True if stored, False if a
        transient failure (a stripe lock timeout) kept it out. With both tiers and Redis down,
        L1 is written and True returned; a value too large for L1 goes to Redis alone. Raises
        KeyTooLongError, ValueTooLargeError (too large for every tier asked), or
        TypeError/ValueError for a value the serializer cannot encode."""
        core = self.core
        return await core.astore(self.off_loop, key, value, ttl, core.tiers(tier))

    async def delete(self, key, tier=None):
        """Remove key; True if some tier held it."""
        core = self.core
        tiers = core.tiers(tier)
        if tiers & TIER_L2:
            return await self.off_loop(core.remove, key, tiers)
        return core.remove(key, tiers)

    async def exists(self, key, tier=None):
        """True if key is live in one of the tiers (counts as a lookup in the statistics)."""
        core = self.core
        tiers = core.tiers(tier)
        if tiers & TIER_L2:
            return await self.off_loop(core.contains, key, tiers)
        return core.contains(key, tiers)

    async def clear_pattern(self, pattern, tier=None):
        """Remove every key matching the glob pattern (`user_profile:*`, `report:2024:1?`,
        `[a-c]*`), in the namespace. Returns how many were removed (the larger of the two
        tiers' counts). Raises BadPatternError for a malformed pattern."""
        core = self.core
        return await self.off_loop(core.purge, core.stored_pattern(pattern), core.tiers(tier))

    async def get_stats(self):
        """Statistics in the guide's shape, plus "segment", "l2_detail", "process" and
        "single_flight" (see _core.build_stats)."""
        if self.config.l2_enabled:
            return await self.off_loop(self.core.stats)
        return self.core.stats()

    async def health_check(self):
        """{"status": healthy|degraded|unhealthy, "l1": {...}, "l2": {...}} (see
        _core.check_health)."""
        if self.config.l2_enabled:
            return await self.off_loop(self.core.health)
        return self.core.health()

    async def warm_cache(self, data_source, ttl=None, tier=None):
        """Load records from data_source (see the module docstring for what it may be), in
        batches of warming_batch_size; returns the number written. Does nothing (returns 0)
        when enable_cache_warming is False."""
        if not self.config.enable_cache_warming:
            self.core.logs.event("warm-disabled", "warm_cache() called with "
                                 "enable_cache_warming=False; nothing loaded")
            return 0
        report = await self.warm(data_source, ttl, tier)
        return report.written

    async def warm(self, data_source, ttl=None, tier=None):
        """warm_cache() that returns the WarmReport (written, skipped, batches, seconds), and
        runs whatever enable_cache_warming says (shmcache.warm's command line uses it)."""
        core = self.core
        tiers = core.tiers(tier)
        if ttl is not None:
            seconds_to_ms(ttl)
        clock = WarmClock()
        async for batch in abatches(data_source, self.config.warming_batch_size):
            if tiers & TIER_L2:
                written, skipped = await self.off_loop(store_batch, core, batch, tiers, ttl)
            else:
                written, skipped = store_batch(core, batch, tiers, ttl)
                await asyncio.sleep(0)  # let requests in between batches
            clock.add(written, skipped)
        return clock.finish(self.config.shm_name)

    # ---- decorators ------------------------------------------------------------------------------
    def cached(self, ttl=None, key_prefix=None, tier=None, key_builder=None, cache_none=False,
               **options):
        """Decorator caching a function's results in this manager (async or sync functions);
        see shmcache.decorators. Also usable bare: @cache.cached."""
        if callable(ttl):
            return _decorators.cached(lambda: self)(ttl)
        return _decorators.cached(lambda: self, ttl, key_prefix, tier, key_builder, cache_none,
                                  **options)

    def cache_invalidate(self, *patterns, tier=None):
        """Decorator removing keys matching patterns after the function runs."""
        return _decorators.cache_invalidate(lambda: self, patterns, tier)

    @property
    def sync(self):
        """A SyncCacheManager sharing this manager's handle, for synchronous code."""
        if self._sync is None:
            self._sync = SyncCacheManager(self)
        return self._sync


class SyncCacheManager:
    """Synchronous cache manager. `with SyncCacheManager(config) as cache: ...`; see the module
    docstring. Same methods and contracts as CacheManager, without async."""

    def __init__(self, config=None):
        if isinstance(config, CacheManager):
            self._parent = config
            self.config = config.config
            self.core = config.core
        elif config is None or isinstance(config, CacheConfig):
            self._parent = None
            self.config = config if config is not None else CacheConfig()
            self.core = CacheCore(self.config)
        else:
            raise TypeError("SyncCacheManager takes a CacheConfig or a CacheManager, not "
                            f"{type(config).__name__}")
        self._monitor = None

    def __repr__(self):
        state = "open" if self.core.is_open else "closed"
        return f"<SyncCacheManager {self.config.shm_name!r} {state}, l2={self.core.has_l2}>"

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self):
        """Open the segment (and attach Redis, with one bounded probe); idempotent."""
        core = self.core
        if not core.is_open:
            core.open()
            if core.has_l2:
                core.probe_l2()
        if self.config.enable_monitoring and self._parent is None and self._monitor is None:
            self._monitor = ThreadMonitor(self.config.shm_name, self.get_stats,
                                          self.config.monitor_interval)
            self._monitor.start()
        return self

    def stop(self):
        if self._monitor is not None:
            monitor, self._monitor = self._monitor, None
            monitor.stop()
        self.core.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- the cache (see CacheManager for the contract of each) -----------------------------------
    def get(self, key, default=None, tier=None):
        core = self.core
        value = core.lookup(key, core.default_tiers if tier is None else core.tiers(tier))
        return default if value is MISS else value

    def set(self, key, value, ttl=None, tier=None):
        core = self.core
        return core.store(key, value, ttl, core.tiers(tier))

    def delete(self, key, tier=None):
        core = self.core
        return core.remove(key, core.tiers(tier))

    def exists(self, key, tier=None):
        core = self.core
        return core.contains(key, core.tiers(tier))

    def clear_pattern(self, pattern, tier=None):
        core = self.core
        return core.purge(core.stored_pattern(pattern), core.tiers(tier))

    def get_stats(self):
        return self.core.stats()

    def health_check(self):
        return self.core.health()

    def warm_cache(self, data_source, ttl=None, tier=None):
        """Load a sync data source (callable, iterable or mapping) in batches; returns the
        number written (0 when enable_cache_warming is False)."""
        if not self.config.enable_cache_warming:
            self.core.logs.event("warm-disabled", "warm_cache() called with "
                                 "enable_cache_warming=False; nothing loaded")
            return 0
        return self.warm(data_source, ttl, tier).written

    def warm(self, data_source, ttl=None, tier=None):
        """warm_cache() returning the WarmReport, whatever enable_cache_warming says."""
        core = self.core
        tiers = core.tiers(tier)
        if ttl is not None:
            seconds_to_ms(ttl)
        clock = WarmClock()
        for batch in batches(data_source, self.config.warming_batch_size):
            clock.add(*store_batch(core, batch, tiers, ttl))
        return clock.finish(self.config.shm_name)

    # ---- decorators ------------------------------------------------------------------------------
    def cached(self, ttl=None, key_prefix=None, tier=None, key_builder=None, cache_none=False,
               **options):
        """Decorator caching a function's results in this manager. An async function needs the
        async manager: use CacheManager (its .sync gives this API over the same handle)."""
        if callable(ttl):
            return self.cached()(ttl)
        decorate = _decorators.cached(self._for_decorators, ttl, key_prefix, tier, key_builder,
                                      cache_none, **options)

        def checked(func):
            if self._parent is None and inspect.iscoroutinefunction(func):
                raise TypeError(f"{func.__qualname__} is async: a standalone SyncCacheManager "
                                "cannot serve an async function; use CacheManager (its .sync "
                                "gives this API over the same handle)")
            return decorate(func)
        return checked

    def cache_invalidate(self, *patterns, tier=None):
        return _decorators.cache_invalidate(self._for_decorators, patterns, tier)

    def _for_decorators(self):
        # A facade's decorators serve async functions through its CacheManager, which has the
        # event-loop machinery (off_loop); the sync ones only use .core, the same for both.
        return self._parent if self._parent is not None else self



# ---- the process's default manager ---------------------------------------------------------------
_default_lock = threading.Lock()
_default = None


def create_cache_manager(config=None):
    """A new CacheManager for config (None: CacheConfig() defaults), registered as the default
    one used by shmcache.cached, shmcache.cache_invalidate and get_cache_manager(). Not started:
    `await manager.start()`, `async with create_cache_manager(cfg) as cache:`, or
    shmcache.fastapi.cache_lifespan."""
    global _default
    manager = CacheManager(config)
    with _default_lock:
        _default = manager
    return manager


def get_cache_manager():
    """The default manager (the last one create_cache_manager made)."""
    manager = _default
    if manager is None:
        raise RuntimeError("no cache manager: call shmcache.create_cache_manager(config) first "
                           "(at start-up, before the first cached call)")
    return manager


def set_cache_manager(manager):
    """Make manager (a CacheManager, or None) the default; returns the previous one."""
    global _default
    if manager is not None and not isinstance(manager, CacheManager):
        raise TypeError(f"expected a CacheManager, got {type(manager).__name__}")
    with _default_lock:
        previous, _default = _default, manager
    return previous


def cached(ttl=None, key_prefix=None, tier=None, key_builder=None, cache_none=False, **options):
    """@cached(...) with the default manager, resolved at each call (see shmcache.decorators).
    Also usable bare: @cached. options: single_flight, stale_ttl, early_refresh, lease_timeout,
    wait_timeout, cross_host_lock, ignore_self."""
    if callable(ttl):
        return _decorators.cached(get_cache_manager)(ttl)
    return _decorators.cached(get_cache_manager, ttl, key_prefix, tier, key_builder, cache_none,
                              **options)


def cache_invalidate(*patterns, tier=None):
    """@cache_invalidate("user_profile:{user_id}*", ...) with the default manager."""
    return _decorators.cache_invalidate(get_cache_manager, patterns, tier)


# ---- monitoring ----------------------------------------------------------------------------------
def describe(name, stats):
    l1, l2 = stats["l1_cache"], stats["l2_cache"]
    seg = stats["segment"]
    line = (f"shmcache[{name}]: L1 hit rate {l1['hit_rate']:.1%} ({l1['hits']} hits, "
            f"{l1['misses']} misses), {l1['size']} entries, {seg['bytes_used']} of "
            f"{seg['bytes_capacity']} bytes, {seg['evictions']} evictions, "
            f"{seg['lock_timeouts']} lock timeouts")
    if stats["l2_detail"].get("configured"):
        line += (f"; L2 {'connected' if l2['connected'] else 'NOT connected'}, hit rate "
                 f"{l2['hit_rate']:.1%}, {l2['errors']} errors")
    return line


class AsyncMonitor:
    def __init__(self, name, get_stats, interval):
        self._name, self._get_stats, self._interval = name, get_stats, interval
        self.last = None
        self._task = None

    @property
    def running(self):
        """True if the task runs on the current event loop. asyncio.run() cancels every task
        of its loop when it returns, and a forked child has no running parent loop at all: a
        manager started under one loop and used under another needs a new task."""
        task = self._task
        if task is None or task.done():
            return False
        try:
            return task.get_loop() is asyncio.get_running_loop()
        except RuntimeError:
            return False

    def start(self):
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="shmcache-monitor")

    async def stop(self):
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if task.get_loop() is not asyncio.get_running_loop():
            return  # another loop's task (dead loop, or the parent's before a fork): not ours
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def _run(self):
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.last = await self._get_stats()
                monitor_log.info("%s", describe(self._name, self.last))
            except Exception:  # a monitor must never die of one bad reading
                monitor_log.exception("shmcache[%s]: reading statistics failed", self._name)


class ThreadMonitor:
    def __init__(self, name, get_stats, interval):
        self._name, self._get_stats, self._interval = name, get_stats, interval
        self.last = None
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"shmcache-monitor-{self._name}")
            self._thread.start()

    def stop(self):
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            thread.join(timeout=5)

    def _run(self):
        while not self._stop.wait(self._interval):
            try:
                self.last = self._get_stats()
                monitor_log.info("%s", describe(self._name, self.last))
            except Exception:
                monitor_log.exception("shmcache[%s]: reading statistics failed", self._name)


# ---- warming -------------------------------------------------------------------------------------
@dataclasses.dataclass
class WarmReport:
    written: int = 0
    skipped: int = 0
    batches: int = 0
    seconds: float = 0.0

    @property
    def records(self):
        return self.written + self.skipped

    def summary(self):
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        return (f"warm: {self.written} written, {self.skipped} skipped, {self.records} records "
                f"in {self.batches} batches; {self.seconds:.2f} s, {rate:.0f} records/s")


def _record(item, index):
    """(key, value, ttl) of one record."""
    if isinstance(item, collections.abc.Mapping):
        if "key" not in item or "value" not in item:
            raise TypeError(f"warm record {index}: a mapping record needs 'key' and 'value' "
                            f"(and optionally 'ttl'), got keys {sorted(map(str, item))}")
        return item["key"], item["value"], item.get("ttl")
    if isinstance(item, (tuple, list)) and len(item) in (2, 3):
        return item[0], item[1], item[2] if len(item) == 3 else None
    raise TypeError(f"warm record {index}: expected (key, value), (key, value, ttl) or "
                    f"{{'key': ..., 'value': ..., 'ttl': ...}}, got {type(item).__name__}")


def _is_async_iterable(obj):
    return hasattr(obj, "__aiter__")


async def _resolve_async(source):
    if callable(source) and not isinstance(source, collections.abc.Iterable) and \
            not _is_async_iterable(source):
        source = source()
    if inspect.isawaitable(source):
        source = await source
    return source


def _resolve_sync(source):
    if callable(source) and not isinstance(source, collections.abc.Iterable) and \
            not _is_async_iterable(source):
        source = source()
    if inspect.isawaitable(source) or _is_async_iterable(source):
        if inspect.iscoroutine(source):
            source.close()  # do not leave a "never awaited" coroutine behind
        raise TypeError("an async data source needs the async CacheManager.warm_cache()")
    return source


def _items(source):
    if isinstance(source, collections.abc.Mapping):
        return iter(source.items())
    if isinstance(source, (str, bytes)) or not isinstance(source, collections.abc.Iterable):
        raise TypeError("a warm data source must be a callable, an iterable, an async iterable "
                        f"or a mapping, got {type(source).__name__}")
    return iter(source)


async def abatches(source, size):
    """Async generator of lists of (key, value, ttl), size at a time."""
    source = await _resolve_async(source)
    batch, index = [], 0
    if _is_async_iterable(source):
        async for item in source:
            batch.append(_record(item, index))
            index += 1
            if len(batch) >= size:
                yield batch
                batch = []
    else:
        for item in _items(source):
            batch.append(_record(item, index))
            index += 1
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def batches(source, size):
    """Generator of lists of (key, value, ttl), size at a time (sync sources only)."""
    batch = []
    for index, item in enumerate(_items(_resolve_sync(source))):
        batch.append(_record(item, index))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def store_batch(core, batch, tiers, default_ttl):
    """Write one batch; (written, skipped). Runs in whatever thread the caller chose."""
    written = skipped = 0
    for key, value, ttl in batch:
        try:
            stored = core.store(key, value,
                                default_ttl if ttl is None else ttl, tiers)
        except (TypeError, ValueError) as e:  # key/value too long or large, not serializable
            core.logs.event("warm-skip", f"warm: record {key!r} skipped: {e}")
            stored = False
        if stored:
            written += 1
        else:
            skipped += 1
    core.counters.add("warmed", written)
    return written, skipped


class WarmClock:
    """Times a warm run and logs its summary."""

    def __init__(self):
        self.report = WarmReport()
        self._start = time.monotonic()

    def add(self, written, skipped):
        self.report.written += written
        self.report.skipped += skipped
        self.report.batches += 1

    def finish(self, name):
        self.report.seconds = time.monotonic() - self._start
        log.info("shmcache[%s]: %s", name, self.report.summary())
        return self.report


# ---- fork ----------------------------------------------------------------------------------------
_FORK_AWARE = weakref.WeakSet()


def _after_fork_in_child():
    # A parent thread may have held a lock at the instant of fork; the child's copy would then
    # stay locked. The pool itself is replaced on first use (its pid differs).
    global _default_lock
    _default_lock = threading.Lock()
    for manager in list(_FORK_AWARE):
        manager._pool.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
