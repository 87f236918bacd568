"""manager.py - CacheManager, the asyncio API (the guide's CacheManager).

Where each call runs:
  * L1 work (shared memory, no I/O; a get is a few microseconds from Python) runs inline on the
    event loop: handing it to a thread would cost more than the lookup itself;
  * anything that may wait on Redis runs in this manager's own thread pool, sized
    redis_max_connections (the library's per-process connection limit, so a thread never waits
    for a connection): a get that missed L1, a set/delete with L2 in the tiers, purges (which
    also walk every stripe), L2 statistics and the health probe. ctypes releases the GIL during
    the C call, so the loop keeps serving while a thread waits on Redis.

A get with both tiers is therefore: shmc_get inline; on a miss, shmc_tget(L1+L2) in the pool
(it looks at L1 once more, then Redis, and copies a Redis hit into L1 for memory_cache_ttl).
Values are serialized on the loop, at the moment set() is called, so a caller that mutates its
object after the await does not change what was stored.

fork(): a manager started before fork (gunicorn --preload) works in the child: the thread pool
is recreated on first use in a new process, and the library reconnects to Redis by itself.
"""
import asyncio
import concurrent.futures
import os
import threading
import weakref

from . import decorators as _decorators
from ._core import MISS, CacheCore, seconds_to_ms
from ._ffi import TIER_L1, TIER_L2
from ._monitor import AsyncMonitor
from ._warming import WarmClock, abatches, store_batch
from .config import CacheConfig
from .health import check_health
from .stats import build_stats


