"""decorators.py - @cached and @cache_invalidate, for async and sync functions alike.

Both decorators take a `resolve` callable that returns the manager to use, called at each call
of the decorated function, not when it is decorated. The module-level shmcache.cached resolves
the default manager (create_cache_manager), so functions can be decorated at import time, before
any manager exists; CacheManager.cached resolves to that manager.

An async function gets an async wrapper that uses the async manager (lookups in L1 inline,
Redis off the event loop); a sync function gets a sync wrapper that uses the synchronous path
(for Flask, Django, scripts, or FastAPI's `def` endpoints, which run in a thread pool). Do not
call a sync cached function from inside a coroutine when Redis is configured: on an L1 miss it
waits for Redis on the event loop's thread.

@cached: a hit returns the stored value; a miss calls the function and stores its result (unless
it is None and cache_none is False: "nothing found" is not cached by default). A result too
large for the segment is returned uncached, with a warning; a result the serializer cannot
encode raises TypeError, since it would never be cached.

Stampede options (see _flight and docs/stampede.md): single_flight=True makes one caller per
host compute a missing value while the others wait for it; stale_ttl=S serves the old value
for S seconds after the TTL while one caller refreshes it in the background; early_refresh=True
(or a beta) refreshes hot keys shortly before they expire (XFetch); lease_timeout and
wait_timeout bound a computation and a wait; cross_host_lock=True (with Redis) makes one host
compute for all. Any of them turns single flight on.

@cache_invalidate: after the function returns or raises (a failed update may have committed
part of its work, and an extra miss is cheap), remove every key matching the patterns. Patterns
may name the function's arguments: "user_profile:{user_id}*"; each value is rendered as in
keys (and glob-escaped). A pattern may also be a callable taking the function's arguments.
Patterns are formatted and checked before the function runs, so a bad pattern fails before any
side effect.
"""
import functools
import inspect

from . import _flight
from .config import CacheTier
from .errors import ValueTooLargeError
from .keys import FunctionKeys

_MISSING = object()


def _check_plain_function(func, what):
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(f"@{what} cannot wrap a generator function ({func.__qualname__}): "
                        "its result is consumed lazily; cache a function returning a list")
    if not callable(func):
        raise TypeError(f"@{what} needs a function, got {type(func).__name__}")


def _too_large(manager, func, err):
    # Rate-limited like the managers' own events: a function whose results are always too
    # large would otherwise log on every call.
    manager._core.logs.event(f"too-large:{func.__qualname__}",
                             f"result of {func.__qualname__} not cached: {err}")


def cached(resolve, ttl=None, key_prefix=None, tier=None, key_builder=None, cache_none=False, *,
           single_flight=None, stale_ttl=None, early_refresh=None, lease_timeout=None,
           wait_timeout=None, cross_host_lock=False):
    """The decorator; see the module docstring. key_builder(*args, **kwargs) -> str replaces
    the automatic key (the namespace is still applied)."""
    policy = _flight.FlightPolicy(single_flight, stale_ttl, early_refresh, lease_timeout,
                                  wait_timeout, cross_host_lock)

    def decorate(func):
        _check_plain_function(func, "cached")
        keys = FunctionKeys(func, key_prefix)

        def key_for(manager, args, kwargs):
            if key_builder is not None:
                return key_builder(*args, **kwargs)
            return keys.key(args, kwargs, manager.config.key_separator)

        if policy.enabled:
            wrapper = _single_flight_wrapper(func, policy, resolve, key_for, ttl, tier,
                                             cache_none)
        elif inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args, **kwargs):
                manager = resolve()._async_api()
                key = key_for(manager, args, kwargs)
                value = await manager.get(key, _MISSING, tier)
                if value is not _MISSING:
                    return value
                result = await func(*args, **kwargs)
                if result is not None or cache_none:
                    try:
                        await manager.set(key, result, ttl, tier)
                    except ValueTooLargeError as e:
                        _too_large(manager, func, e)
                return result
            wrapper = async_wrapper
        else:
            @functools.wraps(func)
            def sync_wrapper(*args, **kwargs):
                manager = resolve()._sync_api()
                key = key_for(manager, args, kwargs)
                value = manager.get(key, _MISSING, tier)
                if value is not _MISSING:
                    return value
                result = func(*args, **kwargs)
                if result is not None or cache_none:
                    try:
                        manager.set(key, result, ttl, tier)
                    except ValueTooLargeError as e:
                        _too_large(manager, func, e)
                return result
            wrapper = sync_wrapper

        def cache_key(*args, **kwargs):
            """The key (before the namespace) that a call with these arguments uses."""
            return key_for(resolve(), args, kwargs)

        wrapper.cache_key = cache_key
        wrapper.cache_key_prefix = keys.prefix
        return wrapper

    return decorate


def _single_flight_wrapper(func, policy, resolve, key_for, ttl, tier, cache_none):
    """The wrapper of a function cached with stampede options (see _flight)."""
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_wrapper(*args, **kwargs):
            manager = resolve()._async_api()
            return await _flight.call_async(
                manager, policy, key_for(manager, args, kwargs), func, args, kwargs, ttl, tier,
                cache_none, lambda e: _too_large(manager, func, e))
        return async_wrapper

    @functools.wraps(func)
    def sync_wrapper(*args, **kwargs):
        manager = resolve()._sync_api()
        return _flight.call_sync(
            manager._core, policy, key_for(manager, args, kwargs), func, args, kwargs, ttl, tier,
            cache_none, lambda e: _too_large(manager, func, e))
    return sync_wrapper


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

        def prepared(manager, args, kwargs):
            found = keys.patterns(patterns, args, kwargs)
            for p in found:
                manager._validate_pattern(p)  # before the function's side effects
            return found

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args, **kwargs):
                manager = resolve()._async_api()
                todo = prepared(manager, args, kwargs)
                try:
                    return await func(*args, **kwargs)
                finally:
                    for p in todo:
                        await manager.clear_pattern(p, purge_tier)
            return async_wrapper

        @functools.wraps(func)
        def sync_wrapper(*args, **kwargs):
            manager = resolve()._sync_api()
            todo = prepared(manager, args, kwargs)
            try:
                return func(*args, **kwargs)
            finally:
                for p in todo:
                    manager.clear_pattern(p, purge_tier)
        return sync_wrapper

    return decorate

