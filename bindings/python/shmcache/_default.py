"""_default.py - the module's default manager: create_cache_manager(), get_cache_manager(), and
the module-level @cached / @cache_invalidate that use it.

The guide's applications create one manager at start-up and decorate functions all over the
code base, at import time, before that manager exists. So the module-level decorators look the
default manager up at each call, not when they are applied.
"""
import os
import threading

from . import decorators as _decorators
from .manager import CacheManager

_lock = threading.Lock()
_default = None


def _after_fork_in_child():
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the instant of fork


os.register_at_fork(after_in_child=_after_fork_in_child)


def create_cache_manager(config=None):
    """A new CacheManager for config (None: CacheConfig() defaults), registered as the default
    one used by shmcache.cached, shmcache.cache_invalidate and get_cache_manager(). Not started:
    `await manager.start()`, `async with create_cache_manager(cfg) as cache:`, or
    shmcache.fastapi.cache_lifespan."""
    global _default
    manager = CacheManager(config)
    with _lock:
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
    with _lock:
        previous, _default = _default, manager
    return previous


def cached(ttl=None, key_prefix=None, tier=None, key_builder=None, cache_none=False,
           **stampede):
    """@cached(...) with the default manager, resolved at each call (see shmcache.decorators).
    Also usable bare: @cached. stampede: single_flight, stale_ttl, early_refresh, lease_timeout,
    wait_timeout, cross_host_lock (see shmcache._flight)."""
    if callable(ttl):
        return _decorators.cached(get_cache_manager)(ttl)
    return _decorators.cached(get_cache_manager, ttl, key_prefix, tier, key_builder, cache_none,
                              **stampede)


def cache_invalidate(*patterns, tier=None):
    """@cache_invalidate("user_profile:{user_id}*", ...) with the default manager."""
    return _decorators.cache_invalidate(get_cache_manager, patterns, tier)
