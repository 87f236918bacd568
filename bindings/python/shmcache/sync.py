"""sync.py - SyncCacheManager: the same cache for synchronous code (Flask, Django, scripts).

Same methods as CacheManager, without async: every call runs in the caller's thread, including
the ones that wait on Redis (each bounded by redis_command_timeout). A get with both tiers is
one library call (shmc_tget: L1, then Redis on a miss, copying a Redis hit into L1).

Two ways to get one:
  * SyncCacheManager(config): a manager of its own (its own handle, its own monitor thread);
  * CacheManager.sync: a facade over an async manager's handle, for the sync functions of an
    otherwise async application. It shares the handle: stopping either stops both.
Every method is thread-safe; one manager per process is enough.
"""
from . import decorators as _decorators
from ._core import CacheCore, seconds_to_ms
from ._monitor import ThreadMonitor
from ._warming import WarmClock, batches, store_batch
from .config import CacheConfig
from .health import check_health
from .stats import build_stats


class SyncCacheManager:
    """Synchronous cache manager. `with SyncCacheManager(config) as cache: ...`

    An instance's get and set are the functions of its CacheCore's hot path themselves (see
    _use and _core), rebound whenever the cache opens or closes; the methods below, the same
    calls, are what a subclass inherits.
    """

    def __init__(self, config=None):
        from .manager import CacheManager

        if isinstance(config, CacheManager):
            self._parent = config
            self.config = config.config
            self._core = config._core
        elif config is None or isinstance(config, CacheConfig):
            self._parent = None
            self.config = config if config is not None else CacheConfig()
            self._core = CacheCore(self.config)
        else:
            raise TypeError("SyncCacheManager takes a CacheConfig or a CacheManager, not "
                            f"{type(config).__name__}")
        self._monitor = None
        self._core.bind_facade(self)

    def _use(self, get, set):
        # get and set are the core's fast_get and fast_set (its hot path while open, see
        # _core): they have this class's signatures and behaviour, so they become this
        # instance's own get and set, which saves a Python call per call. A subclass that
        # overrides get or set keeps its own.
        cls = type(self)
        if cls.get is SyncCacheManager.get:
            self.get = get
        if cls.set is SyncCacheManager.set:
            self.set = set

    def __repr__(self):
        state = "open" if self._core.is_open else "closed"
        return f"<SyncCacheManager {self.config.shm_name!r} {state}, l2={self._core.has_l2}>"

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self):
        """Open the segment (and attach Redis); idempotent."""
        self._core.open()
        if self.config.enable_monitoring and self._parent is None and self._monitor is None:
            self._monitor = ThreadMonitor(self.config.shm_name, self.get_stats,
                                          self.config.monitor_interval)
            self._monitor.start()
        return self

    def stop(self):
        if self._monitor is not None:
            monitor, self._monitor = self._monitor, None
            monitor.stop()
        self._core.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- the cache (see CacheManager for the contract of each) -----------------------------------
    def get(self, key, default=None, tier=None):
        # Normally shadowed by the instance's own get (see _use); the same call.
        return self._core.fast_get(key, default, tier)

    def set(self, key, value, ttl=None, tier=None):
        return self._core.fast_set(key, value, ttl, tier)

    def delete(self, key, tier=None):
        core = self._core
        return core.remove(core.keys.key(key), core.tiers(tier))

    def exists(self, key, tier=None):
        core = self._core
        return core.contains(core.keys.key(key), core.tiers(tier))

    def clear_pattern(self, pattern, tier=None):
        core = self._core
        return core.purge(self._validate_pattern(pattern), core.tiers(tier))

    def get_stats(self):
        core = self._core
        st, info, l2, flight = core.raw_figures()
        return build_stats(self.config, st, info, l2, core.counters.snapshot(), flight)

    def health_check(self):
        return check_health(self._core)

    def warm_cache(self, data_source, ttl=None, tier=None):
        """Load a sync data source (callable, iterable or mapping) in batches; returns the
        number written (0 when enable_cache_warming is False)."""
        if not self.config.enable_cache_warming:
            self._core.logs.event("warm-disabled", "warm_cache() called with "
                                  "enable_cache_warming=False; nothing loaded")
            return 0
        return self._warm(data_source, ttl, tier).written

    def _warm(self, data_source, ttl, tier):
        core = self._core
        tiers = core.tiers(tier)
        if ttl is not None:
            seconds_to_ms(ttl)
        clock = WarmClock()
        for batch in batches(data_source, self.config.warming_batch_size):
            clock.add(*store_batch(core, batch, tiers, ttl))
        return clock.finish(self.config.shm_name)

    def _validate_pattern(self, pattern):
        return self._core.stored_pattern(pattern)

    # ---- decorators ------------------------------------------------------------------------------
    def cached(self, ttl=None, key_prefix=None, tier=None, key_builder=None, cache_none=False,
               **stampede):
        if callable(ttl):
            return _decorators.cached(lambda: self)(ttl)
        return _decorators.cached(lambda: self, ttl, key_prefix, tier, key_builder, cache_none,
                                  **stampede)

    def cache_invalidate(self, *patterns, tier=None):
        return _decorators.cache_invalidate(lambda: self, patterns, tier)

    def _sync_api(self):
        return self

    def _async_api(self):
        if self._parent is not None:
            return self._parent
        raise TypeError("a standalone SyncCacheManager cannot serve an async function; use "
                        "CacheManager (its .sync gives this API over the same handle)")