class CacheManager:
    """Async cache over this host's shared-memory segment, with Redis behind it if configured.

    Use `await start()` / `await stop()`, or `async with CacheManager(config) as cache:`.
    Calls made before start() open the segment on first use.
    """

    def __init__(self, config=None):
        if config is not None and not isinstance(config, CacheConfig):
            raise TypeError(f"config must be a CacheConfig, not {type(config).__name__}")
        self.config = config if config is not None else CacheConfig()
        self._core = CacheCore(self.config)
        self._pool = None
        self._pool_pid = None
        self._pool_lock = threading.Lock()
        self._monitor = None
        self._sync = None
        _FORK_AWARE.add(self)

    def __repr__(self):
        state = "open" if self._core.is_open else "closed"
        return f"<CacheManager {self.config.shm_name!r} {state}, l2={self._core.has_l2}>"

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start(self):
        """Open the segment (creating it if needed) and attach Redis; idempotent. Redis is not
        contacted here: a Redis that is down does not stop the service from starting."""
        if not self._core.is_open:
            # Opening may wait up to 2 s for another process that is creating the segment.
            await self._off_loop(self._core.open)
        if self.config.enable_monitoring:
            if self._monitor is None:
                self._monitor = AsyncMonitor(self.config.shm_name, self.get_stats,
                                             self.config.monitor_interval)
            self._monitor.start()  # (re)starts it on this loop if it is not running here
        return self

    async def stop(self):
        """Stop monitoring, let calls in flight finish (each is bounded), close the handle."""
        if self._monitor is not None:
            monitor, self._monitor = self._monitor, None
            await monitor.stop()
        pool = self._take_pool()
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown, True)
        await asyncio.get_running_loop().run_in_executor(None, self._core.close)

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()

    def _take_pool(self):
        with self._pool_lock:
            pool, self._pool = self._pool, None
            if self._pool_pid != os.getpid():
                return None  # the parent's pool: its threads do not exist in this process
            return pool

    def _executor(self):
        pid = os.getpid()
        pool = self._pool
        if pool is not None and self._pool_pid == pid:
            return pool
        with self._pool_lock:
            if self._pool is None or self._pool_pid != pid:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.config.redis_max_connections,
                    thread_name_prefix=f"shmcache-{self.config.shm_name}")
                self._pool_pid = pid
            return self._pool

    async def _off_loop(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor(), fn, *args)

    # ---- the cache -------------------------------------------------------------------------------
    async def get(self, key, default=None, tier=None):
        """The value stored under key, or default. Never raises for a miss of any cause (absent,
        expired, lock timeout, Redis down, damaged or refused value); raises for a key that is
        not str/bytes, empty, or over 4096 bytes with the namespace."""
        core = self._core
        if tier is None:  # the hot path (see CacheCore)
            if core.l1_only:
                return core.fast_get(key, default)
            step = core.l1_step
            if step is not None:  # L1 inline, then Redis in the pool
                value = step(key, MISS)
                if value is not MISS:
                    return value
                value = await self._off_loop(core.lookup, core.keys.key(key), core.tiers(),
                                             True, key)
                return default if value is MISS else value
        k = core.keys.key(key)
        tiers = core.tiers(tier)
        if tiers & TIER_L1:
            value = core.lookup(k, TIER_L1, not tiers & TIER_L2, key)
            if value is not MISS:
                return value
        if tiers & TIER_L2:
            value = await self._off_loop(core.lookup, k, tiers, True, key)
            if value is not MISS:
                return value
        return default

    async def set(self, key, value, ttl=None, tier=None):
        """Store value under key. ttl in seconds for every tier written (0: never expires);
        None: memory_cache_ttl in L1 and redis_ttl in L2. Returns True if stored, False if a
        transient failure (a stripe lock timeout) kept it out. With both tiers and Redis down,
        L1 is written and True returned. Raises KeyTooLongError, ValueTooLargeError, or
        TypeError/ValueError for a value the serializer cannot encode."""
        core = self._core
        if tier is None and core.l1_only:
            return core.fast_set(key, value, ttl)  # the hot path (see CacheCore), inline
        k = core.keys.key(key)
        tiers = core.tiers(tier)
        if ttl is not None:
            seconds_to_ms(ttl)  # a bad ttl raises here, on the caller's line
        encoded = core.codec.dumps(value)
        if tiers & TIER_L2:
            return await self._off_loop(core.store_encoded, k, encoded, ttl, tiers)
        return core.store_encoded(k, encoded, ttl, tiers)

    async def delete(self, key, tier=None):
        """Remove key; True if some tier held it."""
        core = self._core
        k = core.keys.key(key)
        tiers = core.tiers(tier)
        if tiers & TIER_L2:
            return await self._off_loop(core.remove, k, tiers)
        return core.remove(k, tiers)

    async def exists(self, key, tier=None):
        """True if key is live in one of the tiers (counts as a lookup in the statistics)."""
        core = self._core
        k = core.keys.key(key)
        tiers = core.tiers(tier)
        if tiers & TIER_L1 and core.contains(k, TIER_L1):
            return True
        if tiers & TIER_L2:
            return await self._off_loop(core.contains, k, TIER_L2)
        return False

    async def clear_pattern(self, pattern, tier=None):
        """Remove every key matching the glob pattern (`user_profile:*`, `report:2024:1?`,
        `[a-c]*`), in the namespace. Returns how many were removed (the larger of the two
        tiers' counts). Raises BadPatternError for a malformed pattern."""
        core = self._core
        p = self._validate_pattern(pattern)
        return await self._off_loop(core.purge, p, core.tiers(tier))

    async def get_stats(self):
        """Statistics in the guide's shape, plus "segment", "l2_detail" and "process"
        (see shmcache.stats)."""
        core = self._core
        if core.config.l2_enabled:
            st, info, l2, flight = await self._off_loop(core.raw_figures)
        else:
            st, info, l2, flight = core.raw_figures()
        return build_stats(self.config, st, info, l2, core.counters.snapshot(), flight)

    async def health_check(self):
        """{"status": healthy|degraded|unhealthy, "l1": {...}, "l2": {...}} (see shmcache.health).
        """
        if self.config.l2_enabled:
            return await self._off_loop(check_health, self._core)
        return check_health(self._core)

    async def warm_cache(self, data_source, ttl=None, tier=None):
        """Load records from data_source (see shmcache._warming for what it may be), in batches
        of warming_batch_size; returns the number written. Does nothing (returns 0) when
        enable_cache_warming is False."""
        if not self.config.enable_cache_warming:
            self._core.logs.event("warm-disabled", "warm_cache() called with "
                                  "enable_cache_warming=False; nothing loaded")
            return 0
        report = await self._warm(data_source, ttl, tier)
        return report.written

    async def _warm(self, data_source, ttl, tier):
        core = self._core
        tiers = core.tiers(tier)
        if ttl is not None:
            seconds_to_ms(ttl)
        clock = WarmClock()
        async for batch in abatches(data_source, self.config.warming_batch_size):
            if tiers & TIER_L2:
                written, skipped = await self._off_loop(store_batch, core, batch, tiers, ttl)
            else:
                written, skipped = store_batch(core, batch, tiers, ttl)
                await asyncio.sleep(0)  # let requests in between batches
            clock.add(written, skipped)
        return clock.finish(self.config.shm_name)

    def _validate_pattern(self, pattern):
        """The stored-key pattern (bytes) for pattern; BadPatternError if malformed."""
        return self._core.stored_pattern(pattern)

    # ---- decorators ------------------------------------------------------------------------------
    def cached(self, ttl=None, key_prefix=None, tier=None, key_builder=None, cache_none=False,
               **stampede):
        """Decorator caching a function's results in this manager (async or sync functions);
        see shmcache.decorators. Also usable bare: @cache.cached."""
        if callable(ttl):
            return _decorators.cached(lambda: self)(ttl)
        return _decorators.cached(lambda: self, ttl, key_prefix, tier, key_builder, cache_none,
                                  **stampede)

    def cache_invalidate(self, *patterns, tier=None):
        """Decorator removing keys matching patterns after the function runs."""
        return _decorators.cache_invalidate(lambda: self, patterns, tier)

    @property
    def sync(self):
        """A SyncCacheManager sharing this manager's handle, for synchronous code."""
        if self._sync is None:
            from .sync import SyncCacheManager
            self._sync = SyncCacheManager(self)
        return self._sync

    def _async_api(self):
        return self

    def _sync_api(self):
        return self.sync


# ---- fork ----------------------------------------------------------------------------------------
_FORK_AWARE = weakref.WeakSet()


def _after_fork_in_child():
    # A parent thread may have held the pool lock at the instant of fork; the child's copy would
    # then stay locked. The pool itself is replaced on first use (its pid differs).
    for manager in list(_FORK_AWARE):
        manager._pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
